// Collaboration messages: what an agent sends (proto/heal.proto) and how the ego reads it.
//
// Features travel as float32, float16 or int8 (symmetric, per-tensor or per-channel scale), dense
// or sparse (only selected BEV cells, Where2comm-style). Everything that arrives is untrusted:
// decodeMessage checks the size before parsing, then every field, and turns any problem into a
// MessageError naming the field, so one bad sender cannot crash or stall the ego.
//
// Feature layout: [C, H, W], row = y index (y increasing with the row), column = x index, the same
// layout as the pillar scatter and the anchors (formats.md §4.4).

import { fileURLToPath } from 'node:url';
import { brotliCompressSync, brotliDecompressSync, constants as zlibConstants, deflateRawSync, inflateRawSync } from 'node:zlib';
import protobuf from 'protobufjs';
import { DataError } from '../datasets/io.ts';
import { featureCellSize, featureGrid, type SharedSpace } from '../perception/space.ts';
import type { heal } from '../proto/heal.d.ts';
import { applyPointwise, type LearnedCodec } from './codec.ts';

export const SCHEMA_VERSION = 1;

export type FeatureDType = 'float32' | 'float16' | 'int8' | 'int4';

/** A general-purpose compressor over the quantised payload (node:zlib). */
export type EntropyCoder = 'none' | 'deflate' | 'brotli';

/** The BEV grid of the features, in the sender's LiDAR frame (see Grid in proto/heal.proto). */
export interface BevGrid {
  xMin: number;
  xMax: number;
  yMin: number;
  yMax: number;
  cellSize: number;
  width: number;
  height: number;
  channels: number;
}

export interface Detections {
  /** N × 7 [x, y, z, h, w, l, yaw] in the sender's LiDAR frame. */
  boxes: Float32Array;
  /** N confidences in [0, 1]. */
  scores: Float32Array;
}

export interface CollabMessage {
  agentId: string;
  /** Agent type ("m1".."m4"). */
  agentType: string;
  /** Frame timestamp as the dataset names it. */
  timestamp: string;
  sequence: number;
  /** T_world←lidar of the sender, 4×4 row-major. */
  pose: Float64Array;
  grid: BevGrid;
  /** Dense [C, H, W] features; absent for a detections-only (late fusion) message. */
  features?: Float32Array;
  /**
   * After decoding a sparse message: H×W, 1 where the cell was transmitted (others are 0 in
   * features, or the fill).
   */
  mask?: Uint8Array;
  /** After decoding a sparse message that carries one: the value [C] of each channel at the cells not sent, already in features. */
  fill?: Float32Array;
  detections?: Detections;
}

export interface DecodedMessage extends CollabMessage {
  schemaVersion: number;
  /** The dtype the features travelled as (undefined without features). */
  dtype?: FeatureDType;
  /** The codec named in the header (absent: plain dtype coding). */
  codec?: { name: string; codeChannels: number; entropy: EntropyCoder };
}

export interface EncodeOptions {
  dtype: FeatureDType;
  /** int8 only: one scale for the whole tensor or one per channel (default). */
  int8Scale?: 'tensor' | 'channel';
  /** Send only the cells set in this H×W mask. */
  mask?: Uint8Array;
  /**
   * Send only the cells whose score is above this threshold. The score is `confidence` when given
   * (e.g. the detection head's max-anchor sigmoid, as Where2comm does), else the cell's largest
   * |feature| over channels, so empty cells are dropped.
   */
  sparseThreshold?: number;
  /** H×W per-cell score for sparseThreshold and topK. */
  confidence?: Float32Array;
  /** Send only the k cells with the highest score (as for sparseThreshold); ties keep the lower index. */
  topK?: number;
  /**
   * A sparse message also carries the per-channel median of the cells it does not send (float16),
   * which the receiver puts there: a map with holes of zeros is one the fusion never saw in training.
   */
  fill?: boolean;
  /** The most bytes the encoded message may take: fewer cells than topK are sent, the best first, until it fits. */
  maxBytes?: number;
  /** The learned channel compressor's sender half: the features travel as its code channels. */
  learned?: LearnedCodec;
  /** Entropy coder over the quantised payload (default none). */
  entropy?: EntropyCoder;
  /** The codec's name, written in the header (with learned or entropy, or any name given). */
  codecName?: string;
}

export interface DecodeLimits {
  /** Largest accepted message in bytes, checked before parsing (default 64 MiB). */
  maxBytes?: number;
  /** Largest accepted dense C·H·W, bounding the memory decoding allocates (default 2^25). */
  maxElements?: number;
  maxDetections?: number;
  /** Largest accepted |translation| of the pose in meters (default 1e5). */
  maxTranslation?: number;
  /** Largest accepted |RᵀR − I| entry and last-row deviation of the pose (default 1e-4). */
  poseTolerance?: number;
  /**
   * The grid the receiver fuses on (the ego's space, gridForSpace): when given, a message on any
   * other grid, channel count, cell size or origin is rejected (SpaceMismatch) before its features
   * are unpacked.
   */
  grid?: BevGrid;
}

type Limits = Required<Omit<DecodeLimits, 'grid'>> & Pick<DecodeLimits, 'grid'>;

export const DEFAULT_LIMITS: Limits = {
  maxBytes: 64 * 1024 * 1024,
  maxElements: 1 << 25,
  maxDetections: 10_000,
  maxTranslation: 1e5,
  poseTolerance: 1e-4,
};

const MAX_DIM = 65_536;
const MAX_CHANNELS = 4_096;
const AGENT_TYPE = /^[A-Za-z0-9_.-]+$/;

/** A rejected collaboration message: `field` says which part is wrong (dotted path). */
export class MessageError extends DataError {
  declare readonly field: string;
  constructor(field: string, reason: string, value?: unknown, source = 'collaboration message') {
    super(source, field, reason, value);
    this.name = 'MessageError';
  }
  get reason(): string {
    return this.detail;
  }
}

/** A valid message on another grid than the receiver's (DecodeLimits.grid): `field` names the part that differs. */
export class SpaceMismatch extends MessageError {
  constructor(field: string, reason: string, value?: unknown) {
    super(field, reason, value);
    this.name = 'SpaceMismatch';
  }
}

// ---------------------------------------------------------------------------------------------
// Schema

interface Schema {
  message: protobuf.Type;
  dtypeEnum: protobuf.Enum;
}

let schema: Schema | undefined;

function loadSchema(): Schema {
  if (!schema) {
    const root = protobuf.loadSync(fileURLToPath(new URL('../proto/heal.proto', import.meta.url)));
    schema = { message: root.lookupType('heal.CollabMessage'), dtypeEnum: root.lookupEnum('heal.DType') };
  }
  return schema;
}

/** Bytes of `count` values as `dtype` (int4 packs two per byte). */
function payloadBytes(dtype: FeatureDType, count: number): number {
  return dtype === 'int4' ? Math.ceil(count / 2) : count * { float32: 4, float16: 2, int8: 1 }[dtype];
}
const DTYPE_TO_WIRE: Record<FeatureDType, keyof typeof heal.DType> = { float32: 'FLOAT32', float16: 'FLOAT16', int8: 'INT8', int4: 'INT4' };
const ENTROPY_TO_WIRE: Record<EntropyCoder, number> = { none: 0, deflate: 1, brotli: 2 };
const ENTROPY_BY_WIRE: Record<number, EntropyCoder> = { 0: 'none', 1: 'deflate', 2: 'brotli' };

// ---------------------------------------------------------------------------------------------
// float16

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** IEEE binary16 bits of `v`, rounded to nearest even; overflow gives ±inf, NaN stays NaN. */
export function float32ToFloat16Bits(v: number): number {
  f32[0] = v;
  const x = u32[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // Half subnormal: below half the smallest subnormal (2^-25) everything rounds to zero.
    if (e < -10) return sign;
    const m = mant | 0x800000;
    const shift = 14 - e;
    let half = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rem > halfway || (rem === halfway && half & 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  // A carry out of the mantissa correctly bumps the exponent (up to inf).
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++;
  return sign | half;
}

export function float16BitsToFloat32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

let halfTable: Float32Array | undefined;

/** All 65536 half values, so decoding is one lookup per element. */
function float16Table(): Float32Array {
  if (!halfTable) {
    halfTable = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) halfTable[h] = float16BitsToFloat32(h);
  }
  return halfTable;
}

// ---------------------------------------------------------------------------------------------
// Grid helpers

/** The grid of an encoder's output in a shared-space profile. */
export function gridForSpace(space: SharedSpace): BevGrid {
  const [width, height] = featureGrid(space);
  const [cx, cy] = featureCellSize(space);
  if (Math.abs(cx - cy) > 1e-9) throw new Error(`shared space "${space.name}": BEV cells must be square for messages (got ${cx} × ${cy})`);
  const [xMin, yMin, , xMax, yMax] = space.range;
  return { xMin, xMax, yMin, yMax, cellSize: cx, width, height, channels: space.channels };
}

// ---------------------------------------------------------------------------------------------
// Encoding

/**
 * H×W mask keeping the `keep` fraction (0 < keep ≤ 1) of cells with the largest |feature| over
 * channels: a foreground proxy that needs nothing but the features, so any sender can use it.
 * Ties at the cut keep the lower cell index, so the mask is deterministic.
 */
export function strongestCellsMask(features: Float32Array, grid: BevGrid, keep: number): Uint8Array {
  if (!(keep > 0 && keep <= 1)) throw new MessageError('mask', 'keep fraction must be in (0, 1]', keep);
  const cells = grid.width * grid.height;
  if (features.length !== grid.channels * cells) {
    throw new MessageError('features.shape', `features have ${features.length} values, grid says ${grid.channels}×${grid.height}×${grid.width}`);
  }
  const score = new Float32Array(cells);
  for (let c = 0; c < grid.channels; c++) {
    const base = c * cells;
    for (let i = 0; i < cells; i++) {
      const a = Math.abs(features[base + i]);
      if (a > score[i]) score[i] = a;
    }
  }
  const k = Math.max(1, Math.round(keep * cells));
  const order = Array.from({ length: cells }, (_, i) => i).sort((a, b) => score[b] - score[a] || a - b);
  const mask = new Uint8Array(cells);
  for (let j = 0; j < k; j++) mask[order[j]] = 1;
  return mask;
}

/** The score a cell selection ranks by: `confidence`, else the cell's largest |feature| over channels. */
function cellScores(grid: BevGrid, opts: EncodeOptions, features: Float32Array): Float32Array {
  const { width: W, height: H, channels: C } = grid;
  const cells = W * H;
  if (opts.confidence) {
    if (opts.confidence.length !== cells) throw new MessageError('mask', `encode: confidence has ${opts.confidence.length} entries, grid has ${H}×${W}`);
    return opts.confidence;
  }
  const score = new Float32Array(cells);
  for (let c = 0; c < C; c++) {
    const base = c * cells;
    for (let i = 0; i < cells; i++) {
      const a = Math.abs(features[base + i]);
      if (a > score[i]) score[i] = a;
    }
  }
  return score;
}

function selectCells(msg: CollabMessage, opts: EncodeOptions, features: Float32Array): Uint8Array | undefined {
  const { width: W, height: H } = msg.grid;
  const cells = W * H;
  if (opts.mask) {
    if (opts.mask.length !== cells) throw new MessageError('mask', `encode: mask has ${opts.mask.length} entries, grid has ${H}×${W}`);
    return opts.mask;
  }
  if (opts.sparseThreshold === undefined && opts.topK === undefined) return undefined;
  if (opts.sparseThreshold !== undefined && !Number.isFinite(opts.sparseThreshold))
    throw new MessageError('mask', 'encode: sparseThreshold must be finite', opts.sparseThreshold);
  if (opts.topK !== undefined && !(Number.isInteger(opts.topK) && opts.topK >= 1))
    throw new MessageError('mask', 'encode: topK must be an integer ≥ 1', opts.topK);
  const score = cellScores(msg.grid, opts, features);
  const mask = new Uint8Array(cells);
  const threshold = opts.sparseThreshold ?? -Infinity;
  for (let i = 0; i < cells; i++) mask[i] = score[i] > threshold ? 1 : 0;
  if (opts.topK !== undefined && opts.topK < cells) {
    // The k-th largest score by a native numeric sort, then the cells above it and, of those equal
    // to it, the lowest indices: the same cells as a full stable ranking, ten times faster.
    const kth = Float32Array.from(score).sort()[cells - opts.topK];
    let room = opts.topK;
    for (let i = 0; i < cells; i++) if (score[i] > kth) room--;
    for (let i = 0; i < cells; i++) {
      if (score[i] > kth) continue;
      if (score[i] === kth && room > 0) room--;
      else mask[i] = 0;
    }
  }
  return mask;
}

function varintSize(v: number): number {
  return v < 0x80 ? 1 : v < 0x4000 ? 2 : v < 0x200000 ? 3 : v < 0x10000000 ? 4 : 5;
}

/** Alternating run lengths (not sent, sent, not sent, ...) of a mask, trailing unsent cells left out. */
export function maskRuns(mask: Uint8Array): number[] {
  const runs: number[] = [];
  let cur = 0;
  let len = 0;
  let lastSent = 0;
  for (let i = 0; i < mask.length; i++) {
    const v = mask[i] ? 1 : 0;
    if (v !== cur) {
      runs.push(len);
      cur = v;
      len = 0;
    }
    len++;
    if (v) lastSent = runs.length + 1;
  }
  runs.push(len);
  return runs.slice(0, lastSent);
}

/** The smallest of the three mask encodings (bitmask, delta-coded indices, run lengths). */
function encodeMask(mask: Uint8Array, cellIndices: Uint32Array): { bitmask: Uint8Array } | { deltas: { value: number[] } } | { runs: { value: number[] } } {
  let deltaBytes = 0;
  let prev = 0;
  for (let k = 0; k < cellIndices.length; k++) {
    deltaBytes += varintSize(cellIndices[k] - prev);
    prev = cellIndices[k];
  }
  const runs = maskRuns(mask);
  const runBytes = runs.reduce((a, r) => a + varintSize(r), 0);
  const bitmaskBytes = Math.ceil(mask.length / 8);
  if (runBytes < deltaBytes && runBytes < bitmaskBytes) return { runs: { value: runs } };
  if (bitmaskBytes <= deltaBytes) {
    const bits = new Uint8Array(bitmaskBytes);
    for (const i of cellIndices) bits[i >>> 3] |= 1 << (i & 7);
    return { bitmask: bits };
  }
  const value = new Array<number>(cellIndices.length);
  prev = 0;
  for (let k = 0; k < cellIndices.length; k++) {
    value[k] = cellIndices[k] - prev;
    prev = cellIndices[k];
  }
  return { deltas: { value } };
}

/** Little-endian binary16 of every value; refuses one that overflows, as the receiver would reject inf. */
function float16Bytes(values: Float32Array, field: string): Uint8Array {
  const data = new Uint8Array(values.length * 2);
  for (let i = 0; i < values.length; i++) {
    const h = float32ToFloat16Bits(values[i]);
    if ((h & 0x7c00) === 0x7c00) throw new MessageError(field, 'encode: value overflows float16 (|v| ≤ 65504); send float32 or int8', values[i]);
    data[i * 2] = h & 0xff;
    data[i * 2 + 1] = h >>> 8;
  }
  return data;
}

/** The k-th smallest of v[0, n) (0-based), rearranging v: Hoare's quickselect, linear on average. */
function select(v: Float32Array, n: number, k: number): number {
  let lo = 0;
  let hi = n - 1;
  while (lo < hi) {
    const pivot = v[(lo + hi) >>> 1];
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (v[i] < pivot) i++;
      while (v[j] > pivot) j--;
      if (i <= j) {
        const t = v[i];
        v[i] = v[j];
        v[j] = t;
        i++;
        j--;
      }
    }
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else return v[k];
  }
  return v[k];
}

/**
 * Per channel, the median of the features at the cells `mask` leaves out (the lower middle value):
 * in a LiDAR map most of them are empty pillars, which all share one value per channel.
 */
export function unsentMedians(features: Float32Array, mask: Uint8Array, C: number, cells: number): Float32Array {
  const out = new Float32Array(C);
  let n = 0;
  const unsent = new Uint32Array(cells);
  for (let i = 0; i < cells; i++) if (!mask[i]) unsent[n++] = i;
  const scratch = new Float32Array(n);
  for (let c = 0; c < C; c++) {
    // A value held by more than half of them is their median: found in two passes (Boyer–Moore
    // majority vote), the common case, without the selection.
    let candidate = 0;
    let votes = 0;
    const base = c * cells;
    for (let k = 0; k < n; k++) {
      const v = features[base + unsent[k]];
      scratch[k] = v;
      if (votes === 0) candidate = v;
      votes += v === candidate ? 1 : -1;
    }
    let count = 0;
    for (let i = 0; i < n; i++) if (scratch[i] === candidate) count++;
    out[c] = n === 0 ? 0 : 2 * count > n ? candidate : select(scratch, n, (n - 1) >>> 1);
  }
  return out;
}

function quantize(values: Float32Array, C: number, n: number, dtype: FeatureDType, int8Scale: 'tensor' | 'channel'): { data: Uint8Array; scale: number[] } {
  const count = C * n;
  if (dtype === 'float32') {
    const data = new Uint8Array(count * 4);
    const view = new DataView(data.buffer);
    for (let i = 0; i < count; i++) view.setFloat32(i * 4, values[i], true);
    return { data, scale: [] };
  }
  if (dtype === 'float16') return { data: float16Bytes(values.subarray(0, count), 'features.data'), scale: [] };
  // int8/int4: the scale is rounded to float32 first, since that is what the receiver multiplies by.
  const levels = dtype === 'int4' ? 7 : 127;
  const groups = int8Scale === 'tensor' ? 1 : C;
  const per = count / groups;
  const scale: number[] = [];
  const q = new Int8Array(count);
  for (let g = 0; g < groups; g++) {
    const start = g * per;
    const end = start + per;
    let maxAbs = 0;
    for (let i = start; i < end; i++) {
      const a = Math.abs(values[i]);
      if (a > maxAbs) maxAbs = a;
    }
    const s = Math.fround(maxAbs / levels);
    scale.push(s);
    const inv = s > 0 ? 1 / s : 0;
    for (let i = start; i < end; i++) {
      // |0: an integer, not a double, for V8 to store (|values[i] * inv| ≤ levels here): 1.7× faster.
      q[i] = Math.max(-levels, Math.min(levels, Math.round(values[i] * inv) | 0));
    }
  }
  if (dtype === 'int8') return { data: new Uint8Array(q.buffer), scale };
  const data = new Uint8Array(Math.ceil(count / 2));
  const pairs = count >>> 1;
  for (let j = 0; j < pairs; j++) data[j] = (q[2 * j] & 0xf) | ((q[2 * j + 1] & 0xf) << 4);
  if (count & 1) data[pairs] = q[count - 1] & 0xf;
  return { data, scale };
}

// Settings measured on quantised small-profile maps (bench/results/codec.json): deflate's run-length
// strategy is within 6 % of level 9's size at a thirtieth of its time (1 ms against 34 ms for a
// 64 KiB int4 map), brotli's quality 5 within 2 % of quality 9 at a fiftieth.
// Run-length matches only reach one byte back, so deflate's window can be its smallest (512 B): the
// same output, and each call no longer sets up 64 KiB of window it never uses (0.9 ms → 0.3 ms for
// a small message here, 1.4 → 0.24 ms for 20 kB).
function entropyEncode(data: Uint8Array, coder: EntropyCoder): Uint8Array {
  if (coder === 'deflate') return new Uint8Array(deflateRawSync(data, { level: 6, strategy: zlibConstants.Z_RLE, windowBits: 9 }));
  if (coder === 'brotli') {
    return new Uint8Array(
      brotliCompressSync(data, { params: { [zlibConstants.BROTLI_PARAM_QUALITY]: 5, [zlibConstants.BROTLI_PARAM_SIZE_HINT]: data.length } }),
    );
  }
  return data;
}

/** Inflates untrusted bytes to exactly `expected` bytes, never more (a zip bomb stops at the cap). */
function entropyDecode(data: Uint8Array, coder: EntropyCoder, expected: number): Uint8Array {
  let out: Uint8Array;
  try {
    const opts = { maxOutputLength: Math.max(1, expected) };
    out = new Uint8Array(coder === 'deflate' ? inflateRawSync(data, opts) : brotliDecompressSync(data, opts));
  } catch (err) {
    throw new MessageError('features.data', `${coder} payload does not inflate to the ${expected} bytes the header names: ${(err as Error).message}`);
  }
  if (out.length !== expected) throw new MessageError('features.data', `${coder} payload inflates to ${out.length} bytes, the header names ${expected}`);
  return out;
}

/**
 * A byte budget's first try sends (0.96 × budget − one cell's message) / this many cells: int4 maps of the
 * small profile, deflated, take 1.5–6 B a cell. Only how many tries it takes depends on it.
 */
const BUDGET_GUESS_BYTES_PER_CELL = 4;

/**
 * Serialises `msg` as CollabMessage protobuf bytes. Throws MessageError for a malformed `msg`.
 * With maxBytes (and topK), sends as many of the topK best cells as fit, near enough: the bytes
 * grow about linearly with the cells, so each try aims along a line through earlier ones (a
 * secant search, after a one-cell message: one to three encodings, ending within 2 % of the budget
 * or at the third that fits).
 */
export function encodeMessage(msg: CollabMessage, opts: EncodeOptions): Uint8Array {
  if (opts.maxBytes === undefined) return encodeOnce(msg, opts);
  const budget = opts.maxBytes;
  if (!(Number.isInteger(budget) && budget > 0)) throw new MessageError('maxBytes', 'encode: must be a positive integer', budget);
  const kMax = opts.topK;
  if (!msg.features || opts.mask || kMax === undefined || opts.sparseThreshold !== undefined) {
    throw new MessageError('maxBytes', 'encode: a byte budget needs features and topK (and no mask or threshold)');
  }
  const features = msg.features;
  const C = msg.grid.channels;
  const cells = msg.grid.width * msg.grid.height;
  // The k best cells, ties to the lower index, as selectCells picks them for topK = k, with the
  // scores sorted once for every try.
  const score = cellScores(msg.grid, opts, features);
  const sorted = Float32Array.from(score).sort();
  const maskOf = (k: number) => {
    const m = new Uint8Array(cells);
    if (k >= cells) return m.fill(1);
    const kth = sorted[cells - k];
    let room = k;
    for (let i = 0; i < cells; i++) {
      if (score[i] > kth) {
        m[i] = 1;
        room--;
      }
    }
    for (let i = 0; i < cells && room > 0; i++) {
      if (score[i] === kth) {
        m[i] = 1;
        room--;
      }
    }
    return m;
  };
  const { topK: _, ...rest } = opts;
  const placeholder = new Float32Array(C);
  const at = (k: number) => encodeOnce(msg, { ...rest, mask: maskOf(k) }, { checked: true, fill: placeholder });
  // The one-cell message without its fill, plus the fill's bytes (C float16 values, tag, length).
  const one = encodeOnce(msg, { ...rest, mask: maskOf(1), fill: false }).length + (opts.fill ? 2 * C + 4 : 0);
  if (one > budget) {
    const real = at(1).length;
    if (real > budget) throw new MessageError('maxBytes', `encode: even one cell takes ${real} bytes, over the budget`, budget);
  }
  // Each try aims under the budget along a line: from the one-cell message through the nearest try
  // over it while none fits (aiming 4 % under: the bytes are concave in the cells, so such a line
  // meets them past its aim), then through or between the nearest tries either side (aiming 1 %
  // under). A try that fits 2 % under the budget, or the fourth, ends.
  let fit: { k: number; size: number; bytes: Uint8Array } | undefined;
  let over: { k: number; size: number } | undefined;
  let k = Math.min(kMax, Math.max(1, 1 + Math.floor((0.96 * budget - one) / BUDGET_GUESS_BYTES_PER_CELL)));
  for (let tries = 1; ; tries++) {
    const bytes = at(k);
    const size = bytes.length;
    if (size <= budget) {
      if (!fit || k > fit.k) fit = { k, size, bytes };
    } else if (!over || k < over.k) over = { k, size };
    if (fit && (fit.k === kMax || tries >= 4 || fit.size >= 0.98 * budget || (over && over.k - fit.k <= 1))) break;
    const a = fit && over ? fit : { k: 1, size: one };
    const b = over ?? fit!;
    const aim = (fit ? 0.99 : 0.96) * budget;
    const next = b.size > a.size ? a.k + Math.floor(((b.k - a.k) * (aim - a.size)) / (b.size - a.size)) : kMax;
    k = Math.max((fit?.k ?? 0) + 1, Math.min(next, (over?.k ?? kMax + 1) - 1, kMax));
  }
  // The tries' fill was a placeholder of the same size: the real one goes in its place, the
  // bytes encodeOnce would write with it.
  if (opts.fill && fit.k < cells) {
    const features4 = wireFields(fit.bytes, 0, fit.bytes.length, 'message').find((f) => f.field === 4)!;
    const slot = wireFields(fit.bytes, features4.start, features4.end, 'features', 2 * MAX_CHANNELS + 64).find((f) => f.field === 5)!;
    fit.bytes.set(float16Bytes(unsentMedians(features, maskOf(fit.k), C, cells), 'features.fill'), slot.start);
  }
  return fit.bytes;
}

/**
 * One encoding. For a byte budget's tries: `checked`, the features were checked by the first;
 * `fill`, the fill's values as given (a try needs only its size, 2 B a channel whatever the values).
 */
function encodeOnce(msg: CollabMessage, opts: EncodeOptions, tries: { checked?: boolean; fill?: Float32Array } = {}): Uint8Array {
  if (!(opts.dtype in DTYPE_TO_WIRE)) throw new MessageError('features.dtype', 'encode: unknown dtype', opts.dtype);
  const entropy = opts.entropy ?? 'none';
  if (!(entropy in ENTROPY_TO_WIRE)) throw new MessageError('header.featureCodec.entropy', 'encode: unknown entropy coder', entropy);
  const int8Scale = opts.int8Scale ?? 'channel';
  if (int8Scale !== 'tensor' && int8Scale !== 'channel') throw new MessageError('features.scale', 'encode: int8Scale must be "tensor" or "channel"', int8Scale);
  // The receiver's checks, applied before sending, so a sender never ships what peers reject.
  checkText('header.agentId', msg.agentId, 128);
  checkText('header.agentType', msg.agentType, 32, AGENT_TYPE);
  checkText('header.timestamp', msg.timestamp, 64);
  if (!Number.isSafeInteger(msg.sequence) || msg.sequence < 0) throw new MessageError('header.sequence', 'must be an integer in [0, 2^53)', msg.sequence);
  checkPose(Array.from(msg.pose), DEFAULT_LIMITS);
  checkGrid(msg.grid);
  const obj: heal.CollabMessage.$Properties = {
    header: {
      agentId: msg.agentId,
      agentType: msg.agentType,
      timestamp: msg.timestamp,
      sequence: msg.sequence,
      schemaVersion: SCHEMA_VERSION,
    },
    pose: { matrix: Array.from(msg.pose) },
    grid: { ...msg.grid },
  };
  if (msg.features) {
    const { width: W, height: H, channels: C } = msg.grid;
    const cells = W * H;
    if (msg.features.length !== C * cells) {
      throw new MessageError('features.shape', `encode: features have ${msg.features.length} values, grid says ${C}×${H}×${W}`);
    }
    if (!tries.checked) {
      for (let i = 0; i < msg.features.length; i++) {
        if (!Number.isFinite(msg.features[i])) throw new MessageError('features.data', `encode: non-finite feature at index ${i}`, msg.features[i]);
      }
    }
    const mask = selectCells(msg, opts, msg.features);
    // The learned codec's code replaces the grid's channels on the wire; cells are chosen on the features.
    const learned = opts.learned;
    if (learned && learned.channels !== C)
      throw new MessageError('header.featureCodec', `encode: learned codec is for ${learned.channels} channels, the grid has ${C}`);
    const source = learned ? applyPointwise(learned.encode, msg.features, cells) : msg.features;
    const wireC = learned ? learned.code : C;
    let values = source;
    let n = cells;
    let fillBits: Uint8Array | undefined;
    const idx: number[] = [];
    if (mask) for (let i = 0; i < cells; i++) if (mask[i]) idx.push(i);
    // A mask that keeps every cell would only add bytes: send dense.
    if (mask && idx.length < cells) {
      const cellIndices = Uint32Array.from(idx);
      n = cellIndices.length;
      values = new Float32Array(wireC * n);
      for (let c = 0; c < wireC; c++) {
        const src = c * cells;
        const dst = c * n;
        for (let k = 0; k < n; k++) values[dst + k] = source[src + cellIndices[k]];
      }
      obj.mask = encodeMask(mask, cellIndices);
      if (opts.fill) fillBits = float16Bytes(tries.fill ?? unsentMedians(msg.features, mask, C, cells), 'features.fill');
    }
    const { data: raw, scale } = quantize(values, wireC, n, opts.dtype, int8Scale);
    const data = entropyEncode(raw, entropy);
    obj.features = { shape: [C, H, W], dtype: loadSchema().dtypeEnum.values[DTYPE_TO_WIRE[opts.dtype]], data, scale, ...(fillBits ? { fill: fillBits } : {}) };
    if (learned || entropy !== 'none' || opts.codecName) {
      obj.header!.featureCodec = {
        name: opts.codecName ?? '',
        codeChannels: learned ? learned.code : 0,
        entropy: ENTROPY_TO_WIRE[entropy],
        rawLength: entropy === 'none' ? 0 : raw.length,
      };
    }
  }
  if (msg.detections) {
    obj.detections = { boxes: Array.from(msg.detections.boxes), scores: Array.from(msg.detections.scores) };
  }
  const { message } = loadSchema();
  return message.encode(message.fromObject(obj)).finish();
}

// ---------------------------------------------------------------------------------------------
// Decoding

/** Parses and validates untrusted bytes. Every failure is a MessageError; nothing else escapes. */
export function decodeMessage(bytes: Uint8Array, limits: DecodeLimits = {}, decoders: ReadonlyMap<number, LearnedCodec> = new Map()): DecodedMessage {
  const lim = { ...DEFAULT_LIMITS, ...limits };
  if (!(bytes instanceof Uint8Array)) throw new MessageError('bytes', 'expected a Uint8Array', typeof bytes);
  if (bytes.length > lim.maxBytes) {
    throw new MessageError('bytes', `message is ${bytes.length} bytes, over the ${lim.maxBytes}-byte limit`);
  }
  if (bytes.length === 0) throw new MessageError('bytes', 'message is empty');
  checkWireSizes(bytes, lim);
  // Untrusted: every field is checked before use. Reflection decodes into the objects the generated
  // classes describe, both made from proto/heal.proto.
  let wire: heal.CollabMessage;
  try {
    wire = loadSchema().message.decode(bytes) as heal.CollabMessage;
  } catch (err) {
    throw new MessageError('protobuf', `not a valid CollabMessage: ${(err as Error).message}`);
  }
  try {
    return validate(wire, lim, decoders);
  } catch (err) {
    if (err instanceof MessageError) throw err;
    // A check this file forgot must still not crash the receiver.
    throw new MessageError('message', `unexpected failure while validating: ${(err as Error).message}`);
  }
}

// Bounded parsing: protobufjs turns every repeated number into a JS array element (8+ bytes) and
// merges repeated occurrences of a message field, so 64 MiB of hostile bytes can become gigabytes
// before any check runs. checkWireSizes walks the field tags and lengths (no allocation) and holds
// each part to what the message's own grid allows, before protobufjs sees the bytes.

/** Bytes the small parts may take, summed over their occurrences: far above any valid part, far below harm. */
const HEADER_BYTES = 64 * 1024;
const POSE_BYTES = 4096;
const GRID_BYTES = 4096;
const SHAPE_BYTES = 1024;

interface WireField {
  field: number;
  wireType: number;
  /** Where the field's contents lie (after the length prefix of a length-delimited field). */
  start: number;
  end: number;
}

/**
 * The fields of bytes[start, end) with where their contents lie; throws on a truncated tag or
 * length, and on more than `maxFields` fields (unpacked repeated numbers would otherwise make this
 * list as large as what it guards against).
 */
function wireFields(bytes: Uint8Array, start: number, end: number, where: string, maxFields = 1024): WireField[] {
  const out: WireField[] = [];
  const reader = protobuf.Reader.create(bytes.subarray(start, end));
  try {
    while (reader.pos < reader.len) {
      if (out.length >= maxFields) throw new MessageError(where, `has more than ${maxFields} fields on the wire`);
      const tag = reader.uint32();
      const wireType = tag & 7;
      let s = reader.pos;
      if (wireType === 2) {
        const len = reader.uint32();
        s = reader.pos;
        if (len > reader.len - s) throw new Error(`field ${tag >>> 3} declares ${len} bytes, ${reader.len - s} remain`);
        reader.pos = s + len;
      } else {
        reader.skipType(wireType);
      }
      out.push({ field: tag >>> 3, wireType, start: start + s, end: start + reader.pos });
    }
  } catch (err) {
    if (err instanceof MessageError) throw err;
    throw new MessageError('protobuf', `${where}: cannot walk the fields: ${(err as Error).message}`);
  }
  return out;
}

function capBytes(fields: WireField[], field: number, max: number, name: string, why: string): void {
  let n = 0;
  for (const f of fields) if (f.field === field) n += f.end - f.start;
  if (n > max) throw new MessageError(name, `takes ${n} bytes on the wire, over the ${max} that ${why}`);
}

/** How many numbers the fields `field` hold: packed (4 or 8 bytes each, or varints) and unpacked alike. */
function countNumbers(bytes: Uint8Array, fields: WireField[], field: number, kind: 'fixed32' | 'varint', stopAbove = Infinity): number {
  let n = 0;
  for (const f of fields) {
    if (f.field !== field) continue;
    if (f.wireType !== 2) n++;
    else if (kind === 'fixed32') n += Math.ceil((f.end - f.start) / 4);
    else for (let i = f.start; i < f.end && n <= stopAbove; i++) if (bytes[i] < 0x80) n++;
  }
  return n;
}

function checkWireSizes(bytes: Uint8Array, lim: Limits): void {
  const top = wireFields(bytes, 0, bytes.length, 'message');
  capBytes(top, 1, HEADER_BYTES, 'header', 'a header needs');
  capBytes(top, 2, POSE_BYTES, 'pose', 'a 4×4 pose needs');
  capBytes(top, 3, GRID_BYTES, 'grid', 'a grid needs');
  // The cells the message's own grid declares (the last grid on the wire wins, as in protobuf).
  let cells = 0;
  for (const g of top.filter((f) => f.field === 3 && f.wireType === 2).slice(-1)) {
    let w = 0,
      h = 0;
    for (const x of wireFields(bytes, g.start, g.end, 'grid')) {
      if (x.wireType !== 0 || (x.field !== 6 && x.field !== 7)) continue;
      const v = protobuf.Reader.create(bytes.subarray(x.start, x.end)).uint32();
      if (x.field === 6) w = v;
      else h = v;
    }
    if (w >= 1 && h >= 1 && w <= MAX_DIM && h <= MAX_DIM) cells = Math.min(w * h, lim.maxElements);
  }
  for (const f of top) {
    if (f.wireType !== 2) continue;
    if (f.field === 4) {
      const inner = wireFields(bytes, f.start, f.end, 'features', 2 * MAX_CHANNELS + 64);
      capBytes(inner, 1, SHAPE_BYTES, 'features.shape', 'three dimensions need');
      capBytes(inner, 5, 2 * MAX_CHANNELS, 'features.fill', `${MAX_CHANNELS} channels as float16 need`);
      const scales = countNumbers(bytes, inner, 4, 'fixed32');
      if (scales > MAX_CHANNELS)
        throw new MessageError('features.scale', `${scales} scales on the wire, more than the ${MAX_CHANNELS} channels a grid may have`);
    } else if (f.field === 5) {
      const inner = wireFields(bytes, f.start, f.end, 'mask');
      for (const d of inner.filter((x) => x.field === 2 && x.wireType === 2)) {
        const n = countNumbers(bytes, wireFields(bytes, d.start, d.end, 'mask.deltas', Math.min(cells, 1 << 20) + 16), 1, 'varint', cells);
        if (n > cells) throw new MessageError('mask.deltas', `lists more than the grid's ${cells} cells on the wire`);
      }
    } else if (f.field === 6) {
      const inner = wireFields(bytes, f.start, f.end, 'detections', 8 * lim.maxDetections + 16);
      const scores = countNumbers(bytes, inner, 2, 'fixed32');
      if (scores > lim.maxDetections) throw new MessageError('detections.scores', `${scores} detections on the wire, over the limit of ${lim.maxDetections}`);
      const boxes = countNumbers(bytes, inner, 1, 'fixed32');
      if (boxes > 7 * lim.maxDetections)
        throw new MessageError('detections.boxes', `${boxes} values on the wire, over the ${7 * lim.maxDetections} that ${lim.maxDetections} boxes need`);
    }
  }
}

/** The grid must be the receiver's: same size, channels, cell size and origin. */
function checkSameGrid(got: BevGrid, want: BevGrid): void {
  for (const k of ['width', 'height', 'channels'] as const) {
    if (got[k] !== want[k]) throw new SpaceMismatch(`grid.${k}`, `is ${got[k]}, the receiver's space has ${want[k]}`, got[k]);
  }
  const tol = 1e-6 * Math.max(1, Math.abs(want.cellSize));
  for (const k of ['cellSize', 'xMin', 'yMin', 'xMax', 'yMax'] as const) {
    if (Math.abs(got[k] - want[k]) > tol) throw new SpaceMismatch(`grid.${k}`, `is ${got[k]}, the receiver's space has ${want[k]}`, got[k]);
  }
}

/** A uint64 as protobufjs decodes it: a Long when the long package is there, else a number. */
function toNumber(v: heal.Header.$Properties['sequence']): number {
  if (typeof v === 'number') return v;
  return v ? v.toNumber() : NaN;
}

function checkText(field: string, v: string | null | undefined, maxLen: number, pattern?: RegExp): string {
  if (typeof v !== 'string' || v.length === 0) throw new MessageError(field, 'is missing or empty');
  if (v.length > maxLen) throw new MessageError(field, `is longer than ${maxLen} characters`, v);
  if (/[\u0000-\u001f\u007f]/.test(v)) throw new MessageError(field, 'contains control characters', v);
  if (pattern && !pattern.test(v)) throw new MessageError(field, `must match ${pattern}`, v);
  return v;
}

function checkPose(matrix: readonly number[] | null | undefined, lim: Limits): Float64Array {
  if (!Array.isArray(matrix) || matrix.length !== 16) {
    throw new MessageError('pose.matrix', `must hold 16 values (4×4 row-major), has ${Array.isArray(matrix) ? matrix.length : 0}`);
  }
  const m = Float64Array.from(matrix);
  for (let i = 0; i < 16; i++) if (!Number.isFinite(m[i])) throw new MessageError('pose.matrix', `entry ${i} is not finite`, m[i]);
  const tol = lim.poseTolerance;
  const last = [m[12], m[13], m[14], m[15] - 1];
  if (last.some((d) => Math.abs(d) > tol)) throw new MessageError('pose.matrix', 'last row must be [0, 0, 0, 1]', [m[12], m[13], m[14], m[15]]);
  // RᵀR = I (orthonormal columns) and det R = +1 (no mirror).
  for (let a = 0; a < 3; a++) {
    for (let b = 0; b < 3; b++) {
      const dot = m[a] * m[b] + m[4 + a] * m[4 + b] + m[8 + a] * m[8 + b];
      if (Math.abs(dot - (a === b ? 1 : 0)) > tol) {
        throw new MessageError('pose.matrix', `rotation is not orthonormal (column ${a}·column ${b} = ${dot})`);
      }
    }
  }
  const det = m[0] * (m[5] * m[10] - m[6] * m[9]) - m[1] * (m[4] * m[10] - m[6] * m[8]) + m[2] * (m[4] * m[9] - m[5] * m[8]);
  if (det < 0) throw new MessageError('pose.matrix', 'rotation is a reflection (det < 0)', det);
  const t = Math.hypot(m[3], m[7], m[11]);
  if (t > lim.maxTranslation) throw new MessageError('pose.matrix', `translation is ${t} m from the world origin, over ${lim.maxTranslation} m`);
  return m;
}

function checkGrid(g: heal.Grid.$Properties | null | undefined): BevGrid {
  if (!g) throw new MessageError('grid', 'is missing');
  // Decoding fills unset scalars with 0; an absent value (only in a hand-built object) fails as NaN.
  const grid: BevGrid = {
    xMin: g.xMin ?? NaN,
    xMax: g.xMax ?? NaN,
    yMin: g.yMin ?? NaN,
    yMax: g.yMax ?? NaN,
    cellSize: g.cellSize ?? NaN,
    width: g.width ?? NaN,
    height: g.height ?? NaN,
    channels: g.channels ?? NaN,
  };
  for (const k of ['xMin', 'xMax', 'yMin', 'yMax', 'cellSize'] as const) {
    if (!Number.isFinite(grid[k]) || Math.abs(grid[k]) > 1e4) throw new MessageError(`grid.${k}`, 'must be finite and within ±10 km', grid[k]);
  }
  if (!(grid.cellSize > 0)) throw new MessageError('grid.cellSize', 'must be positive', grid.cellSize);
  for (const [k, max] of [
    ['width', MAX_DIM],
    ['height', MAX_DIM],
    ['channels', MAX_CHANNELS],
  ] as const) {
    if (!Number.isInteger(grid[k]) || grid[k] < 1 || grid[k] > max) throw new MessageError(`grid.${k}`, `must be an integer in [1, ${max}]`, grid[k]);
  }
  const tol = 1e-3 * grid.cellSize;
  if (Math.abs(grid.xMax - grid.xMin - grid.width * grid.cellSize) > tol) {
    throw new MessageError('grid.width', `width × cellSize (${grid.width} × ${grid.cellSize}) does not span xMin..xMax (${grid.xMin}..${grid.xMax})`);
  }
  if (Math.abs(grid.yMax - grid.yMin - grid.height * grid.cellSize) > tol) {
    throw new MessageError('grid.height', `height × cellSize (${grid.height} × ${grid.cellSize}) does not span yMin..yMax (${grid.yMin}..${grid.yMax})`);
  }
  return grid;
}

/** The transmitted cell indices, in increasing order. */
function checkMask(m: heal.SparseMask.$Properties, cells: number): Uint32Array {
  // `cells` is protobufjs's virtual oneof: the member that was last on the wire.
  if (m.cells === 'bitmask') {
    const bits = m.bitmask instanceof Uint8Array ? m.bitmask : new Uint8Array(0);
    if (bits.length !== Math.ceil(cells / 8)) {
      throw new MessageError('mask.bitmask', `has ${bits.length} bytes, a ${cells}-cell grid needs ${Math.ceil(cells / 8)}`);
    }
    if (cells % 8 && bits[bits.length - 1] >>> (cells % 8)) throw new MessageError('mask.bitmask', 'has bits set past the last cell');
    let n = 0;
    for (let b = 0; b < bits.length; b++) for (let v = bits[b]; v; v &= v - 1) n++;
    const idx = new Uint32Array(n);
    let k = 0;
    for (let i = 0; i < cells; i++) if (bits[i >>> 3] & (1 << (i & 7))) idx[k++] = i;
    return idx;
  }
  if (m.cells === 'deltas') {
    const d = m.deltas?.value ?? [];
    if (d.length > cells) throw new MessageError('mask.deltas', `lists ${d.length} cells, the grid has ${cells}`);
    const idx = new Uint32Array(d.length);
    let cur = 0;
    for (let k = 0; k < d.length; k++) {
      if (k > 0 && d[k] === 0) throw new MessageError('mask.deltas', `cell ${k} repeats the previous cell (gaps must be positive)`);
      cur += d[k];
      if (cur >= cells) throw new MessageError('mask.deltas', `cell index ${cur} is outside the ${cells}-cell grid`);
      idx[k] = cur;
    }
    return idx;
  }
  if (m.cells === 'runs') {
    const r = m.runs?.value ?? [];
    if (r.length > cells + 1) throw new MessageError('mask.runs', `lists ${r.length} runs, the grid has ${cells} cells`);
    let total = 0;
    let n = 0;
    for (let k = 0; k < r.length; k++) {
      if (k > 0 && r[k] === 0) throw new MessageError('mask.runs', `run ${k} is empty (only the first run may be)`);
      total += r[k];
      if (k % 2) n += r[k];
    }
    if (total > cells) throw new MessageError('mask.runs', `runs cover ${total} cells, the grid has ${cells}`);
    const idx = new Uint32Array(n);
    let cur = 0;
    let k = 0;
    for (let j = 0; j < r.length; j++) {
      if (j % 2) for (let i = 0; i < r[j]; i++) idx[k++] = cur + i;
      cur += r[j];
    }
    return idx;
  }
  throw new MessageError('mask', 'is present but holds neither a bitmask, deltas nor runs');
}

function checkCodec(c: heal.FeatureCodec.$Properties): { name: string; codeChannels: number; entropy: EntropyCoder; rawLength: number } {
  const name = c.name ?? '';
  if (name.length > 128 || /[\u0000-\u001f\u007f]/.test(name))
    throw new MessageError('header.featureCodec.name', 'must be at most 128 printable characters', name);
  const entropy = ENTROPY_BY_WIRE[c.entropy ?? 0];
  if (!entropy) throw new MessageError('header.featureCodec.entropy', 'is unknown', c.entropy);
  const codeChannels = c.codeChannels ?? 0;
  const rawLength = c.rawLength ?? 0;
  if (entropy === 'none' && rawLength) throw new MessageError('header.featureCodec.rawLength', 'must be 0 without an entropy coder', rawLength);
  return { name, codeChannels, entropy, rawLength };
}

/** The fill of a sparse message's unsent cells: C finite binary16 values, or none. */
function checkFill(bytes: Uint8Array | null | undefined, C: number, sparse: boolean): Float32Array | undefined {
  if (!(bytes instanceof Uint8Array) || bytes.length === 0) return undefined;
  if (!sparse) throw new MessageError('features.fill', 'is present in a dense message (only cells a mask leaves out are filled)');
  if (bytes.length !== 2 * C) throw new MessageError('features.fill', `has ${bytes.length} bytes; ${C} channels as float16 need ${2 * C}`);
  const table = float16Table();
  const fill = new Float32Array(C);
  for (let c = 0; c < C; c++) {
    fill[c] = table[bytes[2 * c] | (bytes[2 * c + 1] << 8)];
    if (!Number.isFinite(fill[c])) throw new MessageError('features.fill', `value ${c} is not finite`, fill[c]);
  }
  return fill;
}

function checkFeatures(
  f: heal.Features.$Properties,
  maskWire: heal.SparseMask.$Properties | null | undefined,
  grid: BevGrid,
  lim: Limits,
  codecWire: heal.FeatureCodec.$Properties | null | undefined,
  decoders: ReadonlyMap<number, LearnedCodec>,
): { features: Float32Array; mask?: Uint8Array; fill?: Float32Array; dtype: FeatureDType; codec?: DecodedMessage['codec'] } {
  const { channels: C, height: H, width: W } = grid;
  const shape = f.shape ?? [];
  if (shape.length !== 3 || shape[0] !== C || shape[1] !== H || shape[2] !== W) {
    throw new MessageError('features.shape', `must be [channels, height, width] = [${C}, ${H}, ${W}] as the grid says`, shape);
  }
  const cells = H * W;
  if (C * cells > lim.maxElements) {
    throw new MessageError('features.shape', `${C}×${H}×${W} = ${C * cells} values, over the limit of ${lim.maxElements}`);
  }
  const dtypeName = typeof f.dtype === 'number' ? loadSchema().dtypeEnum.valuesById[f.dtype] : undefined;
  const dtype = (Object.keys(DTYPE_TO_WIRE) as FeatureDType[]).find((d) => DTYPE_TO_WIRE[d] === dtypeName);
  if (!dtype) throw new MessageError('features.dtype', 'is unset or unknown', f.dtype);
  const codec = codecWire ? checkCodec(codecWire) : undefined;
  // The channels on the wire: the grid's, or a learned codec's code, restored by the receiver's decoder.
  let wireC = C;
  let learned: LearnedCodec | undefined;
  if (codec?.codeChannels) {
    learned = decoders.get(codec.codeChannels);
    if (!learned || learned.channels !== C) {
      throw new MessageError(
        'header.featureCodec.codeChannels',
        `${codec.codeChannels} code channels for ${C}: this receiver has no learned decoder for it (it has ${[...decoders.keys()].join(', ') || 'none'})`,
        codec.codeChannels,
      );
    }
    wireC = codec.codeChannels;
  }
  const idx = maskWire ? checkMask(maskWire, cells) : undefined;
  const n = idx ? idx.length : cells;
  const expected = payloadBytes(dtype, wireC * n);
  // An empty bytes field is absent on the wire, and protobufjs then gives its default, a plain [].
  let data: Uint8Array = f.data instanceof Uint8Array ? f.data : new Uint8Array(0);
  if (codec && codec.entropy !== 'none') {
    if (codec.rawLength !== expected) {
      throw new MessageError(
        'header.featureCodec.rawLength',
        `is ${codec.rawLength}; ${wireC} channels × ${n} cells as ${dtype} need ${expected}`,
        codec.rawLength,
      );
    }
    data = entropyDecode(data, codec.entropy, expected);
  }
  if (data.length !== expected) {
    throw new MessageError('features.data', `has ${data.length} bytes; ${wireC} channels × ${n} cells as ${dtype} need ${expected}`);
  }
  const scale = f.scale ?? [];
  if (dtype === 'int8' || dtype === 'int4') {
    if (scale.length !== 1 && scale.length !== wireC) throw new MessageError('features.scale', `${dtype} needs 1 or ${wireC} scales, has ${scale.length}`);
    for (const s of scale) if (!Number.isFinite(s) || s < 0) throw new MessageError('features.scale', 'scales must be finite and ≥ 0', s);
  } else if (scale.length) {
    throw new MessageError('features.scale', `must be empty for ${dtype}`, scale.length);
  }

  // Values of the transmitted cells, channel-major, as float32.
  const count = wireC * n;
  let values: Float32Array = new Float32Array(count);
  if (dtype === 'float32') {
    const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    for (let i = 0; i < count; i++) values[i] = view.getFloat32(i * 4, true);
  } else if (dtype === 'float16') {
    const table = float16Table();
    for (let i = 0; i < count; i++) values[i] = table[data[i * 2] | (data[i * 2 + 1] << 8)];
  } else if (dtype === 'int4') {
    if (count % 2 && data[data.length - 1] >>> 4) throw new MessageError('features.data', 'int4 padding nibble after the last value is not 0');
    for (let c = 0; c < wireC; c++) {
      const s = scale.length === 1 ? scale[0] : scale[c];
      for (let k = c * n; k < (c + 1) * n; k++) {
        const q = ((data[k >>> 1] >>> ((k & 1) * 4)) << 28) >> 28;
        if (q === -8) throw new MessageError('features.data', `int4 value -8 at index ${k} (symmetric range is [-7, 7])`);
        values[k] = q * s;
      }
    }
  } else {
    const q = new Int8Array(data.buffer, data.byteOffset, data.byteLength);
    for (let c = 0; c < wireC; c++) {
      const s = scale.length === 1 ? scale[0] : scale[c];
      for (let k = c * n; k < (c + 1) * n; k++) {
        if (q[k] === -128) throw new MessageError('features.data', `int8 value -128 at index ${k} (symmetric range is [-127, 127])`);
        values[k] = q[k] * s;
      }
    }
  }
  for (let i = 0; i < count; i++) {
    if (!Number.isFinite(values[i])) {
      throw new MessageError('features.data', `value ${i} (channel ${Math.floor(i / Math.max(n, 1))}) is not finite`, values[i]);
    }
  }
  const info = codec && { name: codec.name, codeChannels: codec.codeChannels, entropy: codec.entropy };
  const fill = checkFill(f.fill, C, !!idx);
  if (learned) values = applyPointwise(learned.decode, values, n);
  if (!idx) return { features: values, dtype, codec: info };
  const features = new Float32Array(C * cells);
  if (fill) for (let c = 0; c < C; c++) features.fill(fill[c], c * cells, (c + 1) * cells);
  const mask = new Uint8Array(cells);
  for (const i of idx) mask[i] = 1;
  for (let c = 0; c < C; c++) {
    const dst = c * cells;
    const src = c * n;
    for (let k = 0; k < n; k++) features[dst + idx[k]] = values[src + k];
  }
  return { features, mask, dtype, codec: info, ...(fill ? { fill } : {}) };
}

function checkDetections(d: heal.Detections.$Properties, lim: Limits): Detections {
  const boxes = d.boxes ?? [];
  const scores = d.scores ?? [];
  if (scores.length > lim.maxDetections) throw new MessageError('detections.scores', `${scores.length} detections, over the limit of ${lim.maxDetections}`);
  if (boxes.length !== scores.length * 7) {
    throw new MessageError('detections.boxes', `has ${boxes.length} values; ${scores.length} scores need ${scores.length * 7} (7 per box)`);
  }
  for (let i = 0; i < boxes.length; i++) {
    const v = boxes[i];
    const k = i % 7;
    if (!Number.isFinite(v)) throw new MessageError('detections.boxes', `box ${Math.floor(i / 7)} value ${k} is not finite`, v);
    if (k >= 3 && k <= 5 && !(v > 0 && v < 100))
      throw new MessageError('detections.boxes', `box ${Math.floor(i / 7)} has size ${v} m (h, w, l must be in (0, 100))`, v);
    if (k < 3 && Math.abs(v) > 1e4) throw new MessageError('detections.boxes', `box ${Math.floor(i / 7)} centre is ${v} m away`, v);
  }
  for (let i = 0; i < scores.length; i++) {
    if (!(scores[i] >= 0 && scores[i] <= 1)) throw new MessageError('detections.scores', `score ${i} must be in [0, 1]`, scores[i]);
  }
  return { boxes: Float32Array.from(boxes), scores: Float32Array.from(scores) };
}

function validate(w: heal.CollabMessage, lim: Limits, decoders: ReadonlyMap<number, LearnedCodec>): DecodedMessage {
  const h = w.header;
  if (!h) throw new MessageError('header', 'is missing');
  const schemaVersion = h.schemaVersion;
  if (!schemaVersion) throw new MessageError('header.schemaVersion', 'is missing');
  if (schemaVersion !== SCHEMA_VERSION) {
    throw new MessageError('header.schemaVersion', `unsupported schema version (this reader knows ${SCHEMA_VERSION})`, schemaVersion);
  }
  const agentId = checkText('header.agentId', h.agentId, 128);
  const agentType = checkText('header.agentType', h.agentType, 32, AGENT_TYPE);
  const timestamp = checkText('header.timestamp', h.timestamp, 64);
  const sequence = toNumber(h.sequence);
  if (!Number.isSafeInteger(sequence) || sequence < 0) throw new MessageError('header.sequence', 'must be an integer in [0, 2^53)', String(h.sequence));
  if (!w.pose) throw new MessageError('pose', 'is missing');
  const pose = checkPose(w.pose.matrix, lim);
  if (!w.features && !w.detections) throw new MessageError('features', 'message carries neither features nor detections');
  if (w.mask && !w.features) throw new MessageError('mask', 'is present without features');
  const grid = checkGrid(w.grid);
  if (lim.grid) checkSameGrid(grid, lim.grid);
  const out: DecodedMessage = { schemaVersion, agentId, agentType, timestamp, sequence, pose, grid };
  if (w.features) {
    const f = checkFeatures(w.features, w.mask, grid, lim, h.featureCodec, decoders);
    out.features = f.features;
    out.dtype = f.dtype;
    if (f.codec) out.codec = f.codec;
    if (f.mask) out.mask = f.mask;
    if (f.fill) out.fill = f.fill;
  }
  if (w.detections) out.detections = checkDetections(w.detections, lim);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Byte counting

/** Bytes of an encoded message, split by top-level part (tag and length prefixes included). */
export interface WireSize {
  total: number;
  header: number;
  pose: number;
  grid: number;
  features: number;
  mask: number;
  detections: number;
  /** Fields this reader does not know (written by a newer sender). */
  other: number;
}

const PART_BY_FIELD: Record<number, keyof WireSize> = { 1: 'header', 2: 'pose', 3: 'grid', 4: 'features', 5: 'mask', 6: 'detections' };

/**
 * Counts the bytes of each part of an encoded message by walking its top-level fields, without
 * decoding them: works on what was actually sent or received.
 */
export function messageWireSize(bytes: Uint8Array): WireSize {
  const size: WireSize = { total: bytes.length, header: 0, pose: 0, grid: 0, features: 0, mask: 0, detections: 0, other: 0 };
  const reader = protobuf.Reader.create(bytes);
  try {
    while (reader.pos < reader.len) {
      const start = reader.pos;
      const tag = reader.uint32();
      reader.skipType(tag & 7);
      size[PART_BY_FIELD[tag >>> 3] ?? 'other'] += reader.pos - start;
    }
  } catch (err) {
    throw new MessageError('protobuf', `cannot walk the message fields: ${(err as Error).message}`);
  }
  return size;
}

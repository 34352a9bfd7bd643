// Named float32 weights: seeded initialisation, checks against a description, and the weight file.
//
// Weight files use the safetensors layout (models/safetensors.ts), so Python's safetensors and
// PyTorch read them as they are: every tensor F32 in insertion order, and `meta` (the command, seed
// and data that made the weights; a nested object) as one JSON string under __metadata__.heal,
// because safetensors metadata values must be strings. Files without that key (written by PyTorch
// or anything else) load with empty meta.
//
// Files from before the switch ("HEALWTS1" magic, u32 header length, JSON header
// {format: "heal-weights", version: 1, meta, tensors: [{name, shape}]} space-padded to 4 bytes,
// then float32 values in header order) are still read; only safetensors is written.

import * as os from 'node:os';
import type { GraphDesc, ParamSpec } from './graph.ts';
import { sameShape, sizeOf } from './graph.ts';
import { DataError, readFileChecked, writeFileAtomic } from '../datasets/io.ts';
import { decodeSafetensors, encodeSafetensors, type SafeTensor } from './safetensors.ts';
import { rngFor } from '../datasets/rng.ts';

export interface WeightTensor {
  shape: number[];
  data: Float32Array;
}

export type Weights = Map<string, WeightTensor>;

export type WeightsMeta = Record<string, unknown>;

/**
 * Deterministic initial weights. Each parameter draws from its own stream keyed by (seed, name),
 * so adding a layer never changes the initial values of the others.
 * He: normal with std sqrt(2 / fanIn). Glorot: uniform in ±sqrt(6 / (fanIn + fanOut)).
 */
export function initWeights(desc: GraphDesc, seed: number): Weights {
  const out: Weights = new Map();
  for (const p of desc.params) out.set(p.name, { shape: [...p.shape], data: initParam(p, seed) });
  return out;
}

function initParam(p: ParamSpec, seed: number): Float32Array {
  const n = sizeOf(p.shape);
  const data = new Float32Array(n);
  switch (p.init) {
    case 'zeros':
      return data;
    case 'ones':
      return data.fill(1);
    case 'constant':
      if (p.value === undefined) throw new Error(`parameter "${p.name}": init 'constant' needs a value`);
      return data.fill(p.value);
    case 'he': {
      const fanIn = p.fanIn ?? defaultFanIn(p.shape);
      const std = Math.sqrt(2 / fanIn);
      const rng = rngFor('weights', seed, p.name);
      for (let i = 0; i < n; i++) data[i] = rng.normal() * std;
      return data;
    }
    case 'glorot': {
      const fanIn = p.fanIn ?? defaultFanIn(p.shape);
      const fanOut = p.fanOut ?? p.shape[0];
      const limit = Math.sqrt(6 / (fanIn + fanOut));
      const rng = rngFor('weights', seed, p.name);
      for (let i = 0; i < n; i++) data[i] = rng.uniform(-limit, limit);
      return data;
    }
  }
}

function defaultFanIn(shape: number[]): number {
  return shape.length > 1 ? sizeOf(shape.slice(1)) : shape[0];
}

/** Checks that `weights` holds every parameter of `desc` with the right shape. */
export function checkWeights(desc: GraphDesc, weights: Weights, source = 'weights'): void {
  for (const p of desc.params) {
    const w = weights.get(p.name);
    if (!w) throw new DataError(source, p.name, `missing parameter of network "${desc.name}"`);
    if (!sameShape(w.shape, p.shape)) {
      throw new DataError(source, p.name, `shape does not match network "${desc.name}" [${p.shape.join(', ')}]`, w.shape);
    }
    if (w.data.length !== sizeOf(p.shape)) {
      throw new DataError(source, p.name, `has ${w.data.length} values, shape [${p.shape.join(', ')}] needs ${sizeOf(p.shape)}`);
    }
  }
}

/** The weights of `desc` only, e.g. the encoder part of a larger weight set. */
export function pickWeights(desc: GraphDesc, weights: Weights, source = 'weights'): Weights {
  checkWeights(desc, weights, source);
  return new Map(desc.params.map((p) => [p.name, weights.get(p.name)!]));
}

/** The __metadata__ key that holds heal's meta, as a JSON string. */
export const META_KEY = 'heal';

const LEGACY_MAGIC = 'HEALWTS1';
const ZIP_MAGIC = 'PK\x03\x04';

export function encodeWeights(weights: Weights, meta: WeightsMeta = {}): Uint8Array {
  const tensors = new Map<string, SafeTensor>();
  for (const [name, w] of weights) {
    if (w.data.length !== sizeOf(w.shape)) throw new Error(`weight "${name}": ${w.data.length} values for shape [${w.shape}]`);
    tensors.set(name, { dtype: 'F32', shape: w.shape, data: w.data });
  }
  return encodeSafetensors(tensors, { [META_KEY]: JSON.stringify(meta) });
}

/** A weight file in either layout (told apart by the first bytes); tensors come out as float32. */
export function decodeWeights(bytes: Uint8Array, file = 'weights'): { weights: Weights; meta: WeightsMeta } {
  const start = Buffer.from(bytes.subarray(0, 8)).toString('latin1');
  if (start === LEGACY_MAGIC) return decodeLegacyWeights(bytes, file);
  if (start.startsWith(ZIP_MAGIC)) {
    throw new DataError(file, undefined, 'is a zip archive (a PyTorch .pth checkpoint?), not a weight file in the safetensors layout');
  }
  const { tensors, metadata } = decodeSafetensors(bytes, file);
  const weights: Weights = new Map();
  for (const [name, t] of tensors) weights.set(name, { shape: t.shape, data: toFloat32(t, name, file) });
  return { weights, meta: parseMeta(metadata[META_KEY], file) };
}

function parseMeta(text: string | undefined, file: string): WeightsMeta {
  if (text === undefined) return {};
  let meta: unknown;
  try {
    meta = JSON.parse(text);
  } catch (err) {
    throw new DataError(file, `__metadata__.${META_KEY}`, `is not valid JSON: ${(err as Error).message}`, text);
  }
  if (!meta || typeof meta !== 'object' || Array.isArray(meta)) throw new DataError(file, `__metadata__.${META_KEY}`, 'must be a JSON object', text);
  return meta as WeightsMeta;
}

// float32 holds every integer up to 2^24 exactly.
const EXACT_INT = 2 ** 24;

/**
 * Float32 values of a tensor: F32, F16 and BF16 exactly; F64 rounded to nearest (as torch's
 * .float()); integer and bool tensors (a state dict's num_batches_tracked) only when every value
 * is exact in float32. Anything that would silently change a value is refused, naming it.
 */
function toFloat32(t: SafeTensor, name: string, file: string): Float32Array {
  if (t.data instanceof Float32Array) return t.data;
  const out = new Float32Array(t.data.length);
  for (let i = 0; i < t.data.length; i++) {
    const v = Number(t.data[i]);
    out[i] = v;
    const exact = t.dtype === 'F64' ? Number.isFinite(out[i]) || !Number.isFinite(v) : Math.abs(v) <= EXACT_INT;
    if (!exact) {
      const why = t.dtype === 'F64' ? 'is outside the float32 range' : `is not exact in float32 (beyond ±${EXACT_INT})`;
      throw new DataError(file, name, `${t.dtype} value at index ${i} ${why}`, typeof t.data[i] === 'bigint' ? t.data[i].toString() : v);
    }
  }
  return out;
}

function decodeLegacyWeights(bytes: Uint8Array, file: string): { weights: Weights; meta: WeightsMeta } {
  if (os.endianness() !== 'LE') throw new Error('heal weight files are little-endian; this host is big-endian');
  if (bytes.length < LEGACY_MAGIC.length + 4) throw new DataError(file, 'header', `file is ${bytes.length} bytes, too short for the header length`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen = view.getUint32(LEGACY_MAGIC.length, true);
  const dataStart = LEGACY_MAGIC.length + 4 + headerLen;
  if (dataStart > bytes.length) throw new DataError(file, 'header', `length ${headerLen} runs past the end of the file (${bytes.length} bytes)`);
  let header: { format?: unknown; version?: unknown; meta?: unknown; tensors?: unknown };
  try {
    header = JSON.parse(Buffer.from(bytes.subarray(LEGACY_MAGIC.length + 4, dataStart)).toString('utf8'));
  } catch (err) {
    throw new DataError(file, 'header', `is not valid JSON: ${(err as Error).message}`);
  }
  if (header.format !== 'heal-weights') throw new DataError(file, 'format', 'must be "heal-weights"', header.format);
  if (header.version !== 1) throw new DataError(file, 'version', 'unsupported version (this heal reads 1)', header.version);
  if (!Array.isArray(header.tensors)) throw new DataError(file, 'tensors', 'must be a list');
  const weights: Weights = new Map();
  let offset = dataStart;
  for (const [i, t] of (header.tensors as unknown[]).entries()) {
    const entry = t as { name?: unknown; shape?: unknown };
    if (typeof entry.name !== 'string' || !entry.name) throw new DataError(file, `tensors[${i}].name`, 'must be a non-empty string', entry.name);
    const shape = entry.shape;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) {
      throw new DataError(file, `tensors[${i}].shape`, `must be a list of non-negative integers (tensor "${entry.name}")`, shape);
    }
    if (weights.has(entry.name)) throw new DataError(file, `tensors[${i}].name`, 'appears twice', entry.name);
    const n = sizeOf(shape as number[]);
    if (offset + n * 4 > bytes.length) {
      throw new DataError(file, entry.name, `data is truncated: needs ${n * 4} bytes at offset ${offset}, file has ${bytes.length}`);
    }
    // Copy so the weights never alias (or pin) the file buffer.
    const data = new Float32Array(n);
    new Uint8Array(data.buffer).set(bytes.subarray(offset, offset + n * 4));
    weights.set(entry.name, { shape: [...(shape as number[])], data });
    offset += n * 4;
  }
  if (offset !== bytes.length) throw new DataError(file, undefined, `${bytes.length - offset} unexpected bytes after the last tensor`);
  const meta = header.meta && typeof header.meta === 'object' ? (header.meta as WeightsMeta) : {};
  return { weights, meta };
}

export async function saveWeights(file: string, weights: Weights, meta: WeightsMeta = {}): Promise<void> {
  await writeFileAtomic(file, encodeWeights(weights, meta));
}

export async function loadWeights(file: string): Promise<{ weights: Weights; meta: WeightsMeta }> {
  return decodeWeights(await readFileChecked(file, 'weight file'), file);
}

/**
 * How several weight files merge. 'identical': a parameter present in more than one file must be
 * identical in all. 'encoders': the fusion and head (every parameter outside encoder.* and
 * aligner.*) come from the first file alone; later files give only their agent types' encoders and
 * aligners, which must still be identical where files share them.
 */
export type MergeRule = 'identical' | 'encoders';
export const MERGE_RULES: readonly MergeRule[] = ['identical', 'encoders'];

const isAgentParam = (name: string) => name.startsWith('encoder.') || name.startsWith('aligner.');

/**
 * Several weight files as one: backward alignments run in parallel from the same base each hold
 * the base plus their own type. A parameter present in more than one file must be identical in
 * all (the frozen base is), else the later file and the parameter are named; under the
 * 'encoders' rule a later file's fusion and head are left out instead (logged, with the first
 * parameter that differs). `load` reads one file (fusion/pipeline.ts's readWeightFile also takes
 * HEAL checkpoints).
 */
export async function mergeWeightFiles(
  files: string[],
  load: (file: string) => Promise<{ weights: Weights; meta: WeightsMeta }> = loadWeights,
  rule: MergeRule = 'identical',
  log?: (line: string) => void,
): Promise<{ weights: Weights; meta: WeightsMeta }> {
  if (files.length === 0) throw new Error('mergeWeightFiles: no weight files');
  const first = await load(files[0]);
  if (files.length === 1) return first;
  const merged: Weights = new Map(first.weights);
  const origin = new Map([...first.weights.keys()].map((name) => [name, files[0]]));
  const same = (a: WeightTensor, b: WeightTensor) => sameShape(a.shape, b.shape) && a.data.every((v, i) => v === b.data[i]);
  for (const file of files.slice(1)) {
    const { weights } = await load(file);
    let skipped = 0;
    let differs: string | undefined;
    for (const [name, w] of weights) {
      const have = merged.get(name);
      if (rule === 'encoders' && !isAgentParam(name)) {
        skipped++;
        if (differs === undefined && (!have || !same(have, w))) differs = name;
        continue;
      }
      if (!have) {
        merged.set(name, w);
        origin.set(name, file);
        continue;
      }
      if (!same(have, w)) {
        const hint =
          rule === 'identical' && !isAgentParam(name)
            ? "; to take the fusion and head from the first file only, merge by the 'encoders' rule (heal eval --merge-weights encoders)"
            : '';
        throw new DataError(file, name, `differs from the same parameter in ${origin.get(name)} (not trained from the same base?)${hint}`);
      }
    }
    if (skipped > 0) {
      log?.(
        `heal: ${file}: only its encoders and aligners are used; its fusion and head (${skipped} parameters) are left out for ${files[0]}'s ${differs ? `(they differ, first ${differs})` : '(identical)'}`,
      );
    }
  }
  return { weights: merged, meta: { ...first.meta, mergedFrom: files, ...(rule !== 'identical' ? { mergeRule: rule } : {}) } };
}

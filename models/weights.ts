// Named float32 weights: seeded initialisation, checks against a description, and a compact file.
//
// File layout (little-endian):
//   8 bytes   ASCII "HEALWTS1"
//   uint32    byte length L of the JSON header
//   L bytes   UTF-8 JSON {format: "heal-weights", version: 1, meta: {...}, tensors: [{name, shape}]},
//             space-padded so the data starts on a 4-byte boundary
//   float32[] every tensor's values in header order, row-major
// The JSON header keeps the file self-describing (`meta` records the command, seed and data that
// made the weights); the raw blob keeps it small and fast to load.

import * as os from 'node:os';
import type { GraphDesc, ParamSpec } from './graph.ts';
import { sameShape, sizeOf } from './graph.ts';
import { DataError, readFileChecked, writeFileAtomic } from '../datasets/io.ts';
import { rngFor } from '../datasets/rng.ts';

export interface WeightTensor {
  shape: number[];
  data: Float32Array;
}

export type Weights = Map<string, WeightTensor>;

export type WeightsMeta = Record<string, unknown>;

const MAGIC = 'HEALWTS1';

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

export function encodeWeights(weights: Weights, meta: WeightsMeta = {}): Uint8Array {
  if (os.endianness() !== 'LE') throw new Error('heal weight files are little-endian; this host is big-endian');
  const tensors = [...weights].map(([name, w]) => {
    if (w.data.length !== sizeOf(w.shape)) throw new Error(`weight "${name}": ${w.data.length} values for shape [${w.shape}]`);
    return { name, shape: w.shape };
  });
  let header = Buffer.from(JSON.stringify({ format: 'heal-weights', version: 1, meta, tensors }), 'utf8');
  const pad = (4 - ((MAGIC.length + 4 + header.length) % 4)) % 4;
  if (pad) header = Buffer.concat([header, Buffer.alloc(pad, 0x20)]);
  const floats = tensors.reduce((s, t) => s + sizeOf(t.shape), 0);
  const out = new Uint8Array(MAGIC.length + 4 + header.length + floats * 4);
  out.set(Buffer.from(MAGIC, 'ascii'), 0);
  new DataView(out.buffer).setUint32(MAGIC.length, header.length, true);
  out.set(header, MAGIC.length + 4);
  const blob = new Float32Array(out.buffer, MAGIC.length + 4 + header.length, floats);
  let o = 0;
  for (const [, w] of weights) {
    blob.set(w.data, o);
    o += w.data.length;
  }
  return out;
}

export function decodeWeights(bytes: Uint8Array, file = 'weights'): { weights: Weights; meta: WeightsMeta } {
  if (os.endianness() !== 'LE') throw new Error('heal weight files are little-endian; this host is big-endian');
  if (bytes.length < MAGIC.length + 4 || Buffer.from(bytes.subarray(0, MAGIC.length)).toString('ascii') !== MAGIC) {
    throw new DataError(file, undefined, `not a heal weight file (expected it to start with "${MAGIC}")`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen = view.getUint32(MAGIC.length, true);
  const dataStart = MAGIC.length + 4 + headerLen;
  if (dataStart > bytes.length) throw new DataError(file, 'header', `length ${headerLen} runs past the end of the file (${bytes.length} bytes)`);
  let header: { format?: unknown; version?: unknown; meta?: unknown; tensors?: unknown };
  try {
    header = JSON.parse(Buffer.from(bytes.subarray(MAGIC.length + 4, dataStart)).toString('utf8'));
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
 * Several weight files as one: backward alignments run in parallel from the same base each hold
 * the base plus their own type. A parameter present in more than one file must be identical in
 * all (the frozen base is), else the later file and the parameter are named.
 */
export async function mergeWeightFiles(files: string[]): Promise<{ weights: Weights; meta: WeightsMeta }> {
  if (files.length === 0) throw new Error('mergeWeightFiles: no weight files');
  const first = await loadWeights(files[0]);
  if (files.length === 1) return first;
  const merged: Weights = new Map(first.weights);
  const origin = new Map([...first.weights.keys()].map((name) => [name, files[0]]));
  for (const file of files.slice(1)) {
    const { weights } = await loadWeights(file);
    for (const [name, w] of weights) {
      const have = merged.get(name);
      if (!have) {
        merged.set(name, w);
        origin.set(name, file);
        continue;
      }
      const same = sameShape(have.shape, w.shape) && have.data.every((v, i) => v === w.data[i]);
      if (!same) throw new DataError(file, name, `differs from the same parameter in ${origin.get(name)} (not trained from the same base?)`);
    }
  }
  return { weights: merged, meta: { ...first.meta, mergedFrom: files } };
}

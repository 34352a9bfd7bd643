// The safetensors layout: the interchange format of reference activations and of weights exported
// from Python without pickle.
//
//   u64 (little-endian)  byte length N of the header
//   N bytes              UTF-8 JSON {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__"?: {..}}
//   bytes                every tensor's little-endian values; offsets are relative to this buffer
//
// Parsing is bounded: the header size is capped and every offset is checked against the file before
// anything is allocated, so a hostile or truncated file ends in a DataError, never in a huge allocation.

import * as os from 'node:os';
import { DataError, readFileChecked, writeFileAtomic } from '../datasets/io.ts';

export type TensorData = Float32Array | Float64Array | Int32Array | BigInt64Array | Int16Array | Int8Array | Uint8Array;

/** One tensor. F16 and BF16 values are held as Float32Array; `dtype` still says how they are stored. */
export interface SafeTensor {
  dtype: string;
  shape: number[];
  data: TensorData;
}

type ArrayKind = 'f32' | 'f64' | 'i64' | 'i32' | 'i16' | 'i8' | 'u8';

// Bytes per stored element, and the typed array the values come out as.
const DTYPES: Record<string, { size: number; kind: ArrayKind }> = {
  F32: { size: 4, kind: 'f32' },
  F64: { size: 8, kind: 'f64' },
  F16: { size: 2, kind: 'f32' },
  BF16: { size: 2, kind: 'f32' },
  I64: { size: 8, kind: 'i64' },
  I32: { size: 4, kind: 'i32' },
  I16: { size: 2, kind: 'i16' },
  I8: { size: 1, kind: 'i8' },
  U8: { size: 1, kind: 'u8' },
  BOOL: { size: 1, kind: 'u8' },
};

const ARRAYS = {
  f32: Float32Array,
  f64: Float64Array,
  i64: BigInt64Array,
  i32: Int32Array,
  i16: Int16Array,
  i8: Int8Array,
  u8: Uint8Array,
} as const;

const MAX_HEADER = 100_000_000;

function checkHost(): void {
  if (os.endianness() !== 'LE') throw new Error('safetensors files are little-endian; this host is big-endian');
}

export function decodeSafetensors(bytes: Uint8Array, file = 'safetensors'): { tensors: Map<string, SafeTensor>; metadata: Record<string, string> } {
  checkHost();
  if (bytes.length < 8) throw new DataError(file, 'header', `file is ${bytes.length} bytes, shorter than the 8-byte header length`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen = view.getBigUint64(0, true);
  if (headerLen > BigInt(MAX_HEADER)) throw new DataError(file, 'header', `length is over the ${MAX_HEADER}-byte limit`, headerLen.toString());
  if (headerLen > BigInt(bytes.length - 8)) {
    throw new DataError(file, 'header', `length runs past the end of the file (${bytes.length} bytes)`, headerLen.toString());
  }
  const start = 8 + Number(headerLen);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, start)));
  } catch (err) {
    throw new DataError(file, 'header', `is not valid UTF-8 JSON: ${(err as Error).message}`);
  }
  if (!header || typeof header !== 'object' || Array.isArray(header)) throw new DataError(file, 'header', 'must be a JSON object');

  const bufferLen = bytes.length - start;
  const metadata: Record<string, string> = {};
  const entries: { name: string; dtype: string; shape: number[]; begin: number; end: number }[] = [];
  for (const [name, raw] of Object.entries(header)) {
    if (name === '__metadata__') {
      if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw new DataError(file, '__metadata__', 'must be an object of strings');
      for (const [k, v] of Object.entries(raw)) {
        if (typeof v !== 'string') throw new DataError(file, `__metadata__.${k}`, 'must be a string', v);
        metadata[k] = v;
      }
      continue;
    }
    const t = (raw ?? {}) as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    const dt = typeof t.dtype === 'string' ? DTYPES[t.dtype] : undefined;
    if (!dt) throw new DataError(file, `${name}.dtype`, `is not one of ${Object.keys(DTYPES).join(', ')}`, t.dtype);
    const shape = t.shape;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new DataError(file, `${name}.shape`, 'must be a list of non-negative integers', shape);
    }
    const offs = t.data_offsets;
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((o) => Number.isSafeInteger(o) && o >= 0) || offs[0] > offs[1] || offs[1] > bufferLen) {
      const past =
        Array.isArray(offs) && offs.length === 2 && offs[0] <= offs[1] && offs[1] > bufferLen ? '; the file is truncated, or the offset is wrong' : '';
      throw new DataError(file, `${name}.data_offsets`, `must be [begin, end] with 0 <= begin <= end <= ${bufferLen} (the data buffer's length${past})`, offs);
    }
    const [begin, end] = offs as number[];
    // Multiply step by step against the span, so an absurd shape never overflows into a match.
    let need = dt.size;
    for (const d of shape as number[]) need = d === 0 ? 0 : need * d > end - begin ? Infinity : need * d;
    if (need !== end - begin) {
      throw new DataError(file, `${name}.data_offsets`, `span ${end - begin} bytes does not match shape [${shape.join(', ')}] of ${t.dtype}`, offs);
    }
    entries.push({ name, dtype: t.dtype as string, shape: shape as number[], begin, end });
  }

  // The spec forbids holes and overlaps: sorted by offset, each tensor starts where the previous ends.
  const sorted = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let at = 0;
  for (const e of sorted) {
    if (e.begin !== at) {
      throw new DataError(
        file,
        `${e.name}.data_offsets`,
        e.begin < at ? `overlaps the tensor before it (which ends at ${at})` : `leaves a hole in the data buffer at ${at}`,
        [e.begin, e.end],
      );
    }
    at = e.end;
  }
  if (at !== bufferLen) throw new DataError(file, undefined, `${bufferLen - at} bytes after the last tensor are not covered by any tensor`);

  const tensors = new Map<string, SafeTensor>();
  for (const e of entries) {
    const raw = bytes.subarray(start + e.begin, start + e.end);
    tensors.set(e.name, { dtype: e.dtype, shape: [...e.shape], data: decodeValues(raw, e.dtype) });
  }
  return { tensors, metadata };
}

/** Little-endian bytes of one dtype to a fresh typed array (never a view of `raw`). */
export function decodeValues(raw: Uint8Array, dtype: string): TensorData {
  const dt = DTYPES[dtype];
  const n = raw.length / dt.size;
  if (dtype === 'F16' || dtype === 'BF16') {
    const halves = new Uint16Array(n);
    new Uint8Array(halves.buffer).set(raw);
    return dtype === 'F16' ? halfToFloat32(halves) : bfloat16ToFloat32(halves);
  }
  const out = new ARRAYS[dt.kind](n);
  new Uint8Array(out.buffer).set(raw);
  return out;
}

let halfTable: Float32Array | undefined;

export function halfToFloat32(halves: Uint16Array): Float32Array {
  if (!halfTable) {
    // All 65536 half values once; a lookup is far faster than decoding bits per element.
    halfTable = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) {
      const sign = h & 0x8000 ? -1 : 1;
      const exp = (h >> 10) & 0x1f;
      const frac = h & 0x3ff;
      halfTable[h] = exp === 0 ? sign * frac * 2 ** -24 : exp === 31 ? (frac ? NaN : sign * Infinity) : sign * 2 ** (exp - 15) * (1 + frac / 1024);
    }
  }
  const out = new Float32Array(halves.length);
  for (let i = 0; i < halves.length; i++) out[i] = halfTable[halves[i]];
  return out;
}

export function bfloat16ToFloat32(halves: Uint16Array): Float32Array {
  const out = new Float32Array(halves.length);
  const bits = new Uint32Array(out.buffer);
  for (let i = 0; i < halves.length; i++) bits[i] = halves[i] << 16;
  return out;
}

const scratch = new Float32Array(1);
const scratchBits = new Uint32Array(scratch.buffer);

/** Nearest half (ties to even), as numpy and torch round. */
export function float32ToHalf(v: number): number {
  scratch[0] = v;
  const x = scratchBits[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 112;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const rem = mant & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    let h = mant >>> shift;
    if (rem > half || (rem === half && h & 1)) h++;
    return sign | h;
  }
  // A carry out of the mantissa rolls into the exponent, which is the correct rounding (up to infinity).
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && h & 1)) h++;
  return sign | h;
}

export function float32ToBfloat16(v: number): number {
  scratch[0] = v;
  const x = scratchBits[0];
  if ((x & 0x7fffffff) > 0x7f800000) return ((x >>> 16) & 0x8000) | 0x7fc0;
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

/**
 * Tensors in insertion order; F16 and BF16 take Float32Array values and round them. The header is
 * space-padded so the data buffer starts on an 8-byte boundary, as the spec recommends.
 */
export function encodeSafetensors(tensors: Map<string, SafeTensor>, metadata: Record<string, string> = {}): Uint8Array {
  checkHost();
  // No prototype, so a tensor named "__proto__" is stored like any other name.
  const header: Record<string, unknown> = Object.create(null);
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  const parts: Uint8Array[] = [];
  let offset = 0;
  for (const [name, t] of tensors) {
    if (name === '__metadata__') throw new Error('safetensors: "__metadata__" cannot name a tensor');
    const dt = DTYPES[t.dtype];
    if (!dt) throw new Error(`safetensors tensor "${name}": dtype ${t.dtype} is not one of ${Object.keys(DTYPES).join(', ')}`);
    if (!(t.data instanceof ARRAYS[dt.kind]))
      throw new Error(`safetensors tensor "${name}": ${t.dtype} needs a ${ARRAYS[dt.kind].name}, got ${t.data.constructor.name}`);
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (t.data.length !== n) throw new Error(`safetensors tensor "${name}": ${t.data.length} values for shape [${t.shape.join(', ')}]`);
    let raw: Uint8Array;
    if (t.dtype === 'F16' || t.dtype === 'BF16') {
      const round = t.dtype === 'F16' ? float32ToHalf : float32ToBfloat16;
      const halves = new Uint16Array(n);
      for (let i = 0; i < n; i++) halves[i] = round(t.data[i] as number);
      raw = new Uint8Array(halves.buffer);
    } else {
      raw = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    }
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + raw.length] };
    parts.push(raw);
    offset += raw.length;
  }
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  const pad = (8 - (json.length % 8)) % 8;
  if (pad) json = Buffer.concat([json, Buffer.alloc(pad, 0x20)]);
  const out = new Uint8Array(8 + json.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  let at = 8 + json.length;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export async function readSafetensors(file: string): Promise<{ tensors: Map<string, SafeTensor>; metadata: Record<string, string> }> {
  return decodeSafetensors(await readFileChecked(file, 'safetensors file'), file);
}

export async function writeSafetensors(file: string, tensors: Map<string, SafeTensor>, metadata: Record<string, string> = {}): Promise<void> {
  await writeFileAtomic(file, encodeSafetensors(tensors, metadata));
}

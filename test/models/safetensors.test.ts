import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { DataError } from '../../datasets/io.ts';
import {
  type SafeTensor,
  decodeSafetensors,
  encodeSafetensors,
  float32ToBfloat16,
  float32ToHalf,
  readSafetensors,
  writeSafetensors,
} from '../../models/safetensors.ts';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
const fixture = path.resolve(repoRoot, '..', 'shared', 'fixtures', 'heal_reference', 'case1', 'expected.safetensors');

function sample(): Map<string, SafeTensor> {
  return new Map<string, SafeTensor>([
    ['z.weight', { dtype: 'F32', shape: [2, 3], data: Float32Array.of(1, -2, 3.5, 0, 1e-30, -7) }],
    ['a.pose', { dtype: 'F64', shape: [2], data: Float64Array.of(Math.PI, -1e300) }],
    ['count', { dtype: 'I64', shape: [], data: BigInt64Array.of(-(2n ** 62n)) }],
    ['coords', { dtype: 'I32', shape: [1, 2], data: Int32Array.of(-5, 2 ** 31 - 1) }],
    ['short', { dtype: 'I16', shape: [2], data: Int16Array.of(-32768, 7) }],
    ['tiny', { dtype: 'I8', shape: [1], data: Int8Array.of(-128) }],
    ['bytes', { dtype: 'U8', shape: [3], data: Uint8Array.of(0, 128, 255) }],
    ['mask', { dtype: 'BOOL', shape: [2], data: Uint8Array.of(1, 0) }],
    ['half', { dtype: 'F16', shape: [3], data: Float32Array.of(1, -0.5, 65504) }],
    ['brain', { dtype: 'BF16', shape: [2], data: Float32Array.of(1, -5) }],
    ['empty', { dtype: 'F32', shape: [0, 4], data: new Float32Array(0) }],
  ]);
}

/** A file laid out by hand, as Python writes it: compact JSON, offsets not aligned. */
function handMade(header: unknown, buffer: Uint8Array): Uint8Array {
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const out = new Uint8Array(8 + json.length + buffer.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(buffer, 8 + json.length);
  return out;
}

function dataError(fn: () => unknown): DataError {
  try {
    fn();
  } catch (err) {
    if (err instanceof DataError) return err;
    throw err;
  }
  throw new Error('expected a DataError');
}

describe('safetensors', () => {
  it('round-trips every dtype in insertion order, with metadata and an 8-byte aligned buffer', () => {
    const bytes = encodeSafetensors(sample(), { source: 'test' });
    const headerLen = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect((8 + headerLen) % 8).toBe(0);
    const { tensors, metadata } = decodeSafetensors(bytes, 'rt.safetensors');
    expect(metadata).toEqual({ source: 'test' });
    expect([...tensors.keys()]).toEqual([...sample().keys()]);
    expect(tensors).toEqual(sample());
  });

  it('reads an unaligned hand-made file and copies out of the file buffer', () => {
    const buffer = Uint8Array.from([7, ...new Uint8Array(Float64Array.of(2.5).buffer), ...new Uint8Array(Uint16Array.of(0xc000, 0x3c00).buffer)]);
    const file = handMade(
      {
        b: { dtype: 'U8', shape: [1], data_offsets: [0, 1] },
        a: { dtype: 'F64', shape: [1, 1], data_offsets: [1, 9] },
        h: { dtype: 'F16', shape: [2], data_offsets: [9, 13] },
      },
      buffer,
    );
    const { tensors, metadata } = decodeSafetensors(file, 'hand.safetensors');
    expect(metadata).toEqual({});
    file.fill(0);
    expect(tensors.get('a')).toEqual({ dtype: 'F64', shape: [1, 1], data: Float64Array.of(2.5) });
    expect(tensors.get('b')!.data).toEqual(Uint8Array.of(7));
    expect(tensors.get('h')).toEqual({ dtype: 'F16', shape: [2], data: Float32Array.of(-2, 1) });
  });

  it('rounds float16 and bfloat16 to nearest, ties to even', () => {
    expect(float32ToHalf(1 + 2 ** -11)).toBe(0x3c00);
    expect(float32ToHalf(1 + 3 * 2 ** -11)).toBe(0x3c02);
    expect(float32ToHalf(65504)).toBe(0x7bff);
    expect(float32ToHalf(65520)).toBe(0x7c00);
    expect(float32ToHalf(-Infinity)).toBe(0xfc00);
    expect(float32ToHalf(NaN) & 0x7e00).toBe(0x7e00);
    expect(float32ToHalf(2 ** -24)).toBe(1);
    expect(float32ToHalf(2 ** -25)).toBe(0);
    expect(float32ToHalf(3 * 2 ** -25)).toBe(2);
    expect(float32ToHalf(-0)).toBe(0x8000);
    expect(float32ToBfloat16(1 + 2 ** -8)).toBe(0x3f80);
    expect(float32ToBfloat16(1 + 3 * 2 ** -8)).toBe(0x3f82);
    expect(float32ToBfloat16(NaN)).toBe(0x7fc0);
  });

  it('writes atomically and reads back', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'heal-st-'));
    try {
      const file = path.join(dir, 'sub', 'w.safetensors');
      await writeSafetensors(file, sample());
      expect(new Uint8Array(await readFile(file))).toEqual(encodeSafetensors(sample()));
      expect((await readSafetensors(file)).tensors).toEqual(sample());
      await expect(readSafetensors(path.join(dir, 'none.safetensors'))).rejects.toThrow(/none\.safetensors.*missing/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses tensors that do not match their dtype or shape when writing', () => {
    expect(() => encodeSafetensors(new Map([['x', { dtype: 'I32', shape: [1], data: Float32Array.of(1) }]]))).toThrow(/Int32Array/);
    expect(() => encodeSafetensors(new Map([['x', { dtype: 'F32', shape: [2], data: Float32Array.of(1) }]]))).toThrow(/shape \[2\]/);
    expect(() => encodeSafetensors(new Map([['x', { dtype: 'Q4', shape: [1], data: Float32Array.of(1) }]]))).toThrow(/Q4/);
  });

  it('rejects malformed files with the file, field and value named', () => {
    const f32 = (begin: number, end: number, shape = [1]) => ({ dtype: 'F32', shape, data_offsets: [begin, end] });
    const eight = new Uint8Array(8);
    const cases: [Uint8Array, RegExp][] = [
      [new Uint8Array(5), /shorter than the 8-byte header length/],
      [Uint8Array.from([0, 0, 0, 0, 0, 0, 0, 0x40]), /over the 100000000-byte limit/],
      [Uint8Array.from([50, 0, 0, 0, 0, 0, 0, 0, 0x7b]), /runs past the end of the file/],
      [Uint8Array.from([2, 0, 0, 0, 0, 0, 0, 0, 0x7b, 0x7b]), /not valid UTF-8 JSON/],
      [handMade([1], eight), /must be a JSON object/],
      [handMade({ x: { dtype: 'Q4', shape: [1], data_offsets: [0, 8] } }, eight), /field "x.dtype".*"Q4"/],
      [handMade({ x: { dtype: 'F32', shape: [-1], data_offsets: [0, 8] } }, eight), /field "x.shape".*\[-1\]/],
      [handMade({ x: f32(0, 9) }, eight), /field "x.data_offsets".*<= 8.*\[0,9\]/],
      [handMade({ x: f32(4, 0) }, eight), /field "x.data_offsets"/],
      [handMade({ x: f32(0, 8) }, eight), /span 8 bytes does not match shape \[1\] of F32/],
      [handMade({ x: f32(0, 8, [2 ** 40, 2 ** 40, 2 ** 40]) }, eight), /does not match shape/],
      [handMade({ x: f32(0, 4), y: f32(2, 6), z: f32(4, 8) }, eight), /field "y.data_offsets": overlaps/],
      [handMade({ x: f32(0, 4), y: f32(4, 8) }, new Uint8Array(12)), /4 bytes after the last tensor/],
      [handMade({ x: f32(4, 8) }, eight), /field "x.data_offsets": leaves a hole in the data buffer at 0/],
      [handMade({ __metadata__: { a: 1 }, x: f32(0, 4) }, new Uint8Array(4)), /field "__metadata__.a": must be a string/],
    ];
    for (const [bytes, pattern] of cases) {
      const err = dataError(() => decodeSafetensors(bytes, 'bad.safetensors'));
      expect(err.message).toMatch(/^bad\.safetensors/);
      expect(err.message).toMatch(pattern);
    }
  });

  it('survives a seeded mutational fuzz: every case decodes or throws DataError', () => {
    const file = encodeSafetensors(sample(), { source: 'fuzz' });
    let seed = 7;
    const rand = () => {
      // mulberry32
      seed = (seed + 0x6d2b79f5) | 0;
      let t = seed;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
    const pick = (n: number) => Math.floor(rand() * n);
    let decoded = 0;
    for (let i = 0; i < 2000; i++) {
      let b = Uint8Array.from(file);
      const op = pick(3);
      if (op === 0) b[pick(b.length)] ^= 1 << pick(8);
      else if (op === 1) b[pick(b.length)] = pick(256);
      else b = b.subarray(0, pick(b.length));
      try {
        decodeSafetensors(b, 'fuzz.safetensors');
        decoded++;
      } catch (err) {
        if (!(err instanceof DataError)) throw new Error(`case ${i}: ${(err as Error).stack}`);
      }
    }
    expect(decoded).toBeGreaterThan(0);
    expect(decoded).toBeLessThan(2000);
  });

  const present = existsSync(fixture);
  if (!present) console.log(`skipping the safetensors fixture: ${fixture} is absent`);

  it.skipIf(!present)('reads the HEAL reference fixture written by Python safetensors', async () => {
    const { tensors, metadata } = await readSafetensors(fixture);
    console.log([...tensors].map(([k, t]) => `${k} ${t.dtype} [${t.shape}]`).join('\n'));
    expect(metadata.heal_commit).toBe('96812ed5a41619bebb2af4f84b803b7b7468d1d3');
    expect(tensors.size).toBe(35);
    const sum = (a: ArrayLike<number>) => Array.from(a).reduce((s, v) => s + v, 0);
    expect(tensors.get('agent0.voxel_features')!.shape).toEqual([8889, 32, 4]);
    expect(sum(tensors.get('agent0.voxel_coords')!.data as Int32Array)).toBe(4485341);
    expect(tensors.get('pairwise_t_matrix')!.dtype).toBe('F64');
    expect(sum(tensors.get('pairwise_t_matrix')!.data as Float64Array)).toBeCloseTo(173.85633064320905, 9);
    expect(tensors.get('boxes.anchor_index')!.data.slice(0, 3)).toEqual(BigInt64Array.of(5251n, 1667n, 7985n));
    expect(tensors.get('cls_preds')!.data[0]).toBeCloseTo(-1.6364387, 6);
  });
});

import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DataError } from '../../datasets/io.ts';
import { decodeSafetensors } from '../../models/safetensors.ts';
import { shippedWeightsPath } from '../../models/shipped.ts';
import { decodeWeights, encodeWeights, loadWeights, mergeWeightFiles, META_KEY, saveWeights, type Weights } from '../../models/weights.ts';

let dir: string;
beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'heal-weights-'));
});
afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

/** Values a careless conversion would change: -0, NaN with a payload, a subnormal, infinities. */
function sample(): Weights {
  const odd = new Float32Array(6);
  new Uint32Array(odd.buffer).set([0x80000000, 0x7fc00123, 0x00000001, 0x7f800000, 0xff800000, 0x3f800001]);
  return new Map([
    ['encoder.conv.weight', { shape: [2, 1, 3], data: odd }],
    ['head.cls.bias', { shape: [2], data: Float32Array.of(-4.59512, 0.25) }],
    ['trust.m2', { shape: [], data: Float32Array.of(0.3) }],
    ['aligner.empty', { shape: [0, 4], data: new Float32Array(0) }],
  ]);
}

const META = {
  command: 'heal train --data data/w40 --out runs/stage1',
  seed: 0,
  data: '/work/data/w40',
  losses: [1.5, 0.75, null],
  space: { name: 'small', range: [-51.2, -51.2, -3], anchor: { yawsDeg: [0, 90] } },
  note: 'ünïcödé and "quotes"',
};

function bits(w: { data: Float32Array }): number[] {
  return [...new Uint32Array(w.data.buffer, w.data.byteOffset, w.data.length)];
}

function expectSame(got: Weights, want: Weights): void {
  expect([...got.keys()]).toEqual([...want.keys()]);
  for (const [name, w] of want) {
    expect(got.get(name)!.shape, name).toEqual(w.shape);
    expect(bits(got.get(name)!), name).toEqual(bits(w));
  }
}

/** A weight file in the layout heal wrote before safetensors ("HEALWTS1"), written independently here. */
function legacyFile(weights: Weights, header: Record<string, unknown> = {}): Uint8Array {
  const tensors = [...weights].map(([name, w]) => ({ name, shape: w.shape }));
  let json = Buffer.from(JSON.stringify({ format: 'heal-weights', version: 1, meta: META, tensors, ...header }), 'utf8');
  json = Buffer.concat([json, Buffer.alloc((4 - ((12 + json.length) % 4)) % 4, 0x20)]);
  const floats = [...weights.values()].flatMap((w) => [...new Uint8Array(w.data.buffer, w.data.byteOffset, w.data.byteLength)]);
  const length = Buffer.alloc(4);
  length.writeUInt32LE(json.length);
  return new Uint8Array(Buffer.concat([Buffer.from('HEALWTS1', 'ascii'), length, json, Buffer.from(floats)]));
}

/** A safetensors file as Python writes it: compact JSON, no padding, whatever dtypes the model had. */
function handMade(header: Record<string, unknown>, buffer: Uint8Array): Uint8Array {
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(json.length));
  return new Uint8Array(Buffer.concat([length, json, buffer]));
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

describe('weight files', () => {
  it('are written in the safetensors layout: F32 tensors, meta as one JSON string under __metadata__.heal', () => {
    const bytes = encodeWeights(sample(), META);
    const { tensors, metadata } = decodeSafetensors(bytes, 'w.safetensors');
    expect(Object.keys(metadata)).toEqual([META_KEY]);
    expect(JSON.parse(metadata[META_KEY])).toEqual(META);
    expect([...tensors.values()].map((t) => t.dtype)).toEqual(['F32', 'F32', 'F32', 'F32']);
    expect(tensors.get('encoder.conv.weight')!.shape).toEqual([2, 1, 3]);
  });

  it('round-trip through a file with meta preserved and every tensor bit for bit, in order', async () => {
    const file = path.join(dir, 'round.bin');
    await saveWeights(file, sample(), META);
    const { weights, meta } = await loadWeights(file);
    expect(meta).toEqual(META);
    expectSame(weights, sample());
    // Loaded tensors own their memory: changing one leaves a second load unchanged.
    weights.get('head.cls.bias')!.data[0] = 9;
    expect((await loadWeights(file)).weights.get('head.cls.bias')!.data[0]).toBeCloseTo(-4.59512, 5);
    expect(decodeWeights(encodeWeights(sample()), 'empty-meta').meta).toEqual({});
  });

  it('still reads files in the HEALWTS1 layout of earlier heal versions', () => {
    const { weights, meta } = decodeWeights(legacyFile(sample()), 'old.bin');
    expect(meta).toEqual(META);
    expectSame(weights, sample());
    // Loading an old file and saving it converts it without changing a value.
    const again = decodeWeights(encodeWeights(weights, meta), 'converted.bin');
    expect(again.meta).toEqual(META);
    expectSame(again.weights, sample());
  });

  it('load a PyTorch-style file without heal metadata: F16, BF16 and F64 as float32, an exact int64 counter', () => {
    const f32 = Float32Array.of(1.5, -2);
    const f16 = Uint16Array.of(0x3c00, 0xc000); // 1, -2
    const bf16 = Uint16Array.of(0x3f80, 0x4040); // 1, 3
    const f64 = Float64Array.of(0.1, -1e-3);
    const i64 = BigInt64Array.of(12345n);
    const parts = [f32, f16, bf16, f64, i64].map((a) => new Uint8Array(a.buffer));
    const offsets: [number, number][] = [];
    let at = 0;
    for (const p of parts) {
      offsets.push([at, at + p.length]);
      at += p.length;
    }
    const bytes = handMade(
      {
        __metadata__: { format: 'pt' },
        'bn.bias': { dtype: 'F32', shape: [2], data_offsets: offsets[0] },
        'bn.weight': { dtype: 'F16', shape: [2], data_offsets: offsets[1] },
        'conv.weight': { dtype: 'BF16', shape: [1, 2], data_offsets: offsets[2] },
        'pose.offset': { dtype: 'F64', shape: [2], data_offsets: offsets[3] },
        'bn.num_batches_tracked': { dtype: 'I64', shape: [], data_offsets: offsets[4] },
      },
      Buffer.concat(parts),
    );
    const { weights, meta } = decodeWeights(bytes, 'model.safetensors');
    expect(meta).toEqual({});
    expect([...weights].map(([k, w]) => [k, w.shape, [...w.data]])).toEqual([
      ['bn.bias', [2], [1.5, -2]],
      ['bn.weight', [2], [1, -2]],
      ['conv.weight', [1, 2], [1, 3]],
      ['pose.offset', [2], [Math.fround(0.1), Math.fround(-1e-3)]],
      ['bn.num_batches_tracked', [], [12345]],
    ]);
    for (const w of weights.values()) expect(w.data).toBeInstanceOf(Float32Array);
  });

  it('the shipped weights are in the safetensors layout and carry the meta of the runs that made them', async () => {
    const file = shippedWeightsPath('small');
    const { tensors, metadata } = decodeSafetensors(await fs.readFile(file), file);
    expect(new Set([...tensors.values()].map((t) => t.dtype))).toEqual(new Set(['F32']));
    const meta = JSON.parse(metadata[META_KEY]);
    expect(Object.keys(meta)).toEqual(expect.arrayContaining(['seed', 'data', 'stage', 'space']));
    expect((await loadWeights(file)).weights.size).toBe(tensors.size);
  });

  it('bad files fail naming the file, the field and the value', () => {
    const good = encodeWeights(sample(), META);
    const cases: [string, Uint8Array, string | undefined, RegExp][] = [
      ['short.bin', Uint8Array.of(1, 2, 3), 'header', /shorter than the 8-byte header length/],
      ['zeros.bin', new Uint8Array(20), 'header', /not valid UTF-8 JSON/],
      ['cut.bin', good.subarray(0, good.length - 4), 'trust.m2.data_offsets', /truncated.*\[\d+,\d+\]/],
      ['model.pth', Uint8Array.of(0x50, 0x4b, 3, 4, 0, 0, 0, 0, 0, 0), undefined, /zip archive.*PyTorch/],
      ['text-meta.bin', handMade({ __metadata__: { heal: 'seed=3' } }, new Uint8Array(0)), '__metadata__.heal', /not valid JSON.*"seed=3"/],
      ['list-meta.bin', handMade({ __metadata__: { heal: '[1,2]' } }, new Uint8Array(0)), '__metadata__.heal', /must be a JSON object.*"\[1,2\]"/],
      ['nested-meta.bin', handMade({ __metadata__: { heal: { seed: 3 } } }, new Uint8Array(0)), '__metadata__.heal', /must be a string.*\{"seed":3\}/],
      ['u8.bin', handMade({ m: { dtype: 'Q8', shape: [1], data_offsets: [0, 1] } }, new Uint8Array(1)), 'm.dtype', /"Q8"/],
      [
        'big.bin',
        handMade({ step: { dtype: 'I64', shape: [1], data_offsets: [0, 8] } }, new Uint8Array(BigInt64Array.of(2n ** 40n).buffer)),
        'step',
        /I64 value at index 0 is not exact in float32.*"1099511627776"/,
      ],
      [
        'huge.bin',
        handMade({ x: { dtype: 'F64', shape: [2], data_offsets: [0, 16] } }, new Uint8Array(Float64Array.of(1, 1e300).buffer)),
        'x',
        /F64 value at index 1 is outside the float32 range.*1e\+300/,
      ],
      ['version.bin', legacyFile(sample(), { version: 2 }), 'version', /unsupported version.*2/],
      ['format.bin', legacyFile(sample(), { format: 'tfjs' }), 'format', /must be "heal-weights".*"tfjs"/],
      ['shape.bin', legacyFile(sample(), { tensors: [{ name: 'a', shape: [2, -1] }] }), 'tensors[0].shape', /tensor "a".*\[2,-1\]/],
      ['old-cut.bin', legacyFile(sample()).subarray(0, 60), 'header', /runs past the end of the file/],
    ];
    for (const [file, bytes, field, message] of cases) {
      const err = dataError(() => decodeWeights(bytes, file));
      expect(err.file, file).toBe(file);
      expect(err.field, file).toBe(field);
      expect(err.message, file).toMatch(message);
      expect(err.message.startsWith(file), file).toBe(true);
    }
  });

  it('a missing file is named', async () => {
    await expect(loadWeights(path.join(dir, 'nowhere.bin'))).rejects.toThrow(/nowhere\.bin.*weight file is missing/);
  });
});

describe('merging weight files', () => {
  const tensor = (...v: number[]) => ({ shape: [v.length], data: Float32Array.from(v) });
  // Two HEAL-style checkpoints: each its own agent type, each its own (different) fusion and head.
  const files: Record<string, Weights> = {
    'lidar.pth': new Map([
      ['encoder.m1.w', tensor(1)],
      ['fusion.level0.w', tensor(1, 2)],
      ['head.cls.w', tensor(3)],
    ]),
    'camera.pth': new Map([
      ['encoder.m4.w', tensor(4)],
      ['aligner.m4.w', tensor(5)],
      ['fusion.level0.w', tensor(1, 2.5)],
      ['head.cls.w', tensor(3)],
    ]),
  };
  const load = async (f: string) => ({ weights: files[f], meta: { from: f } });

  it("'identical' refuses a shared parameter that differs, naming the file and the parameter", async () => {
    const err = await mergeWeightFiles(['lidar.pth', 'camera.pth'], load).catch((e) => e);
    expect(err).toBeInstanceOf(DataError);
    expect(err.message).toMatch(/camera\.pth.*fusion\.level0\.w.*differs from the same parameter in lidar\.pth.*--merge-weights encoders/);
  });

  it("'encoders' takes the fusion and head from the first file and only encoders and aligners from the others, and says so", async () => {
    const lines: string[] = [];
    const { weights, meta } = await mergeWeightFiles(['lidar.pth', 'camera.pth'], load, 'encoders', (l) => lines.push(l));
    expect([...weights.keys()].sort()).toEqual(['aligner.m4.w', 'encoder.m1.w', 'encoder.m4.w', 'fusion.level0.w', 'head.cls.w']);
    expect(Array.from(weights.get('fusion.level0.w')!.data)).toEqual([1, 2]);
    expect(meta).toMatchObject({ from: 'lidar.pth', mergedFrom: ['lidar.pth', 'camera.pth'], mergeRule: 'encoders' });
    expect(lines).toEqual([
      "heal: camera.pth: only its encoders and aligners are used; its fusion and head (2 parameters) are left out for lidar.pth's (they differ, first fusion.level0.w)",
    ]);
    // An encoder both files hold must still agree.
    files['camera.pth'].set('encoder.m1.w', tensor(9));
    await expect(mergeWeightFiles(['lidar.pth', 'camera.pth'], load, 'encoders')).rejects.toThrow(/encoder\.m1\.w/);
    files['camera.pth'].delete('encoder.m1.w');
  });
});

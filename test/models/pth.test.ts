// PyTorch checkpoint reader: torch-format files are built here byte by byte (a minimal pickle
// protocol 2 stream inside a zip), so the tests need neither Python nor shared fixtures.

import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { DataError } from '../../datasets/io.ts';
import { decodeStateDict, readStateDict } from '../../models/pth.ts';
import { Pickle, bytesOf, zip, type TensorSpec } from '../helpers/torch-save.ts';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
const fixtures = path.resolve(repoRoot, '..', 'shared', 'fixtures');
const m1File = path.join(fixtures, 'heal_reference', 'm1_stage1.pth');
const m4File = path.join(fixtures, 'heal_reference_cameras', 'm4_stage2.pth');

const SPECS: TensorSpec[] = [
  { name: 'conv.weight', type: 'FloatStorage', key: '0', numel: 6, shape: [2, 3] },
  // A transposed view of the same storage: non-contiguous strides.
  { name: 'conv.weight_t', type: 'FloatStorage', key: '0', numel: 6, shape: [3, 2], stride: [1, 3] },
  { name: 'bn.running_mean', type: 'FloatStorage', key: '1', numel: 5, shape: [2], stride: [2], offset: 2, location: 'cuda:0' },
  { name: 'bn.num_batches_tracked', type: 'LongStorage', key: '2', numel: 1, shape: [], location: 'cuda:0' },
  { name: 'half', type: 'HalfStorage', key: '3', numel: 4, shape: [2, 2] },
  { name: 'bf', type: 'BFloat16Storage', key: '4', numel: 2, shape: [2] },
  { name: 'mask', type: 'BoolStorage', key: '5', numel: 3, shape: [3] },
  { name: 'index', type: 'IntStorage', key: '6', numel: 2, shape: [1, 1, 1, 2] },
];

const STORAGE_DATA: Record<string, Uint8Array> = {
  '0': bytesOf(Float32Array.of(1, 2, 3, 4, 5, 6)),
  '1': bytesOf(Float32Array.of(10, 11, 12, 13, 14)),
  '2': bytesOf(BigInt64Array.of(12345n)),
  '3': bytesOf(Uint16Array.of(0x3c00, 0xc000, 0x3800, 0x7bff)),
  '4': bytesOf(Uint16Array.of(0x3f80, 0xc0a0)),
  '5': Uint8Array.of(1, 0, 1),
  '6': bytesOf(Int32Array.of(-7, 2 ** 30)),
};

function checkpoint(pkl: Uint8Array, opts: { zip64?: boolean; deflate?: boolean; storages?: Record<string, Uint8Array> } = {}): Uint8Array {
  const files: [string, Uint8Array][] = [['ckpt/data.pkl', pkl]];
  for (const [key, data] of Object.entries(opts.storages ?? STORAGE_DATA)) files.push([`ckpt/data/${key}`, data]);
  files.push(['ckpt/version', Buffer.from('3\n')]);
  return zip(files, opts);
}

const validPickle = () => new Pickle().stateDict(SPECS).metadata().bytes();

function dataError(fn: () => unknown): DataError {
  try {
    fn();
  } catch (err) {
    if (err instanceof DataError) return err;
    throw err;
  }
  throw new Error('expected a DataError');
}

describe('decodeStateDict', () => {
  it('reads tensors of every kind, in file order, honouring strides and offsets', () => {
    const sd = decodeStateDict(checkpoint(validPickle()), 'test.pth');
    expect([...sd.keys()]).toEqual(SPECS.map((s) => s.name));
    expect(sd.get('conv.weight')).toEqual({ dtype: 'float32', shape: [2, 3], data: Float32Array.of(1, 2, 3, 4, 5, 6) });
    expect(sd.get('conv.weight_t')!.data).toEqual(Float32Array.of(1, 4, 2, 5, 3, 6));
    expect(sd.get('bn.running_mean')!.data).toEqual(Float32Array.of(12, 14));
    expect(sd.get('bn.num_batches_tracked')).toEqual({ dtype: 'int64', shape: [], data: BigInt64Array.of(12345n) });
    expect(sd.get('half')).toEqual({ dtype: 'float16', shape: [2, 2], data: Float32Array.of(1, -2, 0.5, 65504) });
    expect(sd.get('bf')).toEqual({ dtype: 'bfloat16', shape: [2], data: Float32Array.of(1, -5) });
    expect(sd.get('mask')).toEqual({ dtype: 'bool', shape: [3], data: Uint8Array.of(1, 0, 1) });
    expect(sd.get('index')).toEqual({ dtype: 'int32', shape: [1, 1, 1, 2], data: Int32Array.of(-7, 2 ** 30) });
  });

  it('never aliases the file buffer', () => {
    const file = checkpoint(validPickle());
    const sd = decodeStateDict(file, 'test.pth');
    file.fill(0);
    expect(sd.get('conv.weight')!.data).toEqual(Float32Array.of(1, 2, 3, 4, 5, 6));
    expect(sd.get('conv.weight')!.data.byteOffset).toBe(0);
  });

  it('reads zip64 end records and deflated entries alike', () => {
    const plain = decodeStateDict(checkpoint(validPickle()), 'a.pth');
    expect(decodeStateDict(checkpoint(validPickle(), { zip64: true }), 'b.pth')).toEqual(plain);
    expect(decodeStateDict(checkpoint(validPickle(), { deflate: true }), 'c.pth')).toEqual(plain);
  });

  it('unwraps _rebuild_parameter and handles large ints (LONG1) and MARK tuples', () => {
    const p = new Pickle().orderedDict().raw(0x28).str('p');
    p.global('torch._utils', '_rebuild_parameter').raw(0x28);
    p.tensor({ name: 'p', type: 'FloatStorage', key: '1', numel: 5, shape: [1, 1, 1, 1, 1], offset: 4 });
    p.raw(0x88).orderedDict().raw(0x74, 0x52, 0x75);
    const sd = decodeStateDict(checkpoint(p.bytes()), 'p.pth');
    expect(sd.get('p')).toEqual({ dtype: 'float32', shape: [1, 1, 1, 1, 1], data: Float32Array.of(14) });
    const big = new Pickle().orderedDict().raw(0x28).str('x');
    big.tensor({ name: 'x', type: 'FloatStorage', key: '0', numel: 6, shape: [1], offset: 2 ** 40 });
    expect(dataError(() => decodeStateDict(checkpoint(big.raw(0x75).bytes()), 'big.pth')).message).toMatch(/"x".*runs past storage/);
  });

  it('finds the state dict inside a wrapping dict, and names the keys when it cannot', () => {
    const wrapped = new Pickle().raw(0x7d).str('epoch').int(3).raw(0x73).str('state_dict').stateDict(SPECS.slice(0, 1)).raw(0x73).bytes();
    expect([...decodeStateDict(checkpoint(wrapped), 'w.pth').keys()]).toEqual(['conv.weight']);
    const two = new Pickle().raw(0x7d).str('model').stateDict(SPECS.slice(0, 1)).raw(0x73).str('ema').stateDict(SPECS.slice(0, 1)).raw(0x73).bytes();
    const err = dataError(() => decodeStateDict(checkpoint(two), 'two.pth'));
    expect(err.message).toContain('two.pth');
    expect(err.message).toContain('["model","ema"]');
    const list = new Pickle().raw(0x5d).bytes();
    expect(dataError(() => decodeStateDict(checkpoint(list), 'l.pth')).message).toMatch(/not a dict/);
  });

  it('refuses globals outside the allowlist, by name', () => {
    const evil = new Pickle()
      .raw(0x63, ...Buffer.from('os\nsystem\n'))
      .str('echo pwned')
      .raw(0x85, 0x52)
      .bytes();
    const err = dataError(() => decodeStateDict(checkpoint(evil), 'evil.pth'));
    expect(err.message).toContain('evil.pth');
    expect(err.message).toContain('os.system');
    expect(err.field).toBe('data.pkl');
    // Protocol 4's STACK_GLOBAL takes the names from the stack.
    const stacked = new Pickle().raw(0x8c, 8, ...Buffer.from('builtins'), 0x8c, 4, ...Buffer.from('eval'), 0x93).bytes();
    expect(dataError(() => decodeStateDict(checkpoint(stacked), 'e.pth')).message).toContain('builtins.eval');
    const getattr = new Pickle().raw(0x63, ...Buffer.from('__builtin__\ngetattr\n')).bytes();
    expect(dataError(() => decodeStateDict(checkpoint(getattr), 'g.pth')).message).toContain('__builtin__.getattr');
    // An allowed name used as something else is refused too.
    const storageCall = new Pickle().global('torch', 'FloatStorage').raw(0x29, 0x52).bytes();
    expect(dataError(() => decodeStateDict(checkpoint(storageCall), 's.pth')).message).toContain('torch.FloatStorage');
  });

  it('rejects truncated archives and a missing data.pkl', () => {
    const file = checkpoint(validPickle());
    for (const cut of [0, 10, file.length / 2, file.length - 30, file.length - 1]) {
      expect(dataError(() => decodeStateDict(file.subarray(0, Math.floor(cut)), 'cut.pth')).message).toContain('cut.pth');
    }
    const noPkl = zip([['ckpt/data/0', STORAGE_DATA['0']]]);
    const err = dataError(() => decodeStateDict(noPkl, 'np.pth'));
    expect(err.field).toBe('data.pkl');
    expect(err.message).toMatch(/missing/);
  });

  it('rejects a storage shorter than declared, naming the state-dict key', () => {
    const short = { ...STORAGE_DATA, '1': bytesOf(Float32Array.of(10, 11)) };
    const err = dataError(() => decodeStateDict(checkpoint(validPickle(), { storages: short }), 's.pth'));
    expect(err.field).toBe('bn.running_mean');
    expect(err.message).toMatch(/fewer than the 5 float32 values/);
    const missing = Object.fromEntries(Object.entries(STORAGE_DATA).filter(([key]) => key !== '2'));
    expect(dataError(() => decodeStateDict(checkpoint(validPickle(), { storages: missing }), 'm.pth')).field).toBe('bn.num_batches_tracked');
  });

  it('names an unknown opcode and its byte offset', () => {
    const pkl = new Pickle().raw(0x70, 0x30, 0x0a).bytes();
    expect(dataError(() => decodeStateDict(checkpoint(pkl), 'op.pth')).message).toMatch(/opcode 0x70 \('p'\) at byte 2/);
  });

  it('checks huge declared sizes before allocating anything', () => {
    const hugeNumel = new Pickle().orderedDict().raw(0x28).str('w');
    hugeNumel.tensor({ name: 'w', type: 'DoubleStorage', key: '0', numel: 2 ** 52, shape: [2 ** 26, 2 ** 26] });
    expect(dataError(() => decodeStateDict(checkpoint(hugeNumel.raw(0x75).bytes()), 'h.pth')).field).toBe('w');
    const hugeShape = new Pickle().orderedDict().raw(0x28).str('w');
    hugeShape.tensor({ name: 'w', type: 'FloatStorage', key: '0', numel: 6, shape: [2 ** 40, 2 ** 40, 0, 2 ** 40], stride: [1, 1, 1, 1] });
    expect(decodeStateDict(checkpoint(hugeShape.raw(0x75).bytes()), 'h.pth').get('w')!.data.length).toBe(0);
    const longString = new Pickle().raw(0x58).u32(0xfffffff0).bytes();
    expect(dataError(() => decodeStateDict(checkpoint(longString), 'h.pth')).message).toMatch(/longer than/);
    const longString8 = new Pickle().raw(0x8d, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f).bytes();
    expect(dataError(() => decodeStateDict(checkpoint(longString8), 'h.pth')).message).toMatch(/longer than/);
    // A deflated entry claiming 4 GB from a few bytes.
    const bomb = checkpoint(validPickle(), { deflate: true });
    const view = new DataView(bomb.buffer);
    const centralStart = view.getUint32(bomb.length - 6, true);
    view.setUint32(centralStart + 24, 0xfffffff0, true);
    expect(dataError(() => decodeStateDict(bomb, 'bomb.pth')).message).toMatch(/claims/);
    // A memo index near 2**32 stays a map key, not an array slot.
    const farMemo = new Pickle().raw(0x29, 0x72).u32(0xfffffffe).raw(0x6a).u32(0xfffffffe).raw(0x30).bytes();
    expect(dataError(() => decodeStateDict(checkpoint(farMemo), 'm.pth')).message).toMatch(/opcode 0x30/);
  });

  it('keeps error messages short for deeply nested or heavily shared values', () => {
    // Each level holds the previous one twice: 2**60 leaves if printed naively.
    const shared = new Pickle().raw(0x29, 0x71, 0);
    for (let i = 0; i < 60; i++) shared.raw(0x68, 0, 0x68, 0, 0x86, 0x71, 0);
    const err = dataError(() => decodeStateDict(checkpoint(shared.raw(0x29, 0x52).bytes()), 's.pth'));
    expect(err.message).toMatch(/REDUCE at byte \d+ needs a global/);
    const deep = new Pickle().raw(0x29);
    for (let i = 0; i < 100_000; i++) deep.raw(0x85);
    deep.raw(0x29, 0x52);
    expect(dataError(() => decodeStateDict(checkpoint(deep.bytes()), 'd.pth')).message.length).toBeLessThan(400);
  });

  it('survives a seeded mutational fuzz: every case decodes or throws DataError', () => {
    const pkl = validPickle();
    const files = [checkpoint(pkl), checkpoint(pkl, { deflate: true, zip64: true })];
    let seed = 20240611;
    const rand = () => {
      // mulberry32
      seed = (seed + 0x6d2b79f5) | 0;
      let t = seed;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
    const pick = (n: number) => Math.floor(rand() * n);
    const mutate = (src: Uint8Array): Uint8Array => {
      let b = Uint8Array.from(src);
      const rounds = 1 + pick(4);
      for (let r = 0; r < rounds; r++) {
        switch (pick(5)) {
          case 0:
            b[pick(b.length)] ^= 1 << pick(8);
            break;
          case 1:
            b[pick(b.length)] = pick(256);
            break;
          case 2:
            b = b.subarray(0, pick(b.length));
            break;
          case 3: {
            // A run of 0xff turns any nearby length or count into a huge one.
            const at = pick(b.length);
            b.fill(0xff, at, at + 1 + pick(8));
            break;
          }
          default: {
            const at = pick(b.length + 1);
            b = Uint8Array.from([...b.subarray(0, at), pick(256), ...b.subarray(at)]);
          }
        }
        if (b.length === 0) break;
      }
      return b;
    };
    const started = performance.now();
    let decoded = 0;
    let rejected = 0;
    for (let i = 0; i < 2000; i++) {
      // Half the cases mutate the pickle and re-zip it (so the CRC matches and the pickle machine
      // sees the damage); half mutate a whole archive, stored or deflated with zip64 records.
      const bytes = i % 2 ? checkpoint(mutate(pkl)) : mutate(files[(i >> 1) % 2]);
      try {
        decodeStateDict(bytes, 'fuzz.pth');
        decoded++;
      } catch (err) {
        if (!(err instanceof DataError)) throw new Error(`case ${i}: ${(err as Error).stack}`);
        rejected++;
      }
    }
    expect(decoded + rejected).toBe(2000);
    expect(decoded).toBeGreaterThan(0);
    expect(rejected).toBeGreaterThan(0);
    expect(performance.now() - started).toBeLessThan(10_000);
  });
});

describe('HEAL checkpoints from ../shared', () => {
  const present = existsSync(m1File) && existsSync(m4File);
  if (!present) console.log(`skipping HEAL checkpoint fixtures: ${m1File} or ${m4File} is absent`);

  it.skipIf(!present)('reads m1_stage1.pth: 382 entries, num_batches_tracked = 12345, in well under 2 s', async () => {
    const started = performance.now();
    const sd = await readStateDict(m1File);
    const ms = performance.now() - started;
    console.log(
      `m1_stage1.pth: ${sd.size} entries in ${ms.toFixed(0)} ms; first 20:\n${[...sd]
        .slice(0, 20)
        .map(([k, t]) => `  ${k} ${t.dtype} [${t.shape}]`)
        .join('\n')}`,
    );
    expect(ms).toBeLessThan(2000);
    expect(sd.size).toBe(382);
    const counters = [...sd].filter(([k]) => k.endsWith('num_batches_tracked'));
    expect(counters).toHaveLength(61);
    for (const [, t] of counters) expect(t).toEqual({ dtype: 'int64', shape: [], data: BigInt64Array.of(12345n) });
    const first = sd.get('encoder_m1.pillar_vfe.pfn_layers.0.linear.weight')!;
    expect(first.shape).toEqual([64, 10]);
    expect(first.data[0]).toBeCloseTo(-0.0023675405, 9);
    expect((first.data as Float32Array).reduce((a, b) => a + b, 0)).toBeCloseTo(-1.844213526987005, 5);
    expect(sd.get('encoder_m1.pillar_vfe.pfn_layers.0.norm.running_var')!.shape).toEqual([64]);
  });

  it.skipIf(!present)('reads m4_stage2.pth: 551 entries', async () => {
    const started = performance.now();
    const sd = await readStateDict(m4File);
    const ms = performance.now() - started;
    console.log(`m4_stage2.pth: ${sd.size} entries in ${ms.toFixed(0)} ms`);
    expect(ms).toBeLessThan(2000);
    expect(sd.size).toBe(551);
    expect(sd.get('encoder_m4.camencode.conv1.weight')!.shape).toEqual([64, 3, 7, 7]);
  });
});

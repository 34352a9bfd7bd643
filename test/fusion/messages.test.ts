import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import { describe, expect, it } from 'vitest';
import { poseToMatrix } from '../../datasets/geometry/transforms.ts';
import { DataError } from '../../datasets/io.ts';
import {
  type CollabMessage,
  type DecodeLimits,
  type FeatureDType,
  MessageError,
  SCHEMA_VERSION,
  decodeMessage,
  encodeMessage,
  float16BitsToFloat32,
  float32ToFloat16Bits,
  gridForSpace,
  messageWireSize,
} from '../../fusion/messages.ts';
import { SMALL_SPACE } from '../../perception/space.ts';
import type { heal } from '../../proto/heal.d.ts';

// The same schema file, parsed independently, to forge hostile messages field by field.
const root = protobuf.loadSync(fileURLToPath(new URL('../../proto/heal.proto', import.meta.url)));
const Wire = root.lookupType('heal.CollabMessage');
/** A decoded CollabMessage as protobufjs builds it: each part an instance of its generated class, or null when absent. */
interface WireMsg {
  header: heal.Header | null;
  pose: heal.Pose | null;
  grid: heal.Grid | null;
  features: heal.Features | null;
  mask: heal.SparseMask | null;
  detections: heal.Detections | null;
}
/** Decodes without any checks, to forge from. */
const decodeWire = (bytes: Uint8Array) => Wire.decode(bytes) as unknown as WireMsg;

/** Small deterministic generator (mulberry32), so failures reproduce. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const C = 6,
  H = 10,
  W = 12;
const GRID = { xMin: -4.8, xMax: 4.8, yMin: -4, yMax: 4, cellSize: 0.8, width: W, height: H, channels: C };

function sampleMessage(seed = 1): CollabMessage {
  const r = rng(seed);
  const features = new Float32Array(C * H * W);
  for (let i = 0; i < features.length; i++) features[i] = (r() - 0.5) * 8 * (1 + (i % C));
  return {
    agentId: '641',
    agentType: 'm1',
    timestamp: '000069',
    sequence: 17,
    pose: poseToMatrix([12.5, -30.25, 1.9, 0.5, 123, -1.5]),
    grid: { ...GRID },
    features,
  };
}

function forge(msg: CollabMessage, dtype: FeatureDType, edit: (w: WireMsg) => void, opts: { sparseThreshold?: number } = {}): Uint8Array {
  const w = decodeWire(encodeMessage(msg, { dtype, ...opts }));
  edit(w);
  return Wire.encode(w).finish();
}

/** Asserts decoding fails with a MessageError on `field` (a prefix match, e.g. "pose"). */
function expectRejected(bytes: Uint8Array, field: string, limits?: DecodeLimits): MessageError {
  let caught: unknown;
  try {
    decodeMessage(bytes, limits);
  } catch (err) {
    caught = err;
  }
  expect(caught, `expected a MessageError on ${field}`).toBeInstanceOf(MessageError);
  const e = caught as MessageError;
  expect(e.field.startsWith(field), `field "${e.field}" (${e.message}) should start with "${field}"`).toBe(true);
  expect(e.message).toContain(e.field);
  return e;
}

describe('float16 conversion', () => {
  const bits = (v: number) => float32ToFloat16Bits(v);
  it('matches IEEE binary16 on known values', () => {
    expect(bits(0)).toBe(0x0000);
    expect(bits(-0)).toBe(0x8000);
    expect(bits(1)).toBe(0x3c00);
    expect(bits(-2)).toBe(0xc000);
    expect(bits(0.333251953125)).toBe(0x3555);
    expect(bits(65504)).toBe(0x7bff); // largest finite
    expect(bits(65519.99)).toBe(0x7bff);
    expect(bits(65520)).toBe(0x7c00); // halfway to 65536: ties to even, which is inf
    expect(bits(1e6)).toBe(0x7c00);
    expect(bits(-Infinity)).toBe(0xfc00);
    expect(bits(NaN) & 0x7c00).toBe(0x7c00);
    expect(bits(NaN) & 0x3ff).not.toBe(0);
    expect(bits(2 ** -14)).toBe(0x0400); // smallest normal
    expect(bits(2 ** -24)).toBe(0x0001); // smallest subnormal
    expect(bits(2 ** -14 - 2 ** -24)).toBe(0x03ff); // largest subnormal
    expect(bits(2 ** -25)).toBe(0x0000); // halfway to the smallest subnormal: ties to even (0)
    expect(bits(1.5 * 2 ** -25)).toBe(0x0001);
    expect(bits(3 * 2 ** -25)).toBe(0x0002); // 1.5 subnormal steps: ties to even (2)
    expect(bits(2 ** -26)).toBe(0x0000);
  });

  it('rounds to nearest, ties to even', () => {
    expect(bits(1 + 2 ** -11)).toBe(0x3c00); // tie, 0x3c00 is even
    expect(bits(1 + 3 * 2 ** -11)).toBe(0x3c02); // tie, 0x3c02 is even
    expect(bits(1 + 2 ** -11 + 2 ** -20)).toBe(0x3c01); // just above the tie
    expect(bits(2 - 2 ** -12)).toBe(0x4000); // carries into the exponent
  });

  it('round-trips every half value', () => {
    for (let h = 0; h < 0x10000; h++) {
      const v = float16BitsToFloat32(h);
      if (Number.isNaN(v)) continue;
      expect(float32ToFloat16Bits(v)).toBe(h);
    }
  });
});

describe('collaboration message round trip', () => {
  it('float32 is exact', () => {
    const msg = sampleMessage();
    const d = decodeMessage(encodeMessage(msg, { dtype: 'float32' }));
    expect(d.schemaVersion).toBe(SCHEMA_VERSION);
    expect(d.dtype).toBe('float32');
    expect(d.agentId).toBe('641');
    expect(d.agentType).toBe('m1');
    expect(d.timestamp).toBe('000069');
    expect(d.sequence).toBe(17);
    expect(Array.from(d.pose)).toEqual(Array.from(msg.pose));
    expect(d.grid).toEqual(GRID);
    expect(d.features).toEqual(msg.features);
    expect(d.mask).toBeUndefined();
    expect(d.detections).toBeUndefined();
  });

  it('float16 keeps 11 significant bits', () => {
    const msg = sampleMessage(2);
    const d = decodeMessage(encodeMessage(msg, { dtype: 'float16' }));
    expect(d.dtype).toBe('float16');
    let worst = 0;
    for (let i = 0; i < msg.features!.length; i++) {
      const v = msg.features![i];
      worst = Math.max(worst, Math.abs(d.features![i] - v) / Math.max(Math.abs(v), 2 ** -14));
    }
    expect(worst).toBeGreaterThan(0); // it did quantise
    expect(worst).toBeLessThanOrEqual(2 ** -11);
  });

  for (const int8Scale of ['tensor', 'channel'] as const) {
    it(`int8 (${int8Scale} scale) errs at most scale/2`, () => {
      const msg = sampleMessage(3);
      const bytes = encodeMessage(msg, { dtype: 'int8', int8Scale });
      const scales: number[] = decodeWire(bytes).features!.scale;
      expect(scales.length).toBe(int8Scale === 'tensor' ? 1 : C);
      const d = decodeMessage(bytes);
      expect(d.dtype).toBe('int8');
      const cells = H * W;
      for (let c = 0; c < C; c++) {
        const s = scales.length === 1 ? scales[0] : scales[c];
        let maxAbs = 0;
        for (let i = c * cells; i < (c + 1) * cells; i++) maxAbs = Math.max(maxAbs, Math.abs(msg.features![i]));
        if (int8Scale === 'channel') expect(s).toBeCloseTo(maxAbs / 127, 5);
        for (let i = c * cells; i < (c + 1) * cells; i++) {
          expect(Math.abs(d.features![i] - msg.features![i])).toBeLessThanOrEqual(s / 2 + 1e-6 * maxAbs);
        }
      }
    });
  }

  it('int8 of an all-zero tensor decodes to zeros', () => {
    const msg = { ...sampleMessage(), features: new Float32Array(C * H * W) };
    expect(decodeMessage(encodeMessage(msg, { dtype: 'int8' })).features).toEqual(msg.features);
  });

  it('sparse: only selected cells travel, the rest decode as zero', () => {
    const msg = sampleMessage(4);
    const cells = H * W;
    // Confidence high on a few cells: the delta list is smaller than a bitmask.
    const confidence = new Float32Array(cells);
    for (const i of [3, 4, 50, 51, 52, 119]) confidence[i] = 0.9;
    const bytes = encodeMessage(msg, { dtype: 'float32', sparseThreshold: 0.5, confidence });
    expect(decodeWire(bytes).mask!.cells).toBe('deltas');
    const d = decodeMessage(bytes);
    expect(Array.from(d.mask!).flatMap((m, i) => (m ? [i] : []))).toEqual([3, 4, 50, 51, 52, 119]);
    for (let c = 0; c < C; c++) {
      for (let i = 0; i < cells; i++) expect(d.features![c * cells + i]).toBe(confidence[i] > 0.5 ? msg.features![c * cells + i] : 0);
    }
    const dense = messageWireSize(encodeMessage(msg, { dtype: 'float32' }));
    const sparse = messageWireSize(bytes);
    expect(sparse.features).toBeLessThan(dense.features / 10);
    expect(sparse.mask).toBeGreaterThan(0);
  });

  it('sparse by feature magnitude, with a bitmask when about half the cells are kept', () => {
    const msg = sampleMessage(5);
    const cells = H * W;
    const keep = new Uint8Array(cells);
    for (let i = 0; i < cells; i++) keep[i] = (i * 7) % 3 === 0 ? 1 : 0;
    for (let c = 0; c < C; c++) for (let i = 0; i < cells; i++) if (!keep[i]) msg.features![c * cells + i] = 0;
    const bytes = encodeMessage(msg, { dtype: 'float16', sparseThreshold: 0 });
    expect(decodeWire(bytes).mask!.cells).toBe('bitmask');
    const d = decodeMessage(bytes);
    expect(Array.from(d.mask!)).toEqual(Array.from(keep));
    const dense = decodeMessage(encodeMessage(msg, { dtype: 'float16' }));
    expect(d.features).toEqual(dense.features);
  });

  it('a threshold that keeps every cell sends a dense message', () => {
    const msg = sampleMessage(8);
    const bytes = encodeMessage(msg, { dtype: 'float32', sparseThreshold: -1 });
    expect(messageWireSize(bytes).mask).toBe(0);
    expect(decodeMessage(bytes).mask).toBeUndefined();
  });

  it('an explicit mask keeping nothing gives an empty but valid message', () => {
    const msg = sampleMessage(6);
    const d = decodeMessage(encodeMessage(msg, { dtype: 'int8', mask: new Uint8Array(H * W) }));
    expect(d.mask!.every((m) => m === 0)).toBe(true);
    expect(d.features!.every((v) => v === 0)).toBe(true);
  });

  it('detections (late fusion) round-trip, with or without features', () => {
    const boxes = Float32Array.from([1, 2, -1, 1.56, 1.6, 3.9, 0.3, -10, 5.5, -0.8, 1.5, 1.8, 4.2, -3]);
    const scores = Float32Array.from([0.9, 0.35]);
    const msg = { ...sampleMessage(7), detections: { boxes, scores } };
    const d = decodeMessage(encodeMessage(msg, { dtype: 'int8' }));
    expect(d.detections!.boxes).toEqual(boxes);
    expect(d.detections!.scores).toEqual(scores);
    const late = { ...msg, features: undefined };
    const bytes = encodeMessage(late, { dtype: 'float32' });
    const dl = decodeMessage(bytes);
    expect(dl.features).toBeUndefined();
    expect(dl.detections!.scores).toEqual(scores);
    const size = messageWireSize(bytes);
    expect(size.features).toBe(0);
    expect(size.detections).toBeGreaterThanOrEqual((14 + 2) * 4); // packed float32 boxes and scores
  });

  it('wire size adds up and scales with the dtype', () => {
    const grid = gridForSpace(SMALL_SPACE);
    const n = grid.channels * grid.width * grid.height;
    const features = new Float32Array(n).map((_, i) => Math.sin(i));
    const msg = { ...sampleMessage(), grid, features };
    const sizes = (['float32', 'float16', 'int8'] as const).map((dtype) => messageWireSize(encodeMessage(msg, { dtype })));
    for (const s of sizes) {
      expect(s.header + s.pose + s.grid + s.features + s.mask + s.detections + s.other).toBe(s.total);
      expect(s.header).toBeGreaterThan(0);
      expect(s.pose).toBeGreaterThanOrEqual(16 * 8);
    }
    // Payload plus a few bytes of framing.
    expect(sizes[0].features - n * 4).toBeGreaterThan(0);
    expect(sizes[0].features - n * 4).toBeLessThan(32);
    expect(sizes[1].features - n * 2).toBeLessThan(32);
    expect(sizes[2].features - n).toBeLessThan(32 + 4 * grid.channels + 4);
  });

  it('encode refuses a malformed message', () => {
    const msg = sampleMessage();
    expect(() => encodeMessage({ ...msg, features: new Float32Array(5) }, { dtype: 'float32' })).toThrow(MessageError);
    const nan = Float32Array.from(msg.features!);
    nan[7] = NaN;
    expect(() => encodeMessage({ ...msg, features: nan }, { dtype: 'float16' })).toThrow(/features.data/);
    expect(() => encodeMessage({ ...msg, agentId: '' }, { dtype: 'float32' })).toThrow(/agentId/);
    const big = Float32Array.from(msg.features!);
    big[3] = 70000;
    expect(() => encodeMessage({ ...msg, features: big }, { dtype: 'float16' })).toThrow(/overflows float16/);
    expect(decodeMessage(encodeMessage({ ...msg, features: big }, { dtype: 'int8' })).features![3]).toBeCloseTo(70000, -3);
    expect(() => encodeMessage(msg, { dtype: 'float64' as FeatureDType })).toThrow(/dtype/);
  });
});

describe('hostile messages', () => {
  const msg = sampleMessage(11);
  const good = encodeMessage(msg, { dtype: 'float32' });

  it('is a DataError subclass naming field and reason', () => {
    const e = expectRejected(
      forge(msg, 'float32', (w) => (w.header!.schemaVersion = 9)),
      'header.schemaVersion',
    );
    expect(e).toBeInstanceOf(DataError);
    expect(e.reason).toMatch(/unsupported schema version/);
    expect(e.message).toContain('(value: 9)');
  });

  it('random bytes', () => {
    const r = rng(99);
    for (let k = 0; k < 300; k++) {
      const bytes = new Uint8Array(Math.floor(r() * 3000));
      for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(r() * 256);
      expect(() => decodeMessage(bytes)).toThrow(MessageError);
    }
  });

  it('bytes of a valid message with some flipped', () => {
    const r = rng(5);
    let rejected = 0;
    for (let k = 0; k < 200; k++) {
      const bytes = Uint8Array.from(good);
      for (let f = 0; f < 3; f++) bytes[Math.floor(r() * 400)] ^= 1 << Math.floor(r() * 8);
      // Some flips land in feature values and still give a valid message; none may throw otherwise.
      try {
        decodeMessage(bytes);
      } catch (err) {
        expect(err).toBeInstanceOf(MessageError);
        rejected++;
      }
    }
    expect(rejected).toBeGreaterThan(50);
  });

  it('truncated bytes', () => {
    for (let cut = 0; cut < good.length; cut += cut < 400 ? 1 : 97) {
      expect(() => decodeMessage(good.subarray(0, cut)), `cut at ${cut}`).toThrow(MessageError);
    }
    expectRejected(good.subarray(0, good.length - 1), 'protobuf');
  });

  it('empty and oversize messages (size checked before parsing)', () => {
    expectRejected(new Uint8Array(0), 'bytes');
    // Garbage that would fail to parse: the size check must answer first.
    const big = new Uint8Array(2000).fill(0xff);
    expectRejected(big, 'bytes', { maxBytes: 1000 });
    expectRejected(good, 'bytes', { maxBytes: good.length - 1 });
    expect(decodeMessage(good, { maxBytes: good.length }).features).toEqual(msg.features);
  });

  it('unknown or missing schema version', () => {
    expectRejected(
      forge(msg, 'float32', (w) => (w.header!.schemaVersion = SCHEMA_VERSION + 1)),
      'header.schemaVersion',
    );
    expectRejected(
      forge(msg, 'float32', (w) => (w.header!.schemaVersion = 0)),
      'header.schemaVersion',
    );
    expectRejected(
      forge(msg, 'float32', (w) => (w.header = null)),
      'header',
    );
  });

  it('shape that does not match the bytes or the grid', () => {
    // Claims 64×100×100 with the grid to match, but carries the 6×10×12 payload.
    const claims = forge(msg, 'float32', (w) => {
      w.features!.shape = [64, 100, 100];
      Object.assign(w.grid!, { channels: 64, width: 100, height: 100, xMin: -40, xMax: 40, yMin: -40, yMax: 40 });
    });
    expectRejected(claims, 'features.data');
    expectRejected(
      forge(msg, 'float32', (w) => (w.features!.shape = [C, W, H])),
      'features.shape',
    );
    expectRejected(
      forge(msg, 'float32', (w) => (w.features!.shape = [C, H])),
      'features.shape',
    );
    expectRejected(
      forge(msg, 'float16', (w) => (w.features!.data = w.features!.data.subarray(1))),
      'features.data',
    );
    expectRejected(
      forge(msg, 'int8', (w) => (w.features!.data = new Uint8Array(w.features!.data.length + C))),
      'features.data',
    );
    // Values outside the generated types go in through Object.assign, as a hostile sender would.
    expectRejected(
      forge(msg, 'float32', (w) => Object.assign(w.features!, { dtype: 7 })),
      'features.dtype',
    );
    expectRejected(
      forge(msg, 'float32', (w) => (w.features!.dtype = 0)),
      'features.dtype',
    );
  });

  it('negative, zero and huge dimensions', () => {
    // uint32 on the wire: -1 arrives as 4294967295.
    expectRejected(
      forge(msg, 'float32', (w) => (w.grid!.width = -1)),
      'grid.width',
    );
    expectRejected(
      forge(msg, 'float32', (w) => (w.grid!.channels = 0)),
      'grid.channels',
    );
    expectRejected(
      forge(msg, 'float32', (w) => (w.grid!.height = 1e6)),
      'grid.height',
    );
    // A consistent but enormous grid whose sparse payload is tiny: refused before allocating it.
    const huge = forge(
      msg,
      'float32',
      (w) => {
        Object.assign(w.grid!, { width: 60000, height: 60000, channels: 64, xMin: -3000, xMax: 3000, yMin: -3000, yMax: 3000, cellSize: 0.1 });
        w.features!.shape = [64, 60000, 60000];
      },
      { sparseThreshold: 1e9 },
    );
    expectRejected(huge, 'features.shape');
    expectRejected(
      forge(msg, 'float32', (w) => (w.grid!.cellSize = 0)),
      'grid.cellSize',
    );
    expectRejected(
      forge(msg, 'float32', (w) => (w.grid!.xMax = 100)),
      'grid.width',
    );
    expectRejected(
      forge(msg, 'float32', (w) => (w.grid!.yMin = NaN)),
      'grid.yMin',
    );
  });

  it('NaN and Inf in features, for every dtype', () => {
    const setF32 = (w: WireMsg, i: number, v: number) => new DataView(w.features!.data.buffer, w.features!.data.byteOffset).setFloat32(i * 4, v, true);
    expectRejected(
      forge(msg, 'float32', (w) => setF32(w, 5, NaN)),
      'features.data',
    );
    expectRejected(
      forge(msg, 'float32', (w) => setF32(w, 0, Infinity)),
      'features.data',
    );
    const setF16 = (w: WireMsg, i: number, h: number) => {
      w.features!.data[i * 2] = h & 0xff;
      w.features!.data[i * 2 + 1] = h >> 8;
    };
    expectRejected(
      forge(msg, 'float16', (w) => setF16(w, 9, 0x7e00)),
      'features.data',
    );
    expectRejected(
      forge(msg, 'float16', (w) => setF16(w, 9, 0xfc00)),
      'features.data',
    );
    expectRejected(
      forge(msg, 'int8', (w) => (w.features!.scale[2] = NaN)),
      'features.scale',
    );
    expectRejected(
      forge(msg, 'int8', (w) => (w.features!.scale[0] = Infinity)),
      'features.scale',
    );
    expectRejected(
      forge(msg, 'int8', (w) => (w.features!.scale = [1, 2])),
      'features.scale',
    );
    expectRejected(
      forge(msg, 'float32', (w) => (w.features!.scale = [1])),
      'features.scale',
    );
    expectRejected(
      forge(msg, 'int8', (w) => (w.features!.data[3] = 0x80)),
      'features.data',
    );
    // A huge but finite scale overflows float32 on dequantisation.
    expectRejected(
      forge(msg, 'int8', (w) => (w.features!.scale = [3e38])),
      'features.data',
    );
  });

  it('bad poses', () => {
    const scaled = forge(msg, 'float32', (w) => (w.pose!.matrix[0] *= 1.01));
    expect(expectRejected(scaled, 'pose.matrix').reason).toMatch(/orthonormal/);
    const sheared = forge(msg, 'float32', (w) => (w.pose!.matrix[1] += 0.05));
    expectRejected(sheared, 'pose.matrix');
    const mirrored = forge(msg, 'float32', (w) => {
      for (const i of [0, 4, 8]) w.pose!.matrix[i] = -w.pose!.matrix[i];
    });
    expect(expectRejected(mirrored, 'pose.matrix').reason).toMatch(/reflection/);
    expectRejected(
      forge(msg, 'float32', (w) => (w.pose!.matrix[13] = 0.5)),
      'pose.matrix',
    );
    expectRejected(
      forge(msg, 'float32', (w) => (w.pose!.matrix[3] = 2e5)),
      'pose.matrix',
    );
    expectRejected(
      forge(msg, 'float32', (w) => (w.pose!.matrix[7] = NaN)),
      'pose.matrix',
    );
    expectRejected(
      forge(msg, 'float32', (w) => (w.pose!.matrix = w.pose!.matrix.slice(0, 12))),
      'pose.matrix',
    );
    expectRejected(
      forge(msg, 'float32', (w) => (w.pose = null)),
      'pose',
    );
    // A pose that went through float32 somewhere is still accepted.
    const f32 = forge(msg, 'float32', (w) => (w.pose!.matrix = Array.from(Float32Array.from(w.pose!.matrix))));
    expect(decodeMessage(f32).pose[3]).toBeCloseTo(12.5, 5);
  });

  it('bad header fields', () => {
    expectRejected(
      forge(msg, 'float32', (w) => (w.header!.agentId = '')),
      'header.agentId',
    );
    expectRejected(
      forge(msg, 'float32', (w) => (w.header!.agentId = 'x'.repeat(10_000))),
      'header.agentId',
    );
    expectRejected(
      forge(msg, 'float32', (w) => (w.header!.agentType = 'm1; rm -rf')),
      'header.agentType',
    );
    expectRejected(
      forge(msg, 'float32', (w) => (w.header!.timestamp = '')),
      'header.timestamp',
    );
    expectRejected(
      forge(msg, 'float32', (w) => (w.header!.timestamp = '0000\n69')),
      'header.timestamp',
    );
    // protobufjs writes a decimal string as the uint64 it spells.
    expectRejected(
      forge(msg, 'float32', (w) => Object.assign(w.header!, { sequence: '18446744073709551615' })),
      'header.sequence',
    );
  });

  it('bad sparse masks', () => {
    const confidence = new Float32Array(H * W);
    for (const i of [2, 9, 40]) confidence[i] = 1;
    const withDeltas = (edit: (w: WireMsg) => void) => {
      const w = decodeWire(encodeMessage(msg, { dtype: 'float32', sparseThreshold: 0.5, confidence }));
      expect(w.mask!.cells).toBe('deltas');
      edit(w);
      return Wire.encode(w).finish();
    };
    expect(decodeMessage(withDeltas(() => {})).mask!.reduce((a, b) => a + b, 0)).toBe(3);
    expectRejected(
      withDeltas((w) => (w.mask!.deltas!.value = [2, 0, 31])),
      'mask.deltas',
    );
    expectRejected(
      withDeltas((w) => (w.mask!.deltas!.value = [2, 7, 500])),
      'mask.deltas',
    );
    expectRejected(
      withDeltas((w) => (w.mask!.deltas!.value = [2, 7])),
      'features.data',
    );
    const bitmask = (bits: Uint8Array) => withDeltas((w) => (w.mask = { bitmask: bits }));
    expectRejected(bitmask(new Uint8Array(3)), 'mask.bitmask');
    expectRejected(
      withDeltas((w) => (w.mask = {})),
      'mask',
    );
    expectRejected(
      forge(msg, 'float32', (w) => (w.mask = { deltas: { value: [1] } })),
      'features.data',
    );
    const noFeatures = forge(msg, 'float32', (w) => {
      w.mask = { deltas: { value: [1] } };
      w.features = null;
      w.detections = { boxes: [0, 0, 0, 1, 1, 1, 0], scores: [0.5] };
    });
    expectRejected(noFeatures, 'mask');
  });

  it('padding bits of a bitmask must be zero', () => {
    const grid = { xMin: 0, xMax: 13 * 0.5, yMin: 0, yMax: 9 * 0.5, cellSize: 0.5, width: 13, height: 9, channels: 2 };
    const m = { ...sampleMessage(), grid, features: new Float32Array(2 * 117).map((_, i) => (i % 117) % 2) };
    const w = decodeWire(encodeMessage(m, { dtype: 'float32', sparseThreshold: 0.5 }));
    expect(w.mask!.cells).toBe('bitmask');
    expect(w.mask!.bitmask!.length).toBe(15); // 117 cells
    expect(decodeMessage(Wire.encode(w).finish()).mask!.length).toBe(117);
    w.mask!.bitmask![14] |= 0x40; // bit 118 of 120
    expectRejected(Wire.encode(w).finish(), 'mask.bitmask');
  });

  it('inconsistent detections', () => {
    const withDet = { ...msg, detections: { boxes: new Float32Array([0, 0, 0, 1.5, 1.6, 3.9, 0]), scores: new Float32Array([0.7]) } };
    const forgeDet = (edit: (w: WireMsg) => void) => forge(withDet, 'int8', edit);
    expect(decodeMessage(forgeDet(() => {})).detections!.scores[0]).toBeCloseTo(0.7, 6);
    expectRejected(
      forgeDet((w) => (w.detections!.scores = [0.7, 0.2])),
      'detections.boxes',
    );
    expectRejected(
      forgeDet((w) => w.detections!.boxes.push(1)),
      'detections.boxes',
    );
    expectRejected(
      forgeDet((w) => (w.detections!.boxes[2] = NaN)),
      'detections.boxes',
    );
    expectRejected(
      forgeDet((w) => (w.detections!.boxes[5] = -3.9)),
      'detections.boxes',
    );
    expectRejected(
      forgeDet((w) => (w.detections!.scores[0] = 1.5)),
      'detections.scores',
    );
    expectRejected(
      forgeDet((w) => (w.detections!.scores[0] = NaN)),
      'detections.scores',
    );
    const many = forgeDet((w) => {
      w.detections!.scores = new Array(20).fill(0.5);
      w.detections!.boxes = new Array(140).fill(1);
    });
    expectRejected(many, 'detections.scores', { maxDetections: 10 });
    expectRejected(
      forge(msg, 'float32', (w) => (w.features = null)),
      'features',
    );
  });
});

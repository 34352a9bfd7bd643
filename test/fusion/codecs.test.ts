// Issue 14's message codecs: each round-trips through the protobuf message and decodes by the
// header alone (bit-exact where lossless), and hostile codec fields are rejected by name.

import { fileURLToPath } from 'node:url';
import { deflateRawSync } from 'node:zlib';
import protobuf from 'protobufjs';
import { describe, expect, it } from 'vitest';
import { poseToMatrix } from '../../datasets/geometry/transforms.ts';
import { applyPointwise, codecGraphs, learnedCodecs, type LearnedCodec } from '../../fusion/codec.ts';
import { parseCodec } from '../../fusion/codec-spec.ts';
import { type CollabMessage, type EncodeOptions, MessageError, decodeMessage, encodeMessage, float16BitsToFloat32, maskRuns } from '../../fusion/messages.ts';
import { initWeights, pickWeights } from '../../models/weights.ts';
import { exportOnnx } from '../../models/onnx.ts';
import { createSession, runSession } from '../../models/runtime.ts';

const root = protobuf.loadSync(fileURLToPath(new URL('../../proto/heal.proto', import.meta.url)));
const Wire = root.lookupType('heal.CollabMessage');

const C = 8,
  H = 10,
  W = 12;
const CELLS = H * W;

function sample(seed = 3): CollabMessage {
  let a = seed;
  const r = () => {
    a = (a * 1103515245 + 12345) >>> 0;
    return a / 2 ** 32;
  };
  const features = new Float32Array(C * CELLS);
  for (let i = 0; i < features.length; i++) features[i] = (r() - 0.5) * (1 + (i % 5));
  return {
    agentId: '7',
    agentType: 'm1',
    timestamp: '000010',
    sequence: 1,
    pose: poseToMatrix([1, 2, 0.5, 0, 30, 0]),
    grid: { xMin: -4.8, xMax: 4.8, yMin: -4, yMax: 4, cellSize: 0.8, width: W, height: H, channels: C },
    features,
  };
}

/** A score per cell: a few "foreground" cells high. */
function confidence(): Float32Array {
  const s = new Float32Array(CELLS);
  for (let i = 0; i < CELLS; i++) s[i] = i % 7 === 0 ? 0.9 - i / 1000 : 0.1;
  return s;
}

function codec(ratio: number): LearnedCodec {
  const w = initWeights(codecGraphs(C, ratio).both, 1);
  return learnedCodecs(w, C).get(C / ratio)!;
}

function roundTrip(opts: EncodeOptions, decoders = new Map<number, LearnedCodec>()) {
  const msg = sample();
  const bytes = encodeMessage(msg, opts);
  return { msg, bytes, out: decodeMessage(bytes, {}, decoders) };
}

describe('message codecs round-trip through the protobuf message', () => {
  it('deflate and brotli over float32 are bit-exact, and the header names the codec', () => {
    for (const entropy of ['deflate', 'brotli'] as const) {
      const { msg, out } = roundTrip({ dtype: 'float32', entropy, codecName: `float32+${entropy}` });
      expect(out.features).toEqual(msg.features);
      expect(out.codec).toEqual({ name: `float32+${entropy}`, codeChannels: 0, entropy });
    }
  });

  it('an entropy coder is lossless over the quantised payload: int8+deflate decodes exactly as int8', () => {
    const plain = roundTrip({ dtype: 'int8' }).out.features!;
    const coded = roundTrip({ dtype: 'int8', entropy: 'deflate' }).out.features!;
    expect(coded).toEqual(plain);
  });

  it('int4 with per-channel scales: each value within half a step of its channel', () => {
    const { msg, out } = roundTrip({ dtype: 'int4' });
    for (let c = 0; c < C; c++) {
      let max = 0;
      for (let i = 0; i < CELLS; i++) max = Math.max(max, Math.abs(msg.features![c * CELLS + i]));
      const step = max / 7;
      for (let i = 0; i < CELLS; i++) expect(Math.abs(out.features![c * CELLS + i] - msg.features![c * CELLS + i])).toBeLessThanOrEqual(step / 2 + 1e-6);
    }
  });

  it('int4 with an odd number of values packs a zero nibble last, and a set padding nibble is rejected', () => {
    const lc = codec(8); // one code channel
    const mask = new Uint8Array(CELLS);
    mask[5] = mask[9] = mask[30] = 1; // 3 values on the wire
    const bytes = encodeMessage(sample(), { dtype: 'int4', mask, learned: lc });
    const decoders = new Map([[lc.code, lc]]);
    expect(decodeMessage(bytes, {}, decoders).mask).toEqual(mask);
    const w = Wire.decode(bytes) as unknown as { features: { data: Uint8Array } };
    expect(w.features.data.length).toBe(2);
    w.features.data[1] |= 0x10;
    expect(() => decodeMessage(Wire.encode(w as never).finish(), {}, decoders)).toThrow(/padding nibble/);
  });

  it('top-k by the sender-given occupancy keeps exactly the k best cells, bit-exact in float32', () => {
    const conf = confidence();
    const { msg, out } = roundTrip({ dtype: 'float32', topK: 5, confidence: conf });
    const kept = [...out.mask!].flatMap((v, i) => (v ? [i] : []));
    const best = Array.from({ length: CELLS }, (_, i) => i)
      .sort((a, b) => conf[b] - conf[a] || a - b)
      .slice(0, 5)
      .sort((a, b) => a - b);
    expect(kept).toEqual(best);
    for (const i of kept) for (let c = 0; c < C; c++) expect(out.features![c * CELLS + i]).toBe(msg.features![c * CELLS + i]);
  });

  it('an occupancy threshold keeps the cells above it', () => {
    const conf = confidence();
    const { out } = roundTrip({ dtype: 'int8', sparseThreshold: 0.5, confidence: conf });
    for (let i = 0; i < CELLS; i++) expect(out.mask![i]).toBe(conf[i] > 0.5 ? 1 : 0);
  });

  it('cell positions travel as the smallest of bitmask, deltas and runs', () => {
    const msg = sample();
    const decodeWireMask = (mask: Uint8Array) =>
      (Wire.decode(encodeMessage(msg, { dtype: 'int8', mask })) as unknown as { mask: { cells: string } }).mask.cells;
    const block = new Uint8Array(CELLS);
    for (let i = 40; i < 70; i++) block[i] = 1; // one run of 30 cells: 2 varints
    expect(decodeWireMask(block)).toBe('runs');
    const sparse = new Uint8Array(CELLS);
    sparse[3] = sparse[50] = sparse[100] = 1; // 3 cells far apart: deltas (3 B) ≤ runs (6 B)
    expect(decodeWireMask(sparse)).toBe('deltas');
    const half = new Uint8Array(CELLS).map((_, i) => (i % 2 ? 1 : 0)); // alternating: bitmask
    expect(decodeWireMask(half)).toBe('bitmask');
    for (const m of [block, sparse, half]) expect(decodeMessage(encodeMessage(msg, { dtype: 'float32', mask: m })).mask).toEqual(m);
  });

  it('maskRuns: alternating runs from an unsent run, trailing unsent cells left out', () => {
    expect(maskRuns(Uint8Array.from([1, 1, 0, 0, 0, 1, 0, 0]))).toEqual([0, 2, 3, 1]);
    expect(maskRuns(Uint8Array.from([0, 0, 1]))).toEqual([2, 1]);
    expect(maskRuns(Uint8Array.from([0, 0, 0]))).toEqual([]);
  });

  it('learned codec: the receiver restores the channels with its decoder, found by the header alone', () => {
    const lc = codec(4);
    const msg = sample();
    const bytes = encodeMessage(msg, { dtype: 'float32', learned: lc, codecName: 'learned4+float32' });
    const out = decodeMessage(bytes, {}, new Map([[lc.code, lc]]));
    const expected = applyPointwise(lc.decode, applyPointwise(lc.encode, msg.features!, CELLS), CELLS);
    expect(out.features).toEqual(expected);
    expect(out.codec?.codeChannels).toBe(2);
    // 2 of 8 channels travel: a quarter of the float32 payload.
    expect(bytes.length).toBeLessThan(encodeMessage(msg, { dtype: 'float32' }).length / 3);
    const err = (() => {
      try {
        decodeMessage(bytes);
      } catch (e) {
        return e as MessageError;
      }
    })();
    expect(err).toBeInstanceOf(MessageError);
    expect(err!.field).toBe('header.featureCodec.codeChannels');
  });

  it('learned + int8 + top-k + brotli together', () => {
    const lc = codec(2);
    const { out } = roundTrip({ dtype: 'int8', learned: lc, topK: 10, confidence: confidence(), entropy: 'brotli' }, new Map([[lc.code, lc]]));
    expect(out.mask!.reduce((a, b) => a + b, 0)).toBe(10);
    expect(out.features!.length).toBe(C * CELLS);
  });

  it('fill: the unsent cells decode as the per-channel median the sender sent (float16), the sent cells bit-exact; 2 B per channel', () => {
    const conf = confidence();
    const { msg, bytes, out } = roundTrip({ dtype: 'float32', topK: 5, confidence: conf, fill: true });
    const plain = encodeMessage(msg, { dtype: 'float32', topK: 5, confidence: conf });
    expect(bytes.length - plain.length).toBe(2 * C + 2); // C binary16 values, the tag and the length
    for (let c = 0; c < C; c++) {
      const unsent = [...out.mask!].flatMap((v, i) => (v ? [] : [msg.features![c * CELLS + i]])).sort((a, b) => a - b);
      const median = unsent[(unsent.length - 1) >> 1];
      expect(Math.abs(out.fill![c] - median)).toBeLessThanOrEqual(Math.abs(median) * 2 ** -11 + 1e-7);
      for (let i = 0; i < CELLS; i++) expect(out.features![c * CELLS + i]).toBe(out.mask![i] ? msg.features![c * CELLS + i] : out.fill![c]);
    }
    // Without a cell selection there is nothing to fill; the decoded fill is exactly what travelled.
    expect(roundTrip({ dtype: 'int8', fill: true }).out.fill).toBeUndefined();
    const w = Wire.decode(bytes) as unknown as { features: { fill: Uint8Array } };
    expect(Array.from(out.fill!)).toEqual(
      Array.from({ length: C }, (_, c) => float16BitsToFloat32(w.features.fill[2 * c] | (w.features.fill[2 * c + 1] << 8))),
    );
  });

  it('max<B>: the best cells that fit the budget, the same bytes as top<K> with that K', () => {
    const msg = sample();
    const conf = confidence();
    const opts: EncodeOptions = { dtype: 'int8', topK: 60, confidence: conf, fill: true, entropy: 'deflate' };
    const full = encodeMessage(msg, opts);
    const budget = full.length - 150;
    const fitted = encodeMessage(msg, { ...opts, maxBytes: budget });
    expect(fitted.length).toBeLessThanOrEqual(budget);
    const k = decodeMessage(fitted).mask!.reduce((a, b) => a + b, 0);
    expect(k).toBeLessThan(60);
    expect(Buffer.from(fitted).equals(Buffer.from(encodeMessage(msg, { ...opts, topK: k })))).toBe(true);
    // A budget the message already fits changes nothing; one no cell fits is refused by name.
    expect(Buffer.from(encodeMessage(msg, { ...opts, maxBytes: full.length })).equals(Buffer.from(full))).toBe(true);
    expect(() => encodeMessage(msg, { ...opts, maxBytes: 100 })).toThrow(/even one cell takes/);
    expect(() => encodeMessage(msg, { dtype: 'int8', maxBytes: 5000 })).toThrow(/needs features and topK/);
  });

  it('a fill of the wrong length, non-finite, or in a dense message is rejected by name', () => {
    const conf = confidence();
    const sparse = () =>
      Wire.decode(encodeMessage(sample(), { dtype: 'int4', topK: 5, confidence: conf, fill: true })) as unknown as { features: { fill: Uint8Array } };
    const fieldOf = (w: unknown) => {
      try {
        decodeMessage(Wire.encode(w as never).finish());
      } catch (e) {
        return `${(e as MessageError).field}: ${(e as MessageError).reason}`;
      }
      return 'accepted';
    };
    const short = sparse();
    short.features.fill = short.features.fill.subarray(0, 3);
    expect(fieldOf(short)).toMatch(/^features.fill: has 3 bytes; 8 channels/);
    const inf = sparse();
    inf.features.fill = new Uint8Array(inf.features.fill);
    inf.features.fill[1] = 0x7c; // binary16 0x7c00: +inf
    expect(fieldOf(inf)).toMatch(/^features.fill: value 0 is not finite/);
    const dense = Wire.decode(encodeMessage(sample(), { dtype: 'int4' })) as unknown as { features: { fill: Uint8Array } };
    dense.features.fill = sparse().features.fill;
    expect(fieldOf(dense)).toMatch(/^features.fill: is present in a dense message/);
  });

  it('a payload that does not inflate to the named length is rejected, as is a zip bomb', () => {
    const msg = sample();
    const w = Wire.decode(encodeMessage(msg, { dtype: 'int8', entropy: 'deflate' })) as unknown as { header: { featureCodec: { rawLength: number } } };
    w.header.featureCodec.rawLength -= 1;
    expect(() => decodeMessage(Wire.encode(w as never).finish())).toThrow(/rawLength/);
    // Deflate of 1 MiB of zeros (about 1 KiB on the wire) claiming the grid's int8 size: inflation stops at the cap.
    const bomb = Wire.decode(encodeMessage(msg, { dtype: 'int8', entropy: 'deflate' })) as unknown as { features: { data: Uint8Array } };
    bomb.features.data = new Uint8Array(deflateRawSync(new Uint8Array(1 << 20)));
    expect(() => decodeMessage(Wire.encode(bomb as never).finish())).toThrow(/does not inflate/);
  });
});

describe('learned codec', () => {
  it('the ONNX files heal export writes compute what the sender and receiver compute (random weights)', async () => {
    const g = codecGraphs(C, 4);
    const w = initWeights(g.both, 2);
    const lc = learnedCodecs(w, C).get(2)!;
    const x = sample().features!;
    const enc = await createSession(exportOnnx(g.encoder, pickWeights(g.encoder, w)), { device: 'cpu' });
    const dec = await createSession(exportOnnx(g.decoder, pickWeights(g.decoder, w)), { device: 'cpu' });
    const code = (await runSession(enc.session, { bev: { data: x, shape: [1, C, H, W] } })).code.data as Float32Array;
    const js = applyPointwise(lc.encode, x, CELLS);
    for (let i = 0; i < js.length; i++) expect(code[i]).toBeCloseTo(js[i], 4);
    const back = (await runSession(dec.session, { code: { data: js, shape: [1, 2, H, W] } })).restored.data as Float32Array;
    const jsBack = applyPointwise(lc.decode, js, CELLS);
    for (let i = 0; i < jsBack.length; i++) expect(back[i]).toBeCloseTo(jsBack[i], 4);
  });
});

describe('codec names', () => {
  it('parses every part and refuses what it does not know', () => {
    expect(parseCodec('learned16+int8+top200+deflate')).toEqual({
      name: 'learned16+int8+top200+deflate',
      dtype: 'int8',
      learnedRatio: 16,
      topK: 200,
      entropy: 'deflate',
    });
    expect(parseCodec('int4+fg0.3+brotli')).toMatchObject({ dtype: 'int4', threshold: 0.3, entropy: 'brotli' });
    expect(() => parseCodec('int8+zip')).toThrow(/unknown part "zip"/);
    expect(() => parseCodec('int8+int4')).toThrow(/more than one dtype/);
    expect(() => parseCodec('learned5')).toThrow(/ratio/);
    expect(parseCodec('int4+top512+fill+deflate')).toMatchObject({ dtype: 'int4', topK: 512, fill: true, entropy: 'deflate' });
    expect(() => parseCodec('int4+fill')).toThrow(/fill needs a cell selection/);
    expect(parseCodec('int4+top2048+max6285+fill+deflate')).toMatchObject({ topK: 2048, maxBytes: 6285, fill: true });
    expect(() => parseCodec('int4+fg0.1+max6000')).toThrow(/max<B> needs top<K>/);
    // A preset keeps its name (the header carries it) and has its parts.
    expect(parseCodec('fit6500')).toMatchObject({ name: 'fit6500', dtype: 'int4', topK: 4096, maxBytes: 6285, fill: true, entropy: 'deflate' });
    expect(parseCodec('fit1398')).toMatchObject({ name: 'fit1398', maxBytes: 1183 });
  });
});

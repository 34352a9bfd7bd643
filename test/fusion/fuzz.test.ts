// Messages under fuzzing (bench/fuzz.ts; `heal bench fuzz --n 100000` is the long run), the
// encoder against its own decoder over every dtype × dense/sparse × 0/some/all cells sent, and
// cap-sized hostile messages rejected from their declared sizes, before protobufjs allocates.

import { describe, expect, it } from 'vitest';
import { capSizedMessages, fuzzMessages, fuzzSigned } from '../../bench/fuzz.ts';
import { type BevGrid, decodeMessage, encodeMessage, type FeatureDType, MessageError } from '../../fusion/messages.ts';
import { Rng } from '../../datasets/rng.ts';

describe('fuzzing (seeded)', () => {
  it('5,000 mutated messages: every one accepted or rejected with a field, none crashes or hangs', () => {
    const c = fuzzMessages(5000, 15);
    expect(c.crashes).toEqual([]);
    expect(c.crashed).toBe(0);
    expect(c.hung).toBe(0);
    expect(c.accepted + c.rejected).toBe(5000);
    // The mutations reach deep: many fields are named, not only the protobuf framing.
    expect(Object.keys(c.reasons).length).toBeGreaterThan(15);
  }, 120_000);

  it('5,000 tampered signed messages (signature, certificate, sequence, time, bytes): none crashes, hangs or is accepted forged', () => {
    const c = fuzzSigned(5000, 16);
    expect(c.crashes).toEqual([]);
    expect(c.crashed).toBe(0);
    expect(c.hung).toBe(0);
    expect(c.forged).toBe(0);
    for (const code of ['bad-signature', 'bad-certificate', 'malformed-envelope']) expect(c.reasons[code], code).toBeGreaterThan(0);
  }, 120_000);
});

describe('bounded parsing', () => {
  for (const m of capSizedMessages()) {
    it(`a cap-sized message (${m.name}) is rejected with a field`, () => {
      const bytes = m.bytes();
      expect(bytes.length).toBeLessThanOrEqual(64 * 1024 * 1024);
      let err: unknown;
      try {
        decodeMessage(bytes);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(MessageError);
      // Rejected from what the wire declares, before protobufjs built anything from it (a whole
      // 64 MiB data field is one copy, so that one may be parsed first).
      if (!m.name.includes('of data')) expect((err as Error).message).toMatch(/on the wire/);
    });
  }
});

describe('the encoder never makes a message its decoder rejects', () => {
  const grid: BevGrid = { xMin: -4, xMax: 4.8, yMin: -3.2, yMax: 3.2, cellSize: 0.8, width: 11, height: 8, channels: 5 };
  const cells = grid.width * grid.height;
  const pose = Float64Array.from([1, 0, 0, 5, 0, 1, 0, -2, 0, 0, 1, 1.7, 0, 0, 0, 1]);
  const rng = new Rng(3);
  const features = Float32Array.from({ length: grid.channels * cells }, () => (rng.next() < 0.5 ? 0 : rng.uniform(-60, 60)));
  for (const dtype of ['float32', 'float16', 'int8'] as FeatureDType[]) {
    for (const sent of ['dense', 'no cells', 'one cell', 'some cells', 'all cells but one', 'all cells']) {
      it(`${dtype}, ${sent} (float32 with no cells was rejected, 367 of 367)`, () => {
        const mask =
          sent === 'dense'
            ? undefined
            : new Uint8Array(cells).map((_, i) =>
                sent === 'no cells'
                  ? 0
                  : sent === 'one cell'
                    ? +(i === 17)
                    : sent === 'some cells'
                      ? +(i % 3 === 0)
                      : sent === 'all cells but one'
                        ? +(i !== 5)
                        : 1,
              );
        for (const int8Scale of dtype === 'int8' ? (['tensor', 'channel'] as const) : ([undefined] as const)) {
          const bytes = encodeMessage({ agentId: '1', agentType: 'm1', timestamp: '000001', sequence: 0, pose, grid, features }, { dtype, mask, int8Scale });
          const m = decodeMessage(bytes, { grid });
          expect(m.features?.length).toBe(features.length);
          const tol = dtype === 'float32' ? 0 : dtype === 'float16' ? 0.05 : 60 / 127;
          for (let i = 0; i < features.length; i++) {
            const want = !mask || mask[i % cells] ? features[i] : 0;
            expect(Math.abs(m.features![i] - want)).toBeLessThanOrEqual(tol);
          }
        }
      });
    }
  }
});

import { describe, expect, it } from 'vitest';
import { bevCorners } from '../../datasets/geometry/boxes.ts';
import { ApAccumulator, DEFAULT_IOU_THRESHOLDS, matchFrame, vocAp } from '../../eval/metrics.ts';

/** Axis-aligned BEV footprint from [x0, y0, x1, y1], built the way the pipeline builds footprints. */
const aa = (x0: number, y0: number, x1: number, y1: number) => bevCorners([(x0 + x1) / 2, (y0 + y1) / 2, -1, 1.5, y1 - y0, x1 - x0, 0]);

/** The worked example of formats.md §3.3. */
function workedExample(): ApAccumulator {
  const acc = new ApAccumulator();
  acc.addFrame([aa(0, 0, 4, 2), aa(1, 0, 5, 2)], [0.9, 0.8], [aa(0, 0, 4, 2)]);
  acc.addFrame([aa(11, 0, 15, 2), aa(30, 0, 34, 2)], [0.95, 0.3], [aa(10, 0, 14, 2), aa(20, 0, 24, 2)]);
  return acc;
}

describe('AP golden example (formats.md §3.3)', () => {
  it('HEAL global sort: AP@0.3 = AP@0.5 = 2/3, AP@0.7 = 1/6', () => {
    const r = workedExample().result();
    expect(r.map((x) => x.iouThreshold)).toEqual([0.3, 0.5, 0.7]);
    expect(r[0].ap).toBeCloseTo(0.666667, 6);
    expect(r[1].ap).toBeCloseTo(0.666667, 6);
    expect(r[2].ap).toBeCloseTo(0.166667, 6);
    expect(r.map((x) => [x.tp, x.fp, x.gt])).toEqual([
      [2, 2, 3],
      [2, 2, 3],
      [1, 3, 3],
    ]);
    // Ranked 0.95 (TP at 0.5), 0.9 (TP), 0.8 (FP: its GT is taken), 0.3 (FP).
    expect(r[1].precision).toEqual([1, 1, 2 / 3, 0.5]);
    expect(r[1].recall).toEqual([1 / 3, 2 / 3, 2 / 3, 2 / 3]);
  });

  it('OpenCOOD default frame order: 5/9, 5/9, 1/3', () => {
    const r = workedExample().result({ ordering: 'frame' });
    expect(r[0].ap).toBeCloseTo(0.555556, 6);
    expect(r[1].ap).toBeCloseTo(0.555556, 6);
    expect(r[2].ap).toBeCloseTo(0.333333, 6);
  });
});

describe('vocAp', () => {
  it('is 1 for a perfect ranking that finds everything and 0 when nothing is found', () => {
    expect(vocAp([0.5, 1], [1, 1])).toBe(1);
    expect(vocAp([0, 0], [0, 0])).toBe(0);
    expect(vocAp([], [])).toBe(0);
  });

  it('uses the precision envelope: a later higher precision lifts earlier recall steps', () => {
    // Recall steps 0.25 at precision 0.5, then 0.5 at precision 2/3 (envelope lifts the first to 2/3).
    expect(vocAp([0, 0.25, 0.25, 0.5], [0, 0.5, 1 / 3, 0.5])).toBeCloseTo(0.25 * 0.5 + 0.25 * 0.5, 12);
    expect(vocAp([0.25, 0.25, 0.5], [0.5, 1 / 3, 2 / 3])).toBeCloseTo(0.5 * (2 / 3), 12);
  });

  it('rejects curves of different lengths', () => {
    expect(() => vocAp([0.5], [])).toThrow(/1 recall values but 0 precision/);
  });
});

describe('matchFrame (greedy, formats.md §3.2)', () => {
  it('each detection takes its best remaining GT', () => {
    // det0 prefers gt0 (0.8 vs 0.6); det1 also prefers gt0 (0.9) but it is taken, so it gets gt1 (0.55).
    const ious = [0.8, 0.6, 0.9, 0.55];
    expect(Array.from(matchFrame(ious, 2, [0, 1], 0.5))).toEqual([1, 1]);
    expect(Array.from(matchFrame(ious, 2, [0, 1], 0.7))).toEqual([1, 0]);
    // Visiting det1 first gives it gt0; det0 then falls back to gt1.
    expect(Array.from(matchFrame(ious, 2, [1, 0], 0.7))).toEqual([1, 0]);
    expect(Array.from(matchFrame(ious, 2, [1, 0], 0.6))).toEqual([1, 1]);
  });

  it('IoU equal to the threshold is a TP; no GT means FP', () => {
    expect(Array.from(matchFrame([0.5], 1, [0], 0.5))).toEqual([1]);
    expect(Array.from(matchFrame([0.4999], 1, [0], 0.5))).toEqual([0]);
    expect(Array.from(matchFrame([], 0, [0, 1], 0.3))).toEqual([0, 0]);
  });

  it('compares in float32 like OpenCOOD, so float64 noise below the threshold still counts', () => {
    const justBelow = 0.3 - 2 ** -54; // rounds to float32(0.3)
    expect(justBelow).toBeLessThan(0.3);
    expect(Array.from(matchFrame([justBelow], 1, [0], 0.3))).toEqual([1]);
  });
});

describe('ApAccumulator', () => {
  it('counts an IoU exactly at the threshold as a TP, end to end', () => {
    const acc = new ApAccumulator([0.5]);
    acc.addFrame([aa(0, 0, 2, 2)], [0.7], [aa(0, 0, 4, 2)]); // IoU 4/8
    expect(acc.result()[0]).toMatchObject({ ap: 1, tp: 1, fp: 0, gt: 1 });
  });

  it('counts GT of frames without detections, lowering recall', () => {
    const acc = new ApAccumulator([0.5]);
    acc.addFrame([aa(0, 0, 4, 2)], [0.9], [aa(0, 0, 4, 2)]);
    acc.addFrame([], [], [aa(0, 0, 4, 2), aa(10, 0, 14, 2)]);
    const r = acc.result()[0];
    expect(r.gt).toBe(3);
    expect(r.ap).toBeCloseTo(1 / 3, 12);
    expect(acc.frames).toBe(2);
  });

  it('gives AP 0 and no NaN when there is no GT at all', () => {
    const acc = new ApAccumulator();
    acc.addFrame([aa(0, 0, 4, 2)], [0.9], []);
    acc.addFrame([], [], []);
    for (const r of acc.result()) {
      expect(r.ap).toBe(0);
      expect(r).toMatchObject({ tp: 0, fp: 1, gt: 0 });
      expect([...r.precision, ...r.recall].every(Number.isFinite)).toBe(true);
    }
    const empty = new ApAccumulator().result();
    expect(empty.map((r) => r.ap)).toEqual([0, 0, 0]);
  });

  it('sorts each frame by score before matching, whatever the input order', () => {
    const a = new ApAccumulator([0.5]);
    a.addFrame([aa(1, 0, 5, 2), aa(0, 0, 4, 2)], [0.8, 0.9], [aa(0, 0, 4, 2)]);
    const b = new ApAccumulator([0.5]);
    b.addFrame([aa(0, 0, 4, 2), aa(1, 0, 5, 2)], [0.9, 0.8], [aa(0, 0, 4, 2)]);
    expect(a.result()).toEqual(b.result());
    expect(a.result()[0].ap).toBe(1);
  });

  it('downsamples long PR curves but keeps both ends and the exact AP', () => {
    const rand = (() => {
      let s = 42;
      return () => (s = (s * 16807) % 2147483647) / 2147483647;
    })();
    const acc = new ApAccumulator();
    for (let f = 0; f < 60; f++) {
      const gts = Array.from({ length: 5 }, (_, k) => aa(k * 10, 0, k * 10 + 4, 2));
      const dets = Array.from({ length: 8 }, () => {
        const x = rand() * 50;
        return aa(x, 0, x + 4, 2);
      });
      acc.addFrame(
        dets,
        dets.map(() => rand()),
        gts,
      );
    }
    const full = acc.result({ maxCurvePoints: 0 });
    const short = acc.result({ maxCurvePoints: 50 });
    expect(full[0].precision.length).toBe(480);
    for (let t = 0; t < 3; t++) {
      expect(short[t].ap).toBe(full[t].ap);
      expect(short[t].precision.length).toBe(50);
      expect(short[t].recall[0]).toBe(full[t].recall[0]);
      expect(short[t].recall.at(-1)).toBe(full[t].recall.at(-1));
      expect(full[t].ap).toBeCloseTo(vocAp(full[t].recall, full[t].precision), 15);
    }
    // Stricter thresholds can only lose TPs.
    expect(full[0].tp).toBeGreaterThanOrEqual(full[1].tp);
    expect(full[1].tp).toBeGreaterThanOrEqual(full[2].tp);
    expect(full[2].tp).toBeGreaterThan(0);
  });

  it('rejects bad input with a clear message', () => {
    const acc = new ApAccumulator();
    expect(() => acc.addFrame([aa(0, 0, 1, 1)], [], [])).toThrow(/1 detections but 0 scores/);
    expect(() => acc.addFrame([aa(0, 0, 1, 1)], [NaN], [])).toThrow(/detection 0 has score NaN/);
    expect(() => acc.addFrame([Float64Array.of(0, 0, 1)], [0.5], [])).toThrow(/footprint 0 has 3 coordinates/);
    expect(() => new ApAccumulator([0])).toThrow(/threshold/);
    expect(acc.frames).toBe(0);
    expect(DEFAULT_IOU_THRESHOLDS).toEqual([0.3, 0.5, 0.7]);
  });
});

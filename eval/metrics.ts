// Detection evaluation: per-frame TP/FP matching and VOC average precision (formats.md §3).
//
// Detections and ground truth are BEV footprints (corners 0..3 of each box, see bevCorners /
// bevFromCorners in geometry/boxes.ts) in the ego LiDAR frame, so the IoU is the rotated BEV IoU
// that OpenCOOD and HEAL compute with shapely. Height is ignored, as there.

import { bevIoUMatrix, prepareFootprints, preparedIoU } from '../datasets/geometry/polygon.ts';
import { bevCorners } from '../datasets/geometry/boxes.ts';

/** The thresholds OpenCOOD/HEAL report as AP@0.3, AP@0.5 and AP@0.7. */
export const DEFAULT_IOU_THRESHOLDS: readonly number[] = [0.3, 0.5, 0.7];

/**
 * How detections of different frames are ranked before the precision/recall sweep.
 * - 'global': all detections of the dataset sorted by score (HEAL; OpenCOOD's --global_sort_detections).
 * - 'frame': frames in the order they were added, each frame sorted by score (OpenCOOD's default).
 */
export type ApOrdering = 'global' | 'frame';

export interface ApResult {
  iouThreshold: number;
  ap: number;
  /** Raw (not interpolated) precision after each ranked detection; downsampled when long. */
  precision: number[];
  /** Recall after each ranked detection, same points as `precision`. */
  recall: number[];
  tp: number;
  fp: number;
  gt: number;
}

export interface ApResultOptions {
  ordering?: ApOrdering;
  /** Longest PR curve returned; longer curves are sampled evenly, keeping both ends. AP is always exact. */
  maxCurvePoints?: number;
}

/**
 * Greedy matching of one frame (§3.2). `ious` is row-major det × gt. Detections are visited in
 * `order`; each takes its best remaining GT (lowest GT index among equal IoUs) and is a TP when
 * that IoU is at least `iouThreshold`. Returns 1 (TP) or 0 (FP) per visited detection, in `order`.
 *
 * The comparison is made after rounding both sides to float32, as OpenCOOD compares its float32
 * IoU array, so an IoU that equals the threshold counts as a TP even when float64 rounding lands
 * just below it.
 */
export function matchFrame(
  ious: ArrayLike<number>,
  numGt: number,
  order: readonly number[],
  iouThreshold: number,
  /** When given (length order.length): the GT index each visited detection took, or -1 (the viewer colours misses with it). */
  matchedGt?: Int32Array,
): Uint8Array {
  const thr = Math.fround(iouThreshold);
  const taken = new Uint8Array(numGt);
  const tp = new Uint8Array(order.length);
  order.forEach((d, k) => {
    let best = -1,
      bestIoU = -Infinity;
    for (let g = 0; g < numGt; g++) {
      if (!taken[g] && ious[d * numGt + g] > bestIoU) {
        best = g;
        bestIoU = ious[d * numGt + g];
      }
    }
    if (best >= 0 && Math.fround(bestIoU) >= thr) {
      tp[k] = 1;
      taken[best] = 1;
      if (matchedGt) matchedGt[k] = best;
    } else if (matchedGt) {
      matchedGt[k] = -1;
    }
  });
  return tp;
}

/**
 * One frame's detections scored for display: greedy matching at `iouThreshold` in score order (as
 * matchFrame does for AP), giving a TP flag per detection (in the order given) and a matched flag
 * per GT box, so a viewer or a log can colour true positives, false positives and misses.
 */
export function matchDetections(
  dets: readonly { box: ArrayLike<number>; score: number }[],
  gt: readonly ArrayLike<number>[],
  iouThreshold: number,
): { tp: boolean[]; matched: boolean[] } {
  const ious = bevIoUMatrix(
    dets.map((d) => bevCorners(d.box)),
    gt.map((g) => bevCorners(g)),
  );
  const order = dets.map((_, i) => i).sort((a, b) => dets[b].score - dets[a].score || a - b);
  const took = new Int32Array(order.length);
  const flags = matchFrame(ious, gt.length, order, iouThreshold, took);
  const tp = dets.map(() => false);
  const matched = gt.map(() => false);
  order.forEach((d, k) => {
    tp[d] = flags[k] === 1;
    if (took[k] >= 0) matched[took[k]] = true;
  });
  return { tp, matched };
}

/**
 * VOC2010 all-point interpolated AP (§3.3): pad recall with 0 and 1 and precision with 0 and 0,
 * make precision non-increasing from the right, and sum precision × recall step.
 */
export function vocAp(recall: ArrayLike<number>, precision: ArrayLike<number>): number {
  if (recall.length !== precision.length) {
    throw new RangeError(`vocAp: ${recall.length} recall values but ${precision.length} precision values`);
  }
  const n = recall.length;
  const mrec = new Float64Array(n + 2);
  const mpre = new Float64Array(n + 2);
  for (let i = 0; i < n; i++) {
    mrec[i + 1] = recall[i];
    mpre[i + 1] = precision[i];
  }
  mrec[n + 1] = 1;
  for (let i = n; i >= 0; i--) mpre[i] = Math.max(mpre[i], mpre[i + 1]);
  let ap = 0;
  for (let i = 1; i < n + 2; i++) if (mrec[i] !== mrec[i - 1]) ap += (mrec[i] - mrec[i - 1]) * mpre[i];
  return ap;
}

/**
 * Accumulates TP/FP/score over a dataset, frame by frame, for several IoU thresholds at once,
 * and computes AP and PR curves. The IoU matrix of a frame is computed once and shared by all
 * thresholds.
 *
 * With no GT in the whole dataset, recall is undefined: AP is reported as 0 and recall as 0,
 * never NaN.
 */
export class ApAccumulator {
  readonly thresholds: readonly number[];
  // Detections in the order added: frames in order, each frame sorted by descending score.
  private readonly scores: number[] = [];
  private readonly tpFlags: number[][];
  private gtTotal = 0;
  private frameCount = 0;

  constructor(thresholds: readonly number[] = DEFAULT_IOU_THRESHOLDS) {
    for (const t of thresholds) {
      if (!(t > 0 && t <= 1)) throw new RangeError(`ApAccumulator: IoU threshold must be in (0, 1], got ${t}`);
    }
    this.thresholds = [...thresholds];
    this.tpFlags = this.thresholds.map(() => []);
  }

  get frames(): number {
    return this.frameCount;
  }

  get detections(): number {
    return this.scores.length;
  }

  get groundTruth(): number {
    return this.gtTotal;
  }

  /** One frame: detection footprints with their scores, and the GT footprints, all in one frame of reference. */
  addFrame(detFootprints: readonly ArrayLike<number>[], detScores: ArrayLike<number>, gtFootprints: readonly ArrayLike<number>[]): void {
    if (detScores.length !== detFootprints.length) {
      throw new RangeError(`ApAccumulator.addFrame: ${detFootprints.length} detections but ${detScores.length} scores`);
    }
    for (let i = 0; i < detScores.length; i++) {
      if (!Number.isFinite(detScores[i])) throw new RangeError(`ApAccumulator.addFrame: detection ${i} has score ${detScores[i]}`);
    }
    const dets = prepareFootprints(detFootprints);
    const gts = prepareFootprints(gtFootprints);
    this.frameCount++;
    // GT counts even in frames with no detections: missed objects lower recall.
    this.gtTotal += gtFootprints.length;
    if (detFootprints.length === 0) return;

    const order = Array.from({ length: detScores.length }, (_, i) => i).sort((a, b) => detScores[b] - detScores[a] || a - b);
    const numGt = gtFootprints.length;
    const ious = new Float64Array(detFootprints.length * numGt);
    for (let d = 0; d < detFootprints.length; d++) {
      for (let g = 0; g < numGt; g++) ious[d * numGt + g] = preparedIoU(dets, d, gts, g);
    }
    for (const d of order) this.scores.push(detScores[d]);
    this.thresholds.forEach((thr, t) => {
      const flags = matchFrame(ious, numGt, order, thr);
      for (const f of flags) this.tpFlags[t].push(f);
    });
  }

  result(options: ApResultOptions = {}): ApResult[] {
    const { ordering = 'global', maxCurvePoints = 2000 } = options;
    const n = this.scores.length;
    let rank = Array.from({ length: n }, (_, i) => i);
    // Stable sort: equal scores keep the order they were added in (frame order, then in-frame rank).
    if (ordering === 'global') rank = rank.sort((a, b) => this.scores[b] - this.scores[a] || a - b);

    return this.thresholds.map((iouThreshold, t) => {
      const flags = this.tpFlags[t];
      const precision = new Float64Array(n);
      const recall = new Float64Array(n);
      let tp = 0,
        fp = 0;
      for (let k = 0; k < n; k++) {
        if (flags[rank[k]]) tp++;
        else fp++;
        precision[k] = tp / (tp + fp);
        recall[k] = this.gtTotal > 0 ? tp / this.gtTotal : 0;
      }
      const ap = this.gtTotal > 0 ? vocAp(recall, precision) : 0;
      const keep = sampleIndices(n, maxCurvePoints);
      return {
        iouThreshold,
        ap,
        precision: keep.map((i) => precision[i]),
        recall: keep.map((i) => recall[i]),
        tp,
        fp,
        gt: this.gtTotal,
      };
    });
  }
}

// Evenly spaced indices 0..n-1, at most `max` of them, always including the first and last.
function sampleIndices(n: number, max: number): number[] {
  if (!(max > 0) || n <= max) return Array.from({ length: n }, (_, i) => i);
  if (max === 1) return [n - 1];
  const out: number[] = [];
  for (let k = 0; k < max; k++) out.push(Math.round((k * (n - 1)) / (max - 1)));
  return out;
}

// Rotated non-maximum suppression on BEV footprints (formats.md §4.7).

import { prepareFootprints, preparedIoU } from './polygon.ts';

/**
 * Greedy rotated NMS, as OpenCOOD/HEAL `nms_rotated`: sort by score (highest first), keep only the
 * best `topK`, then repeatedly keep the best remaining box and drop every later box whose BEV IoU
 * with it is strictly greater than `iouThreshold`.
 *
 * Returns the kept indices into `footprints`, highest score first.
 *
 * Ties: equal scores are ordered by ascending index, so the result is deterministic (numpy's
 * argsort leaves tie order unspecified). The IoU is compared after rounding both sides to float32,
 * as numpy does with the float32 IoU array, so a pair exactly at the threshold is kept in both.
 */
export function nmsRotated(footprints: readonly ArrayLike<number>[], scores: ArrayLike<number>, iouThreshold: number, topK = 1000): number[] {
  if (scores.length !== footprints.length) {
    throw new RangeError(`nmsRotated: ${footprints.length} footprints but ${scores.length} scores`);
  }
  for (let i = 0; i < scores.length; i++) {
    if (Number.isNaN(scores[i])) throw new RangeError(`nmsRotated: score ${i} is NaN`);
  }
  const order = Array.from({ length: scores.length }, (_, i) => i)
    .sort((a, b) => scores[b] - scores[a] || a - b)
    .slice(0, Math.max(0, topK));
  const prepared = prepareFootprints(footprints);
  const thr = Math.fround(iouThreshold);
  const suppressed = new Uint8Array(order.length);
  const kept: number[] = [];
  for (let a = 0; a < order.length; a++) {
    if (suppressed[a]) continue;
    const i = order[a];
    kept.push(i);
    for (let b = a + 1; b < order.length; b++) {
      if (!suppressed[b] && Math.fround(preparedIoU(prepared, i, prepared, order[b])) > thr) suppressed[b] = 1;
    }
  }
  return kept;
}

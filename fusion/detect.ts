// Detection decoding: head outputs → scored boxes in the ego LiDAR frame (formats.md §4.7).

import { type Anchors, decodeBox, applyDirection } from './anchors.ts';
import { boxToCorners, bevFromCorners, cornersInRange, type Box7 } from '../datasets/geometry/boxes.ts';
import { nmsRotated } from '../datasets/geometry/nms.ts';

export interface Detection {
  box: Box7;
  score: number;
}

export interface DecodeOptions {
  scoreThreshold?: number;
  nmsThreshold?: number;
  /** Keep a box only if all 8 corners lie in this [xmin,ymin,zmin,xmax,ymax,zmax] range (HEAL checks z too). */
  range?: ArrayLike<number>;
  /** Boxes whose footprint exceeds this many meters in x or y are dropped (OpenCOOD remove_large_pred_bbx). */
  maxSize?: number;
  topK?: number;
}

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));

/**
 * cls: [A, H', W'], reg: [7A, H', W'], dir: [2A, H', W'] (batch of one, NCHW, flattened).
 * Returns detections sorted by score, after the score threshold, size/range filters and rotated NMS.
 */
export function decodeDetections(anchors: Anchors, cls: Float32Array, reg: Float32Array, dir: Float32Array | undefined, opts: DecodeOptions = {}): Detection[] {
  const { scoreThreshold = 0.2, nmsThreshold = 0.15, range, maxSize = 6, topK = 1000 } = opts;
  const { rows, cols, perCell: A } = anchors;
  const plane = rows * cols;
  if (cls.length !== A * plane) throw new Error(`decodeDetections: cls has ${cls.length} values, expected ${A * plane}`);
  if (reg.length !== 7 * A * plane) throw new Error(`decodeDetections: reg has ${reg.length} values, expected ${7 * A * plane}`);
  if (dir && dir.length !== 2 * A * plane) throw new Error(`decodeDetections: dir has ${dir.length} values, expected ${2 * A * plane}`);
  const candidates: Detection[] = [];
  const t = new Float64Array(7);
  for (let a = 0; a < A; a++) {
    for (let p = 0; p < plane; p++) {
      const score = sigmoid(cls[a * plane + p]);
      if (!(score > scoreThreshold)) continue;
      for (let k = 0; k < 7; k++) t[k] = reg[(a * 7 + k) * plane + p];
      const i = p * A + a;
      const box = decodeBox(t, anchors.boxes, i);
      if (dir) box[6] = applyDirection(box[6], dir[(a * 2 + 1) * plane + p] > dir[a * 2 * plane + p] ? 1 : 0);
      if (!box.every(Number.isFinite)) continue;
      candidates.push({ box, score });
    }
  }
  const kept: Detection[] = [];
  const footprints: Float64Array[] = [];
  for (const d of candidates) {
    const c = boxToCorners(d.box);
    let x0 = Infinity,
      x1 = -Infinity,
      y0 = Infinity,
      y1 = -Infinity;
    for (let k = 0; k < 8; k++) {
      const x = c[k * 3],
        y = c[k * 3 + 1];
      x0 = Math.min(x0, x);
      x1 = Math.max(x1, x);
      y0 = Math.min(y0, y);
      y1 = Math.max(y1, y);
    }
    if ((range && !cornersInRange(c, range)) || x1 - x0 > maxSize || y1 - y0 > maxSize) continue;
    kept.push(d);
    footprints.push(bevFromCorners(c));
  }
  const order = nmsRotated(
    footprints,
    kept.map((d) => d.score),
    nmsThreshold,
    topK,
  );
  return order.map((i) => kept[i]);
}

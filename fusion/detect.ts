// Detection decoding: head outputs → scored boxes in the ego LiDAR frame (formats.md §4.7).

import { type Anchors, applyDirection, decodeBox } from './anchors.ts';
import { boxToCorners, bevFromCorners, cornersInRange, type Box7 } from '../datasets/geometry/boxes.ts';
import { nmsRotated } from '../datasets/geometry/nms.ts';

export interface Detection {
  box: Box7;
  score: number;
  /** Index of the anchor it was decoded from, (row·W' + col)·A + a: HEAL's flat order. */
  anchor?: number;
  /** The direction classifier's bin (0 or 1). */
  dirLabel?: number;
}

export interface DecodeOptions {
  scoreThreshold?: number;
  nmsThreshold?: number;
  /** After NMS, keep a box only if all 8 corners lie in this [xmin,ymin,zmin,xmax,ymax,zmax] range, bounds included (HEAL checks z too). */
  range?: ArrayLike<number>;
  /** Boxes whose footprint exceeds this many meters in x or y are dropped before NMS (OpenCOOD remove_large_pred_bbx). */
  maxSize?: number;
  /** Before NMS, boxes whose corners leave [zmin, zmax] are dropped (OpenCOOD remove_bbx_abnormal_z: −3 and 1). */
  zRange?: [number, number];
  topK?: number;
}

/**
 * cls: [A, H', W'], reg: [7A, H', W'], dir: [2A, H', W'] (batch of one, NCHW, flattened).
 *
 * HEAL's VoxelPostprocessor, step for step and in float32 as torch runs it, so decisions near a
 * threshold fall the same way: score = sigmoid > threshold (strict); residual decoding and the
 * direction classifier; size and z filters; rotated NMS over the best topK; then the range filter
 * on the survivors (an out-of-range box can still suppress a neighbour, as in HEAL). Candidates
 * are visited in HEAL's flat anchor order, which settles equal scores the same way. Returns the
 * detections in NMS pick order (by score).
 */
export function decodeDetections(anchors: Anchors, cls: Float32Array, reg: Float32Array, dir: Float32Array | undefined, opts: DecodeOptions = {}): Detection[] {
  const { scoreThreshold = 0.2, nmsThreshold = 0.15, range, maxSize = 6, zRange = [-3, 1], topK = 1000 } = opts;
  const { rows, cols, perCell: A } = anchors;
  const plane = rows * cols;
  if (cls.length !== A * plane) throw new Error(`decodeDetections: cls has ${cls.length} values, expected ${A * plane}`);
  if (reg.length !== 7 * A * plane) throw new Error(`decodeDetections: reg has ${reg.length} values, expected ${7 * A * plane}`);
  if (dir && dir.length !== 2 * A * plane) throw new Error(`decodeDetections: dir has ${dir.length} values, expected ${2 * A * plane}`);
  const threshold = Math.fround(scoreThreshold);
  const t = new Float32Array(7);
  const kept: Detection[] = [];
  const footprints: Float64Array[] = [];
  for (let p = 0; p < plane; p++) {
    for (let a = 0; a < A; a++) {
      const score = Math.fround(1 / (1 + Math.exp(-cls[a * plane + p])));
      if (!(score > threshold)) continue;
      const i = p * A + a;
      for (let k = 0; k < 7; k++) t[k] = reg[(a * 7 + k) * plane + p];
      const box = decodeBox(t, anchors.boxes, i);
      let dirLabel: number | undefined;
      if (dir) {
        dirLabel = dir[(a * 2 + 1) * plane + p] > dir[a * 2 * plane + p] ? 1 : 0;
        box[6] = applyDirection(box[6], dirLabel);
      }
      // A non-finite box fails HEAL's size test too.
      if (!box.every(Number.isFinite)) continue;
      const c = boxToCorners(box);
      let x0 = Infinity,
        x1 = -Infinity,
        y0 = Infinity,
        y1 = -Infinity,
        z0 = Infinity,
        z1 = -Infinity;
      for (let k = 0; k < 8; k++) {
        const x = c[k * 3],
          y = c[k * 3 + 1],
          z = c[k * 3 + 2];
        x0 = Math.min(x0, x);
        x1 = Math.max(x1, x);
        y0 = Math.min(y0, y);
        y1 = Math.max(y1, y);
        z0 = Math.min(z0, z);
        z1 = Math.max(z1, z);
      }
      // HEAL's size filter also requires a non-zero y extent (its "z_len" is computed from y).
      if (!(x1 - x0 <= maxSize && y1 - y0 <= maxSize && y1 - y0 !== 0 && z0 >= zRange[0] && z1 <= zRange[1])) continue;
      kept.push({ box, score, anchor: i, dirLabel });
      footprints.push(bevFromCorners(c));
    }
  }
  const order = nmsRotated(
    footprints,
    kept.map((d) => d.score),
    nmsThreshold,
    topK,
  );
  const picked = order.map((i) => kept[i]);
  return range ? picked.filter((d) => cornersInRange(boxToCorners(d.box), range)) : picked;
}

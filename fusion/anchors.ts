// Anchors, residual box encoding, the direction classifier and training-target assignment.
// The one place heal turns head outputs into boxes and boxes into head targets (formats.md §4.4–4.6).
//
// Layout: anchors are stored (H', W', A) row-major with rows along y, so anchor index
// i = (row·W' + col)·A + a. Head tensors are NCHW: cls channel a, reg channel a·7 + k, dir channel a·2 + bin.

import { type SharedSpace, featureGrid, featureCellSize } from '../perception/space.ts';
import { boxToCorners, type Box7 } from '../datasets/geometry/boxes.ts';
import { limitPeriod } from '../datasets/geometry/transforms.ts';

export const DIR_OFFSET = 0.7853;

export interface Anchors {
  rows: number;
  cols: number;
  perCell: number;
  count: number;
  /** count × 7 [x, y, z, h, w, l, yaw]. */
  boxes: Float32Array;
}

/**
 * Anchor centres sit at feature-cell centres. For stride 2 this is exactly OpenCOOD's
 * linspace(xmin+vw, xmax−vw, W/2); for other strides OpenCOOD's formula drifts by a fraction of
 * a cell ("vw is not precise"), and the exact centre is what the features actually cover.
 */
export function makeAnchors(space: SharedSpace): Anchors {
  const [cols, rows] = featureGrid(space);
  const [cw, ch] = featureCellSize(space);
  const { l, w, h, z, yawsDeg } = space.anchor;
  const perCell = yawsDeg.length;
  const count = rows * cols * perCell;
  const boxes = new Float32Array(count * 7);
  for (let r = 0; r < rows; r++) {
    const y = space.range[1] + (r + 0.5) * ch;
    for (let c = 0; c < cols; c++) {
      const x = space.range[0] + (c + 0.5) * cw;
      for (let a = 0; a < perCell; a++) {
        const o = ((r * cols + c) * perCell + a) * 7;
        boxes.set([x, y, z, h, w, l, (yawsDeg[a] * Math.PI) / 180], o);
      }
    }
  }
  return { rows, cols, perCell, count, boxes };
}

/** Residuals of a GT box against an anchor (both hwl). */
export function encodeBox(gt: ArrayLike<number>, anchors: Float32Array, i: number, out: Float32Array, o: number): void {
  const a = i * 7;
  const [xa, ya, za, ha, wa, la, ra] = [anchors[a], anchors[a + 1], anchors[a + 2], anchors[a + 3], anchors[a + 4], anchors[a + 5], anchors[a + 6]];
  const d = Math.hypot(wa, la);
  out[o] = (gt[0] - xa) / d;
  out[o + 1] = (gt[1] - ya) / d;
  out[o + 2] = (gt[2] - za) / ha;
  out[o + 3] = Math.log(gt[3] / ha);
  out[o + 4] = Math.log(gt[4] / wa);
  out[o + 5] = Math.log(gt[5] / la);
  out[o + 6] = gt[6] - ra;
}

const f32 = Math.fround;

/**
 * Inverse of encodeBox, in float32 as HEAL decodes on a float32 tensor (each product and sum
 * rounded), so boxes near a filter's bound fall on the same side as HEAL's.
 */
export function decodeBox(t: ArrayLike<number>, anchors: Float32Array, i: number): Box7 {
  const a = i * 7;
  const [xa, ya, za, ha, wa, la, ra] = [anchors[a], anchors[a + 1], anchors[a + 2], anchors[a + 3], anchors[a + 4], anchors[a + 5], anchors[a + 6]];
  const d = f32(Math.sqrt(f32(f32(wa * wa) + f32(la * la))));
  return [
    f32(f32(t[0] * d) + xa),
    f32(f32(t[1] * d) + ya),
    f32(f32(t[2] * ha) + za),
    f32(f32(Math.exp(t[3])) * ha),
    f32(f32(Math.exp(t[4])) * wa),
    f32(f32(Math.exp(t[5])) * la),
    f32(t[6] + ra),
  ];
}

/** Direction bin of a GT yaw: floor(limit_period(r − offset, 0, 2π) / π). */
export function directionTarget(yaw: number): number {
  return Math.floor(limitPeriod(yaw - DIR_OFFSET, 0, 2 * Math.PI) / Math.PI);
}

/** OpenCOOD's limit_period in float32, as torch computes it on a float32 tensor. */
function limitPeriod32(v: number, offset: number, period: number): number {
  return f32(v - f32(Math.floor(f32(f32(v / period) + offset)) * period));
}

/** Applies the direction classifier to a decoded yaw, in float32 as HEAL; the result lies in [−π, π). */
export function applyDirection(yaw: number, bin: number): number {
  const pi = f32(Math.PI);
  const offset = f32(DIR_OFFSET);
  const r = limitPeriod32(f32(yaw - offset), 0, pi);
  return limitPeriod32(f32(f32(r + offset) + f32(pi * bin)), 0.5, f32(2 * Math.PI));
}

export interface Targets {
  /** Per anchor: 1 positive, 0 negative, −1 ignored. */
  labels: Int8Array;
  /** count × 7 residuals, filled for positives only. */
  reg: Float32Array;
  /** Per anchor direction bin, filled for positives only. */
  dir: Int8Array;
  /** Per anchor, the matched GT index or −1. */
  matched: Int32Array;
  positives: number;
}

function standup(box: ArrayLike<number>): [number, number, number, number] {
  const c = boxToCorners(box);
  let x0 = Infinity,
    y0 = Infinity,
    x1 = -Infinity,
    y1 = -Infinity;
  for (let k = 0; k < 4; k++) {
    x0 = Math.min(x0, c[k * 3]);
    x1 = Math.max(x1, c[k * 3]);
    y0 = Math.min(y0, c[k * 3 + 1]);
    y1 = Math.max(y1, c[k * 3 + 1]);
  }
  return [x0, y0, x1, y1];
}

/**
 * formats.md §4.5: IoU of axis-aligned standup boxes with the Fast R-CNN "+1" area convention
 * (kept for parity with HEAL's targets), positives above posThreshold plus each GT's best anchor,
 * negatives below negThreshold for every GT, the rest ignored (HEAL's loss ignores them).
 */
export function assignTargets(anchors: Anchors, gt: ArrayLike<number>[], posThreshold = 0.6, negThreshold = 0.45): Targets {
  const n = anchors.count;
  const labels = new Int8Array(n);
  const reg = new Float32Array(n * 7);
  const dir = new Int8Array(n);
  const matched = new Int32Array(n).fill(-1);
  const bestIou = new Float32Array(n);
  const bestGt = new Int32Array(n).fill(-1);
  const anchorStandup: Float64Array[] = [];
  // Anchor standups are axis-aligned for yaw 0/90°, computed once.
  for (let i = 0; i < n; i++) {
    const s = standup(anchors.boxes.subarray(i * 7, i * 7 + 7));
    anchorStandup.push(Float64Array.from(s));
  }
  const gtBestAnchor: number[] = [];
  for (let g = 0; g < gt.length; g++) {
    const [gx0, gy0, gx1, gy1] = standup(gt[g]);
    const gArea = (gx1 - gx0 + 1) * (gy1 - gy0 + 1);
    let best = -1,
      bestVal = 0;
    for (let i = 0; i < n; i++) {
      const aBox = anchorStandup[i];
      const iw = Math.min(aBox[2], gx1) - Math.max(aBox[0], gx0) + 1;
      if (iw <= 0) continue;
      const ih = Math.min(aBox[3], gy1) - Math.max(aBox[1], gy0) + 1;
      if (ih <= 0) continue;
      const inter = iw * ih;
      const aArea = (aBox[2] - aBox[0] + 1) * (aBox[3] - aBox[1] + 1);
      const iou = inter / (aArea + gArea - inter);
      if (iou > bestIou[i]) {
        bestIou[i] = iou;
        bestGt[i] = g;
      }
      if (iou > bestVal) {
        bestVal = iou;
        best = i;
      }
    }
    gtBestAnchor.push(best);
  }
  for (let i = 0; i < n; i++) {
    if (bestIou[i] > posThreshold) {
      labels[i] = 1;
      matched[i] = bestGt[i];
    } else if (bestIou[i] < negThreshold) labels[i] = 0;
    else labels[i] = -1;
  }
  // Each GT keeps its best anchor even below the threshold; the first GT wins a shared anchor.
  const forced = new Set<number>();
  for (let g = 0; g < gt.length; g++) {
    const i = gtBestAnchor[g];
    if (i < 0 || forced.has(i)) continue;
    forced.add(i);
    labels[i] = 1;
    matched[i] = g;
  }
  let positives = 0;
  for (let i = 0; i < n; i++) {
    if (labels[i] !== 1) continue;
    positives++;
    const g = gt[matched[i]];
    encodeBox(g, anchors.boxes, i, reg, i * 7);
    dir[i] = directionTarget(g[6]);
  }
  return { labels, reg, dir, matched, positives };
}

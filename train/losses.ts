// Training losses of the detection head and the pyramid's foreground maps (formats.md §4.5–4.6).
//
// Head layouts (NCHW, batch of one): cls [1, A, H, W] (channel a), reg [1, 7A, H, W] (channel
// a·7 + k), dir [1, 2A, H, W] (channel a·2 + bin). Anchor index i = (row·W + col)·A + a, the
// order of fusion/anchors.ts, so host targets line up after `perAnchor` reorders the channels.

import * as tf from '@tensorflow/tfjs';
import type { Targets } from '../fusion/anchors.ts';
import { boxToCorners } from '../datasets/geometry/boxes.ts';

export interface LossWeights {
  cls: number;
  reg: number;
  dir: number;
  /** Foreground (occupancy) loss weight per pyramid level, finest first. */
  occ: number[];
  /** Depth supervision of a camera type's depth distribution (alignment only; 0 turns it off). */
  depth: number;
}

/** HEAL's pyramid-fusion weights: cls 1, reg 2, dir 0.2, foreground 0.4/0.2/0.1; depth 1. */
export const DEFAULT_LOSS_WEIGHTS: LossWeights = { cls: 1, reg: 2, dir: 0.2, occ: [0.4, 0.2, 0.1], depth: 1 };

export const FOCAL_ALPHA = 0.25;
export const FOCAL_GAMMA = 2;
/** Smooth-L1 transition point: σ = 3 in HEAL's terms, β = 1/σ² = 1/9. */
export const SMOOTH_L1_BETA = 1 / 9;

/** [1, A·k, H, W] with channel a·k + j → [H·W·A, k] in anchor order. */
export function perAnchor(t: tf.Tensor, k: number): tf.Tensor2D {
  const [n, ch, h, w] = t.shape;
  if (n !== 1 || ch % k !== 0) throw new Error(`perAnchor: expected [1, A·${k}, H, W], got [${t.shape}]`);
  const a = ch / k;
  return tf.reshape(tf.transpose(tf.reshape(t, [a, k, h, w]), [2, 3, 0, 1]), [h * w * a, k]) as tf.Tensor2D;
}

/**
 * Sigmoid focal loss per element (α-balanced): α_t·(1 − p_t)^γ·BCE. `labels` are 1 or 0; the
 * caller masks ignored elements with `weights`. Returns the weighted sum.
 */
export function focalLossSum(logits: tf.Tensor, labels: tf.Tensor, weights: tf.Tensor, alpha = FOCAL_ALPHA, gamma = FOCAL_GAMMA): tf.Scalar {
  return tf.tidy(() => {
    const p = tf.sigmoid(logits);
    // Stable BCE with logits: max(x, 0) − x·t + log(1 + e^−|x|).
    const bce = tf.add(tf.sub(tf.relu(logits), tf.mul(logits, labels)), tf.log1p(tf.exp(tf.neg(tf.abs(logits)))));
    const pt = tf.add(tf.mul(labels, p), tf.mul(tf.sub(1, labels), tf.sub(1, p)));
    const at = tf.add(tf.mul(labels, alpha), tf.mul(tf.sub(1, labels), 1 - alpha));
    const mod = tf.pow(tf.sub(1, pt), gamma);
    return tf.sum(tf.mul(tf.mul(tf.mul(at, mod), bce), weights)) as tf.Scalar;
  });
}

/** Smooth-L1 (Huber with transition β) per element. */
export function smoothL1(diff: tf.Tensor, beta = SMOOTH_L1_BETA): tf.Tensor {
  return tf.tidy(() => {
    // 0.5·q²/β + (|d| − q) with q = min(|d|, β): the same piecewise function, written without a
    // comparison so the gradient flows through (tfjs has no gradient for Less).
    const a = tf.abs(diff);
    const q = tf.minimum(a, beta);
    return tf.add(tf.div(tf.mul(0.5, tf.square(q)), beta), tf.sub(a, q));
  });
}

export interface DetectionLoss {
  total: tf.Scalar;
  cls: tf.Scalar;
  reg: tf.Scalar;
  dir: tf.Scalar;
}

/** Host targets as tensors, built once per batch (outside the gradient tape). */
export interface TargetTensors {
  /** [N] 1 for positives, 0 otherwise. */
  positive: tf.Tensor1D;
  /** [N] 1 for positives and negatives, 0 for ignored anchors. */
  clsWeight: tf.Tensor1D;
  /** [N, 7] residual targets (zero where not positive). */
  reg: tf.Tensor2D;
  /** [N, 2] one-hot direction bins (zero rows where not positive). */
  dir: tf.Tensor2D;
  /** max(1, number of positives). */
  normalizer: number;
}

export function targetTensors(t: Targets): TargetTensors {
  const n = t.labels.length;
  const positive = new Float32Array(n);
  const clsWeight = new Float32Array(n);
  const dir = new Float32Array(n * 2);
  for (let i = 0; i < n; i++) {
    const l = t.labels[i];
    if (l === 1) {
      positive[i] = 1;
      dir[i * 2 + t.dir[i]] = 1;
    }
    // HEAL counts anchors from neg_equal_one as negatives; those between the thresholds (−1) add nothing.
    if (l !== -1) clsWeight[i] = 1;
  }
  return {
    positive: tf.tensor1d(positive),
    clsWeight: tf.tensor1d(clsWeight),
    reg: tf.tensor2d(t.reg, [n, 7]),
    dir: tf.tensor2d(dir, [n, 2]),
    normalizer: Math.max(1, t.positives),
  };
}

export function disposeTargets(t: TargetTensors): void {
  tf.dispose([t.positive, t.clsWeight, t.reg, t.dir]);
}

/**
 * Classification (focal), regression (smooth-L1 with the sin-difference yaw) and direction (softmax
 * CE) losses, each summed and divided by the number of positives (at least 1), weighted into total.
 */
export function detectionLoss(out: { cls: tf.Tensor; reg: tf.Tensor; dir: tf.Tensor }, t: TargetTensors, w: LossWeights = DEFAULT_LOSS_WEIGHTS): DetectionLoss {
  const cls = tf.tidy(() => {
    const logits = tf.reshape(perAnchor(out.cls, 1), [-1]);
    if (logits.shape[0] !== t.positive.shape[0]) throw new Error(`detectionLoss: head has ${logits.shape[0]} anchors, targets ${t.positive.shape[0]}`);
    return tf.div(focalLossSum(logits, t.positive, t.clsWeight), t.normalizer) as tf.Scalar;
  });
  const reg = tf.tidy(() => {
    const pred = perAnchor(out.reg, 7);
    // sin(a − b) = sin(a)cos(b) − cos(a)sin(b): compare the two products instead of the raw yaw,
    // so a box off by π costs nothing here (the direction classifier settles it).
    const [p6, pr] = [tf.slice(pred, [0, 6], [-1, 1]), tf.slice(pred, [0, 0], [-1, 6])];
    const [t6, tr] = [tf.slice(t.reg, [0, 6], [-1, 1]), tf.slice(t.reg, [0, 0], [-1, 6])];
    const predYaw = tf.mul(tf.sin(p6), tf.cos(t6));
    const tgtYaw = tf.mul(tf.cos(p6), tf.sin(t6));
    const diff = tf.concat([tf.sub(pr, tr), tf.sub(predYaw, tgtYaw)], 1);
    const perAnchorLoss = tf.sum(smoothL1(diff), 1);
    return tf.div(tf.sum(tf.mul(perAnchorLoss, t.positive)), t.normalizer) as tf.Scalar;
  });
  const dir = tf.tidy(() => {
    const logits = perAnchor(out.dir, 2);
    const ce = tf.neg(tf.sum(tf.mul(t.dir, tf.logSoftmax(logits)), 1));
    return tf.div(tf.sum(tf.mul(ce, t.positive)), t.normalizer) as tf.Scalar;
  });
  const total = tf.tidy(() => tf.addN([tf.mul(cls, w.cls), tf.mul(reg, w.reg), tf.mul(dir, w.dir)]) as tf.Scalar);
  return { total, cls, reg, dir };
}

/**
 * Foreground map of GT boxes on an h×w grid over `range` (rows along y): 1 where a cell centre
 * lies inside a box footprint, and always the cell holding a box centre, so that small boxes
 * still mark a coarse grid.
 */
export function rasterizeFootprints(boxes: ArrayLike<number>[], range: ArrayLike<number>, h: number, w: number): Float32Array {
  const out = new Float32Array(h * w);
  const cw = (range[3] - range[0]) / w;
  const ch = (range[4] - range[1]) / h;
  for (const b of boxes) {
    const c = boxToCorners(b);
    const xs = Array.from({ length: 8 }, (_, k) => c[k * 3]);
    const ys = Array.from({ length: 8 }, (_, k) => c[k * 3 + 1]);
    const c0 = Math.max(0, Math.floor((Math.min(...xs) - range[0]) / cw));
    const c1 = Math.min(w - 1, Math.floor((Math.max(...xs) - range[0]) / cw));
    const r0 = Math.max(0, Math.floor((Math.min(...ys) - range[1]) / ch));
    const r1 = Math.min(h - 1, Math.floor((Math.max(...ys) - range[1]) / ch));
    const cos = Math.cos(b[6]),
      sin = Math.sin(b[6]);
    for (let r = r0; r <= r1; r++) {
      const y = range[1] + (r + 0.5) * ch - b[1];
      for (let col = c0; col <= c1; col++) {
        const x = range[0] + (col + 0.5) * cw - b[0];
        // Into the box frame: l along its x axis, w along its y axis (hwl order: b[3]=h, b[4]=w, b[5]=l).
        const u = x * cos + y * sin;
        const v = -x * sin + y * cos;
        if (Math.abs(u) <= b[5] / 2 && Math.abs(v) <= b[4] / 2) out[r * w + col] = 1;
      }
    }
    const cc = Math.floor((b[0] - range[0]) / cw),
      rr = Math.floor((b[1] - range[1]) / ch);
    if (cc >= 0 && cc < w && rr >= 0 && rr < h) out[rr * w + cc] = 1;
  }
  return out;
}

/**
 * Foreground supervision of the pyramid: every agent's warped foreground logits [A, 1, h, w] at
 * each level against the GT footprint in the ego frame (the same target for every agent), as a
 * focal loss normalised by the number of foreground cells. `targets[l]` is [h_l·w_l].
 */
export function occupancyLoss(occ: tf.Tensor[], targets: Float32Array[], weights: number[]): tf.Scalar {
  return tf.tidy(() => {
    const terms: tf.Scalar[] = [];
    occ.forEach((o, l) => {
      const [a, , h, w] = o.shape;
      if (targets[l].length !== h * w) throw new Error(`occupancyLoss: level ${l} is ${h}×${w}, target has ${targets[l].length} cells`);
      const weight = weights[l] ?? 0;
      if (weight === 0) return;
      const labels = tf.tile(tf.tensor4d(targets[l], [1, 1, h, w]), [a, 1, 1, 1]);
      const positives = Math.max(1, a * targets[l].reduce((s, v) => s + v, 0));
      terms.push(tf.mul(tf.div(focalLossSum(o, labels, tf.onesLike(labels)), positives), weight) as tf.Scalar);
    });
    return (terms.length ? tf.addN(terms) : tf.scalar(0)) as tf.Scalar;
  });
}

/**
 * Depth supervision of an LSS encoder: the mean over labelled feature pixels of −log p(target bin),
 * with `prob` the softmaxed depth distribution [cameras, D, fH, fW] and `target.bins` one bin per
 * pixel of each camera ([cameras·fH·fW], −1 ignored; batch.ts loadDepthTargets).
 */
export function depthLoss(prob: tf.Tensor, target: { bins: Int32Array; shape: number[] }): tf.Scalar {
  const [n, d, h, w] = target.shape;
  if (prob.shape.join() !== target.shape.join()) throw new Error(`depthLoss: depth output is [${prob.shape}], targets are for [${target.shape}]`);
  const plane = h * w;
  const onehot = new Float32Array(n * d * plane);
  let labelled = 0;
  for (let c = 0; c < n; c++) {
    for (let p = 0; p < plane; p++) {
      const bin = target.bins[c * plane + p];
      if (bin < 0) continue;
      if (bin >= d) throw new Error(`depthLoss: target bin ${bin} of camera ${c} is outside the ${d} bins`);
      onehot[(c * d + bin) * plane + p] = 1;
      labelled++;
    }
  }
  return tf.tidy(() => tf.div(tf.neg(tf.sum(tf.mul(tf.tensor(onehot, target.shape), tf.log(tf.add(prob, 1e-6))))), Math.max(1, labelled)) as tf.Scalar);
}

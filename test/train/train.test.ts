// Training: losses, targets layout, augmentation, pillar padding, and tiny end-to-end runs of
// `train()` (stage 1, resume, alignment) and of the `heal train` / `heal align` CLI. Everything
// runs on tfjs's cpu backend with networks of a few thousand parameters on a 16×16 BEV grid, so
// the file stays fast on a busy 2-core machine.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { promises as fs } from 'node:fs';
import { spawn } from 'node:child_process';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import {
  depthLoss,
  detectionLoss,
  disposeTargets,
  focalLossSum,
  perAnchor,
  rasterizeFootprints,
  smoothL1,
  targetTensors,
  SMOOTH_L1_BETA,
  DEFAULT_LOSS_WEIGHTS,
} from '../../train/losses.ts';
import { augmentationMatrix, augmentBox, augmentedInputs, padPillars, PILLAR_BUCKET, type Augmentation } from '../../train/batch.ts';
import { train } from '../../train/trainer.ts';
import { NamedAdam } from '../../train/optimizer.ts';
import { CHECKPOINT_FILE, OPTIMIZER_FILE } from '../../train/checkpoint.ts';
import type { StageOneModels } from '../../train/stages.ts';
import { assignTargets, makeAnchors, type Targets } from '../../fusion/anchors.ts';
import { egoNetworkFor } from '../../fusion/pipeline.ts';
import { egoNetwork } from '../../fusion/networks/ego.ts';
import { agentInputs, agentNetwork } from '../../perception/encoders/agent.ts';
import { buildTfModel } from '../../models/tfjs.ts';
import { initWeights, loadWeights, saveWeights } from '../../models/weights.ts';
import type { HostTensor } from '../../models/graph.ts';
import { SMALL_SPACE, type SharedSpace } from '../../perception/space.ts';
import { WORLD_TIMEOUT_MS, copySplit, testWorld } from '../helpers/world.ts';
import { bevCorners, bevFromCorners, boxToCorners, transformCorners } from '../../datasets/geometry/boxes.ts';
import { bevIoU } from '../../datasets/geometry/polygon.ts';
import { identity4 } from '../../datasets/geometry/transforms.ts';
import { tinyLidar } from '../helpers/tiny.ts';

const TINY_SPACE: SharedSpace = {
  ...SMALL_SPACE,
  name: 'tiny',
  range: [-12.8, -12.8, -3, 12.8, 12.8, 1],
  voxel: [0.8, 0.8, 4],
  featureStride: 2,
  channels: 8,
};

/**
 * The small pyramid fusion's backprop costs seconds per step on the cpu backend, so the runs
 * use a two-level pyramid of 8 channels (egoNetworkFor's own config is checked separately).
 */
const TINY_EGO = egoNetwork({
  fusion: {
    height: 16,
    width: 16,
    shrinkChannels: 8,
    backbone: {
      inChannels: 8,
      layerNums: [1, 1],
      layerStrides: [1, 2],
      numFilters: [8, 8],
      upsampleStrides: [1, 2],
      numUpsampleFilters: [8, 8],
      batchNorm: true,
    },
  },
  head: { anchors: 2, dirBins: 2 },
});
const TINY_MODELS: StageOneModels = { space: TINY_SPACE, network: tinyLidar('m1', 1), ego: TINY_EGO };

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

function toTensors(inputs: Record<string, HostTensor>): Record<string, tf.Tensor> {
  return Object.fromEntries(
    Object.entries(inputs).map(([k, v]) => [k, tf.tensor(v.data as Float32Array | Int32Array, v.shape, v.data instanceof Int32Array ? 'int32' : 'float32')]),
  );
}

/** Per-anchor values [N, k] (anchor i = (row·W + col)·A + a) → an NCHW head map, channel a·k + j. */
function headMap(values: ArrayLike<number>, k: number, A: number, H: number, W: number): tf.Tensor4D {
  const out = new Float32Array(A * k * H * W);
  for (let r = 0; r < H; r++) {
    for (let c = 0; c < W; c++) {
      for (let a = 0; a < A; a++) {
        const i = (r * W + c) * A + a;
        for (let j = 0; j < k; j++) out[((a * k + j) * H + r) * W + c] = values[i * k + j];
      }
    }
  }
  return tf.tensor4d(out, [1, A * k, H, W]);
}

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('losses', () => {
  it('focalLossSum matches α_t·(1 − p_t)^γ·BCE by hand (α 0.25, γ 2), weights mask elements', () => {
    const logits = [2, -1, 0.5, -3, 4];
    const labels = [1, 0, 0, 1, 0];
    const weights = [1, 1, 1, 0.5, 0];
    let want = 0;
    for (let i = 0; i < logits.length; i++) {
      const p = sigmoid(logits[i]);
      const term = labels[i] === 1 ? -0.25 * (1 - p) ** 2 * Math.log(p) : -0.75 * p ** 2 * Math.log(1 - p);
      want += weights[i] * term;
    }
    const got = focalLossSum(tf.tensor1d(logits), tf.tensor1d(labels), tf.tensor1d(weights)).arraySync() as number;
    expect(got).toBeCloseTo(want, 5);
    // A confident mistake costs far more than a confident hit.
    const hit = focalLossSum(tf.tensor1d([5]), tf.tensor1d([1]), tf.tensor1d([1])).arraySync() as number;
    const miss = focalLossSum(tf.tensor1d([-5]), tf.tensor1d([1]), tf.tensor1d([1])).arraySync() as number;
    expect(miss).toBeGreaterThan(1000 * hit);
  });

  it('depthLoss is the mean −log p(target bin) over labelled pixels; its gradient reaches only those', () => {
    // 2 cameras, 3 bins, a 1×2 feature map: prob[c, d, 0, x] at ((c·3 + d)·2 + x).
    const p = Float32Array.from([0.2, 0.5, 0.3, 0.25, 0.5, 0.25, 0.1, 0.6, 0.7, 0.3, 0.2, 0.1]);
    const target = { bins: Int32Array.from([2, -1, 0, 1]), shape: [2, 3, 1, 2] };
    const prob = tf.tensor(p, [2, 3, 1, 2]);
    const want = -(Math.log(p[4] + 1e-6) + Math.log(p[6] + 1e-6) + Math.log(p[9] + 1e-6)) / 3;
    expect(depthLoss(prob, target).arraySync()).toBeCloseTo(want, 5);
    const g = tf
      .grad((x: tf.Tensor) => depthLoss(x, target))(prob)
      .dataSync();
    const touched = [...g].map((v, i) => (v !== 0 ? i : -1)).filter((i) => i >= 0);
    expect(touched).toEqual([4, 6, 9]);
    expect(g[4]).toBeCloseTo(-1 / (3 * (p[4] + 1e-6)), 4);
    expect(() => depthLoss(prob, { bins: target.bins, shape: [2, 3, 2, 1] })).toThrow(/\[2,3,1,2\]/);
    expect(() => depthLoss(prob, { bins: Int32Array.from([3, 0, 0, 0]), shape: [2, 3, 1, 2] })).toThrow(/outside the 3 bins/);
  });

  it('smoothL1 is 0.5·d²/β below β = 1/9 and |d| − β/2 above, with the matching gradient', () => {
    const beta = SMOOTH_L1_BETA;
    expect(beta).toBeCloseTo(1 / 9, 12);
    const d = [0, 0.05, -0.08, 0.5, -2];
    const want = d.map((x) => (Math.abs(x) < beta ? (0.5 * x * x) / beta : Math.abs(x) - beta / 2));
    const got = Array.from(smoothL1(tf.tensor1d(d)).dataSync());
    got.forEach((g, i) => expect(g).toBeCloseTo(want[i], 6));
    const grad = Array.from(
      tf
        .grad((x: tf.Tensor) => tf.sum(smoothL1(x)))(tf.tensor1d(d))
        .dataSync(),
    );
    const wantGrad = d.map((x) => (Math.abs(x) < beta ? x / beta : Math.sign(x)));
    grad.forEach((g, i) => expect(g).toBeCloseTo(wantGrad[i], 5));
  });

  it('perAnchor puts channel a·k + j of cell (row, col) at anchor (row·W + col)·A + a, the order of makeAnchors', () => {
    const anchors = makeAnchors(TINY_SPACE);
    const { rows: H, cols: W, perCell: A } = anchors;
    const [x0, y0] = TINY_SPACE.range;
    const cell = TINY_SPACE.voxel[0] * TINY_SPACE.featureStride;
    // Channel a·7 + 0/1/6 of a reg-like map hold the centre and yaw an anchor at (row, col, a) must have.
    const data = new Float32Array(7 * A * H * W);
    for (let a = 0; a < A; a++) {
      for (let r = 0; r < H; r++) {
        for (let c = 0; c < W; c++) {
          data[((a * 7 + 0) * H + r) * W + c] = x0 + (c + 0.5) * cell;
          data[((a * 7 + 1) * H + r) * W + c] = y0 + (r + 0.5) * cell;
          data[((a * 7 + 6) * H + r) * W + c] = (TINY_SPACE.anchor.yawsDeg[a] * Math.PI) / 180;
        }
      }
    }
    const per = perAnchor(tf.tensor4d(data, [1, 7 * A, H, W]), 7).arraySync();
    expect(per.length).toBe(anchors.count);
    for (let i = 0; i < anchors.count; i++) {
      for (const k of [0, 1, 6]) expect(per[i][k]).toBeCloseTo(anchors.boxes[i * 7 + k], 4);
    }
    expect(() => perAnchor(tf.zeros([1, 13, H, W]), 7)).toThrow(/perAnchor/);
  });

  describe('detectionLoss', () => {
    const anchors = makeAnchors(TINY_SPACE);
    const { rows: H, cols: W, perCell: A } = anchors;
    // Off the cell centres, so the targets are not all zero.
    const gt = [
      [1.1, -2.3, -1.2, 1.5, 1.8, 4.2, 0.3],
      [-6.5, 4.1, -0.9, 1.6, 1.7, 4.5, 1.8],
    ];
    let t: Targets;
    beforeAll(() => {
      t = assignTargets(anchors, gt, 0.6, 0.45);
    });

    /** Head outputs that predict the targets exactly: residuals, confident cls and dir. */
    function perfect(yawShift = 0) {
      const reg = Float32Array.from(t.reg);
      const cls = new Float32Array(anchors.count);
      const dir = new Float32Array(anchors.count * 2);
      for (let i = 0; i < anchors.count; i++) {
        cls[i] = t.labels[i] === 1 ? 8 : -8;
        if (t.labels[i] === 1) {
          reg[i * 7 + 6] += yawShift;
          dir[i * 2 + t.dir[i]] = 8;
          dir[i * 2 + 1 - t.dir[i]] = -8;
        }
      }
      return { cls, reg, dir };
    }

    function loss(h: { cls: Float32Array; reg: Float32Array; dir: Float32Array }) {
      const tt = targetTensors(t);
      try {
        const out = detectionLoss({ cls: headMap(h.cls, 1, A, H, W), reg: headMap(h.reg, 7, A, H, W), dir: headMap(h.dir, 2, A, H, W) }, tt);
        return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, v.arraySync() as number]));
      } finally {
        disposeTargets(tt);
      }
    }

    it('has positives, negatives and ignored anchors to work with', () => {
      const labels = Array.from(t.labels);
      expect(t.positives).toBeGreaterThanOrEqual(2);
      expect(labels.filter((l) => l === -1).length).toBeGreaterThan(0);
      expect(labels.filter((l) => l === 0).length).toBeGreaterThan(0);
      // The yaw residual of the 0.3 rad box is not trivially zero.
      expect(Array.from(t.reg).some((v, i) => i % 7 === 6 && Math.abs(v) > 0.2)).toBe(true);
    });

    it('a perfect prediction costs ~0 in reg and dir; a yaw error of 0.3 rad costs smoothL1(sin 0.3)', () => {
      const p = loss(perfect());
      expect(p.reg).toBeLessThan(1e-6);
      expect(p.dir).toBeLessThan(1e-3);
      const off = loss(perfect(0.3));
      expect(off.reg).toBeCloseTo(Math.sin(0.3) - SMOOTH_L1_BETA / 2, 4);
      expect(off.total).toBeCloseTo(p.total + DEFAULT_LOSS_WEIGHTS.reg * off.reg, 4);
    });

    it('the sin-difference term makes a yaw off by π cost ~0 in reg (the direction bin settles it)', () => {
      expect(loss(perfect(Math.PI)).reg).toBeLessThan(1e-5);
      expect(loss(perfect(-Math.PI)).reg).toBeLessThan(1e-5);
      // A wrong direction bin is what costs.
      const h = perfect();
      for (let i = 0; i < anchors.count; i++) if (t.labels[i] === 1) [h.dir[i * 2], h.dir[i * 2 + 1]] = [h.dir[i * 2 + 1], h.dir[i * 2]];
      expect(loss(h).dir).toBeGreaterThan(10);
    });

    it('ignored anchors (label −1) add nothing to cls; negatives and positives do', () => {
      const base = perfect();
      const c0 = loss(base).cls;
      const ignored = perfect();
      for (let i = 0; i < anchors.count; i++) if (t.labels[i] === -1) ignored.cls[i] = 8;
      expect(loss(ignored).cls).toBeCloseTo(c0, 7);
      const negative = perfect();
      negative.cls[Array.from(t.labels).indexOf(0)] = 8;
      expect(loss(negative).cls).toBeGreaterThan(c0 + 1 / t.positives);
      const positive = perfect();
      positive.cls[Array.from(t.labels).indexOf(1)] = -8;
      expect(loss(positive).cls).toBeGreaterThan(c0 + 0.1 / t.positives);
    });

    it('the mismatch of head and targets is an error', () => {
      const tt = targetTensors(t);
      try {
        expect(() => detectionLoss({ cls: tf.zeros([1, A, H, W - 1]), reg: tf.zeros([1, 7 * A, H, W - 1]), dir: tf.zeros([1, 2 * A, H, W - 1]) }, tt)).toThrow(
          /anchors/,
        );
      } finally {
        disposeTargets(tt);
      }
    });
  });
});

describe('rasterizeFootprints', () => {
  // 8 × 4 one-metre cells over x ∈ [−4, 4], y ∈ [−2, 2]: rows along y, so row/col mix-ups show.
  const range = [-4, -2, -3, 4, 2, 1];
  const [H, W] = [4, 8];
  const cells = (m: Float32Array) => [...m.keys()].filter((i) => m[i] === 1).map((i) => [Math.floor(i / W), i % W]);

  it('marks the cells whose centres lie in the footprint (l along the yaw, w across)', () => {
    // l 2.2 along x reaches cell centres x = −0.5, 0.5, 1.5; w 1.2 across reaches only y = 0.5.
    expect(cells(rasterizeFootprints([[0.5, 0.5, 0, 1.5, 1.2, 2.2, 0]], range, H, W))).toEqual([
      [2, 3],
      [2, 4],
      [2, 5],
    ]);
    // Turned by 90°, the same box stands along y.
    expect(cells(rasterizeFootprints([[0.5, 0.5, 0, 1.5, 1.2, 2.2, Math.PI / 2]], range, H, W))).toEqual([
      [1, 4],
      [2, 4],
      [3, 4],
    ]);
  });

  it('a rotated box marks exactly the cell centres inside its rotated footprint', () => {
    const box = [0.3, -0.2, 0, 1.5, 1.9, 4.6, 0.7];
    const got = rasterizeFootprints([box], range, H, W);
    const poly = bevCorners(box);
    const inside = (x: number, y: number) => {
      let sign = 0;
      for (let k = 0; k < 4; k++) {
        const [ax, ay, bx, by] = [poly[k * 2], poly[k * 2 + 1], poly[((k + 1) % 4) * 2], poly[((k + 1) % 4) * 2 + 1]];
        const s = Math.sign((bx - ax) * (y - ay) - (by - ay) * (x - ax));
        if (s !== 0 && sign !== 0 && s !== sign) return false;
        if (s !== 0) sign = s;
      }
      return true;
    };
    let n = 0;
    for (let r = 0; r < H; r++) {
      for (let c = 0; c < W; c++) {
        const want = inside(range[0] + c + 0.5, range[1] + r + 0.5) ? 1 : 0;
        expect(got[r * W + c], `cell (${r}, ${c})`).toBe(want);
        n += want;
      }
    }
    // Not an axis-aligned block: the 0.7 rad box covers a sheared set of cells.
    expect(n).toBeGreaterThan(4);
  });

  it('a tiny box still marks its centre cell, and only that; a box out of range marks nothing', () => {
    expect(cells(rasterizeFootprints([[1.3, -0.7, 0, 0.1, 0.1, 0.1, 0.4]], range, H, W))).toEqual([[1, 5]]);
    expect(cells(rasterizeFootprints([[40, 30, 0, 1.5, 1.8, 4, 0]], range, H, W))).toEqual([]);
  });
});

describe('augmentation', () => {
  const boxes = [
    [3.2, -7.5, -0.9, 1.5, 1.9, 4.4, 0.4],
    [-12, 5, -1.1, 1.6, 2.1, 5.2, -2.8],
    [0.5, 20, -0.7, 2.9, 2.4, 11, Math.PI / 2],
  ];
  const augs: Augmentation[] = [
    { flipY: false, rotation: 0.6, scale: 1.04 },
    { flipY: true, rotation: 0.6, scale: 1.04 },
    { flipY: true, rotation: -0.75, scale: 0.96 },
    { flipY: true, rotation: 0, scale: 1 },
  ];

  it('augmentBox equals the box corners moved by augmentationMatrix (footprint, height, heading), with and without flip', () => {
    for (const a of augs) {
      const m = augmentationMatrix(a);
      // The flip is a mirror, so det(T) changes sign with it.
      const det = m[0] * m[5] - m[1] * m[4];
      expect(Math.sign(det)).toBe(a.flipY ? -1 : 1);
      for (const b of boxes) {
        const moved = transformCorners(m, boxToCorners(b));
        const box = augmentBox(b, a);
        const c = boxToCorners(box);
        expect(bevIoU(bevFromCorners(moved), bevFromCorners(c))).toBeGreaterThan(1 - 1e-9);
        // The same eight corners up to order (a mirror swaps left and right).
        for (let i = 0; i < 8; i++) {
          const d = Math.min(
            ...Array.from({ length: 8 }, (_, j) => Math.hypot(c[i * 3] - moved[j * 3], c[i * 3 + 1] - moved[j * 3 + 1], c[i * 3 + 2] - moved[j * 3 + 2])),
          );
          expect(d).toBeLessThan(1e-9);
        }
        // The front face (corners 0, 1) stays the front: the yaw is right, not right up to π.
        const front = (k: Float64Array) => [(k[0] + k[3]) / 2, (k[1] + k[4]) / 2];
        const mf = front(moved),
          cf = front(c);
        expect(Math.hypot(mf[0] - cf[0], mf[1] - cf[1])).toBeLessThan(1e-9);
      }
    }
  });

  it("augmentedInputs drops an agent's own body before the transform, not where the body lands after it", () => {
    const cfg = tinyLidar('m1', 1);
    // Shift by 10 m along x: the body return at (1, 0) lands at (11, 0), and a return of a real
    // object at (−9.5, 0.5) lands on the body box at (0.5, 0.5).
    const m = identity4();
    m[3] = 10;
    const points = Float32Array.of(1, 0, -1, 0.5, -9.5, 0.5, -1, 0.5, -5, 5, -1, 0.5);
    const cell = (x: number, y: number) => Math.floor((y + 12.8) / 0.8) * 32 + Math.floor((x + 12.8) / 0.8);
    const run = (kind: 'vehicle' | 'rsu') => {
      const inp = augmentedInputs(cfg, TINY_SPACE, { points, kind }, m);
      const empty = inp.features.shape[0];
      const c2p = inp.cellToPillar.data as Int32Array;
      return { pillars: empty, body: c2p[cell(11, 0)] !== empty, object: c2p[cell(0.5, 0.5)] !== empty };
    };
    expect(run('vehicle')).toEqual({ pillars: 2, body: false, object: true });
    // A roadside unit has no body to drop.
    expect(run('rsu')).toEqual({ pillars: 3, body: true, object: true });
  });
});

describe('padPillars', () => {
  it('leaves the PointPillars BEV output unchanged in eval mode, and camera inputs alone (random weights)', async () => {
    const cfg = tinyLidar('m1', 1);
    let s = 12345;
    const rand = () => (s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32;
    const n = 4000;
    const points = new Float32Array(n * 4);
    for (let i = 0; i < n; i++) {
      // Clustered, so pillars hold several points and the per-pillar max matters.
      const cx = Math.floor(rand() * 6) * 4 - 11,
        cy = Math.floor(rand() * 6) * 4 - 11;
      points.set([cx + rand() * 3, cy + rand() * 3, -2.5 + rand() * 3, rand()], i * 4);
    }
    const inputs = agentInputs(cfg, TINY_SPACE, { points, kind: 'vehicle' });
    const p = inputs.features.shape[0];
    expect(p).toBeGreaterThan(50);
    expect(p % PILLAR_BUCKET).not.toBe(0);
    const padded = padPillars(inputs);
    expect(padded.features.shape).toEqual([Math.ceil(p / PILLAR_BUCKET) * PILLAR_BUCKET, 16, 10]);
    expect(padded.mask.shape[0]).toBe(padded.features.shape[0]);
    // Empty cells still point at the zero row, one past the (now padded) last pillar.
    const c0 = inputs.cellToPillar.data as Int32Array,
      c1 = padded.cellToPillar.data as Int32Array;
    for (let i = 0; i < c0.length; i++) expect(c1[i]).toBe(c0[i] === p ? padded.features.shape[0] : c0[i]);

    const desc = agentNetwork(cfg, TINY_SPACE);
    const weights = initWeights(desc, 3);
    // Non-trivial running statistics, so eval-mode batch norm is more than the identity.
    for (const [name, w] of weights) {
      if (name.endsWith('running_mean')) w.data.forEach((_, i) => (w.data[i] = 0.1 * ((i % 5) - 2)));
      if (name.endsWith('running_var')) w.data.forEach((_, i) => (w.data[i] = 0.5 + 0.1 * (i % 3)));
    }
    const model = buildTfModel(desc, weights);
    try {
      const a = model.apply(toTensors(inputs), { training: false }).bev;
      const b = model.apply(toTensors(padded), { training: false }).bev;
      const [da, db] = [await a.data(), await b.data()];
      expect(Array.from(da).some((v) => v !== 0)).toBe(true);
      expect(maxAbsDiff(da, db)).toBeLessThan(1e-5);
      tf.dispose([a, b]);
    } finally {
      model.dispose();
    }

    expect(padPillars(padded)).toBe(padded);
    const camera = { images: { data: new Float32Array(12), shape: [1, 3, 2, 2] } };
    expect(padPillars(camera)).toBe(camera);
  });
});

describe('optimizer', () => {
  it('NamedAdam follows Adam with bias correction, and its state restores exactly', async () => {
    const lr = 0.1,
      b1 = 0.9,
      b2 = 0.999,
      eps = 1e-8;
    const grads = [0.5, -2, 0.25];
    const params = new Map([['p', tf.variable(tf.tensor1d([1]))]]);
    const opt = new NamedAdam(lr);
    let [p, m, v] = [1, 0, 0];
    for (const [k, g] of grads.entries()) {
      if (k === 2) {
        // Halfway, continue from a copy rebuilt from the saved state, as --resume does.
        const copy = new NamedAdam(lr, opt.step);
        copy.restore(await opt.state());
        copy.apply(params, new Map([['p', tf.tensor1d([g])]]));
        m = b1 * m + (1 - b1) * g;
        v = b2 * v + (1 - b2) * g * g;
        p -= (lr * (m / (1 - b1 ** 3))) / (Math.sqrt(v / (1 - b2 ** 3)) + eps);
        expect(copy.step).toBe(3);
        break;
      }
      opt.apply(params, new Map([['p', tf.tensor1d([g])]]));
      m = b1 * m + (1 - b1) * g;
      v = b2 * v + (1 - b2) * g * g;
      p -= (lr * (m / (1 - b1 ** (k + 1)))) / (Math.sqrt(v / (1 - b2 ** (k + 1))) + eps);
      expect(params.get('p')!.dataSync()[0]).toBeCloseTo(p, 5);
    }
    expect(params.get('p')!.dataSync()[0]).toBeCloseTo(p, 5);
    opt.dispose();
  });
});

describe('training end to end (tiny)', () => {
  let root: string;
  let data: string;
  const runs: Record<string, Awaited<ReturnType<typeof train>>> = {};
  const seed = 7;
  const common = () => ({ data, models: TINY_MODELS, seed, maxAgents: 2, valFrames: 1, log: () => {} });

  beforeAll(async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'heal-train-'));
    data = await testWorld();
  }, WORLD_TIMEOUT_MS);
  afterAll(async () => {
    if (root) await fs.rm(root, { recursive: true, force: true });
  });

  it('egoNetworkFor builds for a custom space name on its 16×16 grid', () => {
    const desc = egoNetworkFor(TINY_SPACE);
    const out = Object.fromEntries(desc.outputs.map((o) => [o.name, o.shape]));
    expect(out.cls).toEqual([1, 2, 16, 16]);
    expect(out.reg).toEqual([1, 14, 16, 16]);
    expect(desc.inputs.find((i) => i.name === 'features')!.shape).toEqual(['agents', 8, 16, 16]);
  });

  it('trains: finite losses, checkpoint and optimizer files, validation AP in [0, 1]', async () => {
    const out = path.join(root, 'straight');
    const r = await train({ ...common(), out, steps: 4, valEvery: 2, checkpointEvery: 2 });
    runs.straight = r;
    expect(r.step).toBe(4);
    expect(r.losses).toHaveLength(4);
    for (const l of r.losses) expect(Number.isFinite(l) && l > 0).toBe(true);
    expect(r.checkpoint).toBe(path.join(out, CHECKPOINT_FILE));
    await fs.access(path.join(out, OPTIMIZER_FILE));
    const ckpt = await loadWeights(r.checkpoint);
    expect(ckpt.meta).toMatchObject({ step: 4, seed, stage: 1, type: 'm1', space: 'tiny', losses: r.losses });
    // Every parameter of both networks is in the checkpoint, and training moved the weights.
    const init = new Map([...initWeights(agentNetwork(TINY_MODELS.network, TINY_SPACE), seed), ...initWeights(TINY_EGO, seed + 1)]);
    expect([...ckpt.weights.keys()].sort()).toEqual([...init.keys()].sort());
    expect(maxAbsDiff(ckpt.weights.get('head.cls.weight')!.data, init.get('head.cls.weight')!.data)).toBeGreaterThan(1e-4);
    const opt = await loadWeights(path.join(out, OPTIMIZER_FILE));
    expect(opt.meta.step).toBe(4);
    const lines = (await fs.readFile(path.join(out, 'validation.jsonl'), 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines.map((l) => l.step)).toEqual([2, 4]);
    for (const l of lines) {
      expect(l.frames).toBe(1);
      expect(Object.keys(l.ap).sort()).toEqual(['AP@0.3', 'AP@0.5', 'AP@0.7']);
      for (const v of Object.values(l.ap) as number[]) expect(v >= 0 && v <= 1).toBe(true);
    }
    expect(r.validations.map((v) => v.step)).toEqual([2, 4]);
  });

  it('resuming 2 → 4 steps gives exactly the weights, Adam state and losses of 4 straight steps', async () => {
    const out = path.join(root, 'resumed');
    const first = await train({ ...common(), out, steps: 2 });
    // The same seed twice: the same losses (sampling, augmentation and initialisation are seeded).
    expect(first.losses).toEqual(runs.straight.losses.slice(0, 2));
    const second = await train({ ...common(), seed: 999, out, steps: 4, resume: true });
    expect(second.step).toBe(4);
    expect(second.losses).toEqual(runs.straight.losses);
    const [a, b] = await Promise.all([loadWeights(runs.straight.checkpoint), loadWeights(second.checkpoint)]);
    expect([...b.weights.keys()].sort()).toEqual([...a.weights.keys()].sort());
    for (const [name, w] of a.weights) expect(maxAbsDiff(w.data, b.weights.get(name)!.data), name).toBeLessThan(1e-6);
    const [oa, ob] = await Promise.all([loadWeights(path.join(root, 'straight', OPTIMIZER_FILE)), loadWeights(path.join(out, OPTIMIZER_FILE))]);
    expect(ob.weights.size).toBe(oa.weights.size);
    for (const [name, w] of oa.weights) expect(maxAbsDiff(w.data, ob.weights.get(name)!.data), name).toBeLessThan(1e-6);
  });

  it('a different seed gives different losses', async () => {
    const r = await train({ ...common(), seed: seed + 1, out: path.join(root, 'other-seed'), steps: 2 });
    expect(r.losses).not.toEqual(runs.straight.losses.slice(0, 2));
  });

  it('alignment of a type declared in --types-dir trains only its encoder and aligner', async () => {
    const typesDir = path.join(root, 'types');
    await fs.mkdir(typesDir);
    const { encoder, aligner } = tinyLidar('tinylidar32', 1);
    await fs.writeFile(
      path.join(typesDir, 'tinylidar32.json'),
      JSON.stringify({
        name: 'tinylidar32',
        description: 'LiDAR-32, tiny PointPillars (test)',
        modality: 'lidar',
        sensor: { lidar: 32 },
        profiles: { tiny: { encoder, aligner } },
      }),
    );
    const base = runs.straight.checkpoint;
    const out = path.join(root, 'aligned');
    const r = await train({ ...common(), out, steps: 2, valEvery: 2, align: { type: 'tinylidar32', base, typesDirs: [typesDir] } });
    for (const l of r.losses) expect(Number.isFinite(l)).toBe(true);
    expect(r.validations).toHaveLength(1);
    const [b, a] = await Promise.all([loadWeights(base), loadWeights(r.checkpoint)]);
    expect(a.meta).toMatchObject({ stage: 2, type: 'tinylidar32', step: 2 });
    // Everything of the base, fusion and head included, is bit-identical.
    const frozen = [...b.weights.keys()];
    expect(frozen.some((n) => n.startsWith('fusion.')) && frozen.some((n) => n.startsWith('head.'))).toBe(true);
    for (const name of frozen) expect(Buffer.from(a.weights.get(name)!.data.buffer).equals(Buffer.from(b.weights.get(name)!.data.buffer)), name).toBe(true);
    // The new type's parameters are there, and its trained ones moved from their initial values.
    const desc = agentNetwork(tinyLidar('tinylidar32', 1), TINY_SPACE);
    const init = initWeights(desc, seed);
    expect(desc.params.every((p) => a.weights.has(p.name))).toBe(true);
    const trained = desc.params.filter((p) => p.trainable && (p.init === 'he' || p.init === 'glorot'));
    expect(trained.some((p) => p.name.startsWith('encoder.tinylidar32.')) && trained.some((p) => p.name.startsWith('aligner.tinylidar32.'))).toBe(true);
    for (const p of trained) expect(maxAbsDiff(a.weights.get(p.name)!.data, init.get(p.name)!.data), p.name).toBeGreaterThan(1e-5);
    expect(a.weights.size).toBe(b.weights.size + desc.params.length);
  });
});

describe('camera alignment with depth supervision (tiny)', () => {
  let root: string;
  let data: string;
  let base: string;
  const typesDir = () => path.join(root, 'types');
  // A camera type scaled to the tiny space: 32×24 input, 4×3 feature map, 8 depth bins.
  const tinyCamera = {
    name: 'tinycam',
    description: 'cameras, tiny Lift-Splat (test)',
    modality: 'camera',
    sensor: { cameras: ['camera0', 'camera1', 'camera2', 'camera3'] },
    profiles: {
      tiny: {
        encoder: {
          arch: 'lss',
          imageSize: [32, 24],
          downsample: 8,
          depthBins: { mode: 'LID', min: 2, max: 50, count: 8 },
          imageBackbone: {
            kind: 'resnet',
            stem: { channels: 8, stride: 2 },
            stages: [
              { channels: 8, blocks: 1, stride: 2 },
              { channels: 8, blocks: 1, stride: 2 },
            ],
          },
          contextChannels: 8,
          bev: { channels: 8, blocks: 1 },
        },
        aligner: { inChannels: 8, channels: 8, blocks: 1, batchNorm: true },
      },
    },
  };
  const run = async (out: string, depth: number, dataDir = data) => {
    const parts: Record<string, number>[] = [];
    const logs: string[] = [];
    const r = await train({
      data: dataDir,
      out: path.join(root, out),
      models: TINY_MODELS,
      seed: 3,
      steps: 2,
      valFrames: 1,
      augment: false,
      align: { type: 'tinycam', base, typesDirs: [typesDir()] },
      lossWeights: { ...DEFAULT_LOSS_WEIGHTS, depth },
      log: (l) => logs.push(l),
      onStep: (i) => parts.push(i.parts),
    });
    return { r, parts, logs, weights: (await loadWeights(r.checkpoint)).weights };
  };

  beforeAll(async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'heal-camalign-'));
    data = await testWorld();
    await fs.mkdir(typesDir());
    await fs.writeFile(path.join(typesDir(), 'tinycam.json'), JSON.stringify(tinyCamera));
    base = path.join(root, 'base.bin');
    await saveWeights(base, new Map([...initWeights(agentNetwork(TINY_MODELS.network, TINY_SPACE), 1), ...initWeights(TINY_EGO, 2)]), {});
  }, WORLD_TIMEOUT_MS);
  afterAll(async () => {
    if (root) await fs.rm(root, { recursive: true, force: true });
  });

  it('adds a depth term from the depth maps, which trains the depth layer; weight 0 leaves it out', async () => {
    const on = await run('depth-on', 1);
    const off = await run('depth-off', 0);
    expect(on.logs.join('\n')).toMatch(/depth distribution is supervised by the dataset's depth maps/);
    for (const p of on.parts) expect(p.depth > 0 && Number.isFinite(p.depth)).toBe(true);
    for (const p of off.parts) expect(p.depth).toBeUndefined();
    // The first step's detection parts are the same (same seed, same frame); the depth term is on top.
    expect(on.r.losses[0]).toBeGreaterThan(off.r.losses[0]);
    expect(on.parts[0].cls).toBeCloseTo(off.parts[0].cls, 5);
    const name = 'encoder.tinycam.depth.weight';
    expect(maxAbsDiff(on.weights.get(name)!.data, off.weights.get(name)!.data)).toBeGreaterThan(1e-5);
  });

  it('frames without depth maps train without the depth term, and say so once', async () => {
    const bare = await copySplit('train', path.join(root, 'no-depth'));
    for (const f of await fs.readdir(bare, { recursive: true })) if (/_depth\d\.png$/.test(f)) await fs.rm(path.join(bare, f));
    const r = await run('no-depth-run', 1, bare);
    for (const p of r.parts) expect(p.depth).toBeUndefined();
    expect(r.logs.filter((l) => /has no depth map for every camera/.test(l))).toHaveLength(1);
  });
});

describe('CLI', () => {
  function heal(args: string[]): Promise<{ code: number | null; out: string; err: string }> {
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [fileURLToPath(new URL('../../cli/heal.js', import.meta.url)), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '',
        err = '';
      child.stdout.on('data', (d) => (out += d));
      child.stderr.on('data', (d) => (err += d));
      child.on('error', reject);
      child.on('close', (code) => resolve({ code, out, err }));
    });
  }

  it('--help exits 0; bad or missing options fail naming the option', async () => {
    const tmp = os.tmpdir();
    const [trainHelp, alignHelp, badSteps, badStepsEq, noBase] = await Promise.all([
      heal(['train', '--help']),
      heal(['align', '--help']),
      heal(['train', '--data', tmp, '--out', path.join(tmp, 'heal-never'), '--steps', '-1']),
      heal(['train', '--data', tmp, '--out', path.join(tmp, 'heal-never'), '--steps=-1']),
      heal(['align', '--type', 'm2', '--data', tmp, '--out', path.join(tmp, 'heal-never')]),
    ]);
    expect(trainHelp.code).toBe(0);
    expect(trainHelp.out).toMatch(/usage: heal train/);
    expect(trainHelp.out).toMatch(/--resume/);
    expect(alignHelp.code).toBe(0);
    expect(alignHelp.out).toMatch(/usage: heal align/);
    expect(alignHelp.out).toMatch(/--types-dir/);
    expect(badSteps.code).not.toBe(0);
    expect(badSteps.err).toMatch(/--steps/);
    expect(badStepsEq.code).not.toBe(0);
    expect(badStepsEq.err).toMatch(/--steps must be an integer >= 1 \(got "-1"\)/);
    expect(noBase.code).not.toBe(0);
    expect(noBase.err).toMatch(/missing --base/);
  });
});

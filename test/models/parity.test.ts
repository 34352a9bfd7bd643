// One description, two runtimes: every network and every op runs through TensorFlow.js (cpu
// backend) and onnxruntime-node (CPU) with the same seeded weights and inputs; outputs must agree
// to 1e-4. Also: gradients reach every trainable variable, and weight files round-trip.

import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { GraphBuilder, type GraphDesc, type HostTensor } from '../../models/graph.ts';
import { initWeights, encodeWeights, decodeWeights, checkWeights, pickWeights, type Weights } from '../../models/weights.ts';
import { buildTfModel } from '../../models/tfjs.ts';
import { exportOnnx, onnxOpsOf } from '../../models/onnx.ts';
import { OPS } from '../../models/ops.ts';
import { createSession, runSession } from '../../models/runtime.ts';
import { bevBackbone, HEAL_BACKBONE, type BackboneConfig } from '../../models/layers/backbone.ts';
import { pyramidFusion, pyramidLevelSizes, type PyramidFusionConfig } from '../../fusion/networks/pyramid.ts';
import { addPillarFeatureNet } from '../../perception/encoders/pointpillars.ts';
import { fusionConfigFor, levelValidity } from '../../fusion/pipeline.ts';
import { HEAL_SPACE } from '../../perception/space.ts';
import { detectionHead } from '../../fusion/networks/head.ts';
import { aligner } from '../../perception/encoders/aligner.ts';
import { warpNetwork, affineGrid, affineGrids } from '../../fusion/networks/warp.ts';
import { egoNetwork } from '../../fusion/networks/ego.ts';
import { rngFor } from '../../datasets/rng.ts';
import { DataError } from '../../datasets/io.ts';

const TOL = 1e-4;

beforeAll(async () => {
  await tf.setBackend('cpu');
});

/** Seeded weights with every parameter randomised, so identity-like BN stats cannot hide a bug. */
function randomWeights(desc: GraphDesc, seed: number): Weights {
  const w = initWeights(desc, seed);
  for (const p of desc.params) {
    if (p.init === 'he' || p.init === 'glorot') continue;
    const rng = rngFor('test-weights', seed, p.name);
    const d = w.get(p.name)!.data;
    const positive = p.name.endsWith('.var') || p.name.endsWith('.gamma');
    for (let i = 0; i < d.length; i++) d[i] = positive ? rng.uniform(0.5, 1.5) : rng.normal() * 0.1;
  }
  return w;
}

function randomFloats(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  const rng = rngFor('test-input', seed);
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.uniform(lo, hi);
  return a;
}

function host(data: Float32Array | Int32Array, shape: number[]): HostTensor {
  return { data, shape };
}

function toTf(inputs: Record<string, HostTensor>): Record<string, tf.Tensor> {
  const out: Record<string, tf.Tensor> = {};
  for (const [k, v] of Object.entries(inputs)) out[k] = tf.tensor(v.data, v.shape, v.data instanceof Int32Array ? 'int32' : 'float32');
  return out;
}

/** Runs both runtimes; returns max |diff| per output (and checks shapes agree). */
async function parity(desc: GraphDesc, weights: Weights, inputs: Record<string, HostTensor>): Promise<Record<string, number>> {
  const model = buildTfModel(desc, weights);
  const tfIn = toTf(inputs);
  const tfOut = model.apply(tfIn);
  const { session, provider } = await createSession(exportOnnx(desc, weights), { device: 'cpu' });
  expect(provider).toBe('cpu');
  const ortOut = await runSession(session, inputs);
  const diffs: Record<string, number> = {};
  for (const o of desc.outputs) {
    const a = tfOut[o.name];
    const b = ortOut[o.name];
    expect(b.shape, `shape of ${o.name}`).toEqual(a.shape);
    const av = a.dataSync();
    let md = 0;
    for (let i = 0; i < av.length; i++) {
      const d = Math.abs(av[i] - b.data[i]);
      md = Number.isNaN(d) ? Infinity : Math.max(md, d);
    }
    diffs[o.name] = md;
  }
  await session.release();
  Object.values(tfIn).forEach((t) => t.dispose());
  Object.values(tfOut).forEach((t) => t.dispose());
  model.dispose();
  return diffs;
}

function expectParity(diffs: Record<string, number>): void {
  for (const [name, d] of Object.entries(diffs)) expect(d, `max |tfjs − onnx| of "${name}"`).toBeLessThanOrEqual(TOL);
}

/** Every trainable variable gets a finite, non-zero gradient from a scalar loss on all outputs. */
function expectGradients(desc: GraphDesc, weights: Weights, inputs: Record<string, HostTensor>): void {
  const model = buildTfModel(desc, weights);
  const tfIn = toTf(inputs);
  const vars = model.trainableVariables();
  expect(vars.length).toBe(desc.params.filter((p) => p.trainable).length);
  const { value, grads } = tf.variableGrads(() => {
    const out = model.apply(tfIn, { training: true });
    let loss = tf.scalar(0);
    for (const [i, t] of Object.values(out).entries()) {
      const r = tf.tensor(randomFloats(t.size, 900 + i), t.shape);
      loss = tf.add(loss, tf.add(tf.mean(tf.mul(t, r)), tf.mean(tf.square(t))));
    }
    return loss as tf.Scalar;
  }, vars);
  expect(Number.isFinite(value.dataSync()[0])).toBe(true);
  const names = [...model.variables].filter(([, v]) => v.trainable).map(([n]) => n);
  const missing: string[] = [];
  for (const [i, v] of vars.entries()) {
    const g = grads[v.name];
    if (!g) {
      missing.push(names[i]);
      continue;
    }
    const gv = g.dataSync();
    expect(gv.every(Number.isFinite), `gradient of ${names[i]} is finite`).toBe(true);
    if (!gv.some((x) => x !== 0)) missing.push(names[i]);
  }
  expect(missing, 'parameters without gradient').toEqual([]);
  tf.dispose([value, ...Object.values(grads), ...Object.values(tfIn)]);
  model.dispose();
}

const tinyBackbone: BackboneConfig = {
  inChannels: 6,
  layerNums: [1, 2, 1],
  layerStrides: [1, 2, 2],
  numFilters: [6, 8, 12],
  upsampleStrides: [1, 2, 4],
  numUpsampleFilters: [4, 4, 4],
  batchNorm: true,
};
const tinyFusion: PyramidFusionConfig = { backbone: tinyBackbone, height: 12, width: 16, shrinkChannels: 8 };

/** Coverage masks with whole regions of agents 1.. missing, as warped maps have. */
function coverageMask(agents: number, h: number, w: number): Float32Array {
  const m = new Float32Array(agents * h * w).fill(1);
  for (let a = 1; a < agents; a++) {
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) if ((a % 2 ? x : y) < (a * 3) % w) m[(a * h + y) * w + x] = 0;
    }
  }
  return m;
}

describe('networks: tfjs and onnxruntime agree', () => {
  it('bevBackbone (random weights)', async () => {
    const desc = bevBackbone(tinyBackbone, { height: 12, width: 16 });
    const inputs = { bev: host(randomFloats(3 * 6 * 12 * 16, 1), [3, 6, 12, 16]) };
    const weights = randomWeights(desc, 11);
    expectParity(await parity(desc, weights, inputs));
    expectGradients(desc, weights, inputs);
  });

  it('pyramidFusion (masked softmax over agents) (random weights)', async () => {
    const desc = pyramidFusion(tinyFusion);
    expect(desc.outputs.map((o) => o.name)).toEqual(['fused', 'occ0', 'occ1', 'occ2']);
    expect(desc.outputs.map((o) => o.shape)).toEqual([
      [1, 8, 12, 16],
      ['agents', 1, 12, 16],
      ['agents', 1, 6, 8],
      ['agents', 1, 3, 4],
    ]);
    const A = 3;
    const inputs = {
      features: host(randomFloats(A * 6 * 12 * 16, 2), [A, 6, 12, 16]),
      mask: host(coverageMask(A, 12, 16), [A, 1, 12, 16]),
    };
    const weights = randomWeights(desc, 12);
    expectParity(await parity(desc, weights, inputs));
    expectGradients(desc, weights, inputs);
  });

  it('pyramidFusion runs with a different number of agents (dynamic axis) (random weights)', async () => {
    const desc = pyramidFusion(tinyFusion);
    const inputs = {
      features: host(randomFloats(1 * 6 * 12 * 16, 3), [1, 6, 12, 16]),
      mask: host(coverageMask(1, 12, 16), [1, 1, 12, 16]),
    };
    expectParity(await parity(desc, randomWeights(desc, 13), inputs));
  });

  it('detectionHead (random weights)', async () => {
    const desc = detectionHead({ inChannels: 8, anchors: 2, dirBins: 2 }, { height: 12, width: 16 });
    expect(desc.outputs.map((o) => o.shape)).toEqual([
      ['batch', 2, 12, 16],
      ['batch', 14, 12, 16],
      ['batch', 4, 12, 16],
    ]);
    // Focal-loss prior on the classification bias.
    expect(initWeights(desc, 1).get('head.cls.bias')!.data[0]).toBeCloseTo(-Math.log(99), 5);
    const inputs = { fused: host(randomFloats(8 * 12 * 16, 4), [1, 8, 12, 16]) };
    const weights = randomWeights(desc, 14);
    expectParity(await parity(desc, weights, inputs));
    expectGradients(desc, weights, inputs);
  });

  it('aligner (channel change in the first block) (random weights)', async () => {
    const desc = aligner({ inChannels: 5, channels: 6, blocks: 2, batchNorm: true }, { height: 8, width: 8 }, 'aligner.m2');
    expect(desc.params.every((p) => p.name.startsWith('aligner.m2.'))).toBe(true);
    const inputs = { features: host(randomFloats(2 * 5 * 64, 5), [2, 5, 8, 8]) };
    const weights = randomWeights(desc, 15);
    expectParity(await parity(desc, weights, inputs));
    expectGradients(desc, weights, inputs);
  });

  it('warp (GridSample) with rotations and translations, border and outside samples', async () => {
    const desc = warpNetwork({ channels: 3, height: 9, width: 11 });
    const thetas = [
      [1, 0, 0, 0, 1, 0],
      [Math.cos(0.3), -Math.sin(0.3), 0.37, Math.sin(0.3), Math.cos(0.3), -0.21],
      [0.8, 0.2, 0.9, -0.3, 1.1, 0.5], // partly outside the source map
    ];
    const inputs = {
      features: host(randomFloats(3 * 3 * 9 * 11, 6), [3, 3, 9, 11]),
      valid: host(new Float32Array(3 * 9 * 11).fill(1), [3, 1, 9, 11]),
      grid: host(affineGrids(thetas, 9, 11), [3, 9, 11, 2]),
    };
    expectParity(await parity(desc, new Map(), inputs));
  });

  it('ego network: warp → pyramid fusion → head in one graph (random weights)', async () => {
    const desc = egoNetwork({ fusion: tinyFusion, head: { anchors: 2, dirBins: 2 } });
    const A = 2;
    const inputs = {
      features: host(randomFloats(A * 6 * 12 * 16, 7), [A, 6, 12, 16]),
      valid: host(new Float32Array(A * 12 * 16).fill(1), [A, 1, 12, 16]),
      grid: host(
        affineGrids(
          [
            [1, 0, 0, 0, 1, 0],
            [Math.cos(0.5), -Math.sin(0.5), 0.6, Math.sin(0.5), Math.cos(0.5), 0.2],
          ],
          12,
          16,
        ),
        [A, 12, 16, 2],
      ),
    };
    const weights = randomWeights(desc, 17);
    expectParity(await parity(desc, weights, inputs));
    expectGradients(desc, weights, inputs);
    // The standalone networks use the same parameter names, so their weights slot in.
    const fusionDesc = pyramidFusion(tinyFusion);
    expect(() => pickWeights(fusionDesc, weights)).not.toThrow();
  });
});

describe('every op of models/ops.ts: tfjs and onnxruntime agree', () => {
  it('one graph uses every op of the table (both batch-norm forms, linear with and without bias) (random weights)', async () => {
    const g = new GraphBuilder('every-op');
    const x = g.input('x', ['n', 4, 6, 6]);
    const index = g.input('index', [3], 'int32');
    const grid = g.input('grid', ['n', 3, 3, 2]);
    let y = g.batchNorm(g.conv2d(x, { name: 'conv', out: 4, kernel: 3, groups: 2 }), { name: 'bn' });
    // Padded pooling of values of both signs: a padded cell must never win (−∞, not 0).
    g.output('pooledPadded', g.maxPool(y, 3, 2, 'poolPad', 1));
    y = g.convTranspose2d(g.maxPool(y, 2), { name: 'deconv', out: 4, kernel: 2 });
    // Layer norm over the channels of an NCHW map (spelt out in ONNX), then exact GELU.
    y = g.gelu(g.layerNorm(y, { name: 'ln', axis: 1, epsilon: 1e-6 }));
    // Kept well conditioned (denominator ≥ 1) so the comparison tests the ops, not float32 rounding.
    const one = g.constant('one', [1], [1]);
    y = g.sub(g.mul(g.relu(y), g.sigmoid(y)), g.div(g.exp(g.sigmoid(y)), g.add(one, g.exp(y))));
    g.output('padded', g.pad(y, [0, 0, 1, 2], [0, 1, 2, 0]));
    let p = g.reshape(g.transpose(y, [0, 2, 3, 1]), [0, -1, 4]);
    p = g.batchNorm(p, { name: 'bnLast', axis: -1 });
    // Layer norm over the last axis (ONNX LayerNormalization).
    p = g.layerNorm(p, { name: 'lnLast' });
    p = g.linear(g.linear(p, { name: 'fc1', out: 5 }), { name: 'fc2', out: 5, bias: false });
    p = g.cumsum(g.softmax(g.reshape(p, [-1, 5]), 0), 0);
    g.output('rows', g.gather(p, index, 0));
    // A running sum accumulated in float64 (ONNX) against tfjs's float32 one.
    g.output('sums64', g.cumsum(p, 0, 'sums64', 'float64'));
    g.output('reduced', g.concat([g.reduceMax(p, 1, true), g.reduceSum(p, 1, true), g.reduceMean(p, 1, true)], 1));
    // sign of the sampled input: 0 exactly where a sample falls outside the map (HEAL's coverage indicator).
    g.output('sampled', g.mul(g.gridSample(y, grid), g.sign(g.gridSample(x, grid))));
    const desc = g.build();
    // Fails for an op added to OPS until this graph uses it.
    expect([...new Set(desc.nodes.map((n) => n.op))].sort()).toEqual(Object.keys(OPS).sort());
    // Batch norm over axis 1 exports as BatchNormalization, over any other axis as a folded Mul/Add.
    expect(desc.nodes.flatMap((n) => (n.op === 'batchNorm' ? [n.axis] : []))).toEqual([1, 2]);
    const N = 2;
    const inputs = {
      x: host(randomFloats(N * 4 * 36, 81), [N, 4, 6, 6]),
      index: host(Int32Array.from([0, 40, N * 36 - 1]), [3]),
      grid: host(
        affineGrids(
          [
            [1, 0, 0, 0, 1, 0],
            [0.8, 0.2, 0.9, -0.3, 1.1, 0.5],
          ],
          3,
          3,
        ),
        [N, 3, 3, 2],
      ),
    };
    const weights = randomWeights(desc, 81);
    expectParity(await parity(desc, weights, inputs));
    expectGradients(desc, weights, inputs);
  });
});

/** A tiny HEAL-style pyramid: ResNeXt bottlenecks (4 groups), per-level warping, DoubleConv shrink. */
const tinyBottleneck: BackboneConfig = { ...tinyBackbone, inChannels: 8, numFilters: [8, 8, 16], block: 'bottleneck', groups: 4, widthPerGroup: 16 };
const tinyHealFusion: PyramidFusionConfig = { backbone: tinyBottleneck, height: 12, width: 16, shrinkChannels: 8, shrink: 'double-conv', warp: 'per-level' };

/** Per-level inputs for `thetas` (agent → ego), with validity and trust. */
function perLevelHostInputs(thetas: number[][], features: Float32Array, valid: Float32Array, trust: number[]): Record<string, HostTensor> {
  const A = thetas.length;
  const inputs: Record<string, HostTensor> = {
    features: host(features, [A, 8, 12, 16]),
    trust: host(Float32Array.from(trust), [A, 1, 1, 1]),
  };
  levelValidity(tinyHealFusion, valid, []).forEach((v, l) => {
    inputs[`valid${l}`] = v;
  });
  pyramidLevelSizes(tinyHealFusion).forEach(([h, w], l) => {
    inputs[`grid${l}`] = host(affineGrids(thetas, h, w), [A, h, w, 2]);
  });
  return inputs;
}

const HEAL_THETAS = [
  [1, 0, 0, 0, 1, 0],
  [Math.cos(0.5), -Math.sin(0.5), 0.6, Math.sin(0.5), Math.cos(0.5), 0.2], // partly outside the ego's map
  [0.8, 0.2, 0.9, -0.3, 1.1, 0.5],
];

describe("HEAL's pyramid pieces: tfjs and onnxruntime agree", () => {
  it('ResNeXt bottleneck backbone: grouped 3×3 carrying the stride, identity and projection shortcuts (random weights)', async () => {
    const desc = bevBackbone({ ...tinyBottleneck, inChannels: 6 }, { height: 12, width: 16 });
    // Width ⌊8·16/64⌋·4 = 8 in 4 groups of 2; the projection only where the stride or width changes.
    expect(desc.params.find((p) => p.name === 'backbone.level0.block0.conv2.conv.weight')!.shape).toEqual([8, 2, 3, 3]);
    expect(desc.params.find((p) => p.name === 'backbone.level2.block0.conv2.conv.weight')!.shape).toEqual([16, 4, 3, 3]);
    const downs = desc.params.filter((p) => p.name.endsWith('.down.conv.weight')).map((p) => p.name);
    expect(downs).toEqual(['backbone.level0.block0.down.conv.weight', 'backbone.level1.block0.down.conv.weight', 'backbone.level2.block0.down.conv.weight']);
    expect(desc.params.some((p) => p.name.includes('conv') && p.name.endsWith('.bias') && !p.name.includes('deblock'))).toBe(false);
    const inputs = { bev: host(randomFloats(2 * 6 * 12 * 16, 31), [2, 6, 12, 16]) };
    const weights = randomWeights(desc, 32);
    expectParity(await parity(desc, weights, inputs));
    expectGradients(desc, weights, inputs);
  });

  it('per-level fusion: warped features and scores, sign(score) coverage, validity and trust, DoubleConv shrink (random weights)', async () => {
    const desc = pyramidFusion(tinyHealFusion);
    expect(desc.inputs.map((i) => i.name)).toEqual(['features', 'valid0', 'valid1', 'valid2', 'trust', 'grid0', 'grid1', 'grid2']);
    expect(desc.params.filter((p) => p.name.startsWith('fusion.shrink.')).map((p) => p.name)).toEqual([
      'fusion.shrink.conv1.weight',
      'fusion.shrink.conv1.bias',
      'fusion.shrink.conv2.weight',
      'fusion.shrink.conv2.bias',
    ]);
    const A = 3;
    const valid = new Float32Array(A * 12 * 16).fill(1);
    for (let c = 0; c < 12 * 16; c += 3) valid[2 * 12 * 16 + c] = 0; // agent 2 sent a sparse message
    const inputs = perLevelHostInputs(HEAL_THETAS, randomFloats(A * 8 * 12 * 16, 33), valid, [1, 0.5, 1]);
    const weights = randomWeights(desc, 34);
    expectParity(await parity(desc, weights, inputs));
    expectGradients(desc, weights, inputs);
  });

  it('ego network, per-level: pyramid and head in one graph; intermediates on request (random weights)', async () => {
    const desc = egoNetwork({ fusion: tinyHealFusion, head: { anchors: 2, dirBins: 2 } }, { intermediates: true });
    expect(desc.outputs.map((o) => o.name)).toEqual(['cls', 'reg', 'dir', 'occ0', 'occ1', 'occ2', 'fused', 'fusedLevel0', 'fusedLevel1', 'fusedLevel2']);
    const A = 2;
    const inputs = perLevelHostInputs(HEAL_THETAS.slice(0, A), randomFloats(A * 8 * 12 * 16, 35), new Float32Array(A * 12 * 16).fill(1), [1, 1]);
    expectParity(await parity(desc, randomWeights(desc, 36), inputs));
  });

  it("per-level weights are HEAL's: an agent off the map, untrusted or sending nothing leaves the ego alone, exactly (random weights)", async () => {
    const desc = egoNetwork({ fusion: tinyHealFusion, head: { anchors: 2, dirBins: 2 } }, { intermediates: true });
    const { session } = await createSession(exportOnnx(desc, randomWeights(desc, 37)), { device: 'cpu' });
    const ego = randomFloats(8 * 12 * 16, 38);
    const other = randomFloats(8 * 12 * 16, 39, -3, 3);
    const both = Float32Array.from([...ego, ...other]);
    const ones = new Float32Array(2 * 12 * 16).fill(1);
    const run = (inputs: Record<string, HostTensor>) => runSession(session, inputs);
    const alone = await run(perLevelHostInputs([HEAL_THETAS[0]], ego, ones.subarray(0, 12 * 16), [1]));
    const offMap = await run(perLevelHostInputs([HEAL_THETAS[0], [1, 0, 5, 0, 1, 0]], both, ones, [1, 1]));
    const untrusted = await run(perLevelHostInputs(HEAL_THETAS.slice(0, 2), both, ones, [1, 0]));
    const silent = await run(perLevelHostInputs(HEAL_THETAS.slice(0, 2), both, Float32Array.from(ones).fill(0, 12 * 16), [1, 1]));
    const fused = await run(perLevelHostInputs(HEAL_THETAS.slice(0, 2), both, ones, [1, 1]));
    for (const name of ['fusedLevel0', 'fusedLevel1', 'fusedLevel2', 'cls']) {
      for (const out of [offMap, untrusted, silent]) expect(Array.from(out[name].data)).toEqual(Array.from(alone[name].data));
      expect(fused[name].data).not.toEqual(alone[name].data);
    }
    // The ego's own-frame occupancy does not depend on the others.
    expect(Array.from(fused.occ0.data.subarray(0, 12 * 16))).toEqual(Array.from(alone.occ0.data));
    await session.release();
  });

  it('PFN with zero points for padded slots: their batch-norm constant takes part in the max, as in HEAL (random weights)', async () => {
    const C = 16;
    const g = new GraphBuilder('pfn-heal');
    const x = g.input('features', ['pillars', 4, 10]);
    const m = g.input('mask', ['pillars', 4]);
    g.output('pillars', addPillarFeatureNet(g, x, m, C, 'pfn', 'zero-points'));
    const desc = g.build();
    const weights = randomWeights(desc, 41);
    // Garbage in the padded slots: the mask makes them zero points whatever they hold.
    const feats = randomFloats(2 * 4 * 10, 42, -2, 2);
    const mask = Float32Array.from([1, 0, 0, 0, 1, 1, 1, 1]);
    const inputs = { features: host(feats, [2, 4, 10]), mask: host(mask, [2, 4]) };
    expectParity(await parity(desc, weights, inputs));
    // Reference: max over slots of relu(bn(x·W)), a padded slot being x = 0; and the max over real points only.
    const W = weights.get('pfn.linear.weight')!.data; // [10, C]
    const [gamma, beta, mean, variance] = ['gamma', 'beta', 'mean', 'var'].map((k) => weights.get(`pfn.bn.${k}`)!.data);
    const heal = new Float32Array(2 * C);
    const realOnly = new Float32Array(2 * C);
    for (let p = 0; p < 2; p++) {
      for (let c = 0; c < C; c++) {
        let best = -Infinity;
        let bestReal = 0;
        for (let s = 0; s < 4; s++) {
          let v = 0;
          if (mask[p * 4 + s]) for (let k = 0; k < 10; k++) v += feats[(p * 4 + s) * 10 + k] * W[k * C + c];
          const y = Math.max(0, ((v - mean[c]) / Math.sqrt(variance[c] + 1e-3)) * gamma[c] + beta[c]);
          best = Math.max(best, y);
          if (mask[p * 4 + s]) bestReal = Math.max(bestReal, y);
        }
        heal[p * C + c] = best;
        realOnly[p * C + c] = bestReal;
      }
    }
    const { session } = await createSession(exportOnnx(desc, weights), { device: 'cpu' });
    const out = (await runSession(session, inputs)).pillars.data;
    await session.release();
    for (let i = 0; i < heal.length; i++) expect(out[i]).toBeCloseTo(heal[i], 5);
    // Pillar 0 (three padded slots) differs from a max over its one real point; pillar 1 (full) does not.
    expect(Array.from(heal.subarray(0, C)).some((v, c) => v > realOnly[c] + 1e-3)).toBe(true);
    expect(Array.from(heal.subarray(C))).toEqual(Array.from(realOnly.subarray(C)));
  });
});

describe('fusion semantics', () => {
  it('an agent masked out at a cell gets weight 0 there; a cell nobody covers fuses to 0; weights sum to 1 (random weights)', () => {
    // One level and a 1×1 deblock: a fused output cell depends only on the fused level at that cell,
    // and each agent's level features depend only on that agent.
    const cfg: PyramidFusionConfig = {
      backbone: { inChannels: 2, layerNums: [1], layerStrides: [1], numFilters: [3], upsampleStrides: [1], numUpsampleFilters: [3], batchNorm: false },
      height: 2,
      width: 2,
      shrinkChannels: 0,
    };
    const desc = pyramidFusion(cfg);
    const weights = randomWeights(desc, 21);
    const model = buildTfModel(desc, weights);
    const x0 = randomFloats(2 * 4, 22);
    const x1 = randomFloats(2 * 4, 23, -5, 5);
    const run = (feats: Float32Array[], mask: number[]) =>
      model
        .apply({
          features: tf.tensor(
            feats.flatMap((f) => Array.from(f)),
            [feats.length, 2, 2, 2],
          ),
          mask: tf.tensor(mask, [feats.length, 1, 2, 2]),
        })
        .fused.dataSync();
    // Cells: 0 = (0,0), 3 = (1,1). Agent 1 misses cell 0; nobody covers cell 3.
    const both = run([x0, x1], [1, 1, 1, 0, 0, 1, 1, 0]);
    const alone = run([x0], [1, 1, 1, 0]);
    const bias = weights.get('fusion.deblock0.deconv.bias')!.data;
    for (let c = 0; c < 3; c++) {
      expect(both[c * 4 + 0]).toBeCloseTo(alone[c * 4 + 0], 6);
      expect(both[c * 4 + 3]).toBeCloseTo(Math.max(0, bias[c]), 6);
      expect(both[c * 4 + 1]).not.toBeCloseTo(alone[c * 4 + 1], 3); // agent 1 does count where it covers
    }
    // Two copies of one agent fuse to that agent alone: the weights over agents sum to 1.
    const twice = run([x0, x0], [1, 1, 1, 1, 1, 1, 1, 1]);
    const once = run([x0], [1, 1, 1, 1]);
    for (let i = 0; i < twice.length; i++) expect(twice[i]).toBeCloseTo(once[i], 5);
    model.dispose();
  });
});

describe('encoder ops (for PointPillars and Lift-Splat encoders): tfjs and onnxruntime agree', () => {
  it('PFN: linear on [P, N, 10], batch norm over the last axis, point mask, max over points (random weights)', async () => {
    const g = new GraphBuilder('pfn');
    const pts = g.input('points', ['pillars', 8, 10]);
    const mask = g.input('pointMask', ['pillars', 8, 1]);
    let y = g.linear(pts, { name: 'pfn.linear', out: 16, bias: false });
    y = g.relu(g.batchNorm(y, { name: 'pfn.bn', axis: -1, epsilon: 1e-3 }));
    y = g.mul(y, mask);
    g.output('pillarFeatures', g.reduceMax(y, 1));
    const desc = g.build();
    expect(desc.outputs[0].shape).toEqual(['pillars', 16]);
    const P = 5;
    const m = new Float32Array(P * 8);
    for (let p = 0; p < P; p++) for (let n = 0; n <= p; n++) m[p * 8 + n] = 1;
    const inputs = { points: host(randomFloats(P * 8 * 10, 31), [P, 8, 10]), pointMask: host(m, [P, 8, 1]) };
    const weights = randomWeights(desc, 31);
    expectParity(await parity(desc, weights, inputs));
    expectGradients(desc, weights, inputs);
    expect(onnxOpsOf(desc)).toEqual(['MatMul', 'Mul', 'Add', 'Relu', 'ReduceMax', 'Identity']);
  });

  it('pillar scatter: gather rows of [zero row; pillars] by a cell index, to NCHW', async () => {
    const C = 4;
    const H = 3;
    const W = 5;
    const g = new GraphBuilder('scatter');
    const feats = g.input('pillarFeatures', ['pillars', C]);
    const index = g.input('cellIndex', [H * W], 'int32');
    const zero = g.constant('scatter.zero_row', [1, C], new Array(C).fill(0));
    const rows = g.gather(g.concat([zero, feats], 0), index, 0);
    g.output('bev', g.transpose(g.reshape(rows, [1, H, W, C]), [0, 3, 1, 2]));
    const desc = g.build();
    const P = 4;
    const idx = new Int32Array(H * W); // 0 = empty cell, p + 1 = pillar p
    [
      [2, 0],
      [7, 1],
      [8, 2],
      [14, 3],
    ].forEach(([cell, p]) => (idx[cell] = p + 1));
    const inputs = { pillarFeatures: host(randomFloats(P * C, 32), [P, C]), cellIndex: host(idx, [H * W]) };
    const diffs = await parity(desc, new Map(), inputs);
    expectParity(diffs);
    // Check the scatter itself, not just agreement.
    const model = buildTfModel(desc, new Map());
    const bev = model.apply(toTf(inputs)).bev.arraySync() as number[][][][];
    expect(bev[0][1][1][2]).toBeCloseTo(inputs.pillarFeatures.data[1 * C + 1], 6); // cell 7 = (1,2) holds pillar 1; channel 1
    expect(bev[0][0][0][0]).toBe(0);
    model.dispose();
  });

  it('cumsum splat: per-cell sums of sorted frustum features without ScatterND', async () => {
    const C = 3;
    const g = new GraphBuilder('splat');
    const feats = g.input('pointFeatures', ['points', C]); // sorted by cell
    const ends = g.input('runEnd', ['cells'], 'int32'); // index into [0; cumsum] of each run's last point + 1
    const starts = g.input('runStart', ['cells'], 'int32'); // index of the row before the run
    const zero = g.constant('splat.zero_row', [1, C], new Array(C).fill(0));
    const cs = g.concat([zero, g.cumsum(feats, 0)], 0);
    const sums = g.sub(g.gather(cs, ends, 0), g.gather(cs, starts, 0));
    g.output('cellSums', sums);
    // Also the softmax/reduce helpers an encoder may need on depth bins.
    g.output('depthProb', g.softmax(feats, 1));
    g.output('overPoints', g.softmax(feats, 0)); // ONNX Softmax on a non-last axis
    g.output('meanOverPoints', g.reduceMean(feats, 0, true));
    const desc = g.build();
    const runs = [3, 1, 4, 2]; // points per occupied cell
    const M = runs.reduce((a, b) => a + b, 0);
    const startIdx: number[] = [];
    const endIdx: number[] = [];
    let o = 0;
    for (const r of runs) {
      startIdx.push(o);
      o += r;
      endIdx.push(o);
    }
    const data = randomFloats(M * C, 33);
    const inputs = {
      pointFeatures: host(data, [M, C]),
      runEnd: host(Int32Array.from(endIdx), [runs.length]),
      runStart: host(Int32Array.from(startIdx), [runs.length]),
    };
    expectParity(await parity(desc, new Map(), inputs));
    const model = buildTfModel(desc, new Map());
    const got = model.apply(toTf(inputs)).cellSums.dataSync();
    let p = 0;
    for (const [k, r] of runs.entries()) {
      for (let c = 0; c < C; c++) {
        let s = 0;
        for (let i = p; i < p + r; i++) s += data[i * C + c];
        expect(got[k * C + c]).toBeCloseTo(s, 5);
      }
      p += r;
    }
    model.dispose();
  });

  it('cumsum, gather, concat and softmax along non-last axes are differentiable (finite differences)', () => {
    const g = new GraphBuilder('splat-grad');
    const feats = g.input('pointFeatures', [5, 3]);
    const idx = g.input('index', [4], 'int32');
    const zero = g.constant('zero_row', [1, 3], [0, 0, 0]);
    const cs = g.concat([zero, g.cumsum(feats, 0)], 0);
    g.output('out', g.softmax(g.gather(cs, idx, 0), 0));
    const desc = g.build();
    const model = buildTfModel(desc, new Map());
    const index = tf.tensor1d([5, 2, 0, 3], 'int32');
    const r = tf.tensor(randomFloats(12, 36), [4, 3]);
    const f = (x: tf.Tensor) => tf.sum(tf.mul(model.apply({ pointFeatures: x, index }).out, r)) as tf.Scalar;
    const x0 = randomFloats(15, 37);
    const grad = tf
      .grad(f)(tf.tensor(x0, [5, 3]))
      .dataSync();
    const h = 1e-2;
    for (let i = 0; i < 15; i++) {
      const up = x0.slice();
      const down = x0.slice();
      up[i] += h;
      down[i] -= h;
      const fd = (f(tf.tensor(up, [5, 3])).dataSync()[0] - f(tf.tensor(down, [5, 3])).dataSync()[0]) / (2 * h);
      expect(grad[i]).toBeCloseTo(fd, 2);
    }
    expect(grad.some((v) => Math.abs(v) > 1e-3)).toBe(true);
    model.dispose();
  });

  it('grouped and depthwise conv, conv bias, sub/div/exp, maxPool, reshape with 0 and -1 (random weights)', async () => {
    const g = new GraphBuilder('misc');
    const x = g.input('x', ['n', 4, 6, 6]);
    const a = g.conv2d(x, { name: 'grouped', out: 6, kernel: 3, groups: 2 });
    const b = g.conv2d(x, { name: 'depthwise', out: 8, kernel: 3, stride: 2, groups: 4 });
    const c = g.conv2d(x, { name: 'plain', out: 8, kernel: 1, stride: 2 });
    // Kept well conditioned (denominator ≥ 1) so the comparison tests the ops, not float32 rounding.
    const one = g.constant('one', [1], [1]);
    const d = g.div(g.exp(g.sigmoid(g.sub(b, c))), g.add(one, g.add(g.exp(c), g.sigmoid(b))));
    g.output('grouped', a);
    g.output('mixed', d);
    g.output('pooled', g.maxPool(a, 2));
    g.output('flat', g.reshape(a, [0, -1]));
    const desc = g.build();
    expect(desc.outputs.map((o) => o.shape)).toEqual([
      ['n', 6, 6, 6],
      ['n', 8, 3, 3],
      ['n', 6, 3, 3],
      ['n', 216],
    ]);
    const inputs = { x: host(randomFloats(2 * 4 * 36, 34), [2, 4, 6, 6]) };
    const weights = randomWeights(desc, 34);
    expectParity(await parity(desc, weights, inputs));
    expectGradients(desc, weights, inputs);
  });
});

describe('affineGrid and grid sampling', () => {
  it('affineGrid matches PyTorch affine_grid (align_corners=False) values', () => {
    // Identity on 2×4: x = (2j+1)/4 − 1, y = (2i+1)/2 − 1.
    const id = affineGrid([1, 0, 0, 0, 1, 0], 2, 4);
    expect(Array.from(id.subarray(0, 8))).toEqual([-0.75, -0.5, -0.25, -0.5, 0.25, -0.5, 0.75, -0.5]);
    expect(Array.from(id.subarray(8, 10))).toEqual([-0.75, 0.5]);
    // θ = [[0, -1, 0.5], [1, 0, 0]] at pixel (0, 3): x = 0.75, y = -0.5 → (0.5 + 0.5, 0.75)
    const r = affineGrid([0, -1, 0.5, 1, 0, 0], 2, 4);
    expect(r[6]).toBeCloseTo(1.0, 6);
    expect(r[7]).toBeCloseTo(0.75, 6);
    expect(() => affineGrid([1, 0, 0], 2, 2)).toThrow(/6 entries/);
  });

  it('identity grid reproduces the input; a one-pixel shift moves it; outside is zero', () => {
    const desc = warpNetwork({ channels: 2, height: 4, width: 5 });
    const model = buildTfModel(desc, new Map());
    const x = randomFloats(2 * 20, 41);
    const shift = 2 / 5; // one pixel to the right in normalised x
    const inputs = toTf({
      features: host(x, [1, 2, 4, 5]),
      valid: host(new Float32Array(20).fill(1), [1, 1, 4, 5]),
      grid: host(affineGrid([1, 0, 0, 0, 1, 0], 4, 5), [1, 4, 5, 2]),
    });
    const same = model.apply(inputs).warped.dataSync();
    for (let i = 0; i < x.length; i++) expect(same[i]).toBeCloseTo(x[i], 6);
    inputs.grid = tf.tensor(affineGrid([1, 0, shift, 0, 1, 0], 4, 5), [1, 4, 5, 2]);
    const out = model.apply(inputs);
    const moved = out.warped.dataSync();
    const mask = out.mask.dataSync();
    for (let c = 0; c < 2; c++) {
      for (let i = 0; i < 4; i++) {
        for (let j = 0; j < 5; j++) {
          const k = (c * 4 + i) * 5 + j;
          expect(moved[k]).toBeCloseTo(j < 4 ? x[k + 1] : 0, 5);
          if (c === 0) expect(mask[i * 5 + j]).toBeCloseTo(j < 4 ? 1 : 0, 5);
        }
      }
    }
    model.dispose();
  });

  it('grid sampling is differentiable w.r.t. the features (matches finite differences)', () => {
    const desc = warpNetwork({ channels: 1, height: 3, width: 4 });
    const model = buildTfModel(desc, new Map());
    const grid = tf.tensor(affineGrid([0.9, 0.3, 0.2, -0.2, 1.1, -0.1], 3, 4), [1, 3, 4, 2]);
    const valid = tf.ones([1, 1, 3, 4]);
    const r = tf.tensor(randomFloats(12, 42), [1, 1, 3, 4]);
    const f = (x: tf.Tensor) => tf.sum(tf.mul(model.apply({ features: x, valid, grid }).warped, r)) as tf.Scalar;
    const x0 = randomFloats(12, 43);
    const grad = tf
      .grad(f)(tf.tensor(x0, [1, 1, 3, 4]))
      .dataSync();
    const base = f(tf.tensor(x0, [1, 1, 3, 4])).dataSync()[0];
    for (let i = 0; i < 12; i++) {
      const x1 = x0.slice();
      x1[i] += 1;
      const fd = f(tf.tensor(x1, [1, 1, 3, 4])).dataSync()[0] - base; // exact: sampling is linear
      expect(grad[i]).toBeCloseTo(fd, 4);
    }
    expect(grad.some((v) => v !== 0)).toBe(true);
    model.dispose();
  });
});

describe('training mode', () => {
  it('batch norm uses batch statistics and moves running statistics; inference matches ONNX after (random weights)', async () => {
    const g = new GraphBuilder('bn');
    const x = g.input('x', ['n', 3, 4, 4]);
    g.output('y', g.batchNorm(g.conv2d(x, { name: 'c', out: 3, kernel: 3, bias: false }), { name: 'bn', momentum: 0.5 }));
    const desc = g.build();
    const weights = initWeights(desc, 51);
    const model = buildTfModel(desc, weights);
    const input = tf.tensor(randomFloats(2 * 48, 52, 0, 2), [2, 3, 4, 4]);
    const y = model.apply({ x: input }, { training: true }).y;
    // Normalised with its own statistics: per-channel mean ≈ 0, variance ≈ 1 (gamma 1, beta 0).
    const m = tf.moments(y, [0, 2, 3]);
    for (const v of m.mean.dataSync()) expect(Math.abs(v)).toBeLessThan(1e-5);
    for (const v of m.variance.dataSync()) expect(v).toBeCloseTo(1, 3);
    const after = await model.readWeights();
    expect(after.get('bn.mean')!.data.some((v) => v !== 0)).toBe(true);
    expect(after.get('bn.var')!.data.some((v) => v !== 1)).toBe(true);
    expect(after.get('c.weight')!.data).toEqual(weights.get('c.weight')!.data);
    // The updated running statistics export and agree in inference mode.
    expectParity(await parity(desc, after, { x: host(randomFloats(2 * 48, 53), [2, 3, 4, 4]) }));
    model.dispose();
  });

  it('trainableVariables filters by name so frozen parts stay frozen', () => {
    const desc = egoNetwork({ fusion: tinyFusion, head: { anchors: 2, dirBins: 2 } });
    const model = buildTfModel(desc, initWeights(desc, 61));
    const all = model.trainableVariables();
    const headOnly = model.trainableVariables((n) => n.startsWith('head.'));
    expect(headOnly.length).toBe(6);
    expect(all.length).toBe(desc.params.filter((p) => p.trainable).length);
    expect(all.length).toBeLessThan(desc.params.length); // running statistics are not trainable
    model.dispose();
  });
});

describe('weights', () => {
  it('seeded initialisation is reproducible and per-parameter independent', () => {
    const desc = bevBackbone(tinyBackbone, { height: 8, width: 8 });
    const a = initWeights(desc, 7);
    const b = initWeights(desc, 7);
    const c = initWeights(desc, 8);
    for (const [k, v] of a) expect(v.data).toEqual(b.get(k)!.data);
    expect(a.get('backbone.level0.block0.conv1.conv.weight')!.data).not.toEqual(c.get('backbone.level0.block0.conv1.conv.weight')!.data);
    // He: std ≈ sqrt(2 / fanIn) on a big enough layer.
    const w = a.get('backbone.level2.block0.conv2.conv.weight')!.data; // 12·12·9 values, fanIn 108
    const std = Math.sqrt(w.reduce((s, v) => s + v * v, 0) / w.length);
    expect(std).toBeGreaterThan(0.8 * Math.sqrt(2 / 108));
    expect(std).toBeLessThan(1.2 * Math.sqrt(2 / 108));
  });

  it('file round trip, and clear errors for bad files', () => {
    const desc = detectionHead({ inChannels: 8, anchors: 2, dirBins: 2 }, { height: 4, width: 4 });
    const w = randomWeights(desc, 71);
    const bytes = encodeWeights(w, { seed: 71, command: 'test' });
    expect(bytes.length).toBeLessThan(100 + 100 * desc.params.length + desc.params.reduce((s, p) => s + p.shape.reduce((a, b) => a * b, 1) * 4, 0));
    const { weights, meta } = decodeWeights(bytes, 'head.weights');
    expect(meta).toEqual({ seed: 71, command: 'test' });
    for (const [k, v] of w) {
      expect(weights.get(k)!.shape).toEqual(v.shape);
      expect(weights.get(k)!.data).toEqual(v.data);
    }
    expect(() => decodeWeights(bytes.subarray(0, bytes.length - 4), 'cut.weights')).toThrow(/cut\.weights.*truncated/);
    expect(() => decodeWeights(new Uint8Array(20), 'zero.weights')).toThrow(DataError);
    const wrong = new Map(w);
    wrong.set('head.reg.weight', { shape: [14, 4, 1, 1], data: new Float32Array(56) });
    expect(() => checkWeights(desc, wrong, 'm.weights')).toThrow(/m\.weights: field "head\.reg\.weight": shape does not match/);
    wrong.delete('head.cls.bias');
    expect(() => checkWeights(desc, wrong, 'm.weights')).toThrow(/head\.cls\.bias.*missing/);
  });
});

describe('descriptions', () => {
  it('HEAL-size networks build with the right shapes (not run: too big for a unit test)', () => {
    const fusion = pyramidFusion(fusionConfigFor(HEAL_SPACE));
    expect(fusion.outputs.map((o) => o.shape)).toEqual([
      [1, 256, 256, 256],
      ['agents', 1, 256, 256],
      ['agents', 1, 128, 128],
      ['agents', 1, 64, 64],
    ]);
    const backbone = bevBackbone(HEAL_BACKBONE, { height: 256, width: 256 });
    expect(backbone.outputs[0].shape).toEqual(['agents', 384, 256, 256]);
    const params = fusion.params.filter((p) => p.trainable).reduce((s, p) => s + p.shape.reduce((a, b) => a * b, 1), 0);
    expect(params).toBeGreaterThan(5e6);
  });

  it('bad configurations fail while building, naming the layer', () => {
    expect(() => pyramidFusion({ ...tinyFusion, height: 10 })).toThrow(/must divide/);
    const g = new GraphBuilder('bad');
    const x = g.input('x', [1, 3, 4, 4]);
    expect(() => g.conv2d(x, { name: 'c', out: 4, kernel: 3, groups: 2 })).toThrow(/c: channels 3→4 not divisible by groups 2/);
    expect(() => g.add(x, g.input('y', [1, 2, 4, 4]))).toThrow(/do not broadcast/);
    expect(() => g.reshape(x, [5, -1])).toThrow(/cannot reshape/);
    const desc = detectionHead({ inChannels: 8, anchors: 2, dirBins: 2 }, { height: 4, width: 4 });
    const model = buildTfModel(desc, initWeights(desc, 1));
    expect(() => model.apply({ fused: tf.zeros([1, 7, 4, 4]) })).toThrow(/input "fused" has shape \[1,7,4,4\], expected \[batch,8,4,4\]/);
    model.dispose();
  });

  it('lists the ONNX ops each network uses', () => {
    const ops = {
      bevBackbone: onnxOpsOf(bevBackbone(tinyBackbone, { height: 12, width: 16 })),
      pyramidFusion: onnxOpsOf(pyramidFusion(tinyFusion)),
      detectionHead: onnxOpsOf(detectionHead({ inChannels: 8, anchors: 2, dirBins: 2 }, { height: 4, width: 4 })),
      aligner: onnxOpsOf(aligner({ inChannels: 5, channels: 6, blocks: 2, batchNorm: true }, { height: 8, width: 8 })),
      warp: onnxOpsOf(warpNetwork({ channels: 3, height: 4, width: 4 })),
    };
    expect(ops.warp).toEqual(['GridSample', 'Identity']);
    expect(ops.detectionHead).toEqual(['Conv', 'Identity']);
    expect(new Set(ops.pyramidFusion)).toEqual(
      new Set(['Conv', 'BatchNormalization', 'Relu', 'Add', 'Sigmoid', 'Exp', 'Mul', 'ReduceSum', 'Div', 'MaxPool', 'ConvTranspose', 'Concat', 'Identity']),
    );
  });
});

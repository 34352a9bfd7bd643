// Agent-type encoders m1–m4 (PointPillars and Lift-Splat) + aligners: tfjs and onnxruntime agree,
// gradients reach every trainable encoder variable, the pillar scatter and the camera splat put
// features where the geometry says, and configs are checked.
//
// tfjs's pure-JS cpu backend takes ~13 s for one forward pass of the full small m1 on a dense
// cloud, so the runtime comparisons use the built-in configs' structure (same layer counts,
// strides, backbone kinds, bins mode) with fewer channels, smaller images and a smaller space.
// The full small and heal configs are built, and the small ones run through onnxruntime.

import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { GraphBuilder, type GraphDesc, type HostTensor } from '../../models/graph.ts';
import { initWeights, type Weights } from '../../models/weights.ts';
import { buildTfModel } from '../../models/tfjs.ts';
import { exportOnnx } from '../../models/onnx.ts';
import { createSession, runSession } from '../../models/runtime.ts';
import {
  encoderOutChannels,
  agentNetwork,
  agentInputs,
  checkAgentNetworkConfig,
  parameterCounts,
  splatIndexFor,
  type AgentNetworkConfig,
  type LssConfig,
  type PointPillarsConfig,
} from '../../perception/encoders/agent.ts';
import { builtinAgentConfig } from '../../perception/registry.ts';

type BuiltinType = 'm1' | 'm2' | 'm3' | 'm4' | 'm5';
import { addPillarFeatureNet, addPillarScatter, pillarConfigOf, pillarGridOf, pointPillarsInputs } from '../../perception/encoders/pointpillars.ts';
import { addLift, addSplat, lssInputs, lssSplatOptions } from '../../perception/encoders/lss.ts';
import { pillarize } from '../../perception/pillars.ts';
import { frustumToBev, preprocessImage, splatCamera, splatReference } from '../../perception/camera.ts';
import { SMALL_SPACE, HEAL_SPACE, featureGrid, type SharedSpace } from '../../perception/space.ts';
import { invert, multiply, poseToMatrix, x1ToX2, matrixToPose } from '../../datasets/geometry/transforms.ts';
import type { CameraRecord } from '../../datasets/frame.ts';
import { DataError } from '../../datasets/io.ts';
import { rngFor } from '../../datasets/rng.ts';

const TOL = 1e-4;
const TYPES: BuiltinType[] = ['m1', 'm2', 'm3', 'm4'];
/** m5 (LiDAR-16, PillarFPN) is declared for the small profile only. */
const SMALL_TYPES: BuiltinType[] = [...TYPES, 'm5'];

beforeAll(async () => {
  await tf.setBackend('cpu');
});

// ±12.8 m at 0.4 m: a 64×64 pillar grid and a 16×16 feature grid of 8 channels.
const TEST_SPACE: SharedSpace = { ...SMALL_SPACE, name: 'test', range: [-12.8, -12.8, -3, 12.8, 12.8, 1], channels: 8 };

/** A built-in small config with its structure kept and its widths and image sizes cut down. */
function shrunk(type: BuiltinType): AgentNetworkConfig {
  const cfg = builtinAgentConfig(type, 'small');
  const enc = cfg.encoder;
  if (enc.arch === 'pointpillars') {
    enc.pfnChannels = 6;
    enc.maxPointsPerPillar = 8;
    enc.backbone.numFilters = enc.backbone.numFilters.map((_, i) => 4 + 2 * i);
    if (enc.neck) enc.neck.numUpsampleFilters = enc.neck.numUpsampleFilters.map(() => 4);
  } else if (enc.arch === 'lss') {
    enc.imageSize = type === 'm2' ? [64, 48] : [56, 40];
    enc.depthBins = { ...enc.depthBins, min: 2, max: 14, count: 6 };
    enc.imageBackbone.stem.channels = 4;
    enc.imageBackbone.stages = enc.imageBackbone.stages.map((s, i) => ({ ...s, channels: 4 + 2 * i }));
    if (enc.imageBackbone.kind === 'mbconv') enc.imageBackbone.expandRatio = 2;
    enc.contextChannels = 5;
    enc.bev.channels = 6;
  }
  const out = encoderOutChannels(enc);
  cfg.aligner = { ...cfg.aligner, inChannels: out, channels: TEST_SPACE.channels };
  return cfg;
}

/** A spinning LiDAR's cloud: beams hitting the ground at −1.9 m or a wall, seeded. */
function lidarCloud(beams: number, steps: number, seed: number): Float32Array {
  const rng = rngFor('encoders-test-cloud', seed);
  const out = new Float32Array(beams * steps * 4);
  let k = 0;
  for (let b = 0; b < beams; b++) {
    const el = ((-25 + (27 * b) / (beams - 1)) * Math.PI) / 180;
    for (let s = 0; s < steps; s++) {
      const az = (2 * Math.PI * (s + rng.uniform(0, 0.5))) / steps;
      const wall = rng.uniform(4, 40);
      const r = el < -0.01 ? Math.min(1.9 / Math.tan(-el), wall) : wall;
      out.set([r * Math.cos(az), r * Math.sin(az), r * Math.tan(el) + rng.uniform(-0.03, 0.03), rng.uniform(0, 1)], k);
      k += 4;
    }
  }
  return out;
}

// OPV2V vehicle cameras (formats.md §1.5), extrinsics as the OPV2V writer builds them:
// inv(x1_to_x2(cords, lidar_pose)), as in test/camera.test.ts.
const K800 = Float64Array.from([335.6399, 0, 400, 0, 335.6399, 300, 0, 0, 1]);
const BASE = [120.3, -45.7, 0.2, 0, 37, 0];
const MOUNTS = [
  [2.5, 0, 1.0, 0, 0, 0],
  [0, 0.3, 1.8, 0, 100, 0],
  [0, -0.3, 1.8, 0, -100, 0],
  [-2.0, 0, 1.5, 0, 180, 0],
];
const onVehicle = (m: number[]) => matrixToPose(multiply(poseToMatrix(BASE), poseToMatrix(m)));
const LIDAR_POSE = onVehicle([-0.5, 0, 1.9, 0, 0, 0]);

function cameraRecords(seed: number, width = 160, height = 120): CameraRecord[] {
  return MOUNTS.map((m, i) => {
    const rng = rngFor('encoders-test-image', seed, i);
    const data = new Uint8Array(width * height * 3);
    for (let j = 0; j < data.length; j++) data[j] = Math.floor(rng.uniform(0, 256));
    const K = Float64Array.from(K800);
    K[0] *= width / 800;
    K[2] *= width / 800;
    K[4] *= height / 600;
    K[5] *= height / 600;
    return {
      name: `camera${i}`,
      imagePath: `camera${i}.png`,
      intrinsic: K,
      extrinsic: invert(x1ToX2(onVehicle(m), LIDAR_POSE)),
      extrinsicAxes: 'ue4',
      image: { width, height, data },
    };
  });
}

function sensorData(seed: number) {
  return { points: lidarCloud(12, 240, seed), cameras: cameraRecords(seed), kind: 'vehicle' as const };
}

/** Seeded weights with every parameter randomised, so identity-like BN stats cannot hide a bug. */
function randomWeights(desc: GraphDesc, seed: number): Weights {
  const w = initWeights(desc, seed);
  for (const p of desc.params) {
    if (p.init === 'he' || p.init === 'glorot') continue;
    const rng = rngFor('encoders-test-weights', seed, p.name);
    const d = w.get(p.name)!.data;
    const positive = p.name.endsWith('.var') || p.name.endsWith('.gamma');
    for (let i = 0; i < d.length; i++) d[i] = positive ? rng.uniform(0.5, 1.5) : rng.normal() * 0.1;
  }
  return w;
}

/**
 * Sets every batch norm's running statistics to those of `inputs` (one training-mode pass with
 * momentum 1), as training leaves them. With random statistics activations grow layer by layer to
 * tens, and the splat's float32 running sums (whose rounding the runtimes share only up to the
 * last bit of their inputs) then differ by more than the parity tolerance for no semantic reason.
 */
function calibrateBatchNorm(desc: GraphDesc, weights: Weights, inputs: Record<string, HostTensor>): Promise<Weights> {
  const once: GraphDesc = { ...desc, nodes: desc.nodes.map((n) => (n.op === 'batchNorm' ? { ...n, momentum: 1 } : n)) };
  const model = buildTfModel(once, weights);
  const tfIn = toTf(inputs);
  tf.dispose(Object.values(model.apply(tfIn, { training: true })));
  tf.dispose(Object.values(tfIn));
  const out = model.readWeights();
  return out.finally(() => model.dispose());
}

function toTf(inputs: Record<string, HostTensor>): Record<string, tf.Tensor> {
  const out: Record<string, tf.Tensor> = {};
  for (const [k, v] of Object.entries(inputs)) out[k] = tf.tensor(v.data, v.shape, v.data instanceof Int32Array ? 'int32' : 'float32');
  return out;
}

/** Runs both runtimes on the same weights and inputs. */
async function runBoth(desc: GraphDesc, weights: Weights, inputs: Record<string, HostTensor>) {
  const model = buildTfModel(desc, weights);
  const tfIn = toTf(inputs);
  const tfOut = model.apply(tfIn);
  const tfHost: Record<string, HostTensor> = {};
  for (const [k, t] of Object.entries(tfOut)) tfHost[k] = { data: t.dataSync() as Float32Array, shape: t.shape };
  tf.dispose([...Object.values(tfIn), ...Object.values(tfOut)]);
  model.dispose();
  const { session, provider } = await createSession(exportOnnx(desc, weights), { device: 'cpu' });
  expect(provider).toBe('cpu');
  const ortOut = await runSession(session, inputs);
  await session.release();
  return { tf: tfHost, ort: ortOut };
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    m = Number.isNaN(d) ? Infinity : Math.max(m, d);
  }
  return m;
}

function spread(a: ArrayLike<number>): number {
  let lo = Infinity,
    hi = -Infinity;
  for (let i = 0; i < a.length; i++) {
    lo = Math.min(lo, a[i]);
    hi = Math.max(hi, a[i]);
  }
  return hi - lo;
}

describe('agent networks m1–m5: tfjs and onnxruntime agree, gradients reach every encoder variable (random weights)', () => {
  it.each(SMALL_TYPES)('%s', async (type) => {
    const cfg = shrunk(type);
    const desc = agentNetwork(cfg, TEST_SPACE);
    const [w, h] = featureGrid(TEST_SPACE);
    expect(desc.outputs.map((o) => [o.name, o.shape])).toEqual([['bev', [1, TEST_SPACE.channels, h, w]]]);
    expect(desc.params.every((p) => p.name.startsWith(`encoder.${type}.`) || p.name.startsWith(`aligner.${type}.`))).toBe(true);
    const inputs = agentInputs(cfg, TEST_SPACE, sensorData(1));
    const weights = await calibrateBatchNorm(desc, randomWeights(desc, 2), inputs);
    const { tf: a, ort: b } = await runBoth(desc, weights, inputs);
    expect(b.bev.shape).toEqual([1, TEST_SPACE.channels, h, w]);
    expect(a.bev.shape).toEqual(b.bev.shape);
    expect(maxDiff(a.bev.data, b.bev.data), 'max |tfjs − onnx|').toBeLessThanOrEqual(TOL);
    expect(spread(b.bev.data)).toBeGreaterThan(0.1); // not a constant map

    // Gradients in training mode (batch statistics): every trainable variable gets a finite,
    // non-zero gradient from a loss on the output.
    const model = buildTfModel(desc, weights);
    const tfIn = toTf(inputs);
    const names = [...model.variables].filter(([, v]) => v.trainable).map(([n]) => n);
    const vars = model.trainableVariables();
    expect(names.filter((n) => n.startsWith(`encoder.${type}.`)).length).toBeGreaterThan(0);
    const r = tf.tensor(
      Float32Array.from({ length: b.bev.data.length }, (_, i) => Math.sin(i * 0.37)),
      b.bev.shape,
    );
    const { value, grads } = tf.variableGrads(() => {
      const y = model.apply(tfIn, { training: true }).bev;
      return tf.add(tf.mean(tf.mul(y, r)), tf.mean(tf.square(y))) as tf.Scalar;
    }, vars);
    expect(Number.isFinite(value.dataSync()[0])).toBe(true);
    const missing: string[] = [];
    vars.forEach((v, i) => {
      const g = grads[v.name]?.dataSync();
      if (!g?.every(Number.isFinite) || !g.some((x) => x !== 0)) missing.push(names[i]);
    });
    expect(missing, 'variables without a usable gradient').toEqual([]);
    tf.dispose([value, r, ...Object.values(grads), ...Object.values(tfIn)]);
    model.dispose();
  });
});

describe('PointPillars', () => {
  it("the scatter puts each pillar's PFN feature at its (row, col), zeros elsewhere, in both runtimes (random weights)", async () => {
    const enc = shrunk('m1').encoder as PointPillarsConfig;
    const g = new GraphBuilder('pfn-scatter');
    const inp = pointPillarsInputs(g, enc, TEST_SPACE);
    const pillarsRef = addPillarFeatureNet(g, inp.features, inp.mask, enc.pfnChannels, 'pp.pfn');
    g.output('pillars', pillarsRef);
    g.output('grid', addPillarScatter(g, pillarsRef, inp.cellToPillar, pillarGridOf(enc, TEST_SPACE), 'pp.scatter'));
    const desc = g.build();
    const p = pillarize(lidarCloud(16, 360, 3), pillarConfigOf(enc, TEST_SPACE));
    expect(p.numPillars).toBeGreaterThan(100);
    const inputs = {
      features: { data: p.features, shape: [p.numPillars, p.maxPoints, 10] },
      mask: { data: p.mask, shape: [p.numPillars, p.maxPoints] },
      cellToPillar: { data: p.cellToPillar, shape: [p.cellToPillar.length] },
    };
    const { tf: a, ort: b } = await runBoth(desc, randomWeights(desc, 4), inputs);
    const C = enc.pfnChannels;
    const [W, H] = pillarGridOf(enc, TEST_SPACE);
    expect(b.grid.shape).toEqual([1, C, H, W]);
    for (const out of [a, b]) {
      const pillars = out.pillars.data;
      const grid = out.grid.data;
      const filled = new Uint8Array(H * W);
      for (let q = 0; q < p.numPillars; q++) {
        const row = p.coords[2 * q],
          col = p.coords[2 * q + 1];
        filled[row * W + col] = 1;
        for (let c = 0; c < C; c++) expect(grid[(c * H + row) * W + col]).toBe(pillars[q * C + c]);
      }
      for (let cell = 0; cell < H * W; cell++) if (!filled[cell]) for (let c = 0; c < C; c++) expect(grid[c * H * W + cell]).toBe(0);
    }
    expect(maxDiff(a.grid.data, b.grid.data)).toBeLessThanOrEqual(TOL);
  });

  it("the PFN max ignores padded slots: a pillar's feature depends only on its real points (random weights)", async () => {
    const g = new GraphBuilder('pfn');
    const x = g.input('features', ['pillars', 4, 10]);
    const m = g.input('mask', ['pillars', 4]);
    g.output('pillars', addPillarFeatureNet(g, x, m, 5, 'pfn'));
    const desc = g.build();
    const rng = rngFor('encoders-test-pfn');
    const feats = Float32Array.from({ length: 2 * 4 * 10 }, () => rng.uniform(-2, 2));
    const mask = Float32Array.from([1, 1, 0, 0, 1, 0, 0, 0]);
    const other = feats.slice();
    for (const slot of [2, 3, 5, 6, 7]) for (let f = 0; f < 10; f++) other[slot * 10 + f] = 0;
    const weights = randomWeights(desc, 5);
    const run = async (data: Float32Array) =>
      (await runBoth(desc, weights, { features: { data, shape: [2, 4, 10] }, mask: { data: mask, shape: [2, 4] } })).ort.pillars.data;
    expect(maxDiff(await run(feats), await run(other))).toBe(0);
  });

  it('an empty cloud gives an empty pillar set and still runs (onnxruntime) (random weights)', async () => {
    const cfg = shrunk('m1');
    const desc = agentNetwork(cfg, TEST_SPACE);
    const inputs = agentInputs(cfg, TEST_SPACE, { points: new Float32Array(0) });
    expect(inputs.features.shape).toEqual([0, 8, 10]);
    const { session } = await createSession(exportOnnx(desc, randomWeights(desc, 6)), { device: 'cpu' });
    const out = await runSession(session, inputs);
    await session.release();
    expect(out.bev.shape).toEqual([1, TEST_SPACE.channels, 16, 16]);
    expect(Array.from(out.bev.data).every(Number.isFinite)).toBe(true);
  });

  it('masks the vehicle body for vehicles but not for roadside units', () => {
    const cfg = shrunk('m1');
    const body = Float32Array.from([0.5, 0.2, -1, 0.5, 10.1, 5.1, -1, 0.5]); // one point on the body, one away
    expect(agentInputs(cfg, TEST_SPACE, { points: body, kind: 'vehicle' }).features.shape[0]).toBe(1);
    expect(agentInputs(cfg, TEST_SPACE, { points: body, kind: 'rsu' }).features.shape[0]).toBe(2);
  });
});

describe('Lift-Splat', () => {
  it("the graph's cumsum splat equals splatReference on the same frustum features, in both runtimes (random weights)", async () => {
    const enc = shrunk('m4').encoder as LssConfig;
    const g = new GraphBuilder('lift-splat');
    const inp = lssInputs(g, enc, TEST_SPACE);
    const { points } = addLift(g, inp.images, enc, 'lss');
    g.output('points', points);
    g.output('bev', addSplat(g, points, inp, featureGrid(TEST_SPACE), 'lss.splat'));
    const desc = g.build();
    const cfg = { ...shrunk('m4'), encoder: enc };
    const inputs = agentInputs(cfg, TEST_SPACE, sensorData(7));
    const index = splatIndexFor(
      enc,
      TEST_SPACE,
      cameraRecords(7).map((r) => splatCamera(r, preprocessImage(r.image!, enc.imageSize))),
    );
    expect(index.keptIndex.length).toBeGreaterThan(100);
    expect(index.keptIndex.length).toBeLessThan(index.count); // some frustum points fall outside the grid
    const { tf: a, ort: b } = await runBoth(desc, randomWeights(desc, 8), inputs);
    const C = enc.contextChannels;
    const [W, H] = featureGrid(TEST_SPACE);
    expect(b.points.shape).toEqual([index.count, C]);
    expect(b.bev.shape).toEqual([1, C, H, W]);
    for (const out of [a, b]) {
      const ref = splatReference(out.points.data as Float32Array, index, C);
      // Float32 running sums round at the scale of the running total, not of the cell: allow
      // 1e-6 of the total (~8 float32 ulps of it). A wrong index is off by whole features.
      let total = 0;
      for (const k of index.keptIndex) for (let c = 0; c < C; c++) total += Math.abs(out.points.data[k * C + c]);
      expect(maxDiff(out.bev.data, ref)).toBeLessThanOrEqual(1e-6 * total + 1e-6);
      expect(spread(ref)).toBeGreaterThan(0.01);
      // Cells no frustum point reaches are exactly zero.
      for (let cell = 0; cell < H * W; cell++) {
        if (index.cellToSegment[cell] === index.occupiedCells.length) for (let c = 0; c < C; c++) expect(out.bev.data[c * H * W + cell]).toBe(0);
      }
    }
    expect(maxDiff(a.bev.data, b.bev.data)).toBeLessThanOrEqual(TOL);
  });

  it('depth output: a distribution over the bins for every feature pixel (random weights)', async () => {
    const cfg = shrunk('m2');
    const enc = cfg.encoder as LssConfig;
    const desc = agentNetwork(cfg, TEST_SPACE, { depthOutput: true });
    const [fW, fH] = [enc.imageSize[0] / enc.downsample, enc.imageSize[1] / enc.downsample];
    expect(desc.outputs.map((o) => o.name)).toEqual(['depth', 'bev']);
    const { session } = await createSession(exportOnnx(desc, randomWeights(desc, 9)), { device: 'cpu' });
    const out = await runSession(session, agentInputs(cfg, TEST_SPACE, sensorData(9)));
    await session.release();
    const D = enc.depthBins.count;
    expect(out.depth.shape).toEqual([4, D, fH, fW]);
    for (let n = 0; n < 4; n++) {
      for (let px = 0; px < fH * fW; px++) {
        let s = 0;
        for (let d = 0; d < D; d++) s += out.depth.data[(n * D + d) * fH * fW + px];
        expect(s).toBeCloseTo(1, 5);
      }
    }
  });

  it('no frustum point on the grid: an all-empty splat still runs (onnxruntime) (random weights)', async () => {
    const cfg = shrunk('m2');
    const enc = cfg.encoder as LssConfig;
    const desc = agentNetwork(cfg, TEST_SPACE);
    const [W, H] = featureGrid(TEST_SPACE);
    const empty = { data: new Int32Array(0), shape: [0] };
    const { session } = await createSession(exportOnnx(desc, randomWeights(desc, 10)), { device: 'cpu' });
    const out = await runSession(session, {
      images: { data: new Float32Array(3 * enc.imageSize[0] * enc.imageSize[1]), shape: [1, 3, enc.imageSize[1], enc.imageSize[0]] },
      keptIndex: empty,
      segmentStarts: empty,
      segmentEnds: empty,
      cellToSegment: { data: new Int32Array(W * H), shape: [W * H] }, // every cell reads the zero row
    });
    await session.release();
    expect(out.bev.shape).toEqual([1, TEST_SPACE.channels, H, W]);
    expect(Array.from(out.bev.data).every(Number.isFinite)).toBe(true);
  });

  it('the splat index is cached per calibration', () => {
    const enc = shrunk('m2').encoder as LssConfig;
    const cams = cameraRecords(1).map((r) => splatCamera(r, preprocessImage(r.image!, enc.imageSize)));
    const a = splatIndexFor(enc, TEST_SPACE, cams);
    expect(
      splatIndexFor(
        enc,
        TEST_SPACE,
        cams.map((c) => ({ ...c, extrinsic: Float64Array.from(c.extrinsic) })),
      ),
    ).toBe(a);
    const moved = cams.map((c, i) => (i === 0 ? { ...c, extrinsic: multiply(c.extrinsic, poseToMatrix([0, 0, 0.5, 0, 0, 0])) } : c));
    const b = splatIndexFor(enc, TEST_SPACE, moved);
    expect(b).not.toBe(a);
    expect(b.keptIndex).toEqual(frustumToBev(moved, lssSplatOptions(enc, TEST_SPACE)).keptIndex);
  });

  it('selects cameras by name and explains missing ones or undecoded images', () => {
    const cfg = shrunk('m2');
    const enc = cfg.encoder as LssConfig;
    const cams = cameraRecords(2);
    const two = agentInputs({ ...cfg, encoder: { ...enc, cameras: ['camera3', 'camera0'] } }, TEST_SPACE, { cameras: cams });
    expect(two.images.shape).toEqual([2, 3, enc.imageSize[1], enc.imageSize[0]]);
    const camera3 = preprocessImage(cams[3].image!, enc.imageSize).tensor;
    expect(Array.from(two.images.data.subarray(0, camera3.length))).toEqual(Array.from(camera3));
    expect(() => agentInputs({ ...cfg, encoder: { ...enc, cameras: ['camera9'] } }, TEST_SPACE, { cameras: cams })).toThrow(
      /camera "camera9" is not in the sensor data/,
    );
    const camera0Only = { ...cfg, encoder: { ...enc, cameras: ['camera0'] } };
    expect(() => agentInputs(camera0Only, TEST_SPACE, { cameras: [{ ...cams[0], image: undefined }] })).toThrow(
      /camera0\.png: field "image": camera "camera0" has no decoded image/,
    );
    expect(() => agentInputs(cfg, TEST_SPACE, { points: new Float32Array(4) })).toThrow(DataError);
    expect(() => agentInputs(shrunk('m1'), TEST_SPACE, { cameras: cams })).toThrow(/needs a point cloud/);
  });
});

describe('built-in types and configs', () => {
  it('small profile: every type runs in onnxruntime to [1, 32, 64, 64]; parameters are prefixed per type (random weights)', async () => {
    const data = { points: lidarCloud(32, 720, 11), cameras: cameraRecords(11, 800, 600), kind: 'vehicle' as const };
    const names = new Set<string>();
    for (const type of SMALL_TYPES) {
      const cfg = builtinAgentConfig(type, 'small');
      const desc = agentNetwork(cfg, SMALL_SPACE);
      const counts = parameterCounts(desc, type);
      expect(counts.encoder + counts.aligner).toBe(desc.params.reduce((s, p) => s + p.shape.reduce((a, b) => a * b, 1), 0));
      for (const p of desc.params) {
        expect(names.has(p.name), `${p.name} is unique across types`).toBe(false);
        names.add(p.name);
      }
      const { session } = await createSession(exportOnnx(desc, initWeights(desc, 1)), { device: 'cpu' });
      const out = await runSession(session, agentInputs(cfg, SMALL_SPACE, data));
      await session.release();
      expect(out.bev.shape).toEqual([1, 32, 64, 64]);
      expect(spread(out.bev.data)).toBeGreaterThan(0);
    }
  });

  it('heal profile: every type builds to [1, 64, 256, 256] (not run: too big for a unit test)', () => {
    for (const type of TYPES) {
      const desc = agentNetwork(builtinAgentConfig(type, 'heal'), HEAL_SPACE);
      expect(desc.outputs[0].shape).toEqual([1, 64, 256, 256]);
    }
    // m3's 0.8 m pillars already are the heal feature cell, so its backbone keeps the grid.
    expect(pillarGridOf(builtinAgentConfig('m3', 'heal').encoder as PointPillarsConfig, HEAL_SPACE)).toEqual([256, 256]);
  });

  it('configs are plain JSON and survive a round trip', () => {
    for (const profile of ['small', 'heal'] as const) {
      for (const type of TYPES) {
        const cfg = JSON.parse(JSON.stringify(builtinAgentConfig(type, profile))) as AgentNetworkConfig;
        expect(cfg).toEqual(builtinAgentConfig(type, profile));
        expect(() => checkAgentNetworkConfig(cfg, profile === 'small' ? SMALL_SPACE : HEAL_SPACE)).not.toThrow();
      }
    }
    expect(() => builtinAgentConfig('m9', 'small')).toThrow(/unknown type/);
  });

  it('bad configs fail with the field and value named', () => {
    const m1 = builtinAgentConfig('m1', 'small');
    const pp = m1.encoder as PointPillarsConfig;
    const check = (cfg: AgentNetworkConfig) => () => agentNetwork(cfg, SMALL_SPACE);
    expect(check({ ...m1, encoder: { ...pp, pillarSize: [0.3, 0.3] } })).toThrow(/agent type "m1": field "encoder.pillarSize": must divide the space/);
    expect(check({ ...m1, encoder: { ...pp, pillarSize: [0.4, 0.4] } })).toThrow(
      /field "encoder.backbone.layerStrides": multiply to 2, but the 256×256 pillar grid needs stride 4/,
    );
    expect(check({ ...m1, encoder: { ...pp, backbone: { ...pp.backbone, numFilters: [32, 32] } } })).toThrow(/encoder.backbone.numFilters/);
    expect(check({ ...m1, aligner: { ...m1.aligner, inChannels: 16 } })).toThrow(/field "aligner.inChannels": must equal the encoder's output channels \(32\)/);
    expect(check({ ...m1, aligner: { ...m1.aligner, channels: 64 } })).toThrow(/aligner.channels.*space "small" \(32\)/);
    expect(check({ ...m1, encoder: { ...pp, arch: 'voxelnet' } as unknown as PointPillarsConfig })).toThrow(/encoder.arch/);
    const m2 = builtinAgentConfig('m2', 'small');
    const lss = m2.encoder as LssConfig;
    expect(check({ ...m2, encoder: { ...lss, imageSize: [250, 192] } })).toThrow(/field "encoder.imageSize": must be divisible by downsample 8/);
    expect(check({ ...m2, encoder: { ...lss, downsample: 16, imageSize: [256, 192] } })).toThrow(
      /strides \(stem and stages\) multiply to 8, but downsample is 16/,
    );
    expect(check({ ...m2, encoder: { ...lss, depthBins: { ...lss.depthBins, mode: 'SID' as 'LID' } } })).toThrow(/encoder.depthBins.mode/);
    expect(check({ ...m2, type: 'm 2' })).toThrow(/field "type"/);
  });
});

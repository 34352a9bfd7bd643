// The heal profile against HEAL itself: HEAL's m1 stage-1 checkpoint (m1_stage1.pth) loaded into
// heal's networks, run through onnxruntime (CPU) on the fixture's pillars, stage by stage against
// the tensors HEAL's PyTorch code stored (../shared/fixtures/heal_reference, README there).
// Tolerances are the README's (about ten times float32-vs-float64 noise); channel sums are
// compared relative to the largest sum of the stage. The pillars are the fixture's own
// voxel_features/coords/num_points, decorated here as HEAL's PillarVFE does (float32), so this
// checks the networks independently of heal's preprocessing.

import { describe, expect, it, beforeAll, afterAll } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import type * as ort from 'onnxruntime-node';
import { GraphBuilder, type GraphDesc, type HostTensor } from '../../models/graph.ts';
import { readSafetensors, type SafeTensor } from '../../models/safetensors.ts';
import { exportOnnx } from '../../models/onnx.ts';
import { pickWeights, type Weights } from '../../models/weights.ts';
import { createSession, runSession } from '../../models/runtime.ts';
import { HEAL_SPACE } from '../../perception/space.ts';
import { builtinAgentConfig, loadRegistry } from '../../perception/registry.ts';
import { agentNetwork } from '../../perception/encoders/agent.ts';
import { addPillarFeatureNet, addPillarScatter, pillarGridOf, pointPillarsInputs, type PointPillarsConfig } from '../../perception/encoders/pointpillars.ts';
import { CollabPipeline, egoInputsFor, egoNetworkFor } from '../../fusion/pipeline.ts';
import { agentFromEgo, warpTheta } from '../../fusion/warp.ts';
import { describeImport, loadHealCheckpoint, type HealImport } from '../../fusion/heal-checkpoint.ts';
import { poseToMatrix } from '../../datasets/geometry/transforms.ts';
import { healFixture } from '../helpers/heal-fixtures.ts';

const DIR = healFixture('heal_reference');
const CHECKPOINT = path.join(DIR ?? '', 'm1_stage1.pth');
const CASE = path.join(DIR ?? '', 'case1');
const present =
  DIR !== undefined && existsSync(CHECKPOINT) && existsSync(path.join(CASE, 'expected.safetensors')) && existsSync(path.join(CASE, 'expected.json'));
if (DIR !== undefined && !present) console.log(`heal-reference: skipped, ${DIR} lacks m1_stage1.pth, case1/expected.safetensors or case1/expected.json`);

/** The README's suggested parity bounds. */
const TOL = { pillars: 2e-4, map: 1e-3, shrink: 1e-4, cls: 3e-4, regDir: 5e-5, sumRel: 1e-5, theta: 1e-12 };

interface Expected {
  agents: { id: string; lidar_pose_x_y_z_roll_yaw_pitch_deg: number[] }[];
  crops: Record<string, { row0: number; col0: number; size: number }>;
}

const f32 = Math.fround;

/**
 * HEAL's PillarVFE decoration in float32: [x, y, z, i, xyz − mean of the real points, xyz − pillar
 * centre], zero in padded slots; and the slot mask and the cell → pillar index heal's graph takes.
 */
function pillarInputs(feat: Float32Array, coords: Int32Array, num: Int32Array, enc: PointPillarsConfig): Record<string, HostTensor> {
  const P = num.length;
  const N = enc.maxPointsPerPillar;
  const [W, H] = pillarGridOf(enc, HEAL_SPACE);
  const [xmin, ymin, zmin, , , zmax] = HEAL_SPACE.range;
  const [vx, vy] = enc.pillarSize;
  const vz = zmax - zmin;
  const offset = [f32(vx / 2 + xmin), f32(vy / 2 + ymin), f32(vz / 2 + zmin)];
  const size = [f32(vx), f32(vy), f32(vz)];
  const features = new Float32Array(P * N * 10);
  const mask = new Float32Array(P * N);
  const cellToPillar = new Int32Array(W * H).fill(P);
  for (let q = 0; q < P; q++) {
    const n = num[q];
    const sum = [0, 0, 0];
    for (let s = 0; s < N; s++) for (let k = 0; k < 3; k++) sum[k] = f32(sum[k] + feat[(q * N + s) * 4 + k]);
    const mean = sum.map((v) => f32(v / f32(n)));
    // coords are (agent, z, y, x).
    const cell = [coords[q * 4 + 3], coords[q * 4 + 2], coords[q * 4 + 1]];
    const centre = cell.map((c, k) => f32(f32(c * size[k]) + offset[k]));
    cellToPillar[cell[1] * W + cell[0]] = q;
    for (let s = 0; s < n; s++) {
      const src = (q * N + s) * 4;
      const dst = (q * N + s) * 10;
      mask[q * N + s] = 1;
      for (let k = 0; k < 4; k++) features[dst + k] = feat[src + k];
      for (let k = 0; k < 3; k++) {
        features[dst + 4 + k] = f32(feat[src + k] - mean[k]);
        features[dst + 7 + k] = f32(feat[src + k] - centre[k]);
      }
    }
  }
  return {
    features: { data: features, shape: [P, N, 10] },
    mask: { data: mask, shape: [P, N] },
    cellToPillar: { data: cellToPillar, shape: [W * H] },
  };
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    m = Number.isNaN(d) ? Infinity : Math.max(m, d);
  }
  return m;
}

/** float64 sums over each channel of an [N, C, ...] map, flattened [N·C]. */
function channelSums(t: HostTensor): Float64Array {
  const [n, c] = t.shape;
  const plane = t.data.length / (n * c);
  const out = new Float64Array(n * c);
  for (let i = 0; i < n * c; i++) {
    let s = 0;
    for (let k = 0; k < plane; k++) s += t.data[i * plane + k];
    out[i] = s;
  }
  return out;
}

/** max |a − b| / max |b| over channel sums. */
function sumRel(ours: Float64Array, ref: ArrayLike<number>): number {
  let den = 0;
  for (let i = 0; i < ref.length; i++) den = Math.max(den, Math.abs(ref[i]));
  return maxAbsDiff(ours, ref) / den;
}

/** The size×size window at (row0, col0) of every channel of an [N, C, H, W] map, as [N, C, size, size]. */
function crop(t: HostTensor, row0: number, col0: number, size: number): Float32Array {
  const [n, c, h, w] = t.shape;
  const out = new Float32Array(n * c * size * size);
  for (let i = 0; i < n * c; i++) {
    for (let r = 0; r < size; r++) {
      const from = (i * h + row0 + r) * w + col0;
      out.set(t.data.subarray(from, from + size), (i * size + r) * size);
    }
  }
  return out;
}

function stack(maps: HostTensor[]): HostTensor {
  const n = maps[0].data.length;
  const data = new Float32Array(maps.length * n);
  maps.forEach((m, i) => data.set(m.data, i * n));
  return { data, shape: [maps.length, ...maps[0].shape.slice(1)] };
}

/** max |diff| per stage, printed at the end (the test's record of how close heal is). */
const report: Record<string, number> = {};

describe.skipIf(!present)("HEAL's m1 stage-1 model (case1) in the heal profile", () => {
  let ref: Map<string, SafeTensor>;
  let expected: Expected;
  let imp: HealImport;
  let enc: PointPillarsConfig;
  let agentDesc: GraphDesc;
  let egoDesc: GraphDesc;
  const A = 3;
  const bevs: HostTensor[] = [];
  const sessions: ort.InferenceSession[] = [];
  const tensor = (name: string) => {
    const t = ref.get(name);
    if (!t) throw new Error(`expected.safetensors has no "${name}"`);
    return t;
  };
  const session = async (desc: GraphDesc, weights: Weights) => {
    const { session: s, provider } = await createSession(exportOnnx(desc, pickWeights(desc, weights, CHECKPOINT)), { device: 'cpu' });
    expect(provider).toBe('cpu');
    sessions.push(s);
    return s;
  };

  beforeAll(async () => {
    ref = (await readSafetensors(path.join(CASE, 'expected.safetensors'))).tensors;
    expected = JSON.parse(readFileSync(path.join(CASE, 'expected.json'), 'utf8')) as Expected;
    const network = builtinAgentConfig('m1', 'heal');
    enc = network.encoder as PointPillarsConfig;
    agentDesc = agentNetwork(network, HEAL_SPACE);
    egoDesc = egoNetworkFor(HEAL_SPACE, { intermediates: true });
    imp = await loadHealCheckpoint(CHECKPOINT, [agentDesc, egoDesc]);
  });

  afterAll(async () => {
    for (const s of sessions) await s.release();
    console.log(`heal-reference max |diff| per stage (sums: relative to the largest sum):\n${JSON.stringify(report, null, 1)}`);
  });

  it('loads every key of m1_stage1.pth: 321 tensors mapped, 61 counters skipped, 5,496,151 values', () => {
    expect(imp.mapped.length).toBe(321);
    expect(imp.skipped.length).toBe(61);
    const values = [...imp.weights.values()].reduce((s, w) => s + w.data.length, 0);
    expect(values).toBe(5_496_151);
    const params = [agentDesc, egoDesc].reduce((s, d) => s + d.params.reduce((a, p) => a + p.shape.reduce((x, y) => x * y, 1), 0), 0);
    expect(params).toBe(5_496_151);
    console.log(`heal-reference: ${CHECKPOINT}\n  ${describeImport(imp).join('\n  ')}`);
  });

  it('PFN and scatter: pillar_features and the scattered map per agent', async () => {
    const g = new GraphBuilder('pfn-scatter');
    const inp = pointPillarsInputs(g, enc, HEAL_SPACE);
    const pillars = addPillarFeatureNet(g, inp.features, inp.mask, enc.pfnChannels, 'encoder.m1.pfn', enc.pfnPadding);
    g.output('pillars', pillars);
    g.output('scatter', addPillarScatter(g, pillars, inp.cellToPillar, pillarGridOf(enc, HEAL_SPACE), 'encoder.m1.scatter'));
    const desc = g.build();
    const s = await session(desc, imp.weights);
    let pillarDiff = 0;
    const sums: Float64Array[] = [];
    for (let a = 0; a < A; a++) {
      const inputs = pillarInputs(
        tensor(`agent${a}.voxel_features`).data as Float32Array,
        tensor(`agent${a}.voxel_coords`).data as Int32Array,
        tensor(`agent${a}.voxel_num_points`).data as Int32Array,
        enc,
      );
      const out = await runSession(s, inputs);
      pillarDiff = Math.max(pillarDiff, maxAbsDiff(out.pillars.data, tensor(`agent${a}.pillar_features`).data as Float32Array));
      sums.push(channelSums(out.scatter));
    }
    report.pillar_features = pillarDiff;
    report['bev_scatter.channel_sum'] = sumRel(Float64Array.from(sums.flatMap((x) => [...x])), tensor('bev_scatter.channel_sum').data as Float64Array);
    expect(pillarDiff).toBeLessThan(TOL.pillars);
    expect(report['bev_scatter.channel_sum']).toBeLessThan(TOL.sumRel);
  });

  it('m1 agent network (PFN, scatter, backbone_m1, identity aligner): bev_backbone_m1', async () => {
    const s = await session(agentDesc, imp.weights);
    for (let a = 0; a < A; a++) {
      const inputs = pillarInputs(
        tensor(`agent${a}.voxel_features`).data as Float32Array,
        tensor(`agent${a}.voxel_coords`).data as Int32Array,
        tensor(`agent${a}.voxel_num_points`).data as Int32Array,
        enc,
      );
      bevs.push((await runSession(s, inputs)).bev);
    }
    const bev = stack(bevs);
    expect(bev.shape).toEqual([A, 64, 256, 256]);
    const c = expected.crops['bev_backbone_m1.crop'];
    report['bev_backbone_m1.channel_sum'] = sumRel(channelSums(bev), tensor('bev_backbone_m1.channel_sum').data as Float64Array);
    report['bev_backbone_m1.crop'] = maxAbsDiff(crop(bev, c.row0, c.col0, c.size), tensor('bev_backbone_m1.crop').data as Float32Array);
    expect(report['bev_backbone_m1.channel_sum']).toBeLessThan(TOL.sumRel);
    expect(report['bev_backbone_m1.crop']).toBeLessThan(TOL.map);
  });

  it('ego network (per-level warp, ResNeXt pyramid, DoubleConv shrink, heads): occ, fused levels, shrink, cls/reg/dir', async () => {
    expect(bevs.length).toBe(A);
    const poses = expected.agents.map((a) => poseToMatrix(a.lidar_pose_x_y_z_roll_yaw_pitch_deg));
    // heal's θ is HEAL's affine_matrix[0, 0, j] (normalize_pairwise_tfm of T_{j←ego}).
    const affine = tensor('affine_matrix');
    const L = affine.shape[1];
    let thetaDiff = 0;
    poses.forEach((p, j) => {
      const theta = warpTheta(agentFromEgo(poses[0], p), HEAL_SPACE);
      thetaDiff = Math.max(thetaDiff, maxAbsDiff(theta, (affine.data as Float64Array).subarray(j * 6, j * 6 + 6)));
    });
    expect(L).toBe(5);
    report.theta = thetaDiff;
    expect(thetaDiff).toBeLessThan(TOL.theta);

    const stacked = stack(bevs);
    const [, , H, W] = stacked.shape;
    const inputs = egoInputsFor(HEAL_SPACE, stacked.data as Float32Array, poses, new Float32Array(A * H * W).fill(1), [1, 1, 1]);
    expect(Object.keys(inputs).sort()).toEqual(['features', 'grid0', 'grid1', 'grid2', 'trust', 'valid']);
    const out = await runSession(await session(egoDesc, imp.weights), inputs);

    for (let l = 0; l < 3; l++) {
      report[`occ_single_list.${l}`] = maxAbsDiff(out[`occ${l}`].data, tensor(`occ_single_list.${l}`).data as Float32Array);
      report[`fused_level${l}.channel_sum`] = sumRel(channelSums(out[`fusedLevel${l}`]), tensor(`fused_level${l}.channel_sum`).data as Float64Array);
    }
    const c = expected.crops['fused_shrink.crop'];
    report['fused_shrink.channel_sum'] = sumRel(channelSums(out.fused), tensor('fused_shrink.channel_sum').data as Float64Array);
    report['fused_shrink.crop'] = maxAbsDiff(crop(out.fused, c.row0, c.col0, c.size), tensor('fused_shrink.crop').data as Float32Array);
    report.cls = maxAbsDiff(out.cls.data, tensor('cls_preds').data as Float32Array);
    report.reg = maxAbsDiff(out.reg.data, tensor('reg_preds').data as Float32Array);
    report.dir = maxAbsDiff(out.dir.data, tensor('dir_preds').data as Float32Array);

    for (let l = 0; l < 3; l++) {
      expect(report[`occ_single_list.${l}`], `occ level ${l}`).toBeLessThan(TOL.map);
      expect(report[`fused_level${l}.channel_sum`], `fused level ${l}`).toBeLessThan(TOL.sumRel);
    }
    expect(report['fused_shrink.channel_sum']).toBeLessThan(TOL.sumRel);
    expect(report['fused_shrink.crop']).toBeLessThan(TOL.shrink);
    expect(report.cls).toBeLessThan(TOL.cls);
    expect(report.reg).toBeLessThan(TOL.regDir);
    expect(report.dir).toBeLessThan(TOL.regDir);
  });

  it('CollabPipeline takes m1_stage1.pth as its weight file and fuses the agents as HEAL does', async () => {
    expect(bevs.length).toBe(A);
    const lines: string[] = [];
    const pipeline = await CollabPipeline.create({
      space: HEAL_SPACE,
      registry: await loadRegistry(),
      device: 'cpu',
      weightsFile: CHECKPOINT,
      log: (l) => lines.push(l),
    });
    expect(lines.join('\n')).toMatch(
      /HEAL checkpoint .*m1_stage1\.pth → the heal profile's ego network and m1:\n {2}encoder_m1 → encoder\.m1\.pfn\.\*: 5 tensors/,
    );
    const poses = expected.agents.map((a) => poseToMatrix(a.lidar_pose_x_y_z_roll_yaw_pitch_deg));
    const out = await pipeline.fuse(
      bevs.map((b) => b.data as Float32Array),
      poses,
    );
    report['pipeline.cls'] = maxAbsDiff(out.cls.data, tensor('cls_preds').data as Float32Array);
    expect(report['pipeline.cls']).toBeLessThan(TOL.cls);
    expect(maxAbsDiff(out.reg.data, tensor('reg_preds').data as Float32Array)).toBeLessThan(TOL.regDir);
  });
});

// HEAL's m1 (LiDAR PointPillars, stage 1, intermediate pyramid fusion) against a case's
// expected.safetensors, stage by stage, in four groups:
//   voxels       heal's voxelizer (the detect path's agentInputs) on the case's point clouds
//   networks     heal's networks on HEAL's own voxels: PFN, scatter, backbone, θ, occupancy,
//                fused levels, shrink, heads, and the boxes heal decodes from its heads
//   postprocess  heal's post-processing on HEAL's head outputs
//   detect       the whole `heal detect` path (CollabPipeline.runFrame, float32 messages)
// The networks are fed HEAL's voxels, so a network difference is not hidden behind (or blamed on)
// the voxelizer. Tolerances are the fixture README's (about ten times HEAL's own float32-vs-float64
// noise); channel sums are relative to the largest sum of the stage.

import { openDataset } from '../datasets/open.ts';
import type { FrameRef } from '../datasets/dataset.ts';
import { DataError } from '../datasets/io.ts';
import { boxToCorners } from '../datasets/geometry/boxes.ts';
import { poseToMatrix } from '../datasets/geometry/transforms.ts';
import { GraphBuilder, type GraphDesc, type HostTensor } from '../models/graph.ts';
import type { SafeTensor } from '../models/safetensors.ts';
import { exportOnnx } from '../models/onnx.ts';
import { pickWeights, type Weights } from '../models/weights.ts';
import { createSession, runSession } from '../models/runtime.ts';
import { HEAL_SPACE } from '../perception/space.ts';
import { loadRegistry } from '../perception/registry.ts';
import { alignToGround } from '../perception/ground.ts';
import { agentInputs, agentNetwork } from '../perception/encoders/agent.ts';
import { addPillarFeatureNet, addPillarScatter, pillarGridOf, pointPillarsInputs, type PointPillarsConfig } from '../perception/encoders/pointpillars.ts';
import { CollabPipeline, egoInputsFor, egoNetworkFor, readWeightFile } from '../fusion/pipeline.ts';
import { agentFromEgo, warpTheta } from '../fusion/warp.ts';
import { makeAnchors } from '../fusion/anchors.ts';
import { decodeDetections, type Detection } from '../fusion/detect.ts';
import { caseReader, channelSums, crop, maxAbsDiff, sumRel, type ReferenceCase, type ReferenceSuite, type StageCheck, type SuiteOptions } from './reference.ts';

/** The fixture README's parity bounds (θ: float64 against float64, so rounding only). */
export const LIDAR_TOLERANCES = {
  voxels: 0,
  pillarFeatures: 2e-4,
  map: 1e-3,
  shrink: 1e-4,
  cls: 3e-4,
  regDir: 5e-5,
  sumRel: 1e-5,
  theta: 1e-12,
  /** T_{j←i} in meters: float64 inverse·product against HEAL's float64 linear solve. */
  pairwise: 1e-9,
  /** Anchor boxes: both float32 from the same formula. */
  anchor: 1e-6,
  corners: 3e-4,
  yaw: 1e-4,
  scores: 5e-5,
} as const;

interface ExpectedJson {
  agents?: { id: string; lidar_pose_x_y_z_roll_yaw_pitch_deg: number[] }[];
  crops?: Record<string, { row0: number; col0: number; size: number }>;
  source?: { split?: string; scenario?: string; timestamp?: string };
}

const f32 = Math.fround;

/**
 * HEAL's PillarVFE decoration in float32 of HEAL's own voxels ([x, y, z, i, xyz − mean of the real
 * points, xyz − pillar centre], zero in padded slots), with the slot mask and the cell → pillar
 * index heal's graph takes.
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

function stack(maps: HostTensor[]): HostTensor {
  const n = maps[0].data.length;
  const data = new Float32Array(maps.length * n);
  maps.forEach((m, i) => data.set(m.data, i * n));
  return { data, shape: [maps.length, ...maps[0].shape.slice(1)] };
}

const numbers = (t: SafeTensor): number[] => Array.from(t.data as ArrayLike<number | bigint>, Number);

/**
 * heal's boxes against boxes.*: the count, HEAL's anchor sequence (NMS pick order) and direction
 * bins, box7 (centre and size; yaw apart), the 8 corners and the scores.
 */
export function compareBoxes(
  dets: Detection[],
  tensors: Map<string, SafeTensor>,
  row: (stage: string, kind: StageCheck['kind'], diff: number, tol: number, note?: string) => void,
  label: string,
): void {
  const want = (n: string) => {
    const t = tensors.get(n);
    if (!t) throw new Error(`no ${n}`);
    return t;
  };
  const anchors = numbers(want('boxes.anchor_index'));
  const labels = tensors.has('boxes.dir_label') ? numbers(want('boxes.dir_label')) : undefined;
  const box7 = want('boxes.box7').data as Float32Array;
  const corners = want('boxes.corners').data as Float32Array;
  const scores = want('boxes.scores').data as Float32Array;
  const anchorBoxes = tensors.has('boxes.anchor') ? (want('boxes.anchor').data as Float32Array) : undefined;
  const heal = anchorBoxes && makeAnchors(HEAL_SPACE).boxes;
  const n = Math.min(dets.length, anchors.length);
  let anchor = 0;
  let order = 0;
  let dirs = 0;
  let size = 0;
  let yaw = 0;
  let corner = 0;
  let score = 0;
  for (let k = 0; k < n; k++) {
    const d = dets[k];
    if (d.anchor !== anchors[k]) order++;
    if (anchorBoxes && heal && d.anchor !== undefined) {
      for (let j = 0; j < 7; j++) anchor = Math.max(anchor, Math.abs(heal[d.anchor * 7 + j] - anchorBoxes[k * 7 + j]));
    }
    if (labels && d.dirLabel !== labels[k]) dirs++;
    for (let j = 0; j < 6; j++) size = Math.max(size, Math.abs(d.box[j] - box7[k * 7 + j]));
    const dy = Math.abs(d.box[6] - box7[k * 7 + 6]) % (2 * Math.PI);
    yaw = Math.max(yaw, Math.min(dy, 2 * Math.PI - dy));
    const c = boxToCorners(d.box);
    for (let j = 0; j < 24; j++) corner = Math.max(corner, Math.abs(c[j] - corners[k * 24 + j]));
    score = Math.max(score, Math.abs(d.score - scores[k]));
  }
  row(`${label}.count`, 'count', Math.abs(dets.length - anchors.length), 0, `${dets.length} boxes, HEAL ${anchors.length}`);
  row(`${label}.anchor_index`, 'count', order, 0, 'NMS pick order');
  if (labels) row(`${label}.dir_label`, 'count', dirs, 0);
  if (anchorBoxes) row(`${label}.anchor`, 'abs', anchor, LIDAR_TOLERANCES.anchor, 'anchor box of each');
  row(`${label}.box7 (x,y,z,h,w,l)`, 'abs', size, LIDAR_TOLERANCES.corners, 'm');
  row(`${label}.box7 (yaw)`, 'abs', yaw, LIDAR_TOLERANCES.yaw, 'rad');
  row(`${label}.corners`, 'abs', corner, LIDAR_TOLERANCES.corners, 'm');
  row(`${label}.scores`, 'abs', score, LIDAR_TOLERANCES.scores);
}

async function run(c: ReferenceCase, opts: SuiteOptions): Promise<StageCheck[]> {
  const { checks, row, has, tensor, floats, wants } = caseReader(c, LIDAR_SUITE.name, opts, 'expected.safetensors');
  const json = c.json as ExpectedJson;
  const agents = json.agents ?? [];
  if (!agents.length) throw new DataError(c.dir, 'agents', 'expected.json lists no agents (HEAL order, ids, poses)');
  const A = agents.length;

  const registry = await loadRegistry(opts.typesDirs ?? []);
  const network = registry.profile('m1', HEAL_SPACE.name).network;
  const enc = network.encoder as PointPillarsConfig;

  if (wants('voxels') && has('agent0.voxel_coords')) {
    const ds = await openDataset(c.dir);
    const ref = frameOf(ds.frames(), json, c.dir);
    let mismatches = 0;
    const [W] = pillarGridOf(enc, HEAL_SPACE);
    const counts: number[] = [];
    for (const [k, a] of agents.entries()) {
      if (!has(`agent${k}.voxel_coords`, `agent${k}.voxel_num_points`, `agent${k}.voxel_features`)) continue;
      const frame = alignToGround(await ds.readAgentFrame(ref, Number(a.id), { lidar: 64 }), HEAL_SPACE);
      const inp = agentInputs(network, HEAL_SPACE, frame);
      const [P, N, F] = inp.features.shape;
      const coords = tensor(`agent${k}.voxel_coords`).data as Int32Array;
      const nums = tensor(`agent${k}.voxel_num_points`).data as Int32Array;
      const feats = floats(`agent${k}.voxel_features`);
      counts.push(P);
      if (P !== nums.length || N !== feats.length / nums.length / 4) {
        mismatches += Math.abs(P - nums.length) || 1;
        continue;
      }
      const cells = inp.cellToPillar.data as Int32Array;
      let filled = 0;
      for (const v of cells) if (v < P) filled++;
      if (filled !== P) mismatches += Math.abs(filled - P);
      const mask = inp.mask.data as Float32Array;
      const feat = inp.features.data as Float32Array;
      for (let v = 0; v < P; v++) {
        if (coords[v * 4] !== k || coords[v * 4 + 1] !== 0 || cells[coords[v * 4 + 2] * W + coords[v * 4 + 3]] !== v) mismatches++;
        let n = 0;
        for (let s = 0; s < N; s++) n += mask[v * N + s];
        if (n !== nums[v]) mismatches++;
        for (let s = 0; s < N; s++) for (let q = 0; q < 4; q++) if (feats[(v * N + s) * 4 + q] !== feat[(v * N + s) * F + q]) mismatches++;
      }
    }
    row('voxels (pillars, cells, points)', 'count', mismatches, LIDAR_TOLERANCES.voxels, `${counts.join(' / ')} pillars`);
  }

  if (wants('networks') && has('agent0.voxel_features')) {
    const { weights } = await readWeightFile(c.checkpoint, HEAL_SPACE, registry);
    const sessions: { release(): Promise<void> }[] = [];
    const session = async (desc: GraphDesc, w: Weights) => {
      const s = await createSession(exportOnnx(desc, pickWeights(desc, w, c.checkpoint)), { device: opts.device });
      sessions.push(s.session);
      return s.session;
    };
    try {
      const inputs = agents.map((_, k) =>
        pillarInputs(
          floats(`agent${k}.voxel_features`),
          tensor(`agent${k}.voxel_coords`).data as Int32Array,
          tensor(`agent${k}.voxel_num_points`).data as Int32Array,
          enc,
        ),
      );
      if (has('agent0.pillar_features') || has('bev_scatter.channel_sum')) {
        const g = new GraphBuilder('pfn-scatter');
        const inp = pointPillarsInputs(g, enc, HEAL_SPACE);
        const pillars = addPillarFeatureNet(g, inp.features, inp.mask, enc.pfnChannels, 'encoder.m1.pfn', enc.pfnPadding);
        g.output('pillars', pillars);
        g.output('scatter', addPillarScatter(g, pillars, inp.cellToPillar, pillarGridOf(enc, HEAL_SPACE), 'encoder.m1.scatter'));
        const s = await session(g.build(), weights);
        let pillarDiff = 0;
        const sums: number[] = [];
        for (let k = 0; k < A; k++) {
          const out = await runSession(s, inputs[k]);
          if (has(`agent${k}.pillar_features`)) pillarDiff = Math.max(pillarDiff, maxAbsDiff(out.pillars.data, floats(`agent${k}.pillar_features`)));
          sums.push(...channelSums(out.scatter));
        }
        if (has('agent0.pillar_features')) row('pillar_features', 'abs', pillarDiff, LIDAR_TOLERANCES.pillarFeatures);
        if (has('bev_scatter.channel_sum'))
          row('bev_scatter.channel_sum', 'rel', sumRel(sums, tensor('bev_scatter.channel_sum').data as Float64Array), LIDAR_TOLERANCES.sumRel);
      }

      const agentDesc = agentNetwork(network, HEAL_SPACE);
      const s = await session(agentDesc, weights);
      const bevs: HostTensor[] = [];
      for (let k = 0; k < A; k++) bevs.push((await runSession(s, inputs[k])).bev);
      const bev = stack(bevs);
      if (has('bev_backbone_m1.channel_sum'))
        row(
          'bev_backbone_m1.channel_sum',
          'rel',
          sumRel(channelSums(bev), tensor('bev_backbone_m1.channel_sum').data as Float64Array),
          LIDAR_TOLERANCES.sumRel,
        );
      const bc = json.crops?.['bev_backbone_m1.crop'];
      if (bc && has('bev_backbone_m1.crop'))
        row('bev_backbone_m1.crop', 'abs', maxAbsDiff(crop(bev, bc.row0, bc.col0, bc.size), floats('bev_backbone_m1.crop')), LIDAR_TOLERANCES.map);

      const poses = agents.map((a) => poseToMatrix(a.lidar_pose_x_y_z_roll_yaw_pitch_deg));
      if (has('affine_matrix')) {
        // heal's θ is HEAL's affine_matrix[0, 0, j] (normalize_pairwise_tfm of T_{j←ego}).
        const affine = tensor('affine_matrix').data as Float64Array;
        let d = 0;
        poses.forEach((p, j) => {
          d = Math.max(d, maxAbsDiff(warpTheta(agentFromEgo(poses[0], p), HEAL_SPACE), affine.subarray(j * 6, j * 6 + 6)));
        });
        row('affine_matrix (θ)', 'abs', d, LIDAR_TOLERANCES.theta);
      }
      if (has('pairwise_t_matrix')) {
        // [0, i, j] = T_{j←i}, over max_cav slots (identity padding, unused).
        const t = tensor('pairwise_t_matrix');
        const L = t.shape[1];
        const m = t.data as Float64Array;
        let d = 0;
        for (let i = 0; i < A; i++)
          for (let j = 0; j < A; j++) d = Math.max(d, maxAbsDiff(agentFromEgo(poses[i], poses[j]), m.subarray((i * L + j) * 16, (i * L + j + 1) * 16)));
        row('pairwise_t_matrix', 'abs', d, LIDAR_TOLERANCES.pairwise, `${L} slots, the profile's max agents ${HEAL_SPACE.maxAgents}`);
      }

      const egoDesc = egoNetworkFor(HEAL_SPACE, { intermediates: true });
      const [, , H, W] = bev.shape;
      const ego = await session(egoDesc, weights);
      const out = await runSession(ego, egoInputsFor(HEAL_SPACE, bev.data as Float32Array, poses, new Float32Array(A * H * W).fill(1), new Array(A).fill(1)));
      for (let l = 0; l < 3; l++) {
        if (has(`occ_single_list.${l}`))
          row(`occ_single_list.${l}`, 'abs', maxAbsDiff(out[`occ${l}`].data, floats(`occ_single_list.${l}`)), LIDAR_TOLERANCES.map);
      }
      for (let l = 0; l < 3; l++) {
        if (has(`fused_level${l}.channel_sum`))
          row(
            `fused_level${l}.channel_sum`,
            'rel',
            sumRel(channelSums(out[`fusedLevel${l}`]), tensor(`fused_level${l}.channel_sum`).data as Float64Array),
            LIDAR_TOLERANCES.sumRel,
          );
      }
      if (has('fused_shrink.channel_sum'))
        row(
          'fused_shrink.channel_sum',
          'rel',
          sumRel(channelSums(out.fused), tensor('fused_shrink.channel_sum').data as Float64Array),
          LIDAR_TOLERANCES.sumRel,
        );
      const sc = json.crops?.['fused_shrink.crop'];
      if (sc && has('fused_shrink.crop'))
        row('fused_shrink.crop', 'abs', maxAbsDiff(crop(out.fused, sc.row0, sc.col0, sc.size), floats('fused_shrink.crop')), LIDAR_TOLERANCES.shrink);
      if (has('cls_preds')) row('cls_preds', 'abs', maxAbsDiff(out.cls.data, floats('cls_preds')), LIDAR_TOLERANCES.cls);
      if (has('reg_preds')) row('reg_preds', 'abs', maxAbsDiff(out.reg.data, floats('reg_preds')), LIDAR_TOLERANCES.regDir);
      if (has('dir_preds')) row('dir_preds', 'abs', maxAbsDiff(out.dir.data, floats('dir_preds')), LIDAR_TOLERANCES.regDir);
      if (has('boxes.anchor_index')) {
        const dets = decodeDetections(makeAnchors(HEAL_SPACE), out.cls.data as Float32Array, out.reg.data as Float32Array, out.dir.data as Float32Array, {
          range: HEAL_SPACE.range,
        });
        compareBoxes(dets, c.tensors, row, 'boxes');
      }
    } finally {
      for (const s of sessions) await s.release();
    }
  }

  if (wants('postprocess') && has('cls_preds', 'reg_preds', 'dir_preds', 'boxes.anchor_index')) {
    const dets = decodeDetections(makeAnchors(HEAL_SPACE), floats('cls_preds'), floats('reg_preds'), floats('dir_preds'), { range: HEAL_SPACE.range });
    compareBoxes(dets, c.tensors, row, "post-processing of HEAL's heads: boxes");
  }

  if (wants('detect') && has('boxes.anchor_index')) {
    const ds = await openDataset(c.dir);
    const ref = frameOf(ds.frames(), json, c.dir);
    const pipeline = await CollabPipeline.create({ space: HEAL_SPACE, registry, device: opts.device, weightsFile: c.checkpoint, trust: null });
    // heal detect's order: the frame's agent order (OpenCOOD's), the default ego first.
    const inputs = [];
    for (const id of ref.agentIds) inputs.push({ frame: await ds.readAgentFrame(ref, id, { lidar: 64 }), type: 'm1' });
    const r = await pipeline.runFrame(inputs, ref.agentIds[0], { mode: 'intermediate', dtype: 'float32' });
    const order = r.used.map((u) => String(u.id));
    const want = agents.map((a) => a.id);
    const recordLen = has('record_len') ? Number(tensor('record_len').data[0]) : want.length;
    const differ = order.filter((id, i) => id !== want[i]).length + Math.abs(order.length - want.length) + Math.abs(order.length - recordLen);
    row('detect: agents used, in order (record_len)', 'count', differ, 0, order.join(', '));
    compareBoxes(r.detections, c.tensors, row, 'detect: boxes');
  }
  return checks;
}

/** The case's frame: expected.json's source, else the dataset's first. */
function frameOf(frames: FrameRef[], json: ExpectedJson, dir: string): FrameRef {
  const s = json.source;
  const ref = s
    ? frames.find((f) => (!s.split || f.split === s.split) && (!s.scenario || f.scenario === s.scenario) && (!s.timestamp || f.timestamp === s.timestamp))
    : frames[0];
  if (!ref) throw new DataError(dir, 'source', 'expected.json names a frame the case folder does not hold', s);
  return ref;
}

export const LIDAR_SUITE: ReferenceSuite = {
  name: 'm1 (LiDAR, stage 1)',
  expected: 'expected',
  groups: ['voxels', 'networks', 'postprocess', 'detect'],
  run,
};

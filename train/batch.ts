// One training sample from a cooperative frame: an ego vehicle and the agents within range, each
// encoded as type m1 (64-beam LiDAR PointPillars), the cooperative GT in the ego frame, and the
// head and foreground targets.
//
// Augmentation happens in the ego frame and keeps every pose as it is: a transform T (flip of y,
// rotation about z, uniform scaling, in that order) is applied to the ego-frame scene, which in
// the world is G = E·T·E⁻¹ (E = T_world←ego). Agent j's points become P_j⁻¹·G·P_j applied to its
// own points, so warping them with the unchanged pose P_j lands them exactly where T puts them in
// the ego frame, and the GT boxes get T. Every agent therefore sees the same transformed world.

import type { AgentFrame } from '../datasets/frame.ts';
import type { Dataset, FrameRef } from '../datasets/dataset.ts';
import type { HostTensor } from '../models/graph.ts';
import type { AgentNetworkConfig } from '../perception/encoders/agent.ts';
import { agentInputs, masksOwnBody, selectCameras, type SensorData } from '../perception/encoders/agent.ts';
import { readDepthPng } from '../datasets/png.ts';
import { depthTargets } from '../perception/camera.ts';
import { EGO_BODY } from '../perception/pillars.ts';
import { alignToGround } from '../perception/ground.ts';
import type { SharedSpace } from '../perception/space.ts';
import { assignTargets, type Anchors, type Targets } from '../fusion/anchors.ts';
import { type Mat4, identity4, invert, multiply, transformPoints } from '../datasets/geometry/transforms.ts';
import { boxToCorners, cornersToBox, transformCorners, type Box7 } from '../datasets/geometry/boxes.ts';
import { rasterizeFootprints } from './losses.ts';
import { egoGroundTruth } from '../eval/groundtruth.ts';

/** Pillar counts are rounded up to a multiple of this in training (see padPillars). */
export const PILLAR_BUCKET = 1024;

/**
 * Pads a PointPillars input to a pillar count that is a multiple of `bucket`, with empty pillars
 * that no cell refers to. tfjs's WebGPU backend compiles a shader and pools buffers per tensor
 * shape and never frees the pool, so unpadded inputs (a new pillar count every frame) grow memory
 * without bound and recompile every step. Camera inputs have fixed shapes and pass unchanged.
 */
export function padPillars(inputs: Record<string, HostTensor>, bucket = PILLAR_BUCKET): Record<string, HostTensor> {
  const { features, mask, cellToPillar } = inputs;
  if (!features || !mask || !cellToPillar) return inputs;
  const [p, n, f] = features.shape;
  const padded = Math.max(bucket, Math.ceil(p / bucket) * bucket);
  if (padded === p) return inputs;
  const feat = new Float32Array(padded * n * f);
  feat.set(features.data as Float32Array);
  const m = new Float32Array(padded * n);
  m.set(mask.data as Float32Array);
  // Empty cells point one past the last pillar (the graph's zero row), which has moved.
  const cells = Int32Array.from(cellToPillar.data as Int32Array, (v) => (v === p ? padded : v));
  return {
    ...inputs,
    features: { data: feat, shape: [padded, n, f] },
    mask: { data: m, shape: [padded, n] },
    cellToPillar: { data: cells, shape: cellToPillar.shape },
  };
}

/** mulberry32: one 32-bit word of state, so a checkpoint can store and restore it exactly. */
export class TrainRng {
  constructor(public state: number) {
    this.state = state >>> 0;
  }
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next();
  }
}

export interface Augmentation {
  flipY: boolean;
  /** Rotation about z in radians. */
  rotation: number;
  scale: number;
}

export const NO_AUGMENTATION: Augmentation = { flipY: false, rotation: 0, scale: 1 };

/** OpenCOOD's usual ranges: flip with p 0.5, rotation ±45°, scaling 0.95–1.05. */
export function randomAugmentation(rng: TrainRng): Augmentation {
  return { flipY: rng.next() < 0.5, rotation: rng.uniform(-Math.PI / 4, Math.PI / 4), scale: rng.uniform(0.95, 1.05) };
}

/** T = S·R·F as a 4×4 (row-major). */
export function augmentationMatrix(a: Augmentation): Mat4 {
  const c = Math.cos(a.rotation) * a.scale,
    s = Math.sin(a.rotation) * a.scale;
  const f = a.flipY ? -1 : 1;
  const m = identity4();
  m[0] = c;
  m[1] = -s * f;
  m[4] = s;
  m[5] = c * f;
  m[10] = a.scale;
  return m;
}

export function augmentBox(b: ArrayLike<number>, a: Augmentation): Box7 {
  const m = augmentationMatrix(a);
  const x = m[0] * b[0] + m[1] * b[1],
    y = m[4] * b[0] + m[5] * b[1];
  const yaw = (a.flipY ? -b[6] : b[6]) + a.rotation;
  return [x, y, b[2] * a.scale, b[3] * a.scale, b[4] * a.scale, b[5] * a.scale, yaw];
}

/**
 * agentInputs of an agent whose points `m` moves (its own frame → the augmented scene, in its own
 * frame). The own-body mask is a box around the LiDAR, but the transform moves the body (a
 * collaborator's by metres, as G rotates about the ego), so the body is dropped before the
 * transform and pillarize must not mask again afterwards (it would cut real points there).
 */
export function augmentedInputs(
  network: AgentNetworkConfig,
  space: SharedSpace,
  data: SensorData & { points: Float32Array },
  m: Mat4,
): Record<string, HostTensor> {
  const enc = network.encoder;
  if (enc.arch === 'lss') return agentInputs(network, space, data);
  let points = data.points;
  if (masksOwnBody(enc, space, data.kind)) {
    // Same inclusive float32 bounds as pillarize's mask.
    const [x0, x1, y0, y1] = [EGO_BODY.xMin, EGO_BODY.xMax, EGO_BODY.yMin, EGO_BODY.yMax].map(Math.fround);
    const kept: number[] = [];
    for (let i = 0; i < points.length; i += 4) {
      const x = points[i],
        y = points[i + 1];
      if (!(x >= x0 && x <= x1 && y >= y0 && y <= y1)) kept.push(i);
    }
    const out = new Float32Array(kept.length * 4);
    kept.forEach((o, j) => out.set(points.subarray(o, o + 4), j * 4));
    points = out;
  }
  return agentInputs({ ...network, encoder: { ...enc, maskEgo: false } }, space, { ...data, points: transformPoints(m, points, 4) });
}

export interface TrainSample {
  ref: FrameRef;
  egoId: number;
  /** Agents used, ego first. */
  agentIds: number[];
  /** agentInputs of each agent (ego first). */
  inputs: Record<string, HostTensor>[];
  /** T_world←lidar of each agent after ground alignment (augmentation leaves them unchanged). */
  poses: Mat4[];
  /** GT boxes in the (ground-aligned, augmented) ego frame, inside the space's x/y range. */
  gt: Box7[];
  targets: Targets;
  /** Foreground target per pyramid level, [h_l·w_l] each. */
  occTargets: Float32Array[];
  /**
   * Depth-bin target of every feature pixel of a camera type's single agent (−1: ignored), for
   * the depth distribution [cameras, D, fH, fW]; absent when not asked for or a camera has no depth map.
   */
  depth?: { bins: Int32Array; shape: [number, number, number, number] };
}

export interface SampleOptions {
  space: SharedSpace;
  network: AgentNetworkConfig;
  anchors: Anchors;
  /** [h, w] of each pyramid level's foreground map, finest first. */
  levels: [number, number][];
  /** Picks the ego (a random vehicle) and the augmentation; undefined: default ego, no augmentation. */
  rng?: TrainRng;
  augment?: boolean;
  /**
   * At most this many agents (ego included); with an rng the collaborators are a random subset,
   * else the nearest. Each agent costs a full encoder pass, so this bounds a step's time.
   */
  maxAgents?: number;
  /** Sensor each agent reads: 64/32/16-beam LiDAR, or cameras. */
  lidar?: 64 | 32 | 16;
  images?: boolean;
  /** Load depth-bin targets for a camera type's depth supervision (single-agent samples). */
  depth?: boolean;
}

function egoCandidates(ds: Dataset, ref: FrameRef): number[] {
  const info = ds.scenarios().find((s) => s.split === ref.split && s.name === ref.scenario);
  const vehicles = ref.agentIds.filter((id) => info?.agents.find((a) => a.id === id)?.kind !== 'rsu');
  return vehicles.length ? vehicles : ref.agentIds;
}

export async function loadSample(ds: Dataset, ref: FrameRef, opts: SampleOptions): Promise<TrainSample> {
  const { space, rng } = opts;
  const candidates = egoCandidates(ds, ref);
  const egoId = rng ? candidates[rng.int(candidates.length)] : candidates[0];
  // Camera pictures cannot be rotated with the scene, so camera types train unaugmented.
  const aug = rng && opts.augment && !opts.images ? randomAugmentation(rng) : NO_AUGMENTATION;
  const read = { lidar: opts.lidar ?? 64, images: opts.images ?? false };
  const rawEgo = await ds.readAgentFrame(ref, egoId, read);
  const ego = alignToGround(rawEgo, space);
  const others: { frame: AgentFrame; d: number; key: number }[] = [];
  for (const id of ref.agentIds) {
    if (id === egoId) continue;
    const f = await ds.readAgentFrame(ref, id, read);
    const d = Math.hypot(f.lidarPose[3] - rawEgo.lidarPose[3], f.lidarPose[7] - rawEgo.lidarPose[7]);
    if (d <= space.commRange) others.push({ frame: alignToGround(f, space), d, key: rng ? rng.next() : d });
  }
  others.sort((a, b) => a.key - b.key);
  const frames: AgentFrame[] = [ego, ...others.slice(0, Math.max(0, (opts.maxAgents ?? Infinity) - 1)).map((o) => o.frame)];
  const worldFromEgo = ego.lidarPose;
  const egoFromWorld = invert(worldFromEgo);
  const T = augmentationMatrix(aug);
  const G = multiply(worldFromEgo, multiply(T, egoFromWorld));
  const inputs = frames.map((f) => {
    if (aug === NO_AUGMENTATION) return padPillars(agentInputs(opts.network, space, f));
    return padPillars(augmentedInputs(opts.network, space, f, multiply(invert(f.lidarPose), multiply(G, f.lidarPose))));
  });
  const r = space.range;
  const gt = (await egoGroundTruth(ds, ref, rawEgo, space, { transform: (b) => augmentBox(b, aug) })).map((g) => g.box);
  return {
    ref,
    egoId,
    agentIds: frames.map((f) => f.agentId),
    inputs,
    poses: frames.map((f) => f.lidarPose),
    gt,
    targets: assignTargets(opts.anchors, gt, 0.6, 0.45),
    occTargets: opts.levels.map(([h, w]) => rasterizeFootprints(gt, r, h, w)),
  };
}

/** The depth-bin targets of an LSS type's cameras, or undefined if it is not one or a depth map is missing. */
async function loadDepthTargets(network: AgentNetworkConfig, frame: AgentFrame): Promise<TrainSample['depth']> {
  const enc = network.encoder;
  if (enc.arch !== 'lss') return undefined;
  const cameras = selectCameras(enc, frame.cameras, `agent type "${network.type}"`);
  if (cameras.some((c) => !c.depthPath)) return undefined;
  const fW = enc.imageSize[0] / enc.downsample,
    fH = enc.imageSize[1] / enc.downsample;
  const b = enc.depthBins;
  const bins = new Int32Array(cameras.length * fW * fH);
  for (let i = 0; i < cameras.length; i++) {
    bins.set(depthTargets(await readDepthPng(cameras[i].depthPath!), [fW, fH], b.mode, b.min, b.max, b.count), i * fW * fH);
  }
  return { bins, shape: [cameras.length, b.count, fH, fW] };
}

/**
 * One agent alone, for backward alignment: the agent is its own ego, and its GT is the boxes its
 * own sensor sees (a lone agent cannot be asked for objects only others see).
 */
export async function loadSingleAgentSample(ds: Dataset, ref: FrameRef, agentId: number, opts: SampleOptions): Promise<TrainSample> {
  const { space, rng } = opts;
  const aug = rng && opts.augment && !opts.images ? randomAugmentation(rng) : NO_AUGMENTATION;
  const raw = await ds.readAgentFrame(ref, agentId, { lidar: opts.lidar ?? 64, images: opts.images ?? false });
  const frame = alignToGround(raw, space);
  const alignedFromRaw = multiply(invert(frame.lidarPose), raw.lidarPose);
  const r = space.range;
  const gt = raw.boxes
    .map((b) => augmentBox(cornersToBox(transformCorners(alignedFromRaw, boxToCorners(b.box))), aug))
    .filter((b) => b[0] >= r[0] && b[0] <= r[3] && b[1] >= r[1] && b[1] <= r[4]);
  return {
    ref,
    egoId: agentId,
    agentIds: [agentId],
    inputs: [
      padPillars(aug === NO_AUGMENTATION ? agentInputs(opts.network, space, frame) : augmentedInputs(opts.network, space, frame, augmentationMatrix(aug))),
    ],
    poses: [frame.lidarPose],
    gt,
    targets: assignTargets(opts.anchors, gt, 0.6, 0.45),
    occTargets: opts.levels.map(([h, w]) => rasterizeFootprints(gt, r, h, w)),
    depth: opts.depth ? await loadDepthTargets(opts.network, frame) : undefined,
  };
}

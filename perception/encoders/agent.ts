// One agent type's network: its encoder (PointPillars for LiDAR, Lift-Splat for cameras) and its
// aligner into the shared BEV space, built from a plain-JSON config. Together with agentInputs,
// which turns an agent's sensor data into the graph's inputs, this is all it takes to run any
// type:
//   const desc = agentNetwork(cfg, space);                  // → output "bev" [1, C, H', W']
//   const { session } = await createSession(exportOnnx(desc, weights), { device: 'auto' });
//   const { bev } = await runSession(session, agentInputs(cfg, space, frame));
// Parameters are named "encoder.<type>.*" and "aligner.<type>.*", so one weight file holds every
// type side by side (and the fusion network's "fusion.*" / "head.*").

import { GraphBuilder, type GraphDesc, type HostTensor, type TensorRef } from '../../models/graph.ts';
import { DataError } from '../../datasets/io.ts';
import type { AgentKind, CameraRecord } from '../../datasets/frame.ts';
import type { Mat4 } from '../../datasets/geometry/transforms.ts';
import { pillarize, POINT_FEATURES } from '../pillars.ts';
import {
  frustumToBev,
  healCameraInputs,
  healVoxelCells,
  preprocessImage,
  splatCamera,
  type HealCameraInputs,
  type SplatCamera,
  type SplatIndex,
} from '../camera.ts';
import { featureGrid, type SharedSpace } from '../space.ts';
import { addAligner, type AlignerConfig } from './aligner.ts';
import {
  addPointPillars,
  checkPointPillarsConfig,
  pillarConfigOf,
  pointPillarsInputs,
  pointPillarsOutChannels,
  isPillarArch,
  type PillarSettings,
  type PointPillarsConfig,
} from './pointpillars.ts';
import { checkExternalEncoderConfig, type ExternalEncoderConfig } from './external.ts';
import { addLss, checkLssConfig, healCameraConfigOf, healGridSize, lssInputs, lssOutChannels, lssSplatOptions, type LssConfig } from './lss.ts';

export type { PointPillarsConfig } from './pointpillars.ts';
export type { LssConfig, ImageBackboneConfig, DepthBinsConfig } from './lss.ts';

export type { ExternalEncoderConfig } from './external.ts';

export type EncoderConfig = PointPillarsConfig | LssConfig | ExternalEncoderConfig;

export interface AgentNetworkConfig {
  /** Agent type name, e.g. "m1"; the parameter-name prefix. */
  type: string;
  encoder: EncoderConfig;
  aligner: AlignerConfig;
}

/** What an agent's sensors give; an AgentFrame (datasets/frame.ts) is one. */
export interface SensorData {
  /** N×4 [x, y, z, intensity] in the agent's LiDAR frame (LiDAR types). */
  points?: Float32Array;
  /** Camera records with their images decoded (camera types). */
  cameras?: CameraRecord[];
  /** Roadside units have no vehicle body, so ego-body masking is skipped for them. */
  kind?: AgentKind;
  /** World ← LiDAR pose: HEAL's camera models (LSS with `heal`) place the cameras relative to it. */
  lidarPose?: Mat4;
}

export interface AgentNetworkOptions {
  /** Also output "depth" [cameras, D, fH, fW], the depth distribution of an LSS type (for depth supervision). */
  depthOutput?: boolean;
  /** Also output "encoded" (the encoder's map, before the aligner), "aligned" (after it) and, for HEAL's LSS, "splat" (the pooled BEV), for checks against HEAL. */
  intermediates?: boolean;
}

export function encoderOutChannels(enc: EncoderConfig): number {
  if (enc.arch === 'external') return enc.outChannels;
  return isPillarArch(enc.arch) ? pointPillarsOutChannels(enc as PointPillarsConfig) : lssOutChannels(enc as LssConfig);
}

/**
 * Checks a config (typically parsed from JSON) against a space, with errors that name `source`,
 * the field and the value.
 */
export function checkAgentNetworkConfig(cfg: AgentNetworkConfig, space: SharedSpace, source?: string): void {
  const src = source ?? `agent type ${JSON.stringify(cfg?.type)}`;
  if (typeof cfg !== 'object' || cfg === null) throw new DataError(src, undefined, 'network config must be an object', cfg);
  if (typeof cfg.type !== 'string' || !/^[A-Za-z0-9_-]+$/.test(cfg.type)) {
    throw new DataError(src, 'type', 'must be a name of letters, digits, "_" or "-" (it prefixes parameter names)', cfg.type);
  }
  const enc = cfg.encoder;
  if (typeof enc !== 'object' || enc === null) throw new DataError(src, 'encoder', 'must be an object', enc);
  if (isPillarArch(enc.arch)) checkPointPillarsConfig(enc as PointPillarsConfig, space, src);
  else if (enc.arch === 'lss') checkLssConfig(enc, src);
  else if (enc.arch === 'external') {
    // A black box joins through an adapter (registry: "join": "adapter"), not an aligner.
    checkExternalEncoderConfig(enc, space, src);
    return;
  } else throw new DataError(src, 'encoder.arch', 'must be "pointpillars", "pillar-fpn", "lss" or "external"', (enc as { arch?: unknown }).arch);
  const al = cfg.aligner;
  if (typeof al !== 'object' || al === null) throw new DataError(src, 'aligner', 'must be an object {inChannels, channels, blocks, batchNorm}', al);
  if (al.kind !== undefined && al.kind !== 'basic' && al.kind !== 'convnext')
    throw new DataError(src, 'aligner.kind', 'must be "basic" or "convnext"', al.kind);
  if (al.kind === 'convnext') {
    if (al.inChannels !== al.channels)
      throw new DataError(src, 'aligner.inChannels', `a ConvNeXt aligner keeps the width: must equal aligner.channels (${al.channels})`, al.inChannels);
    if (al.kernel !== undefined && !(Number.isInteger(al.kernel) && al.kernel % 2 === 1 && al.kernel > 0)) {
      throw new DataError(src, 'aligner.kernel', 'must be an odd positive whole number', al.kernel);
    }
  }
  const out = encoderOutChannels(enc);
  if (al.inChannels !== out) throw new DataError(src, 'aligner.inChannels', `must equal the encoder's output channels (${out})`, al.inChannels);
  if (al.channels !== space.channels)
    throw new DataError(src, 'aligner.channels', `must equal the channels of space "${space.name}" (${space.channels})`, al.channels);
  if (!(Number.isInteger(al.blocks) && al.blocks >= 0)) throw new DataError(src, 'aligner.blocks', 'must be a whole number ≥ 0 (0: the identity)', al.blocks);
  if (al.blocks === 0 && al.inChannels !== al.channels) {
    throw new DataError(src, 'aligner.inChannels', `must equal aligner.channels (${al.channels}) when blocks is 0 (the identity)`, al.inChannels);
  }
  if (typeof al.batchNorm !== 'boolean') throw new DataError(src, 'aligner.batchNorm', 'must be true or false', al.batchNorm);
}

/**
 * The type's encoder + aligner. LiDAR inputs: "features" [pillars, maxPoints, 10], "mask"
 * [pillars, maxPoints], "cellToPillar" [Hp·Wp] int32. Camera inputs: "images" [cameras, 3, H, W],
 * "keptIndex", "segmentStarts", "segmentEnds", "cellToSegment" (int32). Output "bev"
 * [1, space.channels, H', W'] (featureGrid(space)).
 */
export function agentNetwork(cfg: AgentNetworkConfig, space: SharedSpace, opts: AgentNetworkOptions = {}): GraphDesc {
  checkAgentNetworkConfig(cfg, space);
  const g = new GraphBuilder(`agent.${cfg.type}`);
  const encPrefix = `encoder.${cfg.type}`;
  const enc = cfg.encoder;
  let features: TensorRef;
  if (enc.arch === 'external') throw new Error(`agent type "${cfg.type}": its encoder is a black box (${enc.model}); heal runs it, it does not build it`);
  if (enc.arch === 'lss') {
    const { bev, depth, splat } = addLss(g, lssInputs(g, enc, space), enc, space, encPrefix);
    features = bev;
    if (opts.depthOutput) g.output('depth', depth);
    if (opts.intermediates && splat) g.output('splat', splat);
  } else {
    features = addPointPillars(g, pointPillarsInputs(g, enc, space), enc, space, encPrefix);
  }
  let bev = addAligner(g, features, cfg.aligner, `aligner.${cfg.type}`);
  if (opts.intermediates) {
    g.output('encoded', features);
    g.output('aligned', bev);
  }
  const [w, h] = featureGrid(space);
  if (enc.arch === 'lss' && enc.heal) bev = centreOnGrid(g, bev, enc, space, `aligner.${cfg.type}.centre`);
  const shape = bev.shape;
  if (shape[0] !== 1 || shape[1] !== space.channels || shape[2] !== h || shape[3] !== w) {
    throw new Error(`agent type "${cfg.type}": network output is [${shape}], expected [1, ${space.channels}, ${h}, ${w}]`);
  }
  g.output('bev', bev);
  return g.build();
}

/**
 * HEAL's torchvision CenterCrop from an LSS type's own grid to the shared one: the target is
 * int(size · shared range / LSS range) per axis (H from y, W from x); a smaller map is zero-padded
 * ⌊Δ/2⌋ before and ⌈Δ/2⌉ after (then the crop offset is 0). Cropping a larger map is not needed by
 * HEAL's configurations and is refused.
 */
function centreOnGrid(g: GraphBuilder, x: TensorRef, enc: LssConfig, space: SharedSpace, name: string): TensorRef {
  const grid = enc.heal!.grid;
  const [, , h, w] = x.shape as number[];
  const target = [Math.trunc(h * (space.range[4] / grid.ybound[1])), Math.trunc(w * (space.range[3] / grid.xbound[1]))];
  const [gw, gh] = featureGrid(space);
  if (target[0] !== gh || target[1] !== gw) {
    throw new Error(`${name}: HEAL's centre crop takes the ${w}×${h} map to ${target[1]}×${target[0]}, but the shared grid is ${gw}×${gh}`);
  }
  const dh = target[0] - h;
  const dw = target[1] - w;
  if (dh < 0 || dw < 0) throw new Error(`${name}: the ${w}×${h} map is larger than the shared ${gw}×${gh} grid; cropping is not supported`);
  if (dh === 0 && dw === 0) return x;
  return g.pad(x, [0, 0, dh >> 1, dw >> 1], [0, 0, (dh + 1) >> 1, (dw + 1) >> 1], name);
}

/**
 * HEAL's crop ratios (H from y, W from x) of a type whose map is HEAL's LSS grid centred on the
 * shared one: shared range / LSS range per axis, as HeterPyramidCollab's camera_mask_args. In
 * collaborative fusion HEAL keeps such an agent's score only inside a window of that share of
 * each pyramid level (fusion/pipeline.ts cameraWindow); undefined for every other type.
 */
export function healCropRatios(cfg: AgentNetworkConfig, space: SharedSpace): [number, number] | undefined {
  const enc = cfg.encoder;
  if (enc.arch !== 'lss' || !enc.heal) return undefined;
  return [space.range[4] / enc.heal.grid.ybound[1], space.range[3] / enc.heal.grid.xbound[1]];
}

/** Number of parameter values under each prefix ("encoder.<type>.", "aligner.<type>."), trainable and not. */
export function parameterCounts(desc: GraphDesc, type: string): { encoder: number; aligner: number } {
  const count = (prefix: string) => desc.params.filter((p) => p.name.startsWith(prefix)).reduce((s, p) => s + p.shape.reduce((a, b) => a * b, 1), 0);
  return { encoder: count(`encoder.${type}.`), aligner: count(`aligner.${type}.`) };
}

/**
 * The type's encoder alone, as its maker trains it with its own head (train --single): the same
 * inputs and "encoder.<type>.*" parameters as agentNetwork, output "bev" [1, C_enc, H', W']
 * in the encoder's own feature space (no aligner).
 */
export function encoderNetwork(cfg: AgentNetworkConfig, space: SharedSpace): GraphDesc {
  const enc = cfg.encoder;
  if (!isPillarArch(enc.arch)) throw new Error(`agent type "${cfg.type}": a stand-alone encoder is built for LiDAR pillar encoders only, not "${enc.arch}"`);
  checkPointPillarsConfig(enc as PointPillarsConfig, space, `agent type "${cfg.type}"`);
  const g = new GraphBuilder(`encoder.${cfg.type}`);
  const pp = enc as PointPillarsConfig;
  g.output('bev', addPointPillars(g, pointPillarsInputs(g, pp, space), pp, space, `encoder.${cfg.type}`));
  return g.build();
}

/** Whether an agent's points on its own body are dropped: a roadside unit has no body, but HEAL masks it anyway. */
export function masksOwnBody(enc: PillarSettings, space: SharedSpace, kind: AgentKind | undefined): boolean {
  return enc.maskEgo && (kind !== 'rsu' || space.points.maskEgoOnRsu);
}

/** Sensor data → the inputs of agentNetwork(cfg, space). */
export function agentInputs(cfg: AgentNetworkConfig, space: SharedSpace, data: SensorData): Record<string, HostTensor> {
  const enc = cfg.encoder;
  const src = `agent type "${cfg.type}"`;
  if (isPillarArch(enc.arch) || enc.arch === 'external') {
    const pp = enc as PillarSettings;
    if (!data.points) throw new DataError(src, 'points', 'a LiDAR (pillar) type needs a point cloud, the sensor data has none');
    const p = pillarize(data.points, pillarConfigOf(pp, space, { maskEgo: masksOwnBody(pp, space, data.kind) }));
    return {
      features: { data: p.features, shape: [p.numPillars, p.maxPoints, POINT_FEATURES] },
      mask: { data: p.mask, shape: [p.numPillars, p.maxPoints] },
      cellToPillar: { data: p.cellToPillar, shape: [p.cellToPillar.length] },
    };
  }
  if (enc.arch !== 'lss')
    throw new DataError(src, 'encoder.arch', 'must be "pointpillars", "pillar-fpn", "lss" or "external"', (enc as { arch?: unknown }).arch);
  const records = selectCameras(enc, data.cameras ?? [], src);
  if (enc.heal) {
    if (!data.lidarPose)
      throw new DataError(src, 'lidarPose', "HEAL's camera model places the cameras relative to the LiDAR pose, which the sensor data lacks");
    return healLssInputs(enc, healCameraInputs({ lidarPose: data.lidarPose, cameras: records }, healCameraConfigOf(enc)));
  }
  const [W, H] = enc.imageSize;
  const plane = 3 * W * H;
  const images = new Float32Array(records.length * plane);
  const cams: SplatCamera[] = records.map((rec, i) => {
    if (!rec.image) {
      throw new DataError(rec.imagePath || rec.name, 'image', `camera "${rec.name}" has no decoded image (read the dataset with images: true)`);
    }
    const pre = preprocessImage(rec.image, [W, H]);
    images.set(pre.tensor, i * plane);
    return splatCamera(rec, pre);
  });
  const index = splatIndexFor(enc, space, cams);
  return {
    images: { data: images, shape: [records.length, 3, H, W] },
    keptIndex: { data: index.keptIndex, shape: [index.keptIndex.length] },
    segmentStarts: { data: index.segmentStarts, shape: [index.segmentStarts.length] },
    segmentEnds: { data: index.segmentEnds, shape: [index.segmentEnds.length] },
    cellToSegment: { data: index.cellToSegment, shape: [index.cellToSegment.length] },
  };
}

/** The camera records an LSS type reads, in its input order. */
export function selectCameras(enc: LssConfig, cameras: CameraRecord[], src: string): CameraRecord[] {
  if (!enc.cameras) {
    if (cameras.length === 0) throw new DataError(src, 'cameras', 'a camera (lss) type needs camera records, the sensor data has none');
    return cameras;
  }
  return enc.cameras.map((name) => {
    const rec = cameras.find((c) => c.name === name);
    if (!rec)
      throw new DataError(src, 'encoder.cameras', `camera "${name}" is not in the sensor data (has: ${cameras.map((c) => c.name).join(', ') || 'none'})`, name);
    return rec;
  });
}

// The splat index depends only on calibration, input size and space, and takes tens of
// milliseconds to build, so it is kept per calibration. Calibrations are keyed to 1e-6 (µm, µrad):
// recomputed extrinsics that differ by rounding noise share one index.
const SPLAT_CACHE_SIZE = 32;
const splatCache = new Map<string, SplatIndex>();

/** frustumToBev for these cameras, cached per calibration. */
export function splatIndexFor(enc: LssConfig, space: SharedSpace, cameras: SplatCamera[]): SplatIndex {
  const round = (a: ArrayLike<number>) => Array.from(a, (v) => Math.round(v * 1e6) / 1e6);
  const key = JSON.stringify({
    cams: cameras.map((c) => [c.axes, round(c.intrinsic), round(c.extrinsic)]),
    size: enc.imageSize,
    ds: enc.downsample,
    bins: enc.depthBins,
    space: [space.range, space.voxel, space.featureStride],
  });
  const hit = splatCache.get(key);
  if (hit) {
    // Refresh its place so the cache drops the least recently used calibration.
    splatCache.delete(key);
    splatCache.set(key, hit);
    return hit;
  }
  const index = frustumToBev(cameras, lssSplatOptions(enc, space));
  splatCache.set(key, index);
  if (splatCache.size > SPLAT_CACHE_SIZE) splatCache.delete(splatCache.keys().next().value!);
  return index;
}

/**
 * The inputs of an LSS type with `heal` from HEAL's camera inputs (perception/camera.ts
 * healCameraInputs): the images as fed, and the kept frustum points grouped by cell (row-major,
 * ascending point index within a cell) by HEAL's cell rule on its own LSS grid.
 */
export function healLssInputs(enc: LssConfig, cam: HealCameraInputs): Record<string, HostTensor> {
  if (!enc.heal) throw new Error('healLssInputs: the LSS config has no "heal" block');
  const [W, H] = cam.size;
  const [D, fH, fW] = cam.frustumShape;
  const { cells } = healVoxelCells(cam.geometry, enc.heal.grid);
  const [nx, ny] = healGridSize(enc.heal.grid);
  // One z cell: a kept point's cell is iy·nx + ix. Counting sort by cell.
  const perCell = new Int32Array(nx * ny);
  let kept = 0;
  for (const c of cells) {
    if (c < 0) continue;
    if (c >= nx * ny) throw new Error(`healLssInputs: the LSS grid has ${nx * ny} BEV cells but a point fell in cell ${c} (more than one z cell?)`);
    perCell[c]++;
    kept++;
  }
  let segments = 0;
  for (const n of perCell) if (n > 0) segments++;
  const segmentStarts = new Int32Array(segments);
  const segmentEnds = new Int32Array(segments);
  const cellToSegment = new Int32Array(nx * ny).fill(segments);
  const next = new Int32Array(nx * ny);
  for (let c = 0, pos = 0, s = 0; c < nx * ny; c++) {
    if (perCell[c] === 0) continue;
    next[c] = pos;
    segmentStarts[s] = pos;
    pos += perCell[c];
    segmentEnds[s] = pos - 1;
    cellToSegment[c] = s++;
  }
  const keptIndex = new Int32Array(kept);
  const keptPixel = new Int32Array(kept);
  const perCamera = D * fH * fW;
  const plane = fH * fW;
  for (let p = 0; p < cells.length; p++) {
    const c = cells[p];
    if (c < 0) continue;
    const k = next[c]++;
    keptIndex[k] = p;
    // p = ((n·D + d)·fH + v)·fW + u → pixel (n·fH + v)·fW + u
    keptPixel[k] = Math.floor(p / perCamera) * plane + (p % plane);
  }
  return {
    images: { data: cam.imgs, shape: [cam.cameras, 3, H, W] },
    keptIndex: { data: keptIndex, shape: [kept] },
    keptPixel: { data: keptPixel, shape: [kept] },
    segmentStarts: { data: segmentStarts, shape: [segments] },
    segmentEnds: { data: segmentEnds, shape: [segments] },
    cellToSegment: { data: cellToSegment, shape: [nx * ny] },
  };
}

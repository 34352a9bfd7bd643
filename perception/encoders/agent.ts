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
import { pillarize, POINT_FEATURES } from '../pillars.ts';
import { frustumToBev, preprocessImage, splatCamera, type SplatCamera, type SplatIndex } from '../camera.ts';
import { featureGrid, type SharedSpace } from '../space.ts';
import { addAligner, type AlignerConfig } from './aligner.ts';
import {
  addPointPillars,
  checkPointPillarsConfig,
  pillarConfigOf,
  pointPillarsInputs,
  pointPillarsOutChannels,
  type PointPillarsConfig,
} from './pointpillars.ts';
import { addLss, checkLssConfig, lssInputs, lssOutChannels, lssSplatOptions, type LssConfig } from './lss.ts';

export type { PointPillarsConfig } from './pointpillars.ts';
export type { LssConfig, ImageBackboneConfig, DepthBinsConfig } from './lss.ts';

export type EncoderConfig = PointPillarsConfig | LssConfig;

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
}

export interface AgentNetworkOptions {
  /** Also output "depth" [cameras, D, fH, fW], the depth distribution of an LSS type (for depth supervision). */
  depthOutput?: boolean;
}

export function encoderOutChannels(enc: EncoderConfig): number {
  return enc.arch === 'pointpillars' ? pointPillarsOutChannels(enc) : lssOutChannels(enc);
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
  if (enc.arch === 'pointpillars') checkPointPillarsConfig(enc, space, src);
  else if (enc.arch === 'lss') checkLssConfig(enc, src);
  else throw new DataError(src, 'encoder.arch', 'must be "pointpillars" or "lss"', (enc as { arch?: unknown }).arch);
  const al = cfg.aligner;
  if (typeof al !== 'object' || al === null) throw new DataError(src, 'aligner', 'must be an object {inChannels, channels, blocks, batchNorm}', al);
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
  if (enc.arch === 'pointpillars') {
    features = addPointPillars(g, pointPillarsInputs(g, enc, space), enc, space, encPrefix);
  } else {
    const { bev, depth } = addLss(g, lssInputs(g, enc, space), enc, space, encPrefix);
    features = bev;
    if (opts.depthOutput) g.output('depth', depth);
  }
  const bev = addAligner(g, features, cfg.aligner, `aligner.${cfg.type}`);
  const [w, h] = featureGrid(space);
  const shape = bev.shape;
  if (shape[0] !== 1 || shape[1] !== space.channels || shape[2] !== h || shape[3] !== w) {
    throw new Error(`agent type "${cfg.type}": network output is [${shape}], expected [1, ${space.channels}, ${h}, ${w}]`);
  }
  g.output('bev', bev);
  return g.build();
}

/** Number of parameter values under each prefix ("encoder.<type>.", "aligner.<type>."), trainable and not. */
export function parameterCounts(desc: GraphDesc, type: string): { encoder: number; aligner: number } {
  const count = (prefix: string) => desc.params.filter((p) => p.name.startsWith(prefix)).reduce((s, p) => s + p.shape.reduce((a, b) => a * b, 1), 0);
  return { encoder: count(`encoder.${type}.`), aligner: count(`aligner.${type}.`) };
}

/** Whether an agent's points on its own body are dropped: a roadside unit has no body, but HEAL masks it anyway. */
export function masksOwnBody(enc: PointPillarsConfig, space: SharedSpace, kind: AgentKind | undefined): boolean {
  return enc.maskEgo && (kind !== 'rsu' || space.points.maskEgoOnRsu);
}

/** Sensor data → the inputs of agentNetwork(cfg, space). */
export function agentInputs(cfg: AgentNetworkConfig, space: SharedSpace, data: SensorData): Record<string, HostTensor> {
  const enc = cfg.encoder;
  const src = `agent type "${cfg.type}"`;
  if (enc.arch === 'pointpillars') {
    if (!data.points) throw new DataError(src, 'points', 'a LiDAR (pointpillars) type needs a point cloud, the sensor data has none');
    const p = pillarize(data.points, pillarConfigOf(enc, space, { maskEgo: masksOwnBody(enc, space, data.kind) }));
    return {
      features: { data: p.features, shape: [p.numPillars, p.maxPoints, POINT_FEATURES] },
      mask: { data: p.mask, shape: [p.numPillars, p.maxPoints] },
      cellToPillar: { data: p.cellToPillar, shape: [p.cellToPillar.length] },
    };
  }
  if (enc.arch !== 'lss') throw new DataError(src, 'encoder.arch', 'must be "pointpillars" or "lss"', (enc as { arch?: unknown }).arch);
  const records = selectCameras(enc, data.cameras ?? [], src);
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

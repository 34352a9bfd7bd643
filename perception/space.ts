// The shared BEV space: every agent type's encoder output, the pyramid fusion and the detection
// head live on this one grid. Range, resolution, channels, anchors and the fusion network's sizes
// come from here and nowhere else: nothing picks a network by a profile's name.

import { HEAL_BACKBONE, SMALL_BACKBONE, type BackboneConfig } from '../models/layers/backbone.ts';

/**
 * 'double-conv': HEAL's DownsampleConv (two 3×3 convs with bias, each followed by ReLU, no batch
 * norm). 'conv-bn': one 3×3 conv + batch norm + ReLU, kept only for the small profile's shipped
 * weights; that profile moves to 'double-conv' when it is retrained.
 */
export type ShrinkKind = 'double-conv' | 'conv-bn';

/**
 * 'per-level': HEAL's order: the pyramid runs on each agent's map in its own frame, and at every
 * level the level's features and foreground scores are warped into the ego frame and fused.
 * 'before-pyramid': the maps are warped once, before the pyramid, which then runs in the ego frame
 * and weights with the warped (fractional) coverage; kept only for the small profile's shipped
 * weights, which move to 'per-level' when they are retrained.
 */
export type WarpPlacement = 'per-level' | 'before-pyramid';

export interface AnchorConfig {
  /** Anchor size in meters (formats.md §4.4: l 3.9, w 1.6, h 1.56). */
  l: number;
  w: number;
  h: number;
  /** Anchor centre height in the LiDAR frame (OpenCOOD hard-codes −1). */
  z: number;
  /** Anchor yaws in degrees, one anchor per entry per cell. */
  yawsDeg: number[];
}

export interface SharedSpace {
  name: string;
  /** [xmin, ymin, zmin, xmax, ymax, zmax] in the agent's LiDAR frame, meters: what detect and eval use. */
  range: [number, number, number, number, number, number];
  /**
   * The range heal train and heal align use, when it differs (HEAL trains on ±51.2 m in y and
   * evaluates on ±102.4 m). The networks are the same: convolutions and per-cell anchors do not
   * depend on the grid's extent, so weights trained on one range run on the other. trainingSpace
   * gives the space with this range in place.
   */
  trainRange?: [number, number, number, number, number, number];
  /** Pillar size [vx, vy, vz]; vz spans the whole z range for pillars. */
  voxel: [number, number, number];
  /** BEV feature cell = voxel × stride. Encoders emit their features at this stride. */
  featureStride: number;
  /** Channels of the shared feature space (what the aligners output and the fusion consumes). */
  channels: number;
  anchor: AnchorConfig;
  /** Communication range in meters (XY distance between LiDAR poses). */
  commRange: number;
  /**
   * At most this many agents per frame, the ego included: the first ones in the frame's agent order,
   * cut before the communication-range test (HEAL's max_cav, 5). Undefined: no cap.
   */
  maxAgents?: number;
  /**
   * Which ground-truth boxes a frame is scored against (eval/groundtruth.ts): 'corners' keeps a
   * box when all 8 corners lie in the range, z included (HEAL's mask_boxes_outside_range), the same
   * test the detections pass; 'centre' keeps it when its centre lies in the x/y range (the small
   * profile's rule, kept until its weights are retrained and its figures re-run).
   */
  groundTruth: 'corners' | 'centre';
  /** How an agent's points become pillars, and whether its frame is moved to a common height. */
  points: {
    /** perception/pillars.ts: 'spconv' is HEAL's voxelizer, 'strict-range' the small profile's rule until it is retrained. */
    binning: PointBinning;
    /** Mask points on the agent's own body for roadside units too (HEAL's datasets do; there is no body to mask). */
    maskEgoOnRsu: boolean;
    /** perception/ground.ts: move each LiDAR frame to a common height above its ground. HEAL does not. */
    groundAlign: boolean;
  };
  /**
   * The ego's pyramid fusion (fusion/networks/pyramid.ts): its backbone (inChannels = channels; the
   * block type, groups and width per group are in it), shrink width (0 = none), shrink kind and
   * where the agents' maps are warped into the ego frame.
   */
  fusion: { backbone: BackboneConfig; shrinkChannels: number; shrink: ShrinkKind; warp: WarpPlacement };
}

/** How points become pillars: perception/pillars.ts. */
export type PointBinning = 'spconv' | 'strict-range';

const ANCHOR: AnchorConfig = { l: 3.9, w: 1.6, h: 1.56, z: -1, yawsDeg: [0, 90] };

/** HEAL's OPV2V-H dimensions, for GPU users with the real data. */
export const HEAL_SPACE: SharedSpace = {
  name: 'heal',
  // tools/inference.py's default range; the yaml's own (lidar_range) is the training range.
  range: [-102.4, -102.4, -3, 102.4, 102.4, 1],
  trainRange: [-102.4, -51.2, -3, 102.4, 51.2, 1],
  voxel: [0.4, 0.4, 4],
  featureStride: 2,
  channels: 64,
  anchor: ANCHOR,
  commRange: 70,
  maxAgents: 5,
  groundTruth: 'corners',
  points: { binning: 'spconv', maskEgoOnRsu: true, groundAlign: false },
  fusion: { backbone: HEAL_BACKBONE, shrinkChannels: 256, shrink: 'double-conv', warp: 'per-level' },
};

/** The default: small enough that a 2-core CPU can run it, and train it. */
export const SMALL_SPACE: SharedSpace = {
  name: 'small',
  range: [-51.2, -51.2, -3, 51.2, 51.2, 1],
  voxel: [0.4, 0.4, 4],
  featureStride: 4,
  channels: 32,
  anchor: ANCHOR,
  commRange: 70,
  groundTruth: 'centre',
  points: { binning: 'strict-range', maskEgoOnRsu: false, groundAlign: true },
  // The shrink and warp placement of the shipped weights; HEAL's ('double-conv', 'per-level') once retrained.
  fusion: { backbone: SMALL_BACKBONE, shrinkChannels: 32, shrink: 'conv-bn', warp: 'before-pyramid' },
};

export const SPACES: Record<string, SharedSpace> = { small: SMALL_SPACE, heal: HEAL_SPACE };

export function spaceByName(name: string): SharedSpace {
  const s = SPACES[name];
  if (!s) throw new Error(`unknown shared-space profile "${name}" (have: ${Object.keys(SPACES).join(', ')})`);
  return s;
}

/**
 * The space training runs in: the same profile with its training range, where it has one. Every
 * grid, anchor, warp and target follows from the range, so nothing else changes.
 */
export function trainingSpace(space: SharedSpace): SharedSpace {
  return space.trainRange ? { ...space, range: space.trainRange } : space;
}

/** Pillar grid size [W, H] (columns along x, rows along y). */
export function pillarGrid(space: SharedSpace): [number, number] {
  const [xmin, ymin, , xmax, ymax] = space.range;
  return [Math.round((xmax - xmin) / space.voxel[0]), Math.round((ymax - ymin) / space.voxel[1])];
}

/** BEV feature-map size [W', H'] at the feature stride. */
export function featureGrid(space: SharedSpace): [number, number] {
  const [w, h] = pillarGrid(space);
  return [Math.floor(w / space.featureStride), Math.floor(h / space.featureStride)];
}

/** Size of one BEV feature cell in meters. */
export function featureCellSize(space: SharedSpace): [number, number] {
  return [space.voxel[0] * space.featureStride, space.voxel[1] * space.featureStride];
}

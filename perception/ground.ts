// Sensors sit at different heights (a vehicle roof at 1.9 m, a roadside mast at 5 m), but every
// encoder has one z range. Moving each agent's LiDAR frame to a common height above its ground
// keeps roads and cars inside that range for all agents. BEV warping ignores z, so fusion is
// unaffected; only what the encoders see changes. HEAL does no such thing (its z range drops a
// roadside unit's ground), so a profile says whether it is done (`SharedSpace.points.groundAlign`).

import type { AgentFrame } from '../datasets/frame.ts';
import { type Mat4, identity4, multiply } from '../datasets/geometry/transforms.ts';
import type { SharedSpace } from './space.ts';

/** What the ground rules need of a profile. */
export type GroundRule = Pick<SharedSpace, 'points'>;

/** OPV2V's vehicle LiDAR height above the ground, the height every agent is moved to. */
export const REFERENCE_LIDAR_HEIGHT = 1.9;

/**
 * Returns the frame as seen from a LiDAR frame moved down (or up) to REFERENCE_LIDAR_HEIGHT above
 * the agent's ground: points, camera extrinsics, pose and GT boxes are all re-expressed in it.
 * Frames whose dataset does not give the height, or that are already there, and every frame of a
 * profile that does not align, come back as they are.
 */
export function alignToGround(frame: AgentFrame, space: GroundRule): AgentFrame {
  const dz = heightAboveReference(frame, space);
  if (dz === 0) return frame;
  const points = new Float32Array(frame.points);
  for (let i = 2; i < points.length; i += 4) points[i] += dz;
  // The aligned frame L' sits dz below L: p_L' = p_L + (0, 0, dz), so T_{L←L'} moves z by −dz.
  const oldFromNew = rawFromAligned(dz);
  return {
    ...frame,
    lidarHeight: REFERENCE_LIDAR_HEIGHT,
    lidarPose: multiply(frame.lidarPose, oldFromNew),
    points,
    cameras: frame.cameras.map((c) => ({ ...c, extrinsic: multiply(c.extrinsic, oldFromNew) })),
    boxes: frame.boxes.map((b) => ({ ...b, box: [b.box[0], b.box[1], b.box[2] + dz, b.box[3], b.box[4], b.box[5], b.box[6]] })),
  };
}

/**
 * T_world←lidar of the ground-aligned frame alignToGround gives, without copying the points: the
 * pose that goes with anything computed from an aligned frame (features, boxes).
 */
export function groundAlignedPose(frame: Pick<AgentFrame, 'lidarHeight' | 'lidarPose'>, space: GroundRule): Mat4 {
  const dz = heightAboveReference(frame, space);
  return dz === 0 ? frame.lidarPose : multiply(frame.lidarPose, rawFromAligned(dz));
}

/** How far the LiDAR sits above REFERENCE_LIDAR_HEIGHT; 0 when unknown or already there. */
function heightAboveReference(frame: Pick<AgentFrame, 'lidarHeight'>, space: GroundRule): number {
  const h = frame.lidarHeight;
  if (!space.points.groundAlign) return 0;
  return h === undefined || Math.abs(h - REFERENCE_LIDAR_HEIGHT) < 1e-6 ? 0 : h - REFERENCE_LIDAR_HEIGHT;
}

function rawFromAligned(dz: number): Mat4 {
  const m = identity4();
  m[11] = -dz;
  return m;
}

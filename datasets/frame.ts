// The common frame record: what every dataset reader produces and every later stage consumes.

import type { Mat4, Pose6 } from './geometry/transforms.ts';
import type { Box7 } from './geometry/boxes.ts';

/** A vehicle carries its sensors around; a roadside unit (negative OPV2V id, DAIR infrastructure) is fixed. */
export type AgentKind = 'vehicle' | 'rsu';

export interface RgbImage {
  width: number;
  height: number;
  /** Row-major RGB, 3 bytes per pixel. */
  data: Uint8Array;
}

export interface CameraRecord {
  /** e.g. "camera0". */
  name: string;
  /** Image file on disk, read lazily by loadCameraImage. */
  imagePath: string;
  /** Optional 8-bit depth PNG in meters (OPV2V-H). */
  depthPath?: string;
  /** 3×3 row-major K. */
  intrinsic: Float64Array;
  /** T_{cam←lidar}: the OPV2V YAML `extrinsic` (formats.md §1.5) or DAIR's lidar_to_camera. */
  extrinsic: Mat4;
  /**
   * The camera axes the extrinsic maps into: 'ue4' (x forward, y right, z up; OPV2V, whose
   * LiDAR frame is left-handed) or 'opencv' (x right, y down, z forward; DAIR, right-handed LiDAR).
   */
  extrinsicAxes: 'ue4' | 'opencv';
  /** Camera world pose [x, y, z, roll, yaw, pitch] (OPV2V YAML `cords`), which HEAL's camera models use instead of `extrinsic`. */
  cords?: Pose6;
  image?: RgbImage;
}

export interface GtBox {
  /** Object id: CARLA actor id for OPV2V, list index for DAIR. */
  id: number;
  /** [x, y, z, h, w, l, yaw] in this agent's LiDAR frame. */
  box: Box7;
  /** Class label when the dataset has one (DAIR). */
  label?: string;
}

export interface AgentFrame {
  dataset: 'opv2v' | 'dair-v2x-c';
  split?: string;
  scenario: string;
  timestamp: string;
  agentId: number;
  kind: AgentKind;
  /** T_{world←lidar}, 4×4 row-major. */
  lidarPose: Mat4;
  /**
   * Height of the LiDAR above the ground under the agent, when the dataset tells it (OPV2V:
   * lidar_pose z − true_ego_pos z; 1.9 m on vehicles, more on a roadside mast). Encoders use it
   * to put every agent's ground at the same height in their z range.
   */
  lidarHeight?: number;
  /** N×4 [x, y, z, intensity] in the agent's LiDAR frame. */
  points: Float32Array;
  /** Which LiDAR file the points came from (e.g. "000068.pcd", "000068_32.pcd"). */
  lidarFile: string;
  cameras: CameraRecord[];
  /** GT boxes visible to this agent, in its LiDAR frame. */
  boxes: GtBox[];
}

export function pointCount(frame: AgentFrame): number {
  return frame.points.length / 4;
}

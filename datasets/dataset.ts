// The interface every dataset reader implements (OPV2V/OPV2V-H/V2XSet in opv2v.ts, DAIR-V2X-C in dair.ts).

import type { AgentFrame, AgentKind, GtBox } from './frame.ts';

export type LidarBeams = 64 | 32 | 16;

export interface ReadOptions {
  /** Which LiDAR file to read: 64 → `<ts>.pcd`, 32 → `<ts>_32.pcd`, 16 → `<ts>_16.pcd`. Default 64. */
  lidar?: LidarBeams;
  /** Decode camera images into CameraRecord.image. Default false (paths and calibration only). */
  images?: boolean;
}

export interface AgentInfo {
  id: number;
  kind: AgentKind;
  /** Sensor files present for this agent, e.g. ["lidar64", "lidar32", "lidar16", "camera0", ..., "depth0", ...]. */
  sensors: string[];
}

export interface ScenarioInfo {
  split: string;
  name: string;
  agents: AgentInfo[];
  timestamps: string[];
}

/** One cooperative frame: a scenario at one timestamp, with the agents present. */
export interface FrameRef {
  split: string;
  scenario: string;
  timestamp: string;
  /** In ego-selection order: the first is the default ego (never a roadside unit when a vehicle exists). */
  agentIds: number[];
}

export interface Dataset {
  format: 'opv2v' | 'dair-v2x-c';
  root: string;
  scenarios(): ScenarioInfo[];
  frames(): FrameRef[];
  /** One agent at one frame, with points, cameras and the GT that agent sees, in its own LiDAR frame. */
  readAgentFrame(ref: FrameRef, agentId: number, opts?: ReadOptions): Promise<AgentFrame>;
  /**
   * Cooperative GT in the ego's LiDAR frame: objects seen by any agent within commRange meters
   * (XY distance between LiDAR poses) of the ego, deduplicated by id, first occurrence wins.
   * `agentIds`, when given, are the only agents whose objects count (HEAL's max_cav cut).
   */
  cooperativeBoxes(ref: FrameRef, egoId: number, opts?: { commRange?: number; agentIds?: number[] }): Promise<GtBox[]>;
}

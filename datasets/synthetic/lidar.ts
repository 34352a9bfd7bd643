// Spinning LiDAR simulation: 64, 32 or 16 beams spread evenly from +2° to −25° (CARLA's channel
// layout, formats.md §1.6), ray cast against the scene with occlusion, Gaussian range noise,
// random dropout and CARLA-like intensity (reflectivity · e^(−0.004·r)). Points come out in the
// sensor frame with UE4 axes, exactly what OpenCDA writes to `<ts>.pcd`.

import { poseToMatrix } from '../geometry/transforms.ts';
import type { Rng } from '../rng.ts';
import { GROUND, type Scene } from './raycast.ts';

export type LidarBeams = 64 | 32 | 16;

export interface LidarConfig {
  channels: number;
  /** Degrees. */
  upperFov: number;
  lowerFov: number;
  /** Meters. */
  range: number;
  /** Rays per channel per revolution. */
  azimuthSteps: number;
  /** Range noise, meters (1σ). */
  noiseStd: number;
  /** Share of returns randomly dropped. */
  dropout: number;
  /** Intensity falloff per meter: intensity = reflectivity · exp(−attenuation · r). */
  attenuation: number;
}

const BASE = { upperFov: 2, lowerFov: -25, range: 120, azimuthSteps: 1600, noiseStd: 0.02, dropout: 0.1, attenuation: 0.004 };

export const LIDAR_CONFIGS: Record<LidarBeams, LidarConfig> = {
  64: { channels: 64, ...BASE },
  32: { channels: 32, ...BASE },
  16: { channels: 16, ...BASE },
};

/** LiDAR position in the vehicle frame (formats.md §1.2, verified on real OPV2V frames). */
export const VEHICLE_LIDAR_MOUNT: [number, number, number] = [-0.5, 0, 1.9];

export interface Scan {
  /** N×4 [x, y, z, intensity] in the sensor frame. */
  points: Float32Array;
  /** Owner of the solid each point hit (vehicle id, agent id; 0 for scenery and ground). */
  owners: Int32Array;
}

/** Unit ray directions in the sensor frame, channel-major within each azimuth step. */
const directionCache = new Map<string, Float64Array>();

export function lidarDirections(cfg: LidarConfig): Float64Array {
  const key = `${cfg.channels}/${cfg.upperFov}/${cfg.lowerFov}/${cfg.azimuthSteps}`;
  let dirs = directionCache.get(key);
  if (dirs) return dirs;
  dirs = new Float64Array(cfg.channels * cfg.azimuthSteps * 3);
  const deg = Math.PI / 180;
  let o = 0;
  for (let a = 0; a < cfg.azimuthSteps; a++) {
    const az = (a / cfg.azimuthSteps) * 2 * Math.PI;
    for (let ch = 0; ch < cfg.channels; ch++) {
      const el = (cfg.upperFov - (ch * (cfg.upperFov - cfg.lowerFov)) / Math.max(1, cfg.channels - 1)) * deg;
      dirs[o++] = Math.cos(el) * Math.cos(az);
      dirs[o++] = Math.cos(el) * Math.sin(az);
      dirs[o++] = Math.sin(el);
    }
  }
  directionCache.set(key, dirs);
  return dirs;
}

/**
 * One revolution from the sensor at world pose `pose` ([x, y, z, roll, yaw, pitch], degrees).
 * `ignoreOwner` is the agent itself (its own body or mast is not in its scan).
 * `groundReflectivity(x, y)` lets lane paint return brighter than asphalt.
 */
export function scanLidar(
  scene: Scene,
  pose: ArrayLike<number>,
  cfg: LidarConfig,
  rng: Rng,
  ignoreOwner: number,
  groundReflectivity: (x: number, y: number) => number,
): Scan {
  const dirs = lidarDirections(cfg);
  const n = dirs.length / 3;
  const m = poseToMatrix(pose);
  const ox = m[3],
    oy = m[7],
    oz = m[11];
  const out = new Float32Array(n * 4);
  const owners = new Int32Array(n);
  const hit = scene.hit;
  const sceneOwner = scene.owner,
    matIdx = scene.materialIndex,
    mats = scene.materials;
  let k = 0;
  for (let i = 0; i < n; i++) {
    // Dropout is drawn before casting: the same statistics, and 10% fewer rays to trace.
    if (rng.next() < cfg.dropout) continue;
    const sx = dirs[i * 3],
      sy = dirs[i * 3 + 1],
      sz = dirs[i * 3 + 2];
    const wx = m[0] * sx + m[1] * sy + m[2] * sz;
    const wy = m[4] * sx + m[5] * sy + m[6] * sz;
    const wz = m[8] * sx + m[9] * sy + m[10] * sz;
    const t = scene.cast(ox, oy, oz, wx, wy, wz, cfg.range, ignoreOwner);
    if (t === Infinity) continue;
    let refl: number;
    let owner = 0;
    if (hit.prim === GROUND) {
      refl = groundReflectivity(ox + wx * t, oy + wy * t);
    } else {
      refl = mats[matIdx[hit.prim]].reflectivity;
      owner = sceneOwner[hit.prim];
    }
    const r = t + cfg.noiseStd * rng.normal();
    const o = k * 4;
    out[o] = sx * r;
    out[o + 1] = sy * r;
    out[o + 2] = sz * r;
    out[o + 3] = Math.min(1, Math.max(0, refl * Math.exp(-cfg.attenuation * t) * (0.95 + 0.1 * rng.next())));
    owners[k] = owner;
    k++;
  }
  return { points: out.slice(0, k * 4), owners: owners.slice(0, k) };
}

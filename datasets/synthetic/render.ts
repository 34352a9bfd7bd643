// Everything one agent records at one frame: its three LiDAR scans, four camera pictures with
// depth, and the OPV2V per-frame YAML (formats.md §1.2), with `vehicles` listing exactly the
// vehicles that have at least one point of its 64-beam scan inside their ground-truth box.

import { PNG } from 'pngjs';
import { type PcdDataFormat, encodePcd } from '../pcd.ts';
import { invert, mat4ToRows, poseToMatrix, x1ToX2 } from '../geometry/transforms.ts';
import { worldObjectToBox } from '../geometry/boxes.ts';
import { rngFor } from '../rng.ts';
import type { Scene } from './raycast.ts';
import { LIDAR_CONFIGS, type LidarBeams, scanLidar } from './lidar.ts';
import { VEHICLE_CAMERAS, cameraIntrinsic, cameraPose, renderCamera, rsuCameras } from './camera.ts';
import { agentBasePose, agentLidarPose, roundPose } from './scenario.ts';
import { vehicleEntry } from './shapes.ts';
import { SURF_CROSSWALK, SURF_CURB, SURF_GRASS, SURF_LINE, SURF_SIDEWALK, surfaceAt } from './town.ts';
import { type YamlValue, toYaml } from './writer.ts';
import type { ScenarioWorld, Town } from './world.ts';

export interface RenderSettings {
  /** Camera image size, or null for no pictures (the YAML still carries the calibration). */
  camera: { width: number; height: number } | null;
  /** Sun shadows in camera pictures (default true). */
  shadows?: boolean;
  /** PCD encoding; OPV2V uses ascii (the default). */
  pcdFormat?: PcdDataFormat;
}

export interface AgentFrameFiles {
  /** Sensor files, written first: name → bytes. */
  files: { name: string; data: Uint8Array }[];
  /** The frame YAML, written last (readers index frames by it). */
  yamlName: string;
  yaml: string;
  /** Points per LiDAR file, and how many vehicles the YAML lists. */
  stats: { points64: number; points32: number; points16: number; visible: number };
}

const BEAMS: LidarBeams[] = [64, 32, 16];

export function groundReflectivity(town: Town): (x: number, y: number) => number {
  return (x, y) => {
    const s = surfaceAt(town, x, y);
    if (s === SURF_LINE || s === SURF_CROSSWALK) return 0.75;
    if (s === SURF_SIDEWALK || s === SURF_CURB) return 0.38;
    if (s === SURF_GRASS) return 0.2;
    return 0.26;
  };
}

export function renderAgentFrame(world: ScenarioWorld, scene: Scene, agentIndex: number, frame: number, settings: RenderSettings): AgentFrameFiles {
  const agent = world.agents[agentIndex];
  const ts = world.timestamps[frame];
  const base = agentBasePose(world, agent, frame);
  const lidarPose = agentLidarPose(world, agent, frame);
  const reflect = groundReflectivity(world.town);
  const files: AgentFrameFiles['files'] = [];
  const counts: number[] = [];
  let scan64: Float32Array | undefined;
  for (const beams of BEAMS) {
    const rng = rngFor(world.seed, world.split, world.index, 'lidar', agent.id, frame, beams);
    const scan = scanLidar(scene, lidarPose, LIDAR_CONFIGS[beams], rng, agent.id, reflect);
    if (beams === 64) scan64 = scan.points;
    counts.push(scan.points.length / 4);
    files.push({ name: beams === 64 ? `${ts}.pcd` : `${ts}_${beams}.pcd`, data: encodePcd(scan.points, settings.pcdFormat ?? 'ascii') });
  }

  // Ground truth: every other vehicle with at least one 64-beam point inside its box.
  const entries = new Map<number, ReturnType<typeof vehicleEntry>>();
  world.vehicles.forEach((v, i) => {
    if (v.id !== agent.id) entries.set(v.id, vehicleEntry(v, world.poses[frame][i]));
  });
  const visible = visibleVehicles(entries, scan64!, lidarPose);
  const vehicles: { [key: string]: YamlValue } = {};
  for (const id of visible) {
    const e = entries.get(id)!;
    vehicles[String(id)] = { angle: e.angle, center: e.center, extent: e.extent, location: e.location, speed: e.speed };
  }

  const doc: { [key: string]: YamlValue } = {};
  const mounts = agent.kind === 'rsu' ? rsuCameras(agent.mastHeight!) : VEHICLE_CAMERAS;
  const size = settings.camera ?? { width: 800, height: 600 };
  const K = cameraIntrinsic(size.width, size.height);
  mounts.forEach((mount, i) => {
    const cords = roundPose(cameraPose(base, mount));
    // OpenCDA's "lidar2camera": T_cam←lidar = inv(T_lidar←cam) (formats.md §1.5).
    const extrinsic = invert(x1ToX2(cords, lidarPose));
    doc[`camera${i}`] = { cords, extrinsic: mat4ToRows(extrinsic), intrinsic: K };
    if (settings.camera) {
      const img = renderCamera(scene, world.town, cords, size.width, size.height, agent.id, { shadows: settings.shadows });
      files.push({ name: `${ts}_camera${i}.png`, data: encodeRgb(img.rgb, img.width, img.height) });
      files.push({ name: `${ts}_depth${i}.png`, data: encodeGray(img.depth, img.width, img.height) });
    }
  });

  const rng = rngFor(world.seed, world.split, world.index, 'gnss', agent.id, frame);
  const isRsu = agent.kind === 'rsu';
  // A filtered GNSS/IMU fix: decimetre-level position error, a fraction of a degree in yaw.
  const predicted = isRsu
    ? base
    : roundPose([base[0] + 0.25 * rng.normal(), base[1] + 0.25 * rng.normal(), base[2] + 0.05 * rng.normal(), 0, base[4] + 0.3 * rng.normal(), 0]);
  const vi = world.vehicles.findIndex((v) => v.id === agent.id);
  doc.RSU = isRsu;
  doc.ego_speed = isRsu ? 0 : Math.round(world.poses[frame][vi].speed * 3.6 * 1000) / 1000;
  doc.lidar_pose = lidarPose;
  doc.plan_trajectory = world.plans[frame][agentIndex];
  doc.predicted_ego_pos = predicted;
  doc.true_ego_pos = base;
  doc.vehicles = vehicles;
  return {
    files,
    yamlName: `${ts}.yaml`,
    yaml: toYaml(doc),
    stats: { points64: counts[0], points32: counts[1], points16: counts[2], visible: visible.length },
  };
}

/**
 * Ids of the vehicles with at least one point inside their box, with boxes built exactly as the
 * readers build them from the YAML (worldObjectToBox in this LiDAR's frame) and the points as
 * float32, as they are stored.
 */
export function visibleVehicles(
  entries: Map<number, { location: number[]; center: number[]; angle: number[]; extent: number[] }>,
  points: Float32Array,
  lidarPose: ArrayLike<number>,
): number[] {
  const worldFromLidar = poseToMatrix(lidarPose);
  const CELL = 4,
    HALF = 32; // a 256 m square grid around the sensor
  const N = HALF * 2;
  const boxes: { id: number; b: number[]; c: number; s: number }[] = [];
  const grid = new Map<number, number[]>();
  for (const [id, e] of entries) {
    if (Math.hypot(e.location[0] - lidarPose[0], e.location[1] - lidarPose[1]) > 140) continue;
    const b = worldObjectToBox(e as Parameters<typeof worldObjectToBox>[0], worldFromLidar);
    const k = boxes.length;
    boxes.push({ id, b, c: Math.cos(b[6]), s: Math.sin(b[6]) });
    const r = Math.hypot(b[4], b[5]) / 2;
    for (let gx = Math.floor((b[0] - r) / CELL); gx <= Math.floor((b[0] + r) / CELL); gx++) {
      for (let gy = Math.floor((b[1] - r) / CELL); gy <= Math.floor((b[1] + r) / CELL); gy++) {
        if (gx < -HALF || gx >= HALF || gy < -HALF || gy >= HALF) continue;
        const key = (gx + HALF) * N + (gy + HALF);
        let list = grid.get(key);
        if (!list) grid.set(key, (list = []));
        list.push(k);
      }
    }
  }
  const hits = new Uint8Array(boxes.length);
  const n = points.length / 4;
  for (let i = 0; i < n; i++) {
    const x = points[i * 4],
      y = points[i * 4 + 1],
      z = points[i * 4 + 2];
    const gx = Math.floor(x / CELL),
      gy = Math.floor(y / CELL);
    if (gx < -HALF || gx >= HALF || gy < -HALF || gy >= HALF) continue;
    const list = grid.get((gx + HALF) * N + (gy + HALF));
    if (!list) continue;
    for (const k of list) {
      if (hits[k]) continue;
      const { b, c, s } = boxes[k];
      if (pointInBox(x, y, z, b, c, s)) hits[k] = 1;
    }
  }
  return boxes
    .filter((_, k) => hits[k])
    .map((bx) => bx.id)
    .sort((a, b) => a - b);
}

/** Box7 [x, y, z, h, w, l, yaw] containment, faces included. */
export function pointInBox(x: number, y: number, z: number, b: ArrayLike<number>, c = Math.cos(b[6]), s = Math.sin(b[6])): boolean {
  const dx = x - b[0],
    dy = y - b[1];
  const lx = dx * c + dy * s,
    ly = -dx * s + dy * c;
  return Math.abs(lx) <= b[5] / 2 && Math.abs(ly) <= b[4] / 2 && Math.abs(z - b[2]) <= b[3] / 2;
}

function encodeRgb(rgb: Uint8Array, width: number, height: number): Uint8Array {
  const png = new PNG({ width, height, colorType: 2, inputColorType: 2, inputHasAlpha: false });
  png.data = Buffer.from(rgb.buffer, rgb.byteOffset, rgb.byteLength);
  return PNG.sync.write(png, { colorType: 2, inputColorType: 2, inputHasAlpha: false, deflateLevel: 6 });
}

function encodeGray(gray: Uint8Array, width: number, height: number): Uint8Array {
  const png = new PNG({ width, height, colorType: 0, inputColorType: 0, inputHasAlpha: false });
  png.data = Buffer.from(gray.buffer, gray.byteOffset, gray.byteLength);
  return PNG.sync.write(png, { colorType: 0, inputColorType: 0, inputHasAlpha: false, deflateLevel: 6 });
}

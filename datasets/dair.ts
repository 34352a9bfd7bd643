// Reader for DAIR-V2X-C, the cooperative (vehicle + infrastructure) part of DAIR-V2X, laid out
// as HEAL reads it (formats.md §2):
//
//   <root>/cooperative/data_info.json             list of vehicle/infrastructure pairs
//   <root>/cooperative/label_world/{veh_id}.json  cooperative labels, world frame, 8 corners each
//   <root>/vehicle-side/{velodyne,image,calib/...,label/lidar}/{veh_id}.*
//   <root>/infrastructure-side/{velodyne,image,calib/...,label/virtuallidar}/{inf_id}.*
//   <root>/train.json, val.json                   optional: lists of vehicle frame ids (HEAL split)
//
// Each pair is an independent frame: the scenario and the timestamp are both the vehicle frame
// id. Agent 0 is the vehicle (the default ego), agent 1 the roadside unit. DAIR frames are
// right-handed (x forward, y left, z up), unlike OPV2V's left-handed UE4 frames; points, poses
// and boxes are kept as the dataset gives them, so each dataset is internally consistent.
//
// Intensity: readers return [0, 1] for both sides (vehicle uint8 → /255, infrastructure float
// kept). HEAL instead divides both by 256, which leaves the infrastructure side at 0..0.004;
// that quirk is deliberately not reproduced (formats.md §2.5).

import * as path from 'node:path';
import type { AgentInfo, Dataset, FrameRef, ReadOptions, ScenarioInfo } from './dataset.ts';
import type { AgentFrame, AgentKind, CameraRecord, GtBox } from './frame.ts';
import { DataError, READ_CAPS, exists, readFileChecked } from './io.ts';
import { type Mat4, invert, mat4FromRt, multiply } from './geometry/transforms.ts';
import { type Box7, cornersInRange, cornersToBox, transformCorners } from './geometry/boxes.ts';
import { readPcd } from './pcd.ts';

/** HEAL's comm_range for DAIR-V2X (lidar_pyramid.yaml). */
export const DAIR_COMM_RANGE = 100;
export const VEHICLE_AGENT = 0;
export const RSU_AGENT = 1;
/** The classes HEAL keeps as ground truth; DAIR also labels people, cyclists and traffic cones. */
export const DAIR_VEHICLE_CLASSES: ReadonlySet<string> = new Set(['Car', 'Van', 'Truck', 'Bus']);

const DATA_INFO = 'cooperative/data_info.json';
const SPLIT_FILES = ['train', 'val', 'test'] as const;

export interface DairCooperativeOptions {
  /**
   * commRange and agentIds are accepted for interface compatibility but not applied: label_world
   * already holds the objects both sides see, merged by the dataset's annotators, with no
   * per-agent attribution.
   */
  commRange?: number;
  agentIds?: number[];
  /** Keep only boxes with all 8 corners inside [xmin, ymin, zmin, xmax, ymax, zmax] (ego frame). */
  gtRange?: ArrayLike<number>;
}

/** One vehicle/infrastructure pair from cooperative/data_info.json, with paths made absolute. */
export interface DairPair {
  /** Position in data_info.json. */
  index: number;
  vehicleId: string;
  infraId: string;
  split: string;
  vehiclePcd: string;
  infraPcd: string;
  vehicleImage?: string;
  infraImage?: string;
  cooperativeLabel: string;
  /** Infrastructure pose correction added to the world translation, as HEAL does. */
  offset: { dx: number; dy: number };
}

export async function isDairRoot(root: string): Promise<boolean> {
  return exists(path.join(root, DATA_INFO));
}

/**
 * Opens a DAIR-V2X-C `cooperative-vehicle-infrastructure` folder. Only data_info.json and the
 * split lists are read here; every per-frame file is read when its frame is asked for. Entries
 * of data_info.json that cannot form a pair are skipped and listed in `warnings`.
 */
export async function openDair(root: string): Promise<DairDataset> {
  const abs = path.resolve(root);
  const infoFile = path.join(abs, DATA_INFO);
  const info = await readJson(infoFile, 'DAIR-V2X-C pair list');
  if (!Array.isArray(info)) throw new DataError(infoFile, undefined, 'expected a JSON list of pairs', typeof info);

  const splitOf = new Map<string, string>();
  for (const split of SPLIT_FILES) {
    const file = path.join(abs, `${split}.json`);
    if (!(await exists(file))) continue;
    const ids = await readJson(file, 'split list');
    if (!Array.isArray(ids)) throw new DataError(file, undefined, 'expected a JSON list of vehicle frame ids', typeof ids);
    for (const [k, id] of ids.entries()) {
      if (typeof id !== 'string' && typeof id !== 'number') throw new DataError(file, `[${k}]`, 'expected a vehicle frame id', typeof id);
      if (!splitOf.has(String(id))) splitOf.set(String(id), split);
    }
  }

  const warnings: string[] = [];
  const pairs: DairPair[] = [];
  const seen = new Set<string>();
  info.forEach((entry, index) => {
    try {
      const pair = parsePair(entry, index, abs, infoFile, splitOf);
      if (seen.has(pair.vehicleId)) {
        warnings.push(`${infoFile}: entry [${index}] repeats vehicle frame ${pair.vehicleId}; the first one is used`);
        return;
      }
      seen.add(pair.vehicleId);
      pairs.push(pair);
    } catch (err) {
      if (!(err instanceof DataError)) throw err;
      warnings.push(`${err.message}; pair skipped`);
    }
  });
  if (pairs.length === 0) {
    throw new DataError(infoFile, undefined, info.length === 0 ? 'lists no pairs' : `none of its ${info.length} entries is a usable pair (${warnings[0]})`);
  }
  return new DairDataset(abs, pairs, warnings);
}

export class DairDataset implements Dataset {
  readonly format = 'dair-v2x-c' as const;
  private readonly byVehicleId = new Map<string, DairPair>();

  constructor(
    readonly root: string,
    readonly pairs: DairPair[],
    /** data_info.json entries that were skipped, with the reason. */
    readonly warnings: string[],
  ) {
    for (const p of pairs) this.byVehicleId.set(p.vehicleId, p);
  }

  scenarios(): ScenarioInfo[] {
    return this.pairs.map((p) => ({
      split: p.split,
      name: p.vehicleId,
      agents: [agentInfo(VEHICLE_AGENT, 'vehicle', p.vehicleImage), agentInfo(RSU_AGENT, 'rsu', p.infraImage)],
      timestamps: [p.vehicleId],
    }));
  }

  frames(): FrameRef[] {
    return this.pairs.map((p) => ({
      split: p.split,
      scenario: p.vehicleId,
      timestamp: p.vehicleId,
      agentIds: [VEHICLE_AGENT, RSU_AGENT],
    }));
  }

  pair(ref: FrameRef): DairPair {
    const p = this.byVehicleId.get(ref.timestamp);
    if (!p) throw new DataError(path.join(this.root, DATA_INFO), 'vehicle_pointcloud_path', 'no pair for this vehicle frame id', ref.timestamp);
    return p;
  }

  /** T_{world←lidar} of one agent (vehicle: novatel_to_world · lidar_to_novatel; rsu: with the offset). */
  async lidarPose(ref: FrameRef, agentId: number): Promise<Mat4> {
    const p = this.pair(ref);
    if (agentId === VEHICLE_AGENT) {
      const calib = path.join(this.root, 'vehicle-side/calib');
      const lidarFile = path.join(calib, 'lidar_to_novatel', `${p.vehicleId}.json`);
      const lidarJson = await readJson(lidarFile, 'LiDAR→NovAtel calibration');
      // The real files wrap this one in {"transform": {...}}; accept it bare as well.
      const wrapped = isRecord(lidarJson) && isRecord(lidarJson.transform);
      const novatelFromLidar = parseRt(wrapped ? lidarJson.transform : lidarJson, lidarFile, wrapped ? 'transform.' : '');
      const worldFile = path.join(calib, 'novatel_to_world', `${p.vehicleId}.json`);
      const worldFromNovatel = parseRt(await readJson(worldFile, 'NovAtel→world calibration'), worldFile, '');
      return multiply(worldFromNovatel, novatelFromLidar);
    }
    if (agentId === RSU_AGENT) {
      const file = path.join(this.root, 'infrastructure-side/calib/virtuallidar_to_world', `${p.infraId}.json`);
      const m = parseRt(await readJson(file, 'virtual LiDAR→world calibration'), file, '');
      // HEAL adds data_info's system_error_offset to the roadside translation (formats.md §2.3).
      m[3] += p.offset.dx;
      m[7] += p.offset.dy;
      return m;
    }
    throw new DataError(
      path.join(this.root, DATA_INFO),
      'agent',
      `DAIR-V2X-C agents are ${VEHICLE_AGENT} (vehicle) and ${RSU_AGENT} (infrastructure)`,
      agentId,
    );
  }

  async readAgentFrame(ref: FrameRef, agentId: number, opts: ReadOptions = {}): Promise<AgentFrame> {
    const p = this.pair(ref);
    if (opts.lidar !== undefined && opts.lidar !== 64) {
      throw new DataError(p.vehiclePcd, 'lidar', 'DAIR-V2X-C has one LiDAR per agent; only the default (64) can be read', opts.lidar);
    }
    const isVehicle = agentId === VEHICLE_AGENT;
    // Read in a fixed order so a pair with several missing files always reports the same one.
    const lidarPose = await this.lidarPose(ref, agentId);
    const pcdPath = isVehicle ? p.vehiclePcd : p.infraPcd;
    const cloud = await readPcd(pcdPath);
    const side = path.join(this.root, isVehicle ? 'vehicle-side' : 'infrastructure-side');
    const id = isVehicle ? p.vehicleId : p.infraId;
    const labelFile = path.join(side, 'label', isVehicle ? 'lidar' : 'virtuallidar', `${id}.json`);
    const boxes = parseSideLabels(await readJson(labelFile, 'LiDAR label'), labelFile);
    const camera = await this.readCamera(side, id, isVehicle ? 'lidar_to_camera' : 'virtuallidar_to_camera', isVehicle ? p.vehicleImage : p.infraImage);
    return {
      dataset: 'dair-v2x-c',
      split: p.split,
      scenario: p.vehicleId,
      timestamp: p.vehicleId,
      agentId,
      kind: isVehicle ? 'vehicle' : 'rsu',
      lidarPose,
      points: cloud.points,
      lidarFile: path.basename(pcdPath),
      cameras: camera ? [camera] : [],
      boxes,
    };
  }

  /**
   * The cooperative labels (label_world, world-frame corners) in the ego's LiDAR frame, refitted
   * to 7-vectors. Ids are positions in the label file; only vehicle classes are kept.
   */
  async cooperativeBoxes(ref: FrameRef, egoId: number, opts: DairCooperativeOptions = {}): Promise<GtBox[]> {
    const p = this.pair(ref);
    const egoFromWorld = invert(await this.lidarPose(ref, egoId));
    const file = p.cooperativeLabel;
    const list = await readJson(file, 'cooperative label');
    if (!Array.isArray(list)) throw new DataError(file, undefined, 'expected a JSON list of objects', typeof list);
    const out: GtBox[] = [];
    list.forEach((entry, i) => {
      const obj = record(entry, file, `[${i}]`);
      const label = typeof obj.type === 'string' ? obj.type : undefined;
      if (label !== undefined && !DAIR_VEHICLE_CLASSES.has(label)) return;
      const world = dairCornersToOpencood(parseCorners(obj.world_8_points, file, `[${i}].world_8_points`));
      const corners = transformCorners(egoFromWorld, world);
      if (opts.gtRange && !cornersInRange(corners, opts.gtRange)) return;
      out.push({ id: i, box: cornersToBox(corners), label });
    });
    return out;
  }

  private async readCamera(side: string, id: string, extrinsicDir: string, imagePath: string | undefined): Promise<CameraRecord | undefined> {
    if (!imagePath) return undefined;
    const kFile = path.join(side, 'calib/camera_intrinsic', `${id}.json`);
    const extFile = path.join(side, 'calib', extrinsicDir, `${id}.json`);
    // A camera needs both calibration files; without them the picture cannot be placed.
    if (!(await exists(kFile)) || !(await exists(extFile))) return undefined;
    const kJson = record(await readJson(kFile, 'camera intrinsics'), kFile, undefined);
    const k = kJson.cam_K;
    if (!Array.isArray(k) || k.length !== 9) throw new DataError(kFile, 'cam_K', 'expected 9 numbers (3×3 row-major)', k);
    // DAIR images are JPEG and heal decodes only PNG, so `image` stays undefined even with
    // `images: true`; imagePath is kept for tools that read JPEG themselves.
    return {
      name: 'camera0',
      imagePath,
      intrinsic: Float64Array.from(k, (v, i) => toNumber(v, kFile, `cam_K[${i}]`)),
      // T_{cam←lidar}, camera axes as DAIR defines them (OpenCV: x right, y down, z forward).
      extrinsicAxes: 'opencv',
      extrinsic: parseRt(await readJson(extFile, 'LiDAR→camera calibration'), extFile, ''),
    };
  }
}

/**
 * DAIR's single-side LiDAR labels (formats.md §2.4), as HEAL's load_single_objects_dairv2x keeps
 * them: vehicle classes only, boxes with a zero size skipped. Ids are positions in the file.
 */
export function parseSideLabels(json: unknown, file: string): GtBox[] {
  if (!Array.isArray(json)) throw new DataError(file, undefined, 'expected a JSON list of objects', typeof json);
  const out: GtBox[] = [];
  json.forEach((entry, i) => {
    const obj = record(entry, file, `[${i}]`);
    if (typeof obj.type !== 'string') throw new DataError(file, `[${i}].type`, 'expected a class name', obj.type);
    if (!DAIR_VEHICLE_CLASSES.has(obj.type)) return;
    const dims = record(obj['3d_dimensions'], file, `[${i}].3d_dimensions`);
    const loc = record(obj['3d_location'], file, `[${i}].3d_location`);
    const n = (o: Record<string, unknown>, group: string, key: string) => toNumber(o[key], file, `[${i}].${group}.${key}`);
    const h = n(dims, '3d_dimensions', 'h'),
      w = n(dims, '3d_dimensions', 'w'),
      l = n(dims, '3d_dimensions', 'l');
    if (h === 0 || w === 0 || l === 0) return;
    // 3d_location is the box centre (DAIR builds corners from z − h/2), rotation is yaw in radians.
    const box: Box7 = [
      n(loc, '3d_location', 'x'),
      n(loc, '3d_location', 'y'),
      n(loc, '3d_location', 'z'),
      h,
      w,
      l,
      toNumber(obj.rotation, file, `[${i}].rotation`),
    ];
    out.push({ id: i, box, label: obj.type });
  });
  return out;
}

/**
 * DAIR corner order is (+l,+w), (+l,−w), (−l,−w), (−l,+w), bottom then top; OpenCOOD's is
 * (+l,−w), (+l,+w), (−l,+w), (−l,−w): the same box mirrored left/right, so swap pairs.
 */
export function dairCornersToOpencood(c: Float64Array): Float64Array {
  const order = [1, 0, 3, 2, 5, 4, 7, 6];
  const out = new Float64Array(24);
  order.forEach((src, dst) => out.set(c.subarray(src * 3, src * 3 + 3), dst * 3));
  return out;
}

function agentInfo(id: number, kind: AgentKind, image: string | undefined): AgentInfo {
  // One LiDAR per agent, reported in the default slot ('lidar64') whatever its real beam count.
  return { id, kind, sensors: image ? ['lidar64', 'camera0'] : ['lidar64'] };
}

function parsePair(entry: unknown, index: number, root: string, infoFile: string, splitOf: Map<string, string>): DairPair {
  const at = `[${index}]`;
  const obj = record(entry, infoFile, at);
  const str = (key: string, required: boolean): string | undefined => {
    const v = obj[key];
    if (v === undefined && !required) return undefined;
    if (typeof v !== 'string' || v === '') throw new DataError(infoFile, `${at}.${key}`, 'expected a relative path', v);
    // Every file of a pair lives under the dataset root; "../../etc/passwd" is not a frame.
    const rel = path.relative(root, path.resolve(root, v));
    if (path.isAbsolute(v) || rel === '' || rel === '..' || rel.startsWith(`..${path.sep}`) || path.isAbsolute(rel)) {
      throw new DataError(infoFile, `${at}.${key}`, 'path must stay inside the dataset folder', v);
    }
    return v;
  };
  const vehiclePcd = str('vehicle_pointcloud_path', true)!;
  const infraPcd = str('infrastructure_pointcloud_path', true)!;
  const vehicleImage = str('vehicle_image_path', false);
  const infraImage = str('infrastructure_image_path', false);
  // HEAL keys pairs by the image file name; the point cloud carries the same id.
  const vehicleId = frameId(vehicleImage ?? vehiclePcd);
  const infraId = frameId(infraImage ?? infraPcd);
  const offset = record(obj.system_error_offset, infoFile, `${at}.system_error_offset`);
  const coop = str('cooperative_label_path', false) ?? `cooperative/label_world/${vehicleId}.json`;
  return {
    index,
    vehicleId,
    infraId,
    split: splitOf.get(vehicleId) ?? 'all',
    vehiclePcd: path.join(root, vehiclePcd),
    infraPcd: path.join(root, infraPcd),
    vehicleImage: vehicleImage && path.join(root, vehicleImage),
    infraImage: infraImage && path.join(root, infraImage),
    cooperativeLabel: path.join(root, coop),
    offset: {
      dx: toNumber(offset.delta_x, infoFile, `${at}.system_error_offset.delta_x`),
      dy: toNumber(offset.delta_y, infoFile, `${at}.system_error_offset.delta_y`),
    },
  };
}

function frameId(p: string): string {
  return path.basename(p).replace(/\.[^.]*$/, '');
}

async function readJson(file: string, what: string): Promise<unknown> {
  const buf = await readFileChecked(file, what, READ_CAPS.json);
  try {
    return JSON.parse(buf.toString('utf8'));
  } catch (err) {
    throw new DataError(file, undefined, `${what} is not valid JSON: ${(err as Error).message}`);
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function record(v: unknown, file: string, field: string | undefined): Record<string, unknown> {
  if (!isRecord(v)) throw new DataError(file, field, 'expected a JSON object', v);
  return v;
}

/** DAIR files mix numbers and numeric strings ("0", "1.5"); both are accepted, nothing else. */
function toNumber(v: unknown, file: string, field: string): number {
  const n = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
  if (!Number.isFinite(n)) throw new DataError(file, field, 'expected a number', v);
  return n;
}

/** {"rotation": 3×3, "translation": 3×1 nested or flat} → 4×4. `prefix` names the JSON path. */
function parseRt(json: unknown, file: string, prefix: string): Mat4 {
  const obj = record(json, file, prefix ? prefix.slice(0, -1) : undefined);
  const R = obj.rotation;
  if (!Array.isArray(R) || R.length !== 3 || R.some((row) => !Array.isArray(row) || row.length !== 3)) {
    throw new DataError(file, `${prefix}rotation`, 'expected a 3×3 nested list', R);
  }
  const rot = (R as unknown[][]).map((row, r) => row.map((v, c) => toNumber(v, file, `${prefix}rotation[${r}][${c}]`)));
  const det =
    rot[0][0] * (rot[1][1] * rot[2][2] - rot[1][2] * rot[2][1]) -
    rot[0][1] * (rot[1][0] * rot[2][2] - rot[1][2] * rot[2][0]) +
    rot[0][2] * (rot[1][0] * rot[2][1] - rot[1][1] * rot[2][0]);
  // A rotation has determinant 1; a singular one cannot be inverted into the ego frame.
  if (!(Math.abs(det) > 1e-6 && rot.flat().every((v) => Math.abs(v) <= 10)))
    throw new DataError(file, `${prefix}rotation`, 'is not a rotation (singular, or entries far above 1)', det);
  const t = obj.translation;
  if (!Array.isArray(t) || t.length !== 3) throw new DataError(file, `${prefix}translation`, 'expected 3 values (3×1 nested or flat)', t);
  const tv = t.map((v, i) => {
    const x = Array.isArray(v) && v.length === 1 ? v[0] : v;
    const n = toNumber(x, file, `${prefix}translation[${i}]`);
    // World coordinates (UTM) reach 1e7 m; beyond 1e8 the matrix maths overflows into NaN poses.
    if (Math.abs(n) > 1e8) throw new DataError(file, `${prefix}translation[${i}]`, 'is more than 1e8 m', n);
    return n;
  });
  return mat4FromRt(rot, tv);
}

function parseCorners(v: unknown, file: string, field: string): Float64Array {
  if (!Array.isArray(v) || v.length !== 8) throw new DataError(file, field, 'expected 8 corners of [x, y, z]', v);
  const out = new Float64Array(24);
  v.forEach((c, i) => {
    if (!Array.isArray(c) || c.length !== 3) throw new DataError(file, `${field}[${i}]`, 'expected [x, y, z]', c);
    for (let k = 0; k < 3; k++) out[i * 3 + k] = toNumber(c[k], file, `${field}[${i}][${k}]`);
  });
  return out;
}

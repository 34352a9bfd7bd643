// The OPV2V / OPV2V-H / V2XSet per-frame YAML (formats.md §1.2), parsed into a validated record.
//
// Every key the OpenCDA writer emits is checked for type, shape and finiteness, so that a bad file
// fails here with a message naming the file, the key path and the value, instead of turning into
// NaN boxes three stages later. Keys this parser does not know are kept in `extra`.

import { parseDocument } from 'yaml';
import { DataError } from './io.ts';
import type { Mat4, Pose6 } from './geometry/transforms.ts';
import type { WorldObject } from './geometry/boxes.ts';

export type Vec3 = [number, number, number];

export interface VehicleEntry extends WorldObject {
  /** CARLA actor speed (km/h per OpenCDA); undefined when the file has no `speed`. */
  speed: number | undefined;
  /** Keys of the entry this parser does not know. */
  extra: Record<string, unknown>;
}

export interface CameraYaml {
  /** Camera world pose [x, y, z, roll, yaw, pitch] (meters, degrees). */
  cords: Pose6;
  /** 3×3 row-major K. */
  intrinsic: Float64Array;
  /** T_{cam←lidar} in UE4 axes (formats.md §1.5: the writer's "lidar2camera", despite the docs). */
  extrinsic: Mat4;
  extra: Record<string, unknown>;
}

export const CAMERA_NAMES = ['camera0', 'camera1', 'camera2', 'camera3'] as const;
export type CameraName = (typeof CAMERA_NAMES)[number];

export interface FrameYaml {
  file: string;
  /** LiDAR world pose; every cooperative transform uses it. */
  lidarPose: Pose6;
  trueEgoPos: Pose6 | undefined;
  predictedEgoPos: Pose6 | undefined;
  egoSpeed: number | undefined;
  /** Local-planner waypoints [x, y, target speed]; may be empty. */
  planTrajectory: Vec3[];
  cameras: Partial<Record<CameraName, CameraYaml>>;
  /** Objects this agent sees, by CARLA actor id, in file order. */
  vehicles: Map<number, VehicleEntry>;
  /** V2XSet only; the readers identify roadside units by a negative folder id instead. */
  rsu: boolean | undefined;
  extra: Record<string, unknown>;
}

const KNOWN_TOP = new Set(['lidar_pose', 'true_ego_pos', 'predicted_ego_pos', 'ego_speed', 'plan_trajectory', ...CAMERA_NAMES, 'vehicles', 'RSU']);
const KNOWN_VEHICLE = new Set(['location', 'center', 'angle', 'extent', 'speed']);
const KNOWN_CAMERA = new Set(['cords', 'intrinsic', 'extrinsic']);

/** Parses one per-frame YAML. Throws DataError naming `file` and the offending key path. */
export function parseFrameYaml(text: string, file: string): FrameYaml {
  checkNesting(text, file);
  const doc = parseDocument(text, { prettyErrors: true });
  if (doc.errors.length > 0) {
    const e = doc.errors[0];
    const line = e.linePos?.[0]?.line;
    const first = e.message.split('\n')[0];
    throw new DataError(file, undefined, `malformed YAML${line !== undefined ? ` at line ${line}` : ''}: ${first}`);
  }
  let root: unknown;
  try {
    root = doc.toJS({ mapAsMap: true, maxAliasCount: MAX_ALIAS_COUNT });
  } catch (err) {
    // The yaml package throws a ReferenceError for an alias bomb (billion laughs).
    throw new DataError(file, undefined, `YAML cannot be expanded: ${(err as Error).message} (at most ${MAX_ALIAS_COUNT} alias uses)`);
  }
  const top = asMap(root, file, '(document)');

  const v = (key: string) => top.get(key);
  const lidarPose = vec(v('lidar_pose'), 6, file, 'lidar_pose') as Pose6;
  const trueEgoPos = optional(v('true_ego_pos'), (x) => vec(x, 6, file, 'true_ego_pos') as Pose6);
  const predictedEgoPos = optional(v('predicted_ego_pos'), (x) => vec(x, 6, file, 'predicted_ego_pos') as Pose6);
  const egoSpeed = optional(v('ego_speed'), (x) => num(x, file, 'ego_speed'));
  const planTrajectory =
    optional(v('plan_trajectory'), (x) => list(x, file, 'plan_trajectory').map((p, i) => vec(p, 3, file, `plan_trajectory.${i}`) as Vec3)) ?? [];
  const cameras: Partial<Record<CameraName, CameraYaml>> = {};
  for (const name of CAMERA_NAMES) {
    const c = v(name);
    if (c !== undefined && c !== null) cameras[name] = parseCamera(c, file, name);
  }
  if (!top.has('vehicles')) throw new DataError(file, 'vehicles', 'key is missing');
  const vehicles = parseVehicles(v('vehicles'), file);
  const rsuRaw = v('RSU');
  let rsu: boolean | undefined;
  if (rsuRaw !== undefined && rsuRaw !== null) {
    if (typeof rsuRaw !== 'boolean') throw new DataError(file, 'RSU', 'expected true or false', rsuRaw);
    rsu = rsuRaw;
  }
  return {
    file,
    lidarPose,
    trueEgoPos,
    predictedEgoPos,
    egoSpeed,
    planTrajectory,
    cameras,
    vehicles,
    rsu,
    extra: extraKeys(top, KNOWN_TOP),
  };
}

/** OpenCDA's files use a handful of aliases (none, usually) and nest 4 levels deep. */
export const MAX_ALIAS_COUNT = 100;
export const MAX_YAML_DEPTH = 64;

/**
 * Rejects nesting deeper than MAX_YAML_DEPTH before the parser sees it: the yaml package recurses
 * per level, so 100 000 `[` take a second and end in a stack overflow. Counts flow brackets
 * outside quotes and block indentation (a level is at least one column).
 */
function checkNesting(text: string, file: string): void {
  let depth = 0;
  let quote = '';
  let line = 1;
  let atLineStart = true;
  let indent = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '\n') {
      line++;
      atLineStart = true;
      indent = 0;
      continue;
    }
    if (atLineStart) {
      if (c === ' ' || c === '-') {
        indent++;
        if (indent > MAX_YAML_DEPTH * 4) throw new DataError(file, `line ${line}`, `YAML indented more than ${MAX_YAML_DEPTH * 4} columns`, indent);
        continue;
      }
      atLineStart = false;
    }
    if (quote) {
      if (c === quote) quote = '';
      continue;
    }
    if (c === '"' || c === "'") quote = c;
    else if (c === '#') {
      const end = text.indexOf('\n', i);
      i = (end < 0 ? text.length : end) - 1;
    } else if (c === '[' || c === '{') {
      if (++depth > MAX_YAML_DEPTH) throw new DataError(file, `line ${line}`, `YAML nested more than ${MAX_YAML_DEPTH} levels`, depth);
    } else if (c === ']' || c === '}') depth = Math.max(0, depth - 1);
  }
}

function parseCamera(value: unknown, file: string, name: string): CameraYaml {
  const m = asMap(value, file, name);
  for (const key of KNOWN_CAMERA) {
    if (!m.has(key)) throw new DataError(file, `${name}.${key}`, 'key is missing');
  }
  return {
    cords: vec(m.get('cords'), 6, file, `${name}.cords`) as Pose6,
    intrinsic: matrix(m.get('intrinsic'), 3, file, `${name}.intrinsic`),
    extrinsic: matrix(m.get('extrinsic'), 4, file, `${name}.extrinsic`),
    extra: extraKeys(m, KNOWN_CAMERA),
  };
}

function parseVehicles(value: unknown, file: string): Map<number, VehicleEntry> {
  const out = new Map<number, VehicleEntry>();
  // PyYAML writes an empty dict as `{}`, but a hand-edited file may leave the key empty.
  if (value === null) return out;
  const m = asMap(value, file, 'vehicles');
  for (const [rawId, entry] of m) {
    const id = typeof rawId === 'number' ? rawId : typeof rawId === 'string' && /^-?\d+$/.test(rawId) ? Number(rawId) : NaN;
    if (!Number.isSafeInteger(id)) throw new DataError(file, `vehicles.${String(rawId)}`, 'object id must be an integer', rawId);
    const at = `vehicles.${id}`;
    const e = asMap(entry, file, at);
    for (const key of ['location', 'angle', 'extent']) {
      if (!e.has(key)) throw new DataError(file, `${at}.${key}`, 'key is missing');
    }
    const extent = vec(e.get('extent'), 3, file, `${at}.extent`) as Vec3;
    if (extent.some((x) => x < 0)) throw new DataError(file, `${at}.extent`, 'half sizes must not be negative', extent);
    out.set(id, {
      location: vec(e.get('location'), 3, file, `${at}.location`) as Vec3,
      // HEAL defaults a missing center offset to zero; OpenCOOD would fail on it.
      center: optional(e.get('center'), (x) => vec(x, 3, file, `${at}.center`) as Vec3) ?? [0, 0, 0],
      angle: vec(e.get('angle'), 3, file, `${at}.angle`) as Vec3,
      extent,
      speed: optional(e.get('speed'), (x) => num(x, file, `${at}.speed`)),
      extra: extraKeys(e, KNOWN_VEHICLE),
    });
  }
  return out;
}

function optional<T>(value: unknown, parse: (v: unknown) => T): T | undefined {
  return value === undefined || value === null ? undefined : parse(value);
}

function asMap(value: unknown, file: string, field: string): Map<unknown, unknown> {
  if (value === undefined) throw new DataError(file, field, 'key is missing');
  if (!(value instanceof Map)) throw new DataError(file, field, 'expected a mapping', describe(value));
  return value;
}

function list(value: unknown, file: string, field: string): unknown[] {
  if (value === undefined) throw new DataError(file, field, 'key is missing');
  if (!Array.isArray(value)) throw new DataError(file, field, 'expected a list', describe(value));
  return value;
}

function num(value: unknown, file: string, field: string): number {
  if (value === undefined) throw new DataError(file, field, 'key is missing');
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new DataError(file, field, 'expected a finite number', describe(value));
  }
  return value;
}

function vec(value: unknown, n: number, file: string, field: string): number[] {
  const a = list(value, file, field);
  if (a.length !== n) throw new DataError(file, field, `expected ${n} numbers, got ${a.length}`, describe(value));
  for (let i = 0; i < n; i++) {
    if (typeof a[i] !== 'number' || !Number.isFinite(a[i])) {
      throw new DataError(file, field, `element ${i} is not a finite number`, describe(value));
    }
  }
  return a as number[];
}

function matrix(value: unknown, n: number, file: string, field: string): Float64Array {
  const rows = list(value, file, field);
  if (rows.length !== n) throw new DataError(file, field, `expected ${n}×${n} matrix, got ${rows.length} rows`, describe(value));
  const out = new Float64Array(n * n);
  rows.forEach((row, r) => {
    const a = vec(row, n, file, `${field}.${r}`);
    for (let c = 0; c < n; c++) out[r * n + c] = a[c];
  });
  return out;
}

function extraKeys(m: Map<unknown, unknown>, known: Set<string>): Record<string, unknown> {
  const extra: Record<string, unknown> = {};
  for (const [k, v] of m) if (!known.has(String(k))) extra[String(k)] = v;
  return extra;
}

/** Maps become plain objects so DataError can JSON-print the offending value. */
function describe(value: unknown): unknown {
  if (value instanceof Map) return Object.fromEntries([...value].map(([k, v]) => [String(k), describe(v)]));
  if (Array.isArray(value)) return value.map(describe);
  if (typeof value === 'number' && !Number.isFinite(value)) return String(value);
  return value;
}

// Builds small OPV2V-layout datasets in a temp folder for the reader and inspect tests.
// YAML is emitted the way PyYAML's `yaml.dump` writes OpenCDA frames (sorted keys, block lists).

import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PNG } from 'pngjs';
import { encodePcd } from '../../datasets/pcd.ts';

export interface FixtureVehicle {
  location: number[];
  center?: number[];
  angle: number[];
  extent: number[];
  speed?: number;
}

export interface FixtureAgent {
  id: number;
  lidarPose: number[];
  vehicles: Record<number, FixtureVehicle>;
  /** Points written to <ts>.pcd; defaults to a small ring around the agent. */
  points?: Float32Array;
  /** Extra LiDAR files: beams → points. */
  lidars?: { 32?: Float32Array; 16?: Float32Array };
  cameras?: boolean;
}

const K = [
  [335.6399, 0, 400],
  [0, 335.6399, 300],
  [0, 0, 1],
];

function scalar(v: unknown): string {
  if (Array.isArray(v)) return '[]';
  if (v !== null && typeof v === 'object') return '{}';
  // Python floats print with a decimal point; OpenCDA writes floats everywhere.
  return typeof v === 'number' && Number.isInteger(v) ? v.toFixed(1) : String(v);
}

const nonEmptyList = (v: unknown): v is unknown[] => Array.isArray(v) && v.length > 0;
const nonEmptyMap = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length > 0;

/** PyYAML block style: a list under a key is not indented further ("key:\n- a"), nested lists open "- - a". */
function seqLines(a: unknown[], ind: string): string[] {
  const lines: string[] = [];
  for (const v of a) {
    if (nonEmptyList(v)) {
      const inner = seqLines(v, ind + '  ');
      lines.push(`${ind}- ${inner[0].trimStart()}`, ...inner.slice(1));
    } else lines.push(`${ind}- ${scalar(v)}`);
  }
  return lines;
}

function mapLines(o: Record<string, unknown>, ind: string): string[] {
  const lines: string[] = [];
  for (const [k, v] of Object.entries(o)) {
    if (nonEmptyList(v)) lines.push(`${ind}${k}:`, ...seqLines(v, ind));
    else if (nonEmptyMap(v)) lines.push(`${ind}${k}:`, ...mapLines(v, ind + '  '));
    else lines.push(`${ind}${k}: ${scalar(v)}`);
  }
  return lines;
}

/** PyYAML-style text for one frame: keys sorted, nested lists in block style. */
export function frameYamlText(agent: FixtureAgent, opts: { extraTop?: Record<string, unknown> } = {}): string {
  const pose = agent.lidarPose;
  const cam = (i: number) => ({
    cords: [pose[0] + 2.5, pose[1], pose[2] - 0.9, 0, pose[4] + [0, 100, -100, 180][i], 0],
    extrinsic: [
      [1, 0, 0, -2.5],
      [0, 1, 0, 0],
      [0, 0, 1, 0.9],
      [0, 0, 0, 1],
    ],
    intrinsic: K,
  });
  const vehicles: Record<string, unknown> = {};
  for (const id of Object.keys(agent.vehicles)
    .map(Number)
    .sort((a, b) => a - b)) {
    const v = agent.vehicles[id];
    const e: Record<string, unknown> = { angle: v.angle };
    if (v.center) e.center = v.center;
    e.extent = v.extent;
    e.location = v.location;
    e.speed = v.speed ?? 0;
    vehicles[String(id)] = e;
  }
  const top: Record<string, unknown> = {
    RSU: agent.id < 0,
    camera0: cam(0),
    camera1: cam(1),
    camera2: cam(2),
    camera3: cam(3),
    ego_speed: 12.5,
    lidar_pose: pose,
    plan_trajectory: [
      [pose[0] + 1, pose[1], 21],
      [pose[0] + 2, pose[1], 21],
    ],
    predicted_ego_pos: [pose[0], pose[1], 0, 0, pose[4], 0],
    true_ego_pos: [pose[0] + 0.5, pose[1], pose[2] - 1.9, 0, pose[4], 0],
    ...(opts.extraTop ?? {}),
    vehicles,
  };
  return mapLines(top, '').join('\n') + '\n';
}

/** A ring of points around the sensor, so every agent has some. */
export function ringPoints(n: number, radius: number): Float32Array {
  const p = new Float32Array(n * 4);
  for (let i = 0; i < n; i++) {
    const a = (2 * Math.PI * i) / n;
    p[i * 4] = radius * Math.cos(a);
    p[i * 4 + 1] = radius * Math.sin(a);
    p[i * 4 + 2] = -1.5;
    p[i * 4 + 3] = 0.5;
  }
  return p;
}

export function rgbPng(width: number, height: number, opts: { colorType?: 0 | 2 | 6 } = {}): Buffer {
  const png = new PNG({ width, height });
  for (let i = 0; i < width * height; i++) {
    png.data[i * 4] = (i * 7) % 256;
    png.data[i * 4 + 1] = 100;
    png.data[i * 4 + 2] = 200;
    png.data[i * 4 + 3] = 255;
  }
  return PNG.sync.write(png, { colorType: opts.colorType ?? 2 });
}

export async function makeTempDir(prefix: string): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), `heal-${prefix}-`));
}

/** Writes one scenario: every agent at every timestamp (with per-timestamp x shifts of 1 m). */
export async function writeScenario(scenarioDir: string, agents: FixtureAgent[], timestamps: string[]): Promise<void> {
  for (const a of agents) {
    const dir = path.join(scenarioDir, String(a.id));
    await fs.mkdir(dir, { recursive: true });
    for (const [k, ts] of timestamps.entries()) {
      const moved = { ...a, lidarPose: [a.lidarPose[0] + k, ...a.lidarPose.slice(1)] };
      await fs.writeFile(path.join(dir, `${ts}.yaml`), frameYamlText(moved));
      await fs.writeFile(path.join(dir, `${ts}.pcd`), encodePcd(a.points ?? ringPoints(100, 10), 'ascii'));
      if (a.lidars?.[32]) await fs.writeFile(path.join(dir, `${ts}_32.pcd`), encodePcd(a.lidars[32], 'binary'));
      if (a.lidars?.[16]) await fs.writeFile(path.join(dir, `${ts}_16.pcd`), encodePcd(a.lidars[16], 'binary'));
      if (a.cameras) {
        for (let i = 0; i < 4; i++) await fs.writeFile(path.join(dir, `${ts}_camera${i}.png`), rgbPng(8, 6));
        await fs.writeFile(path.join(dir, `${ts}_depth0.png`), rgbPng(8, 6, { colorType: 0 }));
      }
    }
  }
}

/**
 * The standard cooperative scene used by both test files. String-sorted ids are
 * ["-1", "1045", "641", "650"], so ego order is 1045, 641, 650, -1.
 *  - 1045 (ego) at the origin, yaw 0, sees CAV 641 and objects 9001, 9002.
 *  - 641, 20 m ahead, sees 1045 (the ego: must be dropped), 9002 (duplicate, slightly moved:
 *    first occurrence must win) and 9003.
 *  - 650, 100 m away (outside 70 m comm range), sees 9004.
 *  - -1, a roadside unit 30 m to the side, sees 9005.
 */
export function standardAgents(): FixtureAgent[] {
  const car = (x: number, y: number, yaw = 0): FixtureVehicle => ({
    location: [x, y, 0],
    center: [0, 0, 0.7],
    angle: [0, yaw, 0],
    extent: [2.2, 0.95, 0.75],
    speed: 20,
  });
  return [
    {
      id: 1045,
      lidarPose: [0, 0, 1.9, 0, 0, 0],
      vehicles: { 641: car(20, 0), 9001: car(10, 4, 90), 9002: car(-12, -3.5) },
      cameras: true,
      lidars: { 32: ringPoints(50, 8) },
    },
    { id: 641, lidarPose: [20, 0, 1.9, 0, 0, 0], vehicles: { 1045: car(0, 0), 9002: car(-12.3, -3.5), 9003: car(35, 3.5, 180) } },
    { id: 650, lidarPose: [100, 0, 1.9, 0, 0, 0], vehicles: { 9004: car(110, 0) } },
    { id: -1, lidarPose: [5, 30, 4.0, 0, -90, 0], vehicles: { 9005: car(5, 20, 90) } },
  ];
}

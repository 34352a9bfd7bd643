import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parse } from 'yaml';
import { generateDataset, splitCounts, type GenerateOptions } from '../../datasets/synthetic/generate.ts';
import { buildScenario, RSU_ID } from '../../datasets/synthetic/scenario.ts';
import { vehicleEntry } from '../../datasets/synthetic/shapes.ts';
import { parseFrameYaml } from '../../datasets/yaml.ts';
import { openOpv2v, type Opv2vDataset } from '../../datasets/opv2v.ts';
import { readPcd } from '../../datasets/pcd.ts';
import { decodeGrayPng, decodePng } from '../../datasets/png.ts';
import { invert, multiply, poseToMatrix, x1ToX2 } from '../../datasets/geometry/transforms.ts';
import { bevCorners, worldObjectToBox } from '../../datasets/geometry/boxes.ts';
import { clipConvex, polygonArea } from '../../datasets/geometry/polygon.ts';
import { run as cliRun } from '../../cli/generate.ts';
import { TEST_WORLD, WORLD_TIMEOUT_MS, testWorld } from '../helpers/world.ts';

// World A is the shared test world (generated in whichever process asked first, possibly with
// another worker count); world B is generated here, to compare with it.
const BASE: Omit<GenerateOptions, 'out' | 'jobs'> = TEST_WORLD;
const CAM = BASE.camera!;

let root: string;
let dirA: string;
let dirB: string;
let ds: Opv2vDataset;

async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await fs.readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...(await listFiles(p)).map((f) => path.join(e.name, f)));
    else out.push(e.name);
  }
  return out.sort();
}

/** [x, y, z, h, w, l, yaw] containment, faces included. */
function inside(points: Float32Array, i: number, b: number[]): boolean {
  const dx = points[i * 4] - b[0],
    dy = points[i * 4 + 1] - b[1],
    dz = points[i * 4 + 2] - b[2];
  const c = Math.cos(b[6]),
    s = Math.sin(b[6]);
  return Math.abs(dx * c + dy * s) <= b[5] / 2 && Math.abs(-dx * s + dy * c) <= b[4] / 2 && Math.abs(dz) <= b[3] / 2;
}

/** Points bucketed by 4 m cells, so that counting the points in a box only looks near it. */
function bucket(points: Float32Array): Map<string, number[]> {
  const cells = new Map<string, number[]>();
  for (let i = 0; i < points.length / 4; i++) {
    const key = `${Math.floor(points[i * 4] / 4)},${Math.floor(points[i * 4 + 1] / 4)}`;
    let list = cells.get(key);
    if (!list) cells.set(key, (list = []));
    list.push(i);
  }
  return cells;
}

function countInside(points: Float32Array, cells: Map<string, number[]>, b: number[]): number {
  const r = Math.hypot(b[4], b[5]) / 2;
  let n = 0;
  for (let gx = Math.floor((b[0] - r) / 4); gx <= Math.floor((b[0] + r) / 4); gx++) {
    for (let gy = Math.floor((b[1] - r) / 4); gy <= Math.floor((b[1] + r) / 4); gy++) {
      for (const i of cells.get(`${gx},${gy}`) ?? []) if (inside(points, i, b)) n++;
    }
  }
  return n;
}

beforeAll(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'heal-synthetic-'));
  dirA = await testWorld();
  dirB = path.join(root, 'b');
  // More scenarios, only the test split, two worker threads: the test split must not change.
  await generateDataset({ ...BASE, out: dirB, scenarios: 5, splits: ['test'], jobs: 2 });
  ds = await openOpv2v(dirA);
}, WORLD_TIMEOUT_MS);

afterAll(async () => {
  if (root) await fs.rm(root, { recursive: true, force: true });
});

describe('heal generate: layout and determinism', () => {
  it('shares N scenarios out 60/20/20 with at least one per split once N >= 3', () => {
    expect(splitCounts(1)).toEqual({ train: 1, validate: 0, test: 0 });
    expect(splitCounts(2)).toEqual({ train: 1, validate: 0, test: 1 });
    expect(splitCounts(3)).toEqual({ train: 1, validate: 1, test: 1 });
    expect(splitCounts(10)).toEqual({ train: 6, validate: 2, test: 2 });
  });

  it('writes split/scenario/agent folders with OPV2V-H file names and no temporary files', async () => {
    expect((await fs.readdir(dirA)).sort()).toEqual(['test', 'train', 'validate']);
    for (const split of ['train', 'validate', 'test']) {
      const scenarios = await fs.readdir(path.join(dirA, split));
      expect(scenarios).toHaveLength(1);
      expect(scenarios[0]).toMatch(/^20\d\d_\d\d_\d\d_\d\d_\d\d_\d\d$/);
      const sdir = path.join(dirA, split, scenarios[0]);
      const entries = (await fs.readdir(sdir)).sort();
      expect(entries).toContain('data_protocol.yaml');
      const agents = entries.filter((e) => e !== 'data_protocol.yaml');
      expect(agents.filter((a) => Number(a) < 0)).toEqual([String(RSU_ID)]);
      const cavs = agents.filter((a) => Number(a) > 0);
      expect(cavs.length).toBeGreaterThanOrEqual(2);
      expect(cavs.length).toBeLessThanOrEqual(4);
      for (const c of cavs) expect(c).toMatch(/^[1-9]\d{3}$/);
      let stamps: string[] | undefined;
      for (const a of agents) {
        const files = (await fs.readdir(path.join(sdir, a))).sort();
        const ts = files.filter((f) => f.endsWith('.yaml')).map((f) => f.slice(0, -5));
        expect(ts).toHaveLength(BASE.frames);
        for (const t of ts) expect(t).toMatch(/^\d{6}$/);
        expect(Number(ts[1]) - Number(ts[0])).toBe(2);
        if (stamps) expect(ts).toEqual(stamps);
        stamps = ts;
        const expected = ts
          .flatMap((t) => [
            `${t}.yaml`,
            `${t}.pcd`,
            `${t}_32.pcd`,
            `${t}_16.pcd`,
            ...[0, 1, 2, 3].flatMap((i) => [`${t}_camera${i}.png`, `${t}_depth${i}.png`]),
          ])
          .sort();
        expect(files).toEqual(expected);
      }
    }
  });

  it('gives byte-identical files for the same options, whatever the worker count or the other splits', async () => {
    const testA = path.join(dirA, 'test'),
      testB = path.join(dirB, 'test');
    const files = await listFiles(testA);
    expect(await listFiles(testB)).toEqual(files);
    expect(files.length).toBeGreaterThan(20);
    for (const f of files) {
      const [a, b] = await Promise.all([fs.readFile(path.join(testA, f)), fs.readFile(path.join(testB, f))]);
      expect(a.equals(b), f).toBe(true);
    }
    // A different seed gives a different world.
    const other = buildScenario({ seed: 12, split: 'test', index: 0, frames: 1 });
    const same = buildScenario({ seed: 11, split: 'test', index: 0, frames: 1 });
    expect(other.town.xs).not.toEqual(same.town.xs);
  });
});

describe('heal generate: frame contents', () => {
  it('writes every OPV2V key with the right types', async () => {
    for (const ref of ds.frames()) {
      for (const id of ref.agentIds) {
        const s = ds.scenarios().find((x) => x.name === ref.scenario)!;
        const file = path.join(dirA, s.split, s.name, String(id), `${ref.timestamp}.yaml`);
        const text = await fs.readFile(file, 'utf8');
        const raw = parse(text) as Record<string, unknown>;
        expect(Object.keys(raw).sort()).toEqual([
          'RSU',
          'camera0',
          'camera1',
          'camera2',
          'camera3',
          'ego_speed',
          'lidar_pose',
          'plan_trajectory',
          'predicted_ego_pos',
          'true_ego_pos',
          'vehicles',
        ]);
        const y = parseFrameYaml(text, file);
        expect(y.rsu).toBe(id < 0);
        expect(typeof y.egoSpeed).toBe('number');
        expect(y.trueEgoPos).toHaveLength(6);
        expect(y.predictedEgoPos).toHaveLength(6);
        if (id > 0) {
          expect(y.planTrajectory.length).toBeGreaterThan(0);
          // The LiDAR sits at (-0.5, 0, 1.9) in the vehicle frame.
          const rel = multiply(invert(poseToMatrix(y.trueEgoPos!)), poseToMatrix(y.lidarPose));
          expect(rel[3]).toBeCloseTo(-0.5, 5);
          expect(rel[7]).toBeCloseTo(0, 5);
          expect(rel[11]).toBeCloseTo(1.9, 5);
        } else {
          expect(y.planTrajectory).toEqual([]);
          expect(y.lidarPose[2]).toBeGreaterThan(3);
        }
        expect(y.vehicles.has(id)).toBe(false);
        for (const [vid, v] of y.vehicles) {
          expect(Number.isInteger(vid) && vid > 0).toBe(true);
          expect(v.center[2]).toBeCloseTo(v.extent[2], 6);
          expect(v.extent.every((e) => e > 0.5 && e < 7)).toBe(true);
          expect(typeof v.speed).toBe('number');
        }
        for (const name of ['camera0', 'camera1', 'camera2', 'camera3'] as const) {
          const cam = y.cameras[name]!;
          const f = CAM.width / (2 * Math.tan((50 * Math.PI) / 180));
          expect(cam.intrinsic[0]).toBeCloseTo(f, 9);
          expect(cam.intrinsic[4]).toBeCloseTo(f, 9);
          expect(cam.intrinsic[2]).toBe(CAM.width / 2);
          expect(cam.intrinsic[5]).toBe(CAM.height / 2);
          // extrinsic = T_cam<-lidar = inv(x1_to_x2(cords, lidar_pose)) (formats.md §1.5).
          const expected = invert(x1ToX2(cam.cords, y.lidarPose));
          for (let k = 0; k < 16; k++) expect(Math.abs(cam.extrinsic[k] - expected[k])).toBeLessThan(1e-9);
        }
        if (id > 0) {
          // OPV2V mounting: camera0 2.5 m ahead at ~1 m; camera1 at +100°, camera2 at -100°, camera3 behind.
          const base = poseToMatrix(y.trueEgoPos!);
          const rel = (name: 'camera0' | 'camera1' | 'camera2' | 'camera3') => multiply(invert(base), poseToMatrix(y.cameras[name]!.cords));
          expect(rel('camera0')[3]).toBeCloseTo(2.5, 5);
          expect(rel('camera0')[11]).toBeCloseTo(1.0, 5);
          expect((Math.atan2(rel('camera1')[4], rel('camera1')[0]) * 180) / Math.PI).toBeCloseTo(100, 4);
          expect((Math.atan2(rel('camera2')[4], rel('camera2')[0]) * 180) / Math.PI).toBeCloseTo(-100, 4);
          expect(rel('camera3')[3]).toBeCloseTo(-2.0, 5);
        }
      }
    }
  });

  it('lists exactly the vehicles with 64-beam points inside their box, and the three LiDARs thin out', async () => {
    let listed = 0;
    let cavSeen = 0;
    for (const s of ds.scenarios()) {
      const split = s.split as 'train' | 'validate' | 'test';
      const world = buildScenario({ seed: BASE.seed, split, index: 0, frames: BASE.frames });
      expect(world.name).toBe(s.name);
      for (const [f, ts] of s.timestamps.entries()) {
        const ref = ds.frames().find((r) => r.scenario === s.name && r.timestamp === ts)!;
        for (const id of ref.agentIds) {
          const frame = await ds.readAgentFrame(ref, id);
          const p32 = (await ds.readAgentFrame(ref, id, { lidar: 32 })).points.length;
          const p16 = (await ds.readAgentFrame(ref, id, { lidar: 16 })).points.length;
          expect(frame.points.length).toBeGreaterThan(p32);
          expect(p32).toBeGreaterThan(p16);
          expect(p16).toBeGreaterThan(0);
          const ids = new Set(frame.boxes.map((b) => b.id));
          const cells = bucket(frame.points);
          // Boxes the reader built from the YAML: each holds at least one point.
          for (const b of frame.boxes) {
            expect(countInside(frame.points, cells, b.box), `vehicle ${b.id} seen by ${id}`).toBeGreaterThan(0);
            listed++;
            if (s.agents.some((a) => a.id === b.id)) cavSeen++;
          }
          // Every vehicle of the world model that is not listed has none.
          const worldFromLidar = poseToMatrix((await ds.readFrameYaml(ref, id)).lidarPose);
          world.vehicles.forEach((v, i) => {
            if (v.id === id || ids.has(v.id)) return;
            const box = worldObjectToBox(vehicleEntry(v, world.poses[f][i]), worldFromLidar);
            if (Math.hypot(box[0], box[1]) > 130) return;
            expect(countInside(frame.points, cells, box), `unlisted vehicle ${v.id} seen by ${id}`).toBe(0);
          });
        }
      }
    }
    expect(listed).toBeGreaterThan(50);
    // Other connected vehicles appear in each other's lists.
    expect(cavSeen).toBeGreaterThan(0);
  });

  it('writes RGB pictures and 8-bit depth of the requested size', async () => {
    const ref = ds.frames()[0];
    const frame = await ds.readAgentFrame(ref, ref.agentIds[0], { images: true });
    expect(frame.cameras).toHaveLength(4);
    for (const cam of frame.cameras) {
      expect(cam.image!.width).toBe(CAM.width);
      expect(cam.image!.height).toBe(CAM.height);
      const depth = decodeGrayPng(await fs.readFile(cam.depthPath!), cam.depthPath!);
      expect(depth.width).toBe(CAM.width);
      // Ground close below the horizon, sky (255) at the top row.
      expect(depth.data[(CAM.height - 1) * CAM.width + CAM.width / 2]).toBeLessThan(30);
      expect(Math.max(...depth.data)).toBe(255);
      const rgb = decodePng(await fs.readFile(cam.imagePath), cam.imagePath);
      const distinct = new Set<number>();
      for (let i = 0; i < rgb.data.length; i += 3) distinct.add((rgb.data[i] << 16) | (rgb.data[i + 1] << 8) | rgb.data[i + 2]);
      expect(distinct.size).toBeGreaterThan(50);
    }
  });

  it('puts LiDAR points where the camera calibration says: projected depth matches the depth picture', async () => {
    let compared = 0,
      agree = 0;
    for (const ref of ds.frames()) {
      for (const id of ref.agentIds) {
        const frame = await ds.readAgentFrame(ref, id);
        for (const cam of frame.cameras) {
          const depth = decodeGrayPng(await fs.readFile(cam.depthPath!), cam.depthPath!);
          const E = cam.extrinsic,
            K = cam.intrinsic;
          const pts = frame.points;
          for (let i = 0; i < pts.length / 4; i += 7) {
            const x = pts[i * 4],
              y = pts[i * 4 + 1],
              z = pts[i * 4 + 2];
            // UE4 camera axes (x forward, y right, z up) -> pixel, formats.md §1.5.
            const cx = E[0] * x + E[1] * y + E[2] * z + E[3];
            const cy = E[4] * x + E[5] * y + E[6] * z + E[7];
            const cz = E[8] * x + E[9] * y + E[10] * z + E[11];
            if (cx < 3 || cx > 60) continue;
            const u = Math.floor(K[0] * (cy / cx) + K[2]),
              v = Math.floor(K[4] * (-cz / cx) + K[5]);
            if (u < 0 || v < 0 || u >= depth.width || v >= depth.height) continue;
            compared++;
            if (Math.abs(depth.data[v * depth.width + u] - cx) < 2 + 0.05 * cx) agree++;
          }
        }
      }
    }
    expect(compared).toBeGreaterThan(1000);
    // The rest are occlusion edges: the cameras do not sit where the LiDAR does.
    expect(agree / compared).toBeGreaterThan(0.8);
  });

  it('writes data_protocol.yaml with the LiDAR setup and the seed', async () => {
    const s = ds.scenarios()[0];
    const proto = parse(await fs.readFile(path.join(dirA, s.split, s.name, 'data_protocol.yaml'), 'utf8'));
    expect(proto.world.fixed_delta_seconds).toBe(0.05);
    expect(proto.world.seed).toBe(BASE.seed);
    const lidar = proto.vehicle_base.sensing.perception.lidar;
    expect([lidar.channels, lidar.range, lidar.upper_fov, lidar.lower_fov, lidar.noise_stddev]).toEqual([64, 120, 2, -25, 0.02]);
    const pcd = await readPcd(path.join(dirA, s.split, s.name, String(s.agents[0].id), `${s.timestamps[0]}.pcd`));
    expect(pcd.header.data).toBe(BASE.pcdFormat);
    expect(pcd.fields).toEqual(['x', 'y', 'z', BASE.pcdFormat === 'ascii' ? 'rgb' : 'intensity']);
  });
});

describe('synthetic traffic', () => {
  it('never overlaps vehicles, moves them at plausible speeds, and keeps the agents within reach', () => {
    for (const seed of [3, 4]) {
      const frames = 80;
      const w = buildScenario({ seed, split: 'train', index: 0, frames });
      const moving = w.vehicles.map((v) => !v.parked);
      let near = 0,
        total = 0;
      for (let f = 0; f < frames; f++) {
        const P = w.poses[f];
        const fp = w.vehicles.map((v, i) => bevCorners([P[i].x, P[i].y, 0, v.height, v.width, v.length, (P[i].yaw * Math.PI) / 180]));
        for (let i = 0; i < fp.length; i++) {
          if (!moving[i]) continue;
          for (let j = 0; j < fp.length; j++) {
            if (j === i || (moving[j] && j < i)) continue;
            if (Math.abs(P[i].x - P[j].x) > 15 || Math.abs(P[i].y - P[j].y) > 15) continue;
            expect(polygonArea(clipConvex(fp[i], fp[j])), `vehicles ${w.vehicles[i].id} and ${w.vehicles[j].id} at frame ${f}`).toBeLessThan(1e-6);
          }
          if (f > 0) {
            // 10 Hz: the step matches the speed (within what turning and braking change in 0.1 s).
            const d = Math.hypot(P[i].x - w.poses[f - 1][i].x, P[i].y - w.poses[f - 1][i].y);
            expect(d).toBeLessThan(1.5);
            // (A long vehicle's middle moves slower than its wheels in a tight turn.)
            const expected = 0.05 * (P[i].speed + w.poses[f - 1][i].speed);
            expect(Math.abs(d - expected)).toBeLessThan(0.1 + 0.35 * expected);
          }
        }
        const pos = w.agents.map((a) => {
          if (a.kind === 'rsu') return [a.basePose![0], a.basePose![1]];
          const i = w.vehicles.findIndex((v) => v.id === a.id);
          return [P[i].x, P[i].y];
        });
        for (let a = 0; a < pos.length; a++) {
          if (w.agents[a].kind !== 'vehicle') continue;
          total++;
          if (pos.some((q, b) => b !== a && Math.hypot(q[0] - pos[a][0], q[1] - pos[a][1]) <= 70)) near++;
        }
      }
      expect(near / total).toBeGreaterThan(0.8);
      expect(
        w.vehicles
          .filter((v) => v.connected)
          .map((v) => v.id)
          .sort(),
      ).toEqual(w.agents.filter((a) => a.id > 0).map((a) => a.id));
      const ids = w.vehicles.map((v) => v.id);
      expect(new Set(ids).size).toBe(ids.length);
      expect(ids.every((id) => id >= 1000 && id <= 9999)).toBe(true);
      // Some traffic actually moves.
      const last = w.poses[frames - 1];
      const moved = w.vehicles.filter((v, i) => !v.parked && Math.hypot(last[i].x - w.poses[0][i].x, last[i].y - w.poses[0][i].y) > 20).length;
      expect(moved).toBeGreaterThan(10);
    }
  });
});

describe('heal generate CLI', () => {
  it('prints usage with the split rule, and rejects bad options', async () => {
    const logs: string[] = [];
    const orig = console.log,
      origErr = console.error;
    console.log = (...a: unknown[]) => {
      logs.push(a.join(' '));
    };
    console.error = (...a: unknown[]) => {
      logs.push(a.join(' '));
    };
    try {
      expect(await cliRun(['--help'])).toBe(0);
      expect(logs.join('\n')).toMatch(/--scenarios N/);
      expect(logs.join('\n')).toMatch(/20 %/);
      expect(await cliRun(['--out', root, '--camera-size', '400by300'])).toBe(2);
      expect(await cliRun(['--out', root, '--splits', 'train,bogus'])).toBe(2);
      expect(await cliRun(['--scenarios', '2'])).toBe(2);
      // An existing non-empty split folder is not overwritten silently (B's: A is shared).
      expect(await cliRun(['--out', dirB, '--scenarios', '1', '--frames', '1', '--no-cameras', '--jobs', '1'])).toBe(1);
    } finally {
      console.log = orig;
      console.error = origErr;
    }
  });
});

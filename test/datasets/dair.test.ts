import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, promises as fs, readFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type DairDataset, dairCornersToOpencood, isDairRoot, openDair } from '../../datasets/dair.ts';
import { encodePcd } from '../../datasets/pcd.ts';
import { DataError } from '../../datasets/io.ts';
import type { FrameRef } from '../../datasets/dataset.ts';
import { run as inspect } from '../../cli/inspect.ts';
import type { Box7 } from '../../datasets/geometry/boxes.ts';
import { type Mat4, invert, mat4ToRows, multiply, poseToMatrix, relative, transformPoint, transformPoints } from '../../datasets/geometry/transforms.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const fixtures = path.resolve(repoRoot, '../shared/fixtures/dair_v2x_c');
const realVehiclePcd = path.join(fixtures, 'vehicle-side/velodyne/017314.pcd');
const realInfraPcd = path.join(fixtures, 'infrastructure-side/velodyne/001366.pcd');
const realVehicleLabel = path.join(fixtures, 'vehicle-side/label/lidar/017314.json');
const haveFixtures = [realVehiclePcd, realInfraPcd, realVehicleLabel].every((f) => existsSync(f));
if (!haveFixtures) console.warn(`dair.test: skipping the real DAIR-V2X-C pair, fixtures not found under ${fixtures}`);

// The inf→veh LiDAR calibration of the real pair (v2i-calib's lidar_i2v/017314.json, formats.md §2.3).
const T_VEH_FROM_INF = [-5.6465, 12.1512, -0.4504];
const OFFSET = { delta_x: -0.7, delta_y: -0.54 };
// A vehicle pose chosen for the test: NovAtel in the world, and the LiDAR on the NovAtel.
const WORLD_FROM_NOVATEL = poseToMatrix([2741.3, -1520.8, 19.6, 1.2, 33.0, -0.8]);
const NOVATEL_FROM_LIDAR = poseToMatrix([0.4, -0.1, 1.7, 0.3, 90.5, 0.6]);
const WORLD_FROM_VEH = multiply(WORLD_FROM_NOVATEL, NOVATEL_FROM_LIDAR);
const VEH_FROM_INF = poseToMatrix([T_VEH_FROM_INF[0], T_VEH_FROM_INF[1], T_VEH_FROM_INF[2], 0, 0, 0]);
const WORLD_FROM_INF = multiply(WORLD_FROM_VEH, VEH_FROM_INF);

const rot = (m: Mat4) =>
  mat4ToRows(m)
    .slice(0, 3)
    .map((r) => r.slice(0, 3));
const nestedT = (m: Mat4) => [[m[3]], [m[7]], [m[11]]];

/** DAIR `get_3d_8points` order (formats.md §2.4): (+l,+w), (+l,−w), (−l,−w), (−l,+w), bottom then top. */
function dairCorners(box: Box7, m: Mat4): number[][] {
  const [x, y, z, h, w, l, yaw] = box;
  const c = Math.cos(yaw),
    s = Math.sin(yaw);
  const out: number[][] = [];
  for (const dz of [-h / 2, h / 2]) {
    for (const [sl, sw] of [
      [1, 1],
      [1, -1],
      [-1, -1],
      [-1, 1],
    ]) {
      const px = (sl * l) / 2,
        py = (sw * w) / 2;
      out.push(transformPoint(m, x + px * c - py * s, y + px * s + py * c, z + dz));
    }
  }
  return out;
}

interface LabelObject {
  type: string;
  '3d_dimensions': Record<string, unknown>;
  '3d_location': Record<string, unknown>;
  rotation: unknown;
}

function labelObject(type: string, box: Box7, asStrings = false): LabelObject {
  const v = (n: number) => (asStrings ? String(n) : n);
  return {
    type,
    '3d_dimensions': { h: v(box[3]), w: v(box[4]), l: v(box[5]) },
    '3d_location': { x: v(box[0]), y: v(box[1]), z: v(box[2]) },
    rotation: v(box[6]),
  };
}

function boxOf(o: LabelObject): Box7 {
  const d = o['3d_dimensions'],
    p = o['3d_location'];
  return [Number(p.x), Number(p.y), Number(p.z), Number(d.h), Number(d.w), Number(d.l), Number(o.rotation)];
}

/** Moves a box into another frame (yaw-only rotation, as every box transform in the pipeline). */
function moveBox(b: Box7, m: Mat4): Box7 {
  const [x, y, z] = transformPoint(m, b[0], b[1], b[2]);
  return [x, y, z, b[3], b[4], b[5], b[6] + Math.atan2(m[4], m[0])];
}

const angleDiff = (a: number, b: number) => Math.abs(Math.atan2(Math.sin(a - b), Math.cos(a - b)));

function expectBoxClose(a: ArrayLike<number>, b: ArrayLike<number>, tol = 1e-6) {
  for (let k = 0; k < 6; k++) expect(Math.abs(a[k] - b[k])).toBeLessThan(tol);
  expect(angleDiff(a[6], b[6])).toBeLessThan(tol);
}

function pointsInBox(points: Float32Array, b: ArrayLike<number>): number {
  const [x, y, z, h, w, l, yaw] = Array.from(b);
  const c = Math.cos(yaw),
    s = Math.sin(yaw);
  let n = 0;
  for (let i = 0; i < points.length; i += 4) {
    const dx = points[i] - x,
      dy = points[i + 1] - y,
      dz = points[i + 2] - z;
    const u = dx * c + dy * s,
      v = -dx * s + dy * c;
    if (Math.abs(u) <= l / 2 && Math.abs(v) <= w / 2 && Math.abs(dz) <= h / 2) n++;
  }
  return n;
}

async function writeJson(file: string, value: unknown): Promise<void> {
  await fs.mkdir(path.dirname(file), { recursive: true });
  await fs.writeFile(file, typeof value === 'string' ? value : JSON.stringify(value));
}

async function place(file: string, source: string | Uint8Array): Promise<void> {
  await fs.mkdir(path.dirname(file), { recursive: true });
  if (typeof source === 'string') await fs.symlink(source, file);
  else await fs.writeFile(file, source);
}

function pairEntry(veh: string, inf: string) {
  return {
    infrastructure_image_path: `infrastructure-side/image/${inf}.jpg`,
    infrastructure_pointcloud_path: `infrastructure-side/velodyne/${inf}.pcd`,
    vehicle_image_path: `vehicle-side/image/${veh}.jpg`,
    vehicle_pointcloud_path: `vehicle-side/velodyne/${veh}.pcd`,
    cooperative_label_path: `cooperative/label_world/${veh}.json`,
    system_error_offset: OFFSET,
  };
}

/**
 * A DAIR-V2X-C tree in a temp folder with pair 017314/001366 (point clouds and the vehicle label
 * given by the caller) plus broken pairs: 000010/000011 has no files at all, 000020/000021 has a
 * malformed calibration JSON, and one data_info entry lacks its vehicle point cloud path.
 */
async function buildLayout(root: string, src: { vehiclePcd: string | Uint8Array; infraPcd: string | Uint8Array; vehicleLabel: LabelObject[] }) {
  await writeJson(path.join(root, 'cooperative/data_info.json'), [
    pairEntry('017314', '001366'),
    pairEntry('000010', '000011'),
    pairEntry('000020', '000021'),
    { ...pairEntry('000030', '000031'), vehicle_pointcloud_path: undefined },
  ]);
  await writeJson(path.join(root, 'train.json'), ['017314']);

  const veh = path.join(root, 'vehicle-side');
  await place(path.join(veh, 'velodyne/017314.pcd'), src.vehiclePcd);
  await writeJson(path.join(veh, 'label/lidar/017314.json'), src.vehicleLabel);
  // lidar_to_novatel is wrapped in {"transform": ...} with a 3×1 translation; novatel_to_world is flat.
  await writeJson(path.join(veh, 'calib/lidar_to_novatel/017314.json'), {
    transform: { rotation: rot(NOVATEL_FROM_LIDAR), translation: nestedT(NOVATEL_FROM_LIDAR) },
  });
  await writeJson(path.join(veh, 'calib/novatel_to_world/017314.json'), {
    rotation: rot(WORLD_FROM_NOVATEL),
    translation: [WORLD_FROM_NOVATEL[3], WORLD_FROM_NOVATEL[7], WORLD_FROM_NOVATEL[11]],
  });
  await writeJson(path.join(veh, 'calib/camera_intrinsic/017314.json'), { cam_K: [2183.4, 0, 940.6, 0, 2329.1, 567.6, 0, 0, 1], cam_D: [-0.1, 0.1, 0, 0, 0] });
  await writeJson(path.join(veh, 'calib/lidar_to_camera/017314.json'), {
    rotation: [
      [0, -1, 0],
      [0, 0, -1],
      [1, 0, 0],
    ],
    translation: [[0.1], [1.2], [-0.3]],
  });

  const inf = path.join(root, 'infrastructure-side');
  await place(path.join(inf, 'velodyne/001366.pcd'), src.infraPcd);
  // HEAL adds system_error_offset to this translation, so store the true pose minus the offset.
  await writeJson(path.join(inf, 'calib/virtuallidar_to_world/001366.json'), {
    rotation: rot(WORLD_FROM_INF),
    translation: [[WORLD_FROM_INF[3] - OFFSET.delta_x], [WORLD_FROM_INF[7] - OFFSET.delta_y], [WORLD_FROM_INF[11]]],
    relative_error: { delta_x: '', delta_y: '' },
  });
  // The infrastructure label: the vehicle's cars seen from the roadside, numbers written as
  // strings (as real infrastructure files do), plus a zero-size car and a pedestrian to drop.
  const infFromVeh = invert(VEH_FROM_INF);
  const cars = src.vehicleLabel.filter((o) => o.type === 'Car');
  await writeJson(path.join(inf, 'label/virtuallidar/001366.json'), [
    ...cars.map((o) => ({ ...labelObject('Car', moveBox(boxOf(o), infFromVeh), true), occluded_state: '0' })),
    labelObject('Car', [1, 2, 3, 0, 1.8, 4.2, 0], true),
    labelObject('Pedestrian', [5, 5, -1, 1.7, 0.5, 0.5, 0], true),
  ]);

  // Cooperative labels in the world frame: the cars, with a pedestrian at index 1 to be dropped.
  const world = cars.map((o) => ({ type: o.type, world_8_points: dairCorners(boxOf(o), WORLD_FROM_VEH), system_error_offset: OFFSET }));
  world.splice(1, 0, { type: 'Pedestrian', world_8_points: dairCorners([0, 0, 0, 1.7, 0.5, 0.5, 0], WORLD_FROM_VEH), system_error_offset: OFFSET });
  await writeJson(path.join(root, 'cooperative/label_world/017314.json'), world);

  await writeJson(path.join(veh, 'calib/lidar_to_novatel/000020.json'), {
    transform: { rotation: rot(NOVATEL_FROM_LIDAR), translation: nestedT(NOVATEL_FROM_LIDAR) },
  });
  await writeJson(path.join(veh, 'calib/novatel_to_world/000020.json'), '{"rotation": [[1, 0, 0], [0, 1');
}

async function expectDataError(p: Promise<unknown>, ...fragments: string[]): Promise<void> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(DataError);
  for (const f of fragments) expect((err as Error).message).toContain(f);
}

/** Six cars and some clutter, in the vehicle LiDAR frame, for the layout without fixtures. */
const SYNTHETIC_LABEL: LabelObject[] = [
  labelObject('Car', [15.3, 6.5, -1.0, 1.5, 1.9, 4.2, 0.004]),
  labelObject('Trafficcone', [18.1, -11.5, -1.5, 0.4, 0.3, 0.3, -0.58]),
  labelObject('Car', [71.9, 28.7, -0.8, 1.6, 1.8, 4.2, -3.11]),
  labelObject('Car', [30.5, 9.6, -0.8, 1.5, 1.8, 4.3, 0.017]),
  labelObject('Motorcyclist', [28.6, 3.0, -0.8, 1.6, 0.9, 1.9, 0]),
  labelObject('Car', [38.6, -30.6, -0.5, 1.5, 1.8, 4.3, 1.54]),
  labelObject('Car', [57.5, 25.5, -0.8, 1.5, 1.9, 4.3, 3.13]),
  labelObject('Car', [48.8, 30.9, -1.1, 1.5, 1.8, 4.3, -3.11]),
];

describe('DAIR-V2X-C reader on a synthetic tree', () => {
  let root: string;
  let ds: DairDataset;
  let ref: FrameRef;

  beforeAll(async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'heal-dair-'));
    const cloud = encodePcd(Float32Array.of(1, 2, 3, 0.5, 4, 5, 6, 1), 'binary_compressed');
    await buildLayout(root, { vehiclePcd: cloud, infraPcd: cloud, vehicleLabel: SYNTHETIC_LABEL });
    ds = await openDair(root);
    ref = ds.frames().find((f) => f.timestamp === '017314')!;
  });
  afterAll(async () => {
    if (root) await fs.rm(root, { recursive: true, force: true });
  });

  it('recognises the layout and lists every well-formed pair, with splits', async () => {
    expect(await isDairRoot(root)).toBe(true);
    expect(await isDairRoot(path.dirname(root))).toBe(false);
    expect(ds.frames()).toEqual([
      { split: 'train', scenario: '017314', timestamp: '017314', agentIds: [0, 1] },
      { split: 'all', scenario: '000010', timestamp: '000010', agentIds: [0, 1] },
      { split: 'all', scenario: '000020', timestamp: '000020', agentIds: [0, 1] },
    ]);
    expect(ds.warnings).toHaveLength(1);
    expect(ds.warnings[0]).toContain('data_info.json');
    expect(ds.warnings[0]).toContain('[3].vehicle_pointcloud_path');
    const sc = ds.scenarios()[0];
    expect(sc.agents.map((a) => [a.id, a.kind])).toEqual([
      [0, 'vehicle'],
      [1, 'rsu'],
    ]);
    expect(sc.agents[0].sensors).toEqual(['lidar64', 'camera0']);
  });

  it('builds poses from the calibration chains and the relative transform matches the calibration', async () => {
    const veh = await ds.readAgentFrame(ref, 0);
    const inf = await ds.readAgentFrame(ref, 1);
    for (let i = 0; i < 16; i++) {
      expect(veh.lidarPose[i]).toBeCloseTo(WORLD_FROM_VEH[i], 9);
      expect(inf.lidarPose[i]).toBeCloseTo(WORLD_FROM_INF[i], 9);
    }
    const vehFromInf = relative(inf.lidarPose, veh.lidarPose);
    const expected = [
      [1, 0, 0, T_VEH_FROM_INF[0]],
      [0, 1, 0, T_VEH_FROM_INF[1]],
      [0, 0, 1, T_VEH_FROM_INF[2]],
      [0, 0, 0, 1],
    ];
    mat4ToRows(vehFromInf).forEach((row, r) => row.forEach((v, c) => expect(v).toBeCloseTo(expected[r][c], 9)));
  });

  it('reads points, vehicle-class boxes with labels, and the camera calibration', async () => {
    const veh = await ds.readAgentFrame(ref, 0, { images: true });
    expect(veh).toMatchObject({
      dataset: 'dair-v2x-c',
      split: 'train',
      scenario: '017314',
      timestamp: '017314',
      agentId: 0,
      kind: 'vehicle',
      lidarFile: '017314.pcd',
    });
    expect(Array.from(veh.points)).toEqual([1, 2, 3, 0.5, 4, 5, 6, 1]);
    expect(veh.boxes.map((b) => b.id)).toEqual([0, 2, 3, 5, 6, 7]);
    expect(veh.boxes.every((b) => b.label === 'Car')).toBe(true);
    expectBoxClose(veh.boxes[0].box, boxOf(SYNTHETIC_LABEL[0]));
    expect(veh.cameras).toHaveLength(1);
    const cam = veh.cameras[0];
    expect(cam.imagePath).toBe(path.join(root, 'vehicle-side/image/017314.jpg'));
    expect(Array.from(cam.intrinsic)).toEqual([2183.4, 0, 940.6, 0, 2329.1, 567.6, 0, 0, 1]);
    expect(mat4ToRows(cam.extrinsic)).toEqual([
      [0, -1, 0, 0.1],
      [0, 0, -1, 1.2],
      [1, 0, 0, -0.3],
      [0, 0, 0, 1],
    ]);
    expect(cam.image).toBeUndefined(); // JPEG is not decoded

    const inf = await ds.readAgentFrame(ref, 1);
    expect(inf.kind).toBe('rsu');
    expect(inf.cameras).toEqual([]); // no infrastructure camera calibration in this tree
    // String-valued numbers parse; the zero-size car and the pedestrian are dropped.
    expect(inf.boxes).toHaveLength(6);
    const infFromVeh = invert(VEH_FROM_INF);
    veh.boxes.forEach((b, i) => expectBoxClose(inf.boxes[i].box, moveBox(b.box, infFromVeh)));
  });

  it('cooperative labels come back in either agent frame, reordered from DAIR corners', async () => {
    const veh = await ds.readAgentFrame(ref, 0);
    const fromVeh = await ds.cooperativeBoxes(ref, 0);
    // Index 1 is the pedestrian: dropped, and the ids stay positions in the file.
    expect(fromVeh.map((b) => b.id)).toEqual([0, 2, 3, 4, 5, 6]);
    fromVeh.forEach((b, i) => {
      expect(b.label).toBe('Car');
      expectBoxClose(b.box, veh.boxes[i].box);
    });
    const fromInf = await ds.cooperativeBoxes(ref, 1);
    const infFromVeh = invert(VEH_FROM_INF);
    fromInf.forEach((b, i) => expectBoxClose(b.box, moveBox(veh.boxes[i].box, infFromVeh)));
    const near = await ds.cooperativeBoxes(ref, 0, { gtRange: [-50, -50, -5, 50, 50, 5] });
    expect(near.map((b) => b.id)).toEqual([0, 3, 4]);
  });

  it('maps DAIR corner order onto OpenCOOD order (a left/right mirror)', () => {
    const d = Float64Array.from(dairCorners([0, 0, 0, 2, 2, 4, 0], poseToMatrix([0, 0, 0, 0, 0, 0])).flat());
    const o = dairCornersToOpencood(d);
    // OpenCOOD corner 0 is (+l/2, −w/2, −h/2), corner 1 (+l/2, +w/2, −h/2), corner 6 (−l/2, +w/2, +h/2).
    expect(Array.from(o.subarray(0, 3))).toEqual([2, -1, -1]);
    expect(Array.from(o.subarray(3, 6))).toEqual([2, 1, -1]);
    expect(Array.from(o.subarray(18, 21))).toEqual([-2, 1, 1]);
  });

  it('a broken pair gives DataErrors naming the file and field', async () => {
    const missing = ds.frames().find((f) => f.timestamp === '000010')!;
    await expectDataError(ds.readAgentFrame(missing, 0), 'calib/lidar_to_novatel/000010.json', 'missing');
    await expectDataError(ds.readAgentFrame(missing, 1), 'calib/virtuallidar_to_world/000011.json', 'missing');
    await expectDataError(ds.cooperativeBoxes(missing, 0), '000010.json', 'missing');
    const malformed = ds.frames().find((f) => f.timestamp === '000020')!;
    await expectDataError(ds.readAgentFrame(malformed, 0), 'calib/novatel_to_world/000020.json', 'not valid JSON');
    await expectDataError(ds.readAgentFrame(ref, 0, { lidar: 32 }), 'lidar', '32');
    await expectDataError(ds.readAgentFrame(ref, 2), 'agent', '2');
  });

  it('bad calibration and label values name the field and value', async () => {
    const tree = await fs.mkdtemp(path.join(os.tmpdir(), 'heal-dair-bad-'));
    try {
      const cloud = encodePcd(Float32Array.of(1, 2, 3, 0.5), 'binary');
      const label = [labelObject('Car', [1, 2, 3, 1.5, 1.8, 4, 0]), { ...labelObject('Van', [1, 2, 3, 1.5, 1.8, 4, 0]), rotation: 'left' }];
      await buildLayout(tree, { vehiclePcd: cloud, infraPcd: cloud, vehicleLabel: label });
      const bad = await openDair(tree);
      const f = bad.frames()[0];
      await expectDataError(bad.readAgentFrame(f, 0), 'label/lidar/017314.json', '[1].rotation', '"left"');
      await writeJson(path.join(tree, 'infrastructure-side/calib/virtuallidar_to_world/001366.json'), {
        rotation: [
          [1, 0, 0],
          [0, 1, 0],
        ],
        translation: [0, 0, 0],
      });
      await expectDataError(bad.readAgentFrame(f, 1), 'virtuallidar_to_world/001366.json', 'rotation', '3×3');
      await writeJson(path.join(tree, 'vehicle-side/calib/lidar_to_novatel/017314.json'), {
        transform: {
          rotation: [
            [1, 0, 0],
            [0, 1, 0],
            [0, 0, 1],
          ],
          translation: [[0], ['x'], [0]],
        },
      });
      await expectDataError(bad.cooperativeBoxes(f, 0), 'lidar_to_novatel/017314.json', 'transform.translation[1]', '"x"');

      await writeJson(path.join(tree, 'cooperative/data_info.json'), '{"not": "a list"}');
      await expectDataError(openDair(tree), 'cooperative/data_info.json', 'list');
      await writeJson(path.join(tree, 'cooperative/data_info.json'), '[{"vehicle_pointcloud_path": ');
      await expectDataError(openDair(tree), 'cooperative/data_info.json', 'not valid JSON');
      await writeJson(path.join(tree, 'cooperative/data_info.json'), [{ ...pairEntry('1', '2'), system_error_offset: { delta_x: 'a' } }]);
      await expectDataError(openDair(tree), 'system_error_offset.delta_x', '"a"');
    } finally {
      await fs.rm(tree, { recursive: true, force: true });
    }
  });
});

describe.skipIf(!haveFixtures)('DAIR-V2X-C reader on the real pair 017314 / 001366', () => {
  let root: string;
  let ds: DairDataset;
  let ref: FrameRef;
  const rawLabel = haveFixtures ? (JSON.parse(readFileSync(realVehicleLabel, 'utf8')) as LabelObject[]) : [];

  beforeAll(async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'heal-dair-real-'));
    await buildLayout(root, { vehiclePcd: realVehiclePcd, infraPcd: realInfraPcd, vehicleLabel: rawLabel });
    await fs.rm(path.join(root, 'vehicle-side/label/lidar/017314.json'));
    await place(path.join(root, 'vehicle-side/label/lidar/017314.json'), realVehicleLabel);
    ds = await openDair(root);
    ref = ds.frames()[0];
  });
  afterAll(async () => {
    if (root) await fs.rm(root, { recursive: true, force: true });
  });

  it('heal inspect reads it like any dataset: --json lines and a top-down picture', async () => {
    let out = '';
    let err = '';
    const io = {
      out: (t: string) => {
        out += t;
      },
      err: (t: string) => {
        err += t;
      },
    };
    expect(await inspect([root, '--json'], io)).toBe(0);
    const lines = out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines.map((l) => [l.agent, l.type, l.points])).toEqual([
      [0, 'vehicle', 62199],
      [1, 'rsu', 53653],
    ]);
    expect(lines[0].boxes.length).toBe(6);
    const png = path.join(root, 'top.png');
    out = '';
    expect(await inspect([root, '--png', png], io)).toBe(0);
    expect((await fs.stat(png)).size).toBeGreaterThan(10_000);
    // The test layout also lists pairs whose files are missing: inspect reports and skips them.
    expect(err).toMatch(/frames could not be read and were skipped/);
  });

  it('reads both clouds with intensity in [0, 1]', async () => {
    const veh = await ds.readAgentFrame(ref, 0);
    const inf = await ds.readAgentFrame(ref, 1);
    expect(veh.points.length / 4).toBe(62199);
    expect(inf.points.length / 4).toBe(53653);
    for (const f of [veh, inf]) {
      let max = 0;
      for (let i = 3; i < f.points.length; i += 4) max = Math.max(max, f.points[i]);
      expect(max).toBeGreaterThan(0.5);
      expect(max).toBeLessThanOrEqual(1);
    }
  });

  it('keeps the 6 cars of the 23 labelled objects', async () => {
    expect(rawLabel).toHaveLength(23);
    expect(rawLabel.filter((o) => o.type === 'Car')).toHaveLength(6);
    const veh = await ds.readAgentFrame(ref, 0);
    expect(veh.boxes).toHaveLength(6);
    expect(veh.boxes.every((b) => b.label === 'Car')).toBe(true);
  });

  it('the labels agree with the points', async () => {
    const veh = await ds.readAgentFrame(ref, 0);
    const counts = veh.boxes.map((b) => pointsInBox(veh.points, b.box));
    expect(counts.filter((n) => n >= 10).length).toBeGreaterThanOrEqual(5);
    // Empty space next to each car (shifted sideways by 3 widths) holds far fewer points.
    const beside = veh.boxes.map((b) => {
      const s: Box7 = [...b.box];
      s[0] -= 3 * b.box[4] * Math.sin(b.box[6]);
      s[1] += 3 * b.box[4] * Math.cos(b.box[6]);
      return pointsInBox(veh.points, s);
    });
    expect(beside.reduce((a, b) => a + b, 0)).toBeLessThan(counts.reduce((a, b) => a + b, 0) / 4);
  });

  it('the roadside points, moved by the calibration, land on the vehicle-labelled cars', async () => {
    const veh = await ds.readAgentFrame(ref, 0);
    const inf = await ds.readAgentFrame(ref, 1);
    const inVeh = transformPoints(relative(inf.lidarPose, veh.lidarPose), inf.points);
    const counts = veh.boxes.map((b) => pointsInBox(inVeh, b.box));
    expect(counts.filter((n) => n >= 10).length).toBeGreaterThanOrEqual(4);
    // A calibration 2 m off in x and y puts far fewer of them on the cars.
    const total = counts.reduce((a, b) => a + b, 0);
    for (const d of [2, -2]) {
      const off = transformPoints(poseToMatrix([d, d, 0, 0, 0, 0]), inVeh);
      const wrong = veh.boxes.reduce((a, b) => a + pointsInBox(off, b.box), 0);
      expect(wrong).toBeLessThan(total / 4);
    }
  });
});

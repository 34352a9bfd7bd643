import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { parseFrameYaml } from '../../datasets/yaml.ts';
import { egoOrder, openOpv2v, projectVehicles, type Opv2vDataset } from '../../datasets/opv2v.ts';
import { openDataset } from '../../datasets/open.ts';
import { drawTopDown } from '../../viewer/topdown.ts';
import { DataError } from '../../datasets/io.ts';
import { identity4, poseToMatrix } from '../../datasets/geometry/transforms.ts';
import { decodePng } from '../../datasets/png.ts';
import { frameYamlText, makeTempDir, rgbPng, standardAgents, writeScenario } from '../helpers/opv2v-fixture.ts';

// A frame in the exact layout OpenCDA's dumper writes (PyYAML, sorted keys, block lists),
// shortened to one camera and two vehicles, plus one key the parser does not know.
const REAL_STYLE = `RSU: false
camera0:
  cords:
  - 141.35067749023438
  - -388.642578125
  - 1.0410505533218384
  - 0.0
  - -179.40293884277344
  - 0.0
  extrinsic:
  - - 0.9999999403953552
    - -1.3e-05
    - 0.0
    - -3.0
  - - 1.3e-05
    - 0.9999999403953552
    - 0.0
    - -1.9e-05
  - - 0.0
    - 0.0
    - 1.0
    - 0.9
  - - 0.0
    - 0.0
    - 0.0
    - 1.0
  intrinsic:
  - - 335.639852470912
    - 0.0
    - 400.0
  - - 0.0
    - 335.639852470912
    - 300.0
  - - 0.0
    - 0.0
    - 1.0
ego_speed: -0.2489
lidar_pose:
- 144.33990478515625
- -388.6134948730469
- 1.9432456493377686
- 0.0
- -179.40293884277344
- 0.0
plan_trajectory:
- - 130.2
  - -388.5
  - 21
predicted_ego_pos:
- 144.84
- -388.61
- 0.0
- 0.0
- -179.4
- 0.0
true_ego_pos:
- 144.83990478515625
- -388.6083984375
- 0.03910064697265625
- -0.0005
- -179.40293884277344
- 0.00834
vehicles:
  4311:
    angle:
    - 0.02
    - 0.8
    - 1.1
    center:
    - 0.02
    - -1.2e-05
    - 0.71
    extent:
    - 2.30
    - 0.97
    - 0.93
    location:
    - 144.5
    - -378.2
    - 0.05
    speed: 21.3
  4313:
    angle:
    - 0.0
    - -178.0
    - 0.0
    extent:
    - 1.93
    - 0.95
    - 0.94
    location:
    - 131.6
    - -388.9
    - 0.03
    speed: 18.0
weather: clear
`;

const FILE = '/data/test/2021_08_21_17_30_41/4279/000069.yaml';

describe('parseFrameYaml', () => {
  it('parses every key of a real-style frame', () => {
    const y = parseFrameYaml(REAL_STYLE, FILE);
    expect(y.lidarPose).toEqual([144.33990478515625, -388.6134948730469, 1.9432456493377686, 0, -179.40293884277344, 0]);
    expect(y.trueEgoPos?.[5]).toBeCloseTo(0.00834);
    expect(y.predictedEgoPos?.[0]).toBe(144.84);
    expect(y.egoSpeed).toBe(-0.2489);
    expect(y.planTrajectory).toEqual([[130.2, -388.5, 21]]);
    expect(y.rsu).toBe(false);
    expect(Object.keys(y.cameras)).toEqual(['camera0']);
    const cam = y.cameras.camera0!;
    expect(cam.cords[4]).toBeCloseTo(-179.40293884277344);
    expect(Array.from(cam.intrinsic)).toEqual([335.639852470912, 0, 400, 0, 335.639852470912, 300, 0, 0, 1]);
    expect(cam.extrinsic[3]).toBe(-3);
    expect(cam.extrinsic[4]).toBe(1.3e-5);
    expect(cam.extrinsic[15]).toBe(1);
    expect([...y.vehicles.keys()]).toEqual([4311, 4313]);
    const v = y.vehicles.get(4311)!;
    expect(v.angle).toEqual([0.02, 0.8, 1.1]);
    expect(v.center).toEqual([0.02, -1.2e-5, 0.71]);
    expect(v.extent).toEqual([2.3, 0.97, 0.93]);
    expect(v.speed).toBe(21.3);
    // A missing center defaults to zero, as in HEAL.
    expect(y.vehicles.get(4313)!.center).toEqual([0, 0, 0]);
    expect(y.extra).toEqual({ weather: 'clear' });
  });

  it('names file, key path and value for a wrong-type key', () => {
    const bad = REAL_STYLE.replace('    - 1.93\n', '    - abc\n');
    try {
      parseFrameYaml(bad, FILE);
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(DataError);
      const msg = (err as Error).message;
      expect(msg).toContain(FILE);
      expect(msg).toContain('vehicles.4313.extent');
      expect(msg).toContain('"abc"');
    }
  });

  it('rejects wrong shapes, non-finite numbers and malformed YAML', () => {
    expect(() => parseFrameYaml(REAL_STYLE.replace('- 1.9432456493377686\n', ''), FILE)).toThrow(/lidar_pose.*expected 6 numbers, got 5/);
    expect(() => parseFrameYaml(REAL_STYLE.replace('- 1.9432456493377686', '- .nan'), FILE)).toThrow(/lidar_pose.*not a finite number.*NaN/);
    expect(() => parseFrameYaml(REAL_STYLE.replace('ego_speed: -0.2489', 'ego_speed: fast'), FILE)).toThrow(/"ego_speed".*finite number.*"fast"/);
    expect(() => parseFrameYaml(REAL_STYLE.replace('    - 335.639852470912\n    - 300.0', '    - 335.6\n'), FILE)).toThrow(/camera0\.intrinsic\.1/);
    expect(() => parseFrameYaml(REAL_STYLE.replace('RSU: false', 'RSU: 3'), FILE)).toThrow(/"RSU"/);
    expect(() => parseFrameYaml(REAL_STYLE.replace(/^vehicles:[\s\S]*?weather/m, 'weather'), FILE)).toThrow(/"vehicles".*missing/);
    expect(() => parseFrameYaml(REAL_STYLE.replace('  4313:\n', '  4313:\n   bad: [\n'), FILE)).toThrow(/000069\.yaml: malformed YAML at line \d+/);
  });

  it('accepts an empty vehicles map and an empty plan', () => {
    const text = REAL_STYLE.replace(/^vehicles:[\s\S]*?weather/m, 'vehicles: {}\nweather').replace(
      /plan_trajectory:\n- - 130.2\n {2}- -388.5\n {2}- 21\n/,
      'plan_trajectory: []\n',
    );
    const y = parseFrameYaml(text, FILE);
    expect(y.vehicles.size).toBe(0);
    expect(y.planTrajectory).toEqual([]);
  });
});

describe('projectVehicles', () => {
  it('puts a vehicle 10 m ahead of a yawed LiDAR at x = 10', () => {
    // Ego LiDAR at (10, 5, 1.9) facing world +y (yaw 90°). In the left-handed UE4 frame its x axis
    // is world +y and its y axis world -x.
    const text = frameYamlText({
      id: 1,
      lidarPose: [10, 5, 1.9, 0, 90, 0],
      vehicles: {
        7: { location: [10, 15, 0], center: [0, 0, 0.7], angle: [0, 90, 0], extent: [2, 1, 0.75] },
        8: { location: [7, 5, 0], center: [0, 0, 0.7], angle: [0, 180, 0], extent: [2, 1, 0.75] },
        1: { location: [10, 5, 0], angle: [0, 90, 0], extent: [2, 1, 0.75] },
      },
    });
    const y = parseFrameYaml(text, 'mem.yaml');
    const boxes = projectVehicles(y, poseToMatrix(y.lidarPose), { excludeId: 1 });
    expect(boxes.map((b) => b.id)).toEqual([7, 8]);
    const want7 = [10, 0, -1.2, 1.5, 2, 4, 0];
    boxes[0].box.forEach((v, i) => expect(v).toBeCloseTo(want7[i], 9));
    // 3 m in world -x is 3 m to the right (+y) of a LiDAR facing +y; heading 180° is +90° relative.
    const want8 = [0, 3, -1.2, 1.5, 2, 4, Math.PI / 2];
    boxes[1].box.forEach((v, i) => expect(v).toBeCloseTo(want8[i], 9));
    // The range filter needs all 8 corners inside: a ±5 m box keeps only vehicle 8.
    const near = projectVehicles(y, poseToMatrix(y.lidarPose), { excludeId: 1, range: [-5, -5, -3, 5, 5, 1] });
    expect(near.map((b) => b.id)).toEqual([8]);
  });
});

describe('egoOrder', () => {
  it('sorts ids as strings and moves roadside units to the end', () => {
    expect(egoOrder(['641', '1045', '-1'])).toEqual(['1045', '641', '-1']);
    expect(egoOrder(['-2', '641', '-1', '1045'])).toEqual(['1045', '641', '-1', '-2']);
  });
});

describe('openOpv2v', () => {
  let root: string;
  let ds: Opv2vDataset;
  const scen = () => path.join(root, 'test', '2021_08_22_21_41_24');

  beforeAll(async () => {
    root = await makeTempDir('opv2v');
    await writeScenario(scen(), standardAgents(), ['000068', '000070', '000072']);
    // A second split with one scenario where agent 650 lacks a timestamp.
    const second = path.join(root, 'train', '2021_08_16_22_26_54');
    await writeScenario(second, standardAgents().slice(0, 3), ['000100', '000102']);
    await fs.rm(path.join(second, '650', '000102.yaml'));
    // OPV2V's `additional` folder and a scenario's data_protocol.yaml must not confuse detection.
    await fs.mkdir(path.join(root, 'additional', 'test', 'x', '1'), { recursive: true });
    await fs.writeFile(path.join(scen(), 'data_protocol.yaml'), 'world: {}\n');
    ds = await openOpv2v(root);
  });
  afterAll(() => fs.rm(root, { recursive: true, force: true }));

  it('finds splits, scenarios, agents and sensors', () => {
    const s = ds.scenarios();
    expect(s.map((x) => `${x.split}/${x.name}`)).toEqual(['train/2021_08_16_22_26_54', 'test/2021_08_22_21_41_24']);
    const t = s[1];
    expect(t.agents.map((a) => a.id)).toEqual([1045, 641, 650, -1]);
    expect(t.agents.map((a) => a.kind)).toEqual(['vehicle', 'vehicle', 'vehicle', 'rsu']);
    expect(t.agents[0].sensors).toEqual(['lidar64', 'lidar32', 'camera0', 'camera1', 'camera2', 'camera3', 'depth0']);
    expect(t.agents[1].sensors).toEqual(['lidar64']);
    expect(t.timestamps).toEqual(['000068', '000070', '000072']);
  });

  it('reports agents whose timestamps disagree and lists only present agents per frame', () => {
    expect(ds.warnings.some((w) => w.includes('agent 650 lacks 1 of 2 timestamps (000102)'))).toBe(true);
    const f = ds.frames().filter((x) => x.split === 'train');
    expect(f.map((x) => x.agentIds)).toEqual([
      [1045, 641, 650],
      [1045, 641],
    ]);
  });

  it('accepts a split folder or a scenario folder as root', async () => {
    const bySplit = await openOpv2v(path.join(root, 'test'));
    const byScenario = await openOpv2v(scen());
    expect(bySplit.frames()).toEqual(ds.frames().filter((f) => f.split === 'test'));
    expect(byScenario.frames()).toEqual(bySplit.frames());
  });

  it('fails clearly on a folder without the layout', async () => {
    const empty = await makeTempDir('empty');
    await fs.mkdir(path.join(empty, 'train', 'scene', 'notanid'), { recursive: true });
    await expect(openOpv2v(empty)).rejects.toThrow(/no OPV2V-style layout found/);
    await expect(openDataset(empty)).rejects.toThrow(/not a recognised dataset.*DAIR-V2X-C.*OPV2V-style/);
    await expect(openDataset(path.join(empty, 'nope'))).rejects.toThrow(/does not exist/);
    const viaOpen = await openDataset(root);
    expect(viaOpen.format).toBe('opv2v');
    await fs.rm(empty, { recursive: true, force: true });
  });

  it('reads an agent frame: pose, points, cameras, own-frame GT without itself', async () => {
    const ref = ds.frames().find((f) => f.split === 'test')!;
    expect(ref.agentIds[0]).toBe(1045);
    const f = await ds.readAgentFrame(ref, 641);
    expect(f.kind).toBe('vehicle');
    expect(f.lidarFile).toBe('000068.pcd');
    expect(f.points.length).toBe(400);
    expect(Array.from(f.lidarPose)).toEqual(Array.from(poseToMatrix([20, 0, 1.9, 0, 0, 0])));
    expect(f.boxes.map((b) => b.id)).toEqual([1045, 9002, 9003]);
    // 1045 sits 20 m behind 641's LiDAR.
    expect(f.boxes[0].box[0]).toBeCloseTo(-20, 9);
    expect(f.cameras).toEqual([]);

    const ego = await ds.readAgentFrame(ref, 1045, { lidar: 32, images: true });
    expect(ego.lidarFile).toBe('000068_32.pcd');
    expect(ego.points.length).toBe(200);
    expect(ego.cameras.map((c) => c.name)).toEqual(['camera0', 'camera1', 'camera2', 'camera3']);
    expect(ego.cameras[0].depthPath).toMatch(/000068_depth0\.png$/);
    expect(ego.cameras[1].depthPath).toBeUndefined();
    expect(ego.cameras[0].intrinsic[0]).toBeCloseTo(335.6399);
    expect(ego.cameras[0].extrinsic[3]).toBe(-2.5);
    expect(ego.cameras[0].image).toMatchObject({ width: 8, height: 6 });
    expect(Array.from(ego.cameras[0].image!.data.slice(3, 6))).toEqual([7, 100, 200]);

    await expect(ds.readAgentFrame(ref, 1045, { lidar: 16 })).rejects.toThrow(/000068_16\.pcd: 16-beam LiDAR file is missing/);
    await expect(ds.readAgentFrame(ref, 12345)).rejects.toThrow(/no agent folder/);
  });

  it('merges cooperative GT: dedupes by id, first occurrence wins, drops the ego, respects comm range', async () => {
    const ref = ds.frames().find((f) => f.split === 'test')!;
    const boxes = await ds.cooperativeBoxes(ref, 1045);
    expect(boxes.map((b) => b.id).sort((a, b) => a - b)).toEqual([641, 9001, 9002, 9003, 9005]);
    // 9002 comes from the ego's own list (x = -12 - 0 from the LiDAR), not 641's (x = -12.3).
    expect(boxes.find((b) => b.id === 9002)!.box[0]).toBeCloseTo(-12, 9);
    // The RSU is 30 m away and in range; its object 9005 is projected into the ego frame.
    const b9005 = boxes.find((b) => b.id === 9005)!.box;
    expect(b9005[0]).toBeCloseTo(5, 9);
    expect(b9005[1]).toBeCloseTo(20, 9);
    expect(b9005[6]).toBeCloseTo(Math.PI / 2, 9);

    const wide = await ds.cooperativeBoxes(ref, 1045, { commRange: 200 });
    expect(wide.map((b) => b.id)).toContain(9004);
    const narrow = await ds.cooperativeBoxes(ref, 1045, { commRange: 10 });
    expect(narrow.map((b) => b.id)).toEqual([641, 9001, 9002]);

    // With 641 as ego, 1045 is a target and 641 is not.
    const from641 = await ds.cooperativeBoxes(ref, 641);
    expect(from641.map((b) => b.id)).toContain(1045);
    expect(from641.map((b) => b.id)).not.toContain(641);
  });

  it('reports a truncated PNG clearly', async () => {
    const ref = ds.frames().find((f) => f.split === 'test' && f.timestamp === '000072')!;
    const file = path.join(scen(), '1045', '000072_camera2.png');
    const png = rgbPng(8, 6);
    await fs.writeFile(file, png.subarray(0, 40));
    await expect(ds.readAgentFrame(ref, 1045, { images: true })).rejects.toThrow(/000072_camera2\.png: malformed or truncated PNG/);
  });
});

describe('PNG decoding', () => {
  it('reduces RGBA and grey PNGs to RGB', () => {
    const rgba = decodePng(rgbPng(4, 2, { colorType: 6 }), 'a.png');
    expect(Array.from(rgba.data.slice(0, 6))).toEqual([0, 100, 200, 7, 100, 200]);
    const grey = decodePng(rgbPng(4, 2, { colorType: 0 }), 'g.png');
    expect(grey.data.length).toBe(4 * 2 * 3);
    expect(grey.data[0]).toBe(grey.data[1]);
    expect(() => decodePng(new Uint8Array([1, 2, 3]), 'x.png')).toThrow(/x\.png: malformed or truncated PNG/);
  });
});

describe('drawTopDown', () => {
  it('draws x up and y to the right (not mirrored)', () => {
    const pts = new Float32Array([30, 0, 0, 1, 0, 30, 0, 1]);
    const img = drawTopDown(
      { title: 't', egoId: 1, agents: [{ id: 1, kind: 'vehicle', egoFromAgent: identity4(), points: pts }], boxes: [] },
      { size: 400, rangeM: 50 },
    );
    const px = (c: number, r: number) => Array.from(img.data.slice((r * 400 + c) * 3, (r * 400 + c) * 3 + 3));
    // 0.25 m per pixel: x = 30 m is 120 px above the centre, y = 30 m is 120 px right of it.
    const ego = [0, 200, 255];
    expect(px(200, 80)).toEqual(ego);
    expect(px(320, 200)).toEqual(ego);
    expect(px(200, 320)).not.toEqual(ego);
    expect(px(80, 200)).not.toEqual(ego);
  });
});

// Small valid dataset files, and a corpus of bad ones, for the reader fuzz and the bad-file survey
// (`heal bench fuzz-readers`, test/datasets/fuzz-readers.test.ts). Everything is written here,
// from code: an OPV2V-layout frame (YAML + PCD) and a DAIR-V2X-C pair (JSON + PCD).

import { promises as fs } from 'node:fs';
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { encodePcd } from '../datasets/pcd.ts';

/** A ring of n points 10 m around the sensor, intensities on the 1/255 grid. */
export function ringCloud(n: number): Float32Array {
  const p = new Float32Array(n * 4);
  for (let i = 0; i < n; i++) {
    const a = (2 * Math.PI * i) / n;
    p.set([10 * Math.cos(a), 10 * Math.sin(a), -1.5 + (i % 7) * 0.1, (i % 256) / 255], i * 4);
  }
  return p;
}

/** One OpenCDA-style frame YAML: a pose and two vehicles. */
export function frameYaml(x = 0): string {
  const car = (id: number, cx: number, cy: number) =>
    `  ${id}:\n    angle:\n    - 0.0\n    - 0.0\n    - 0.0\n    center:\n    - 0.0\n    - 0.0\n    - 0.7\n    extent:\n    - 2.2\n    - 0.95\n    - 0.75\n    location:\n    - ${cx}\n    - ${cy}\n    - 0.0\n    speed: 20.0\n`;
  return `ego_speed: 12.5\nlidar_pose:\n- ${x}.0\n- 0.0\n- 1.9\n- 0.0\n- 0.0\n- 0.0\ntrue_ego_pos:\n- ${x}.5\n- 0.0\n- 0.0\n- 0.0\n- 0.0\n- 0.0\nvehicles:\n${car(101, x + 12, 3.5)}${car(102, x - 15, -3.5)}`;
}

const ROT = [
  [1, 0, 0],
  [0, 1, 0],
  [0, 0, 1],
];

export const DAIR_VEHICLE = '000001';
export const DAIR_INFRA = '000002';

/** The files of a one-pair DAIR-V2X-C tree, by path relative to its root. */
export function dairFiles(): Record<string, string | Uint8Array> {
  const [v, i] = [DAIR_VEHICLE, DAIR_INFRA];
  const box = (x: number, y: number) => ({
    type: 'Car',
    '3d_dimensions': { h: 1.5, w: 1.8, l: 4.2 },
    '3d_location': { x, y, z: -1 },
    rotation: 0.1,
  });
  const corners = (x: number, y: number) =>
    [
      [1, 1, 0],
      [1, -1, 0],
      [-1, -1, 0],
      [-1, 1, 0],
      [1, 1, 1],
      [1, -1, 1],
      [-1, -1, 1],
      [-1, 1, 1],
    ].map(([a, b, c]) => [x + a * 2.1, y + b * 0.9, c * 1.5]);
  return {
    'cooperative/data_info.json': JSON.stringify([
      {
        infrastructure_pointcloud_path: `infrastructure-side/velodyne/${i}.pcd`,
        vehicle_pointcloud_path: `vehicle-side/velodyne/${v}.pcd`,
        cooperative_label_path: `cooperative/label_world/${v}.json`,
        system_error_offset: { delta_x: 0.5, delta_y: -0.2 },
      },
    ]),
    'train.json': JSON.stringify([v]),
    [`vehicle-side/velodyne/${v}.pcd`]: encodePcd(ringCloud(200), 'binary_compressed'),
    [`infrastructure-side/velodyne/${i}.pcd`]: encodePcd(ringCloud(150), 'binary_compressed'),
    [`vehicle-side/label/lidar/${v}.json`]: JSON.stringify([box(12, 3), box(-8, -3)]),
    [`infrastructure-side/label/virtuallidar/${i}.json`]: JSON.stringify([box(5, 20)]),
    [`vehicle-side/calib/lidar_to_novatel/${v}.json`]: JSON.stringify({ transform: { rotation: ROT, translation: [[0], [0], [1.8]] } }),
    [`vehicle-side/calib/novatel_to_world/${v}.json`]: JSON.stringify({ rotation: ROT, translation: [100, 200, 0] }),
    [`infrastructure-side/calib/virtuallidar_to_world/${i}.json`]: JSON.stringify({ rotation: ROT, translation: [[110], [215], [5]] }),
    [`cooperative/label_world/${v}.json`]: JSON.stringify([
      { type: 'Car', world_8_points: corners(112, 203) },
      { type: 'Car', world_8_points: corners(92, 197) },
    ]),
  };
}

/** The files of a one-scenario, one-agent, one-frame OPV2V tree (split "test"). */
export const OPV2V_AGENT_DIR = 'test/2021_01_01_00_00_00/100';
export function opv2vFiles(): Record<string, string | Uint8Array> {
  return {
    [`${OPV2V_AGENT_DIR}/000068.yaml`]: frameYaml(),
    [`${OPV2V_AGENT_DIR}/000068.pcd`]: encodePcd(ringCloud(300), 'ascii'),
  };
}

export async function writeTree(root: string, files: Record<string, string | Uint8Array>): Promise<void> {
  for (const [rel, data] of Object.entries(files)) {
    await fs.mkdir(path.dirname(path.join(root, rel)), { recursive: true });
    await fs.writeFile(path.join(root, rel), data);
  }
}

/** What replaces a good file: bytes, a symlink target, a named pipe, or a folder. */
export type Bad = string | Uint8Array | { link: string } | { fifo: true } | { folder: true };

export interface BadCase {
  name: string;
  layout: 'opv2v' | 'dair';
  /** The file, relative to the dataset root, that is bad: a report must name it. */
  file: string;
  bad: Bad;
  /** Other files changed along with it (e.g. data_info.json pointing at the bad path). */
  also?: Record<string, string>;
}

function pcdHeader(fields: string, size: string, type: string, count: string, n: number | string, data: string, width: number | string = n): string {
  return `VERSION 0.7\nFIELDS ${fields}\nSIZE ${size}\nTYPE ${type}\nCOUNT ${count}\nWIDTH ${width}\nHEIGHT 1\nVIEWPOINT 0 0 0 1 0 0 0\nPOINTS ${n}\nDATA ${data}\n`;
}

function asciiCloud(rows: string[], n = rows.length): string {
  return pcdHeader('x y z rgb', '4 4 4 4', 'F F F F', '1 1 1 1', n, 'ascii') + rows.join('\n') + '\n';
}

function seeded(n: number, seed: number): Uint8Array {
  let s = seed >>> 0 || 1;
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = s & 255;
  }
  return out;
}

function cat(a: string, b: Uint8Array): Uint8Array {
  return new Uint8Array(Buffer.concat([Buffer.from(a, 'latin1'), b]));
}

function floatsLE(values: number[]): Uint8Array {
  const b = Buffer.alloc(values.length * 4);
  values.forEach((v, i) => b.writeFloatLE(v, i * 4));
  return b;
}

function goodRows(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `${(10 * Math.cos(i)).toFixed(3)} ${(10 * Math.sin(i)).toFixed(3)} -1.5 4.2e-39`);
}

/** The bad-file survey's cases: each one file of a valid tree replaced by something hostile or broken. */
export function badCases(): BadCase[] {
  const pcd = `${OPV2V_AGENT_DIR}/000068.pcd`;
  const yaml = `${OPV2V_AGENT_DIR}/000068.yaml`;
  const vpcd = `vehicle-side/velodyne/${DAIR_VEHICLE}.pcd`;
  const info = 'cooperative/data_info.json';
  const calib = `vehicle-side/calib/novatel_to_world/${DAIR_VEHICLE}.json`;
  const label = `vehicle-side/label/lidar/${DAIR_VEHICLE}.json`;
  const coop = `cooperative/label_world/${DAIR_VEHICLE}.json`;
  const good = encodePcd(ringCloud(300), 'binary');
  const dataAt = Buffer.from(good).indexOf('DATA binary\n') + 'DATA binary\n'.length;
  const header = Buffer.from(good.subarray(0, dataAt)).toString('latin1');
  const o = (name: string, bad: Bad, file = pcd): BadCase => ({ name, layout: 'opv2v', file, bad });
  const d = (name: string, file: string, bad: Bad, also?: Record<string, string>): BadCase => ({ name, layout: 'dair', file, bad, also });
  const deep = (n: number) => '['.repeat(n) + ']'.repeat(n);
  const infoWith = (key: string, value: string) => {
    const entry = JSON.parse(dairFiles()[info] as string)[0];
    entry[key] = value;
    return JSON.stringify([entry]);
  };
  return [
    // PCD: what the file is
    o('pcd: symlink to /dev/zero', { link: '/dev/zero' }),
    o('pcd: named pipe (FIFO)', { fifo: true }),
    o('pcd: a folder named .pcd', { folder: true }),
    o('pcd: symlink to /etc/passwd', { link: '/etc/passwd' }),
    o('pcd: empty file', ''),
    o('pcd: text that is not a PCD', 'hello world\nthis is not a point cloud\n'),
    o('pcd: header without DATA', pcdHeader('x y z', '4 4 4', 'F F F', '1 1 1', 3, 'ascii').replace(/DATA.*\n/, '')),
    // PCD: declared sizes
    o('pcd: POINTS 2^31 ascii', asciiCloud(goodRows(3), 2 ** 31)),
    o('pcd: POINTS 2^32 binary', cat(pcdHeader('x y z intensity', '4 4 4 4', 'F F F F', '1 1 1 1', 2 ** 32, 'binary'), floatsLE([1, 2, 3, 0]))),
    o('pcd: POINTS 1e20 binary', cat(pcdHeader('x y z intensity', '4 4 4 4', 'F F F F', '1 1 1 1', '100000000000000000000', 'binary'), floatsLE([1, 2, 3, 0]))),
    o(
      'pcd: POINTS 2^31 binary_compressed',
      cat(pcdHeader('x y z intensity', '4 4 4 4', 'F F F F', '1 1 1 1', 2 ** 31, 'binary_compressed'), new Uint8Array(16)),
    ),
    o('pcd: COUNT 2^28 on an extra field', cat(pcdHeader('x y z i', '4 4 4 4', 'F F F F', `1 1 1 ${2 ** 28}`, 4, 'binary'), new Uint8Array(64))),
    o('pcd: SIZE 3', cat(pcdHeader('x y z intensity', '4 4 3 4', 'F F F F', '1 1 1 1', 1, 'binary'), new Uint8Array(15))),
    o('pcd: POINTS smaller than the data (ascii)', asciiCloud(goodRows(300), 100)),
    o('pcd: POINTS smaller than the data (binary)', cat(header.replace(/(WIDTH|POINTS) 300/g, '$1 100'), good.subarray(dataAt))),
    o('pcd: truncated binary', good.subarray(0, dataAt + 1000)),
    o('pcd: truncated binary_compressed', encodePcd(ringCloud(300), 'binary_compressed').subarray(0, 400)),
    // PCD: values
    o('pcd: inf point (ascii)', asciiCloud([...goodRows(5), 'inf 0 0 0'])),
    o('pcd: -inf point (ascii)', asciiCloud([...goodRows(5), '1 -inf 0 0'])),
    o('pcd: 1e39 point (ascii, inf in float32)', asciiCloud([...goodRows(5), '1e39 0 0 0'])),
    o('pcd: point 1e6 m away (ascii)', asciiCloud([...goodRows(5), '1000000 0 0 0'])),
    o(
      'pcd: inf point (binary)',
      cat(pcdHeader('x y z intensity', '4 4 4 4', 'F F F F', '1 1 1 1', 2, 'binary'), floatsLE([1, 2, 3, 0.5, Infinity, 0, 0, 0.5])),
    ),
    o('pcd: random binary body', cat(header, seeded(good.length - dataAt, 1))),
    o('pcd: random binary body (seed 2)', cat(header, seeded(good.length - dataAt, 2))),
    o('pcd: random binary_compressed body', cat(pcdHeader('x y z intensity', '4 4 4 4', 'F F F F', '1 1 1 1', 300, 'binary_compressed'), seeded(3000, 3))),
    o('pcd: random bytes after an ascii header', cat(pcdHeader('x y z rgb', '4 4 4 4', 'F F F F', '1 1 1 1', 300, 'ascii'), seeded(9000, 4))),
    // YAML
    o(
      'yaml: alias bomb',
      `a: &a [x, x, x, x, x, x, x, x, x]\n${'bcdefghi'
        .split('')
        .map((c, k) => `${c}: &${c} [${Array(9).fill(`*${'abcdefghi'[k]}`).join(', ')}]`)
        .join('\n')}\n${frameYaml()}`,
      yaml,
    ),
    o('yaml: 100 000 nested brackets', `deep: ${deep(100_000)}\n${frameYaml()}`, yaml),
    o('yaml: 5 000 nested mappings', `${Array.from({ length: 5000 }, (_, k) => `${' '.repeat(k)}k:`).join('\n')}\n`, yaml),
    o('yaml: .inf in lidar_pose', frameYaml().replace('- 1.9', '- .inf'), yaml),
    o('yaml: 1e999 in lidar_pose', frameYaml().replace('- 1.9', '- 1e999'), yaml),
    o('yaml: no vehicles key', frameYaml().replace(/vehicles:[\s\S]*$/, ''), yaml),
    o('yaml: random bytes', seeded(4000, 5), yaml),
    o('yaml: symlink to /dev/zero', { link: '/dev/zero' }, yaml),
    o('yaml: named pipe (FIFO)', { fifo: true }, yaml),
    o('yaml: negative extent', frameYaml().replace('- 2.2', '- -2.2'), yaml),
    // DAIR-V2X-C
    d('dair: point cloud path ../../../etc/passwd', info, infoWith('vehicle_pointcloud_path', '../../../../../../etc/passwd')),
    d('dair: image path ../../etc/passwd', info, infoWith('vehicle_image_path', '../../../../../../etc/passwd')),
    d('dair: absolute label path', info, infoWith('cooperative_label_path', '/etc/passwd')),
    d('dair: data_info.json is a FIFO', info, { fifo: true }),
    d('dair: data_info.json is random bytes', info, seeded(2000, 6)),
    d('dair: calibration nested 100 000 deep', calib, `{"rotation": ${deep(100_000)}}`),
    d('dair: calibration translation 1e999', calib, JSON.stringify({ rotation: ROT, translation: [1, 2, 3] }).replace('[1,2,3]', '[1e999,2,3]')),
    d('dair: label is random bytes', label, seeded(3000, 7)),
    d(
      'dair: label dimensions "Infinity"',
      label,
      JSON.stringify([{ type: 'Car', '3d_dimensions': { h: 'Infinity', w: 1, l: 1 }, '3d_location': { x: 0, y: 0, z: 0 }, rotation: 0 }]),
    ),
    d('dair: world corners "NaN"', coop, JSON.stringify([{ type: 'Car', world_8_points: Array(8).fill(['NaN', 0, 0]) }])),
    d('dair: point cloud symlink to /dev/zero', vpcd, { link: '/dev/zero' }),
    d(
      'dair: point cloud random binary_compressed body',
      vpcd,
      cat(pcdHeader('x y z intensity', '4 4 4 4', 'F F F F', '1 1 1 1', 200, 'binary_compressed'), seeded(2000, 8)),
    ),
  ];
}

/** Writes a valid tree of the case's layout with the case's bad file in it. */
export async function writeCase(root: string, c: BadCase): Promise<void> {
  await writeTree(root, c.layout === 'opv2v' ? opv2vFiles() : dairFiles());
  if (c.also) await writeTree(root, c.also);
  const file = path.join(root, c.file);
  await fs.rm(file, { force: true, recursive: true });
  const bad = c.bad;
  if (typeof bad === 'string' || bad instanceof Uint8Array) await fs.writeFile(file, bad);
  else if ('link' in bad) await fs.symlink(bad.link, file);
  else if ('fifo' in bad) execFileSync('mkfifo', [file]);
  else await fs.mkdir(file);
}

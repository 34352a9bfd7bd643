// The `heal view` cases of issue 15, on a small DAIR-V2X-C tree written here (random weights):
// a picture path that leads out of the dataset, a point cloud outside it whose first line leaked
// into the error body, a malformed %-escape (500), runs made with --split all ("no frames to
// show"), and file streams without error handlers (EMFILE under idle connections ended the server).

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as http from 'node:http';
import { fileURLToPath } from 'node:url';
import { DAIR_VEHICLE, dairFiles, writeTree } from '../../bench/reader-corpus.ts';
import { openDair } from '../../datasets/dair.ts';
import { startServer, type ViewServer } from '../../viewer/server.ts';
import { sceneSchema } from '../../viewer/scene.ts';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const SECRET = 'root:x:0:0:secret-first-line';

function get(url: string): Promise<{ status: number; body: string; bytes: Buffer }> {
  return new Promise((resolve, reject) => {
    http
      .get(url, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          const bytes = Buffer.concat(chunks);
          resolve({ status: res.statusCode ?? 0, body: bytes.toString('utf8'), bytes });
        });
      })
      .on('error', reject);
  });
}

/** A one-pair DAIR tree with a vehicle camera, whose picture is `image` (a symlink target) and infra cloud `infraPcd`. */
async function dairTree(root: string, opts: { image?: string; vehiclePcd?: string; infraPcd?: string } = {}): Promise<void> {
  const files = dairFiles();
  const info = JSON.parse(files['cooperative/data_info.json'] as string);
  info[0].vehicle_image_path = `vehicle-side/image/${DAIR_VEHICLE}.jpg`;
  files['cooperative/data_info.json'] = JSON.stringify(info);
  files[`vehicle-side/calib/camera_intrinsic/${DAIR_VEHICLE}.json`] = JSON.stringify({ cam_K: [1000, 0, 960, 0, 1000, 540, 0, 0, 1] });
  files[`vehicle-side/calib/lidar_to_camera/${DAIR_VEHICLE}.json`] = JSON.stringify({
    rotation: [
      [0, -1, 0],
      [0, 0, -1],
      [1, 0, 0],
    ],
    translation: [[0], [0], [0]],
  });
  await writeTree(root, files);
  const link = async (rel: string, target: string | undefined) => {
    if (!target) return;
    await fs.rm(path.join(root, rel), { force: true });
    await fs.mkdir(path.dirname(path.join(root, rel)), { recursive: true });
    await fs.symlink(target, path.join(root, rel));
  };
  if (!opts.image) await fs.mkdir(path.join(root, 'vehicle-side/image'), { recursive: true });
  if (!opts.image) await fs.writeFile(path.join(root, `vehicle-side/image/${DAIR_VEHICLE}.jpg`), Buffer.from([0xff, 0xd8, 0xff, 0xe0, 1, 2, 3]));
  await link(`vehicle-side/image/${DAIR_VEHICLE}.jpg`, opts.image);
  await link(`vehicle-side/velodyne/${DAIR_VEHICLE}.pcd`, opts.vehiclePcd);
  await link('infrastructure-side/velodyne/000002.pcd', opts.infraPcd);
}

let tmp = '';
let secret = '';
let server: ViewServer;
const scenario = `train/${DAIR_VEHICLE}`;

beforeAll(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'heal-view-harden-'));
  secret = path.join(tmp, 'secret.txt');
  await fs.writeFile(secret, `${SECRET}\nmore\n`);
  // The picture is a link out of the dataset; the roadside cloud is a file outside it.
  await dairTree(path.join(tmp, 'data'), { image: secret, infraPcd: secret });
  server = await startServer(path.join(tmp, 'data'), { port: 0, device: 'cpu', randomWeights: true });
}, 120_000);

afterAll(async () => {
  await server?.close();
  if (tmp) await fs.rm(tmp, { recursive: true, force: true });
});

describe('heal view serves only what is inside the dataset or the run', () => {
  it('a data_info.json picture path of ../../etc/passwd is refused by the reader', async () => {
    const root = path.join(tmp, 'escape');
    await dairTree(root);
    const info = JSON.parse(await fs.readFile(path.join(root, 'cooperative/data_info.json'), 'utf8'));
    info.push({ ...info[0], vehicle_image_path: '../../etc/passwd', vehicle_pointcloud_path: 'vehicle-side/velodyne/000009.pcd' });
    await fs.writeFile(path.join(root, 'cooperative/data_info.json'), JSON.stringify(info));
    const ds = await openDair(root);
    expect(ds.pairs.map((p) => p.vehicleId)).toEqual([DAIR_VEHICLE]);
    expect(ds.warnings.join('\n')).toMatch(/vehicle_image_path.*must stay inside the dataset folder.*etc\/passwd/);
  });

  it('a picture that links out of the dataset is not served', async () => {
    const r = await get(`${server.url}api/camera?scenario=${encodeURIComponent(scenario)}&ts=${DAIR_VEHICLE}&agent=0&camera=camera0`);
    expect(r.status).toBe(404);
    expect(r.body).not.toContain(SECRET);
  });

  it("a point cloud outside the dataset: the file's first line is in no body or note", async () => {
    const r = await get(`${server.url}api/frame?scenario=${encodeURIComponent(scenario)}&ts=${DAIR_VEHICLE}`);
    expect(r.status).toBe(200);
    const f = sceneSchema().decode(r.bytes) as unknown as { notes: string[] };
    expect(f.notes.join('\n')).toMatch(/agent 1 left out/);
    expect(f.notes.join('\n')).not.toContain('root:x');
    // The ego's own cloud outside: the frame fails, and its error body names the file, not its text.
    const root = path.join(tmp, 'ego-out');
    await dairTree(root, { vehiclePcd: secret });
    const s = await startServer(root, { port: 0, device: 'cpu', randomWeights: true });
    try {
      const bad = await get(`${s.url}api/frame?scenario=${encodeURIComponent(scenario)}&ts=${DAIR_VEHICLE}`);
      expect(bad.status).toBe(404);
      expect(bad.body).toMatch(/000001\.pcd/);
      expect(bad.body).not.toContain('root:x');
    } finally {
      await s.close();
    }
  });

  it('a malformed %-escape is 400, not 500', async () => {
    expect((await get(`${server.url}%E0%A4%A`)).status).toBe(400);
    expect((await get(`${server.url}vendor/three/%ZZ.js`)).status).toBe(400);
  });

  it('a run made with --split all opens', async () => {
    const run = path.join(tmp, 'run-all');
    await fs.mkdir(run);
    const meta = {
      version: 1,
      data: path.join(tmp, 'data'),
      split: 'all',
      profile: 'small',
      types: ['m1'],
      combos: [['m1']],
      fusion: ['pyramid'],
      weights: null,
    };
    await fs.writeFile(path.join(run, 'run.json'), JSON.stringify(meta));
    await fs.writeFile(path.join(run, 'frames.jsonl'), '');
    const s = await startServer(run, { port: 0, device: 'cpu', randomWeights: true });
    try {
      expect(s.source.index.scenarios.map((x) => x.key)).toEqual([scenario]);
    } finally {
      await s.close();
    }
  });
});

describe('heal view under a file-descriptor limit', () => {
  it('idle connections that use up the descriptors do not end the server', async () => {
    // A child with 200 descriptors: 240 idle connections take them all, then static files are asked for.
    const script = `
      import { startServer } from ${JSON.stringify(path.join(process.env.HEAL_VIEW_REPO ?? repo, 'viewer/server.ts'))};
      const s = await startServer(${JSON.stringify(path.join(tmp, 'data'))}, { port: 0, device: 'cpu', randomWeights: true });
      console.log('URL ' + s.url);`;
    const child = spawn('bash', ['-c', `ulimit -n 200 && exec "${process.execPath}" --import tsx --input-type=module -e "$0"`, script], {
      cwd: repo,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let log = '';
    child.stderr.on('data', (d) => (log += d));
    try {
      const url = await new Promise<string>((resolve, reject) => {
        let out = '';
        child.stdout.on('data', (d) => {
          out += d;
          const m = /URL (\S+)/.exec(out);
          if (m) resolve(m[1]);
        });
        child.on('exit', (code) => reject(new Error(`server exited ${code}: ${log}`)));
      });
      const { port } = new URL(url);
      const sockets: { sock: net.Socket; open: boolean; reply: string }[] = [];
      for (let i = 0; i < 240; i++) {
        const entry = { sock: net.connect(Number(port), '127.0.0.1'), open: true, reply: '' };
        entry.sock.on('error', () => (entry.open = false));
        entry.sock.on('close', () => (entry.open = false));
        entry.sock.on('data', (d) => (entry.reply += d));
        sockets.push(entry);
      }
      await new Promise((r) => setTimeout(r, 1000));
      // The connections the server kept hold its descriptors; a file asked for over them cannot be opened.
      const kept = sockets.filter((e) => e.open);
      expect(kept.length).toBeGreaterThan(20);
      for (const e of kept.slice(0, 10)) e.sock.write('GET /index.html HTTP/1.1\r\nHost: localhost\r\n\r\n');
      await new Promise((r) => setTimeout(r, 1000));
      const statuses = kept.slice(0, 10).map((e) => /^HTTP\/1\.1 (\d+)/.exec(e.reply)?.[1] ?? 'none');
      for (const e of sockets) e.sock.destroy();
      await new Promise((r) => setTimeout(r, 500));
      expect(
        statuses.some((st) => st === '503'),
        `${statuses.join(',')}\n${log}`,
      ).toBe(true);
      // After the idle connections are gone the server still answers.
      expect((await get(`${url}api/index`)).status, log).toBe(200);
      expect(child.exitCode).toBe(null);
    } finally {
      child.kill('SIGKILL');
    }
  }, 120_000);
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { PNG } from 'pngjs';
import { run } from '../../cli/inspect.ts';
import { openOpv2v } from '../../datasets/opv2v.ts';
import { encodePcd } from '../../datasets/pcd.ts';
import { makeTempDir, ringPoints, standardAgents, writeScenario } from '../helpers/opv2v-fixture.ts';

async function inspect(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '',
    err = '';
  const code = await run(args, {
    out: (t) => {
      out += t;
    },
    err: (t) => {
      err += t;
    },
  });
  return { code, out, err };
}

const SCENARIO = '2021_08_22_21_41_24';
const TIMESTAMPS = ['000068', '000070', '000072', '000074'];

describe('heal inspect', () => {
  let root: string;

  beforeAll(async () => {
    root = await makeTempDir('inspect');
    await writeScenario(path.join(root, 'test', SCENARIO), standardAgents(), TIMESTAMPS);
    const dir = (id: number) => path.join(root, 'test', SCENARIO, String(id));
    // Frame 000070: 641's point cloud is cut short. Frame 000072: 650's YAML is not YAML.
    const pcd = encodePcd(ringPoints(100, 10), 'binary');
    await fs.writeFile(path.join(dir(641), '000070.pcd'), pcd.subarray(0, pcd.length - 200));
    await fs.writeFile(path.join(dir(650), '000072.yaml'), 'lidar_pose: [1, 2\nvehicles: {}\n');
  });
  afterAll(() => fs.rm(root, { recursive: true, force: true }));

  it('prints agents, a per-frame table and a summary; bad frames go to stderr and are skipped', async () => {
    const r = await inspect([root]);
    expect(r.code).toBe(0);
    expect(r.out).toContain(`test/${SCENARIO}: 4 agents, 4 timestamps`);
    expect(r.out).toMatch(/agent +1045 +vehicle +lidar64 lidar32 camera0-3 depth0/);
    expect(r.out).toMatch(/agent +-1 +rsu +lidar64/);
    // 000068: 100 points each; 1045 sees 3 objects, 641 sees 3, 650 sees 1, the RSU 1; 5 cooperative boxes.
    expect(r.out).toMatch(/000068 +100\/3 +100\/3 +100\/1 +100\/1 +5/);
    expect(r.out).toMatch(/000070 +bad frame, skipped/);
    expect(r.out).toMatch(/summary: 1 scenarios, 4 frames read, 2 bad; 8 agent-frames, mean 100\.0 points/);
    expect(r.err).toMatch(/bad frame test\/2021_08_22_21_41_24 000070: .*641\/000070\.pcd/);
    expect(r.err).toMatch(/bad frame test\/2021_08_22_21_41_24 000072: .*650\/000072\.yaml: malformed YAML at line \d/);
    expect(r.err).toContain('2 of 4 frames could not be read');
  });

  it('--json writes one parseable line per agent-frame with pose, point count and boxes', async () => {
    const r = await inspect([root, '--json']);
    expect(r.code).toBe(0);
    const lines = r.out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines.length).toBe(8);
    const ds = await openOpv2v(root);
    const ref = ds.frames()[0];
    const want = await ds.readAgentFrame(ref, 641);
    const got = lines.find((l) => l.timestamp === '000068' && l.agent === 641);
    expect(got).toMatchObject({ scenario: SCENARIO, type: 'vehicle', points: 100 });
    expect(got.lidarPose).toEqual([
      [1, 0, 0, 20],
      [0, 1, 0, 0],
      [0, 0, 1, 1.9],
      [0, 0, 0, 1],
    ]);
    expect(got.boxes.map((b: { id: number }) => b.id)).toEqual([1045, 9002, 9003]);
    got.boxes[0].box.forEach((v: number, i: number) => expect(v).toBeCloseTo(want.boxes[0].box[i], 12));
    expect(lines.find((l) => l.agent === -1).type).toBe('rsu');
    expect(lines.some((l) => l.timestamp === '000070')).toBe(false);
    expect(r.err).toContain('bad frame');
  });

  it('--png writes a decodable top-down picture that is not blank', async () => {
    const out = path.join(root, 'pics', 'view.png');
    // --png writes a file, never the folders a typo would invent (test/cli/hardening.test.ts).
    await fs.mkdir(path.dirname(out), { recursive: true });
    const r = await inspect([root, '--png', out, '--scenario', SCENARIO, '--frame', '000068']);
    expect(r.code).toBe(0);
    expect(r.out).toContain(`wrote ${out}`);
    expect(r.out).toMatch(/ego 1045, 4 agents \(3 within comm range\), 300 points, 5 GT boxes/);
    const png = PNG.sync.read(await fs.readFile(out));
    expect([png.width, png.height]).toEqual([800, 800]);
    const bg = [png.data[(799 * 800 + 400) * 4], png.data[(799 * 800 + 400) * 4 + 1], png.data[(799 * 800 + 400) * 4 + 2]];
    let differing = 0;
    for (let i = 0; i < 800 * 800; i++) {
      if (png.data[i * 4] !== bg[0] || png.data[i * 4 + 1] !== bg[1] || png.data[i * 4 + 2] !== bg[2]) differing++;
    }
    expect(differing).toBeGreaterThan(1000);
    // The ego's ring of points (radius 10 m, 60 m half-width over 800 px) passes 10 m ahead of it.
    const at = (c: number, r: number) => Array.from(png.data.slice((r * 800 + c) * 4, (r * 800 + c) * 4 + 3));
    const ring = [-1, 0, 1].flatMap((d) => [at(400 + d, 400 - 67), at(400 + d, 400 - 66)]);
    expect(ring).toContainEqual([0, 200, 255]);

    const bad = await inspect([root, '--png', out, '--ego', '77']);
    expect(bad.code).toBe(1);
    expect(bad.err).toContain('agent 77 is not in');
  });

  it('--limit, --lidar, --help and bad options', async () => {
    const limited = await inspect([root, '--limit', '1', '--lidar', '32']);
    // Only 1045 has 32-beam files, so the one frame read is bad.
    expect(limited.code).toBe(3);
    expect(limited.err).toMatch(/000068_32\.pcd: 32-beam LiDAR file is missing/);
    expect(limited.out).toContain('(showing 1)');

    const help = await inspect(['--help']);
    expect(help.code).toBe(0);
    expect(help.out).toContain('usage: heal inspect DIR');
    expect((await inspect([root, '--lidar', '8'])).code).toBe(2);
    expect((await inspect([])).code).toBe(2);
    expect((await inspect([root, '--bogus'])).code).toBe(2);
    const missing = await inspect([path.join(root, 'nope')]);
    expect(missing.code).toBe(1);
    expect(missing.err).toContain('does not exist');
  });
});

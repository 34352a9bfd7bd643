// heal view end to end: a generated scene served in-process (random weights), the page opened in a
// real headless Chromium (WebGL through SwiftShader), and what it drew compared with what the
// server sent. Also the run-folder input (run.json + frames.jsonl) and the server's refusals.

import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as http from 'node:http';
import { PNG } from 'pngjs';
import type { Browser, Page } from 'playwright-core';
import { WORLD_TIMEOUT_MS, testSplit } from '../helpers/world.ts';
import { openDataset } from '../../datasets/open.ts';
import { startServer, type ViewServer } from '../../viewer/server.ts';
import { sceneSchema, matchBoxes, BoxStatus } from '../../viewer/scene.ts';
import { parseRunMeta } from '../../viewer/run.ts';

interface Counts {
  points: number;
  gtBoxes: number;
  predBoxes: number;
  tp: number;
  fp: number;
  miss: number;
  agents: number;
}
interface Hook {
  ready: boolean;
  scenario: string | null;
  frame: string | null;
  view: string;
  error: string | null;
  counts: Counts;
}
interface DecodedBox {
  box: number[];
  corners: number[];
  score: number;
  status: number;
}
interface DecodedFrame {
  scenario: string;
  timestamp: string;
  egoId: number;
  detectionsFrom: string;
  notes: string[];
  agents: { id: number; type: string; ego: boolean; used: boolean; cameras: { name: string }[]; pose: number[] }[];
  points: { count: number; xyz: Uint8Array; agent: Uint8Array };
  gt: DecodedBox[];
  predictions: DecodedBox[];
  foreground: { level: number; width: number; height: number; data: Uint8Array; agents: number[] }[];
}

let browser: Browser | undefined;
let launchError = '';
try {
  const chromium = (await import('@sparticuz/chromium')).default;
  const { chromium: pw } = await import('playwright-core');
  browser = await pw.launch({ executablePath: await chromium.executablePath(), args: chromium.args, headless: true });
} catch (err) {
  launchError = (err as Error).message.split('\n')[0];
  console.warn(`viewer browser tests skipped: Chromium cannot launch here (${launchError})`);
}

let dir = '';
let data = '';
let server: ViewServer;
let scenarioKey = '';
let timestamps: string[] = [];

async function get(url: string): Promise<{ status: number; type: string; body: Buffer }> {
  // node:http rather than fetch, so that a path with ".." reaches the server unnormalised.
  return new Promise((resolve, reject) => {
    http
      .get(url, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body: Buffer.concat(chunks) }));
      })
      .on('error', reject);
  });
}

async function frameFromServer(base: string, scenario: string, ts: string): Promise<DecodedFrame> {
  const r = await get(`${base}api/frame?scenario=${encodeURIComponent(scenario)}&ts=${encodeURIComponent(ts)}`);
  expect(r.status).toBe(200);
  expect(r.type).toBe('application/x-protobuf');
  return sceneSchema().decode(r.body) as unknown as DecodedFrame;
}

function expectedCounts(f: DecodedFrame): Counts {
  return {
    points: f.points.count,
    gtBoxes: f.gt.length,
    predBoxes: f.predictions.length,
    tp: f.predictions.filter((b) => b.status === BoxStatus.TruePositive).length,
    fp: f.predictions.filter((b) => b.status === BoxStatus.FalsePositive).length,
    miss: f.gt.filter((b) => b.status === BoxStatus.Missed).length,
    agents: f.agents.filter((a) => a.pose.length === 16).length,
  };
}

function pixelStdDev(png: Buffer): number {
  const img = PNG.sync.read(png);
  let sum = 0,
    sum2 = 0;
  const n = img.width * img.height;
  for (let i = 0; i < n; i++) {
    const l = 0.299 * img.data[i * 4] + 0.587 * img.data[i * 4 + 1] + 0.114 * img.data[i * 4 + 2];
    sum += l;
    sum2 += l * l;
  }
  const mean = sum / n;
  return Math.sqrt(Math.max(0, sum2 / n - mean * mean));
}

const hook = (page: Page) => page.evaluate(() => (window as unknown as { __heal: Hook }).__heal);

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'heal-viewer-'));
  // The shared world's train scenario has three connected vehicles and a roadside unit; it has
  // cameras, which m2 and m4 encode and the page shows.
  data = await testSplit('train');
  const ds = await openDataset(data);
  const refs = ds.frames();
  scenarioKey = `${refs[0].split}/${refs[0].scenario}`;
  timestamps = refs.map((r) => r.timestamp);
  // A low score threshold, so that random weights still give boxes to count.
  server = await startServer(data, { port: 0, device: 'cpu', randomWeights: true, seed: 1, scoreThreshold: 0.02, maxPoints: 120_000 });
}, WORLD_TIMEOUT_MS);

afterAll(async () => {
  await browser?.close();
  await server?.close();
  if (dir) await fs.rm(dir, { recursive: true, force: true });
});

describe('heal view server', () => {
  it('lists the scenario, its frames and agents, and says the weights are random', async () => {
    const r = await get(`${server.url}api/index`);
    expect(r.status).toBe(200);
    const ix = JSON.parse(r.body.toString());
    expect(ix.source).toBe('data');
    expect(ix.randomWeights).toBe(true);
    expect(ix.notes.join(' ')).toMatch(/random weights/);
    expect(ix.scenarios.map((s: { key: string }) => s.key)).toEqual([scenarioKey]);
    expect(ix.scenarios[0].frames.map((f: { ts: string }) => f.ts)).toEqual(timestamps);
    expect(ix.scenarios[0].agents.length).toBeGreaterThanOrEqual(4);
  });

  it('sends a frame as protobuf, in the ego frame, with every agent, boxes, statuses and foreground maps (random weights)', async () => {
    const f = await frameFromServer(server.url, scenarioKey, timestamps[0]);
    expect(f.scenario).toBe(scenarioKey);
    expect(f.detectionsFrom).toBe('computed');
    const ego = f.agents.find((a) => a.ego)!;
    expect(ego.id).toBe(f.egoId);
    expect(ego.id).toBeGreaterThan(0); // never the roadside unit
    // The ego's pose in its own frame is the identity.
    expect(ego.pose.map((v) => Math.round(v * 1e6) / 1e6)).toEqual([1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]);
    expect(new Set(f.agents.map((a) => a.type))).toEqual(new Set(['m1', 'm2', 'm3', 'm4']));
    expect(f.agents.find((a) => a.type === 'm2')!.cameras.map((c) => c.name)).toEqual(['camera0', 'camera1', 'camera2', 'camera3']);
    expect(f.points.count).toBeGreaterThan(1000);
    expect(f.points.count).toBeLessThanOrEqual(120_000);
    expect(f.points.xyz.length).toBe(f.points.count * 12);
    expect(f.points.agent.length).toBe(f.points.count);
    expect(new Set(f.points.agent).size).toBe(f.agents.length);
    expect(f.gt.length).toBeGreaterThan(0);
    expect(f.predictions.length).toBeGreaterThan(0);
    // Statuses agree with a fresh greedy matching of the same boxes.
    const m = matchBoxes(
      f.predictions.map((p) => ({ box: p.box, score: p.score })),
      f.gt.map((g) => g.box),
    );
    expect(f.predictions.map((p) => p.status === BoxStatus.TruePositive)).toEqual(m.tp);
    expect(f.gt.map((g) => g.status === BoxStatus.Matched)).toEqual(m.matched);
    expect(f.foreground.length).toBeGreaterThanOrEqual(2);
    for (const lv of f.foreground) {
      expect(lv.data.length).toBe(lv.agents.length * lv.width * lv.height);
      expect(lv.agents[0]).toBe(f.egoId);
    }
  });

  it('serves camera pictures and refuses paths outside its folders and unknown frames', async () => {
    const f = await frameFromServer(server.url, scenarioKey, timestamps[0]);
    const cam = f.agents.find((a) => a.cameras.length)!;
    const img = await get(`${server.url}api/camera?scenario=${encodeURIComponent(scenarioKey)}&ts=${timestamps[0]}&agent=${cam.id}&camera=camera0`);
    expect(img.status).toBe(200);
    expect(img.type).toBe('image/png');
    expect(img.body.subarray(1, 4).toString()).toBe('PNG');
    expect((await get(`${server.url}vendor/three/..%2f..%2fpackage.json`)).status).toBe(403);
    expect((await get(`${server.url}viewer/server.ts`)).status).toBe(404);
    expect((await get(`${server.url}server.ts`)).status).toBe(404);
    const missing = await get(`${server.url}api/frame?scenario=${encodeURIComponent(scenarioKey)}&ts=999999`);
    expect(missing.status).toBe(404);
    expect(missing.body.toString()).toMatch(/999999/);
    expect((await get(`${server.url}api/frame?scenario=${encodeURIComponent(scenarioKey)}`)).status).toBe(400);
  });

  it('serves the page from viewer/web: its TypeScript as JavaScript, protobufjs as an ES module, no server file', async () => {
    const html = await get(server.url);
    expect(html.status).toBe(200);
    expect(html.type).toMatch(/^text\/html/);
    const app = await get(`${server.url}app.ts`);
    expect(app.status).toBe(200);
    expect(app.type).toMatch(/^text\/javascript/);
    const code = app.body.toString();
    // Transpiled: the type-only imports of server files and the type annotations are gone.
    expect(code).toMatch(/^import protobuf from "protobufjs";/m);
    expect(code).not.toMatch(/scene\.ts|interface Hook|: HTMLElement/);
    expect((await get(`${server.url}app.ts`)).body.toString()).toBe(code);
    const pb = await get(`${server.url}vendor/protobufjs.js`);
    expect(pb.status).toBe(200);
    expect(pb.type).toMatch(/^text\/javascript/);
    expect(pb.body.toString()).toMatch(/export \{[^}]*as default[^}]*\}/);
    expect((await get(`${server.url}vendor/protobufjs/protobuf.min.js`)).status).toBe(404);
    expect((await get(`${server.url}..%2fserver.ts`)).status).toBe(403);
    expect((await get(`${server.url}scene.ts`)).status).toBe(404);
  });

  it('reads a run folder: its detections and GT statuses are shown as the run scored them (random weights)', async () => {
    const ref = await frameFromServer(server.url, scenarioKey, timestamps[1]);
    const runDir = path.join(dir, 'run');
    await fs.mkdir(runDir, { recursive: true });
    const [split, name] = scenarioKey.split('/');
    const gtBox = ref.gt[0].box;
    const line = {
      scenario: name,
      split,
      timestamp: timestamps[1],
      egoId: ref.egoId,
      combo: ['m1', 'm3'],
      fusion: 'intermediate',
      dtype: 'float32',
      agents: ref.agents.map((a) => ({ id: a.id, type: 'm1', used: true })),
      detections: [
        { box: gtBox, score: 0.9, tp: true },
        { box: [30, 30, -1, 1.5, 1.6, 3.9, 0], score: 0.4, tp: false },
      ],
      gt: [
        { box: gtBox, matched: true },
        { box: ref.gt[1]?.box ?? [-30, -30, -1, 1.5, 1.6, 3.9, 0], matched: false },
      ],
      bytes: 0,
      times: {},
    };
    // A line of another combo and a broken line: the first is ignored, the second reported, neither fatal.
    const other = { ...line, combo: ['m2'], detections: [] };
    await fs.writeFile(path.join(runDir, 'frames.jsonl'), `${JSON.stringify(line)}\n${JSON.stringify(other)}\n{"scenario": 3}\n`);
    await fs.writeFile(
      path.join(runDir, 'run.json'),
      JSON.stringify({
        version: 1,
        data,
        split,
        profile: 'small',
        types: ['m1', 'm3'],
        combos: [['m1', 'm3']],
        fusion: ['intermediate'],
        dtype: 'float32',
        device: 'cpu',
        provider: 'cpu',
        weights: null,
        poseNoise: 0,
        latency: 0,
        drop: 0,
        seed: 0,
        createdAt: new Date().toISOString(),
      }),
    );
    const warnings: string[] = [];
    const runServer = await startServer(runDir, { port: 0, device: 'cpu', log: (l) => warnings.push(l) });
    try {
      expect(runServer.source.index.source).toBe('run');
      expect(runServer.source.index.types).toEqual(['m1', 'm3']);
      expect(runServer.source.index.scenarios[0].frames.map((f) => f.evaluated)).toEqual(timestamps.map((_, i) => i === 1));
      expect(warnings.join('\n')).toMatch(/frames\.jsonl:3: field "scenario"/);
      const f = await frameFromServer(runServer.url, scenarioKey, timestamps[1]);
      expect(f.detectionsFrom).toBe('run');
      expect(f.predictions.map((p) => p.status)).toEqual([BoxStatus.TruePositive, BoxStatus.FalsePositive]);
      expect(f.gt.map((g) => g.status)).toEqual([BoxStatus.Matched, BoxStatus.Missed]);
      expect(f.agents.every((a) => a.type === 'm1')).toBe(true);
      // A frame the run did not evaluate is computed here, with the run's type cycle.
      const g = await frameFromServer(runServer.url, scenarioKey, timestamps[0]);
      expect(g.detectionsFrom).toBe('computed');
      expect(g.agents.map((a) => a.type).slice(0, 2)).toEqual(['m1', 'm3']);
    } finally {
      await runServer.close();
    }
  });

  it('rejects a run.json it cannot read, naming the field and value', () => {
    expect(() => parseRunMeta('{"version": 2}', '/x/run.json')).toThrow(/run\.json: field "version".*value: 2/);
    expect(() =>
      parseRunMeta(
        JSON.stringify({ version: 1, data: '/d', profile: 'small', types: ['m1'], combos: [['m1']], fusion: 'intermediate', weights: null }),
        '/x/run.json',
      ),
    ).toThrow(/field "fusion"/);
  });
});

describe.skipIf(!browser)('heal view page in headless Chromium (random weights)', () => {
  let page: Page;
  const errors: string[] = [];

  beforeAll(async () => {
    page = await browser!.newPage({ viewport: { width: 1280, height: 800 } });
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(m.text());
    });
  });

  const waitForFrame = (ts: string) =>
    page.waitForFunction(
      (t) => {
        const h = (window as unknown as { __heal: Hook }).__heal;
        return (h?.ready && h.frame === t) || !!h?.error;
      },
      ts,
      { timeout: 60_000 },
    );

  it('loads the scene and draws as many points and boxes as the server sent', async () => {
    await page.goto(server.url);
    await waitForFrame(timestamps[0]);
    const h = await hook(page);
    expect(h.error || '').toBe('');
    expect(h.scenario).toBe(scenarioKey);
    const sent = await frameFromServer(server.url, scenarioKey, timestamps[0]);
    expect(h.counts).toEqual(expectedCounts(sent));
    expect(h.counts.points).toBeGreaterThan(1000);
    expect(h.counts.predBoxes).toBeGreaterThan(0);
    // The ego's four camera pictures are on the page and decoded.
    await page.waitForFunction(
      () => Array.from(document.querySelectorAll('#cameras img')).filter((i) => (i as HTMLImageElement).naturalWidth > 0).length === 4,
      null,
      { timeout: 30_000 },
    );
    expect(await page.locator('#badge-random').isVisible()).toBe(true);
    expect(errors).toEqual([]);
  });

  it('scrubs frames with the keyboard and the timeline, and the counts follow', async () => {
    const first = (await hook(page)).counts;
    await page.keyboard.press('ArrowRight');
    await waitForFrame(timestamps[1]);
    const second = await hook(page);
    expect(second.frame).toBe(timestamps[1]);
    expect(second.counts).toEqual(expectedCounts(await frameFromServer(server.url, scenarioKey, timestamps[1])));
    expect(second.counts).not.toEqual(first);
    await page.locator('#timeline').fill('2');
    await waitForFrame(timestamps[2]);
    expect((await hook(page)).counts).toEqual(expectedCounts(await frameFromServer(server.url, scenarioKey, timestamps[2])));
    expect(page.url()).toContain(`frame=${timestamps[2]}`);
    // Space plays (wrapping to the first frame) and pauses.
    await page.keyboard.press('Space');
    await waitForFrame(timestamps[0]);
    await page.keyboard.press('Space');
    expect(await page.locator('#play').getAttribute('title')).toMatch(/^play/);
    await page.locator('#timeline').fill('2');
    await waitForFrame(timestamps[2]);
  });

  it('draws a non-blank BEV and orbit view, and the URL reopens the same scene and view', async () => {
    const bev = await page.locator('#viewport').screenshot();
    await fs.writeFile(path.join(os.tmpdir(), 'heal-viewer-bev.png'), bev);
    expect(pixelStdDev(bev)).toBeGreaterThan(12);

    await page.locator('[data-view=orbit]').click();
    await page.locator('#color-mode').selectOption('height');
    await page.waitForTimeout(300);
    const hash = new URLSearchParams(new URL(page.url()).hash.slice(1));
    expect(Object.fromEntries(hash)).toEqual({ scenario: scenarioKey, frame: timestamps[2], view: 'orbit' });
    expect((await hook(page)).view).toBe('orbit');
    const orbit = await page.locator('#viewport').screenshot();
    await fs.writeFile(path.join(os.tmpdir(), 'heal-viewer-orbit.png'), orbit);
    expect(pixelStdDev(orbit)).toBeGreaterThan(12);
    // Another view of the same scene really is another picture.
    expect(Buffer.compare(bev, orbit)).not.toBe(0);
    await fs.writeFile(path.join(os.tmpdir(), 'heal-viewer-page.png'), await page.screenshot());

    const again = await browser!.newPage({ viewport: { width: 1000, height: 700 } });
    try {
      await again.goto(page.url());
      await again.waitForFunction(
        (t) => (window as unknown as { __heal: Hook }).__heal?.ready && (window as unknown as { __heal: Hook }).__heal.frame === t,
        timestamps[2],
        { timeout: 60_000 },
      );
      const h = await hook(again);
      expect([h.scenario, h.frame, h.view]).toEqual([scenarioKey, timestamps[2], 'orbit']);
      expect(await again.locator('[data-view=orbit]').getAttribute('class')).toContain('active');
    } finally {
      await again.close();
    }
    expect(errors).toEqual([]);
  });
});

// `heal eval` end to end on a copy of the shared generated world (LiDAR types, random weights): the JSON report,
// the run folder the viewer reads (run.json, frames.jsonl), the HTML report, and a corrupted frame
// that must be reported and skipped while the other frames are evaluated.

import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { WORLD_TIMEOUT_MS, copySplit } from '../helpers/world.ts';
import { openDataset } from '../../datasets/open.ts';
import { SMALL_SPACE } from '../../perception/space.ts';
import { egoGroundTruth } from '../../eval/groundtruth.ts';
import { evaluate, markMatches } from '../../eval/evaluate.ts';
import { isIncompleteRun } from '../../eval/runfolder.ts';
import { noisyPose } from '../../eval/noise.ts';
import { percentile } from '../../eval/statistics.ts';
import { formatTable } from '../../eval/table.ts';
import { variantsOf, type EvalReport, type FrameLine } from '../../eval/contracts.ts';
import { parseEvalArgs } from '../../cli/eval.ts';
import { poseToMatrix } from '../../datasets/geometry/transforms.ts';
import type { Box7 } from '../../datasets/geometry/boxes.ts';
import { strongestCellsMask } from '../../fusion/messages.ts';

let dir = '';
let data = '';
let badFile = '';
let report: EvalReport;
let lines: FrameLine[];
const COMBOS = [['m1'], ['m1', 'm3']];
const FUSION = ['pyramid', 'late', 'none'] as const;

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'heal-eval-'));
  // The shared world's test scenario, copied: a file of it is corrupted below.
  data = await copySplit('test', path.join(dir, 'data'));
  const ds = await openDataset(data);
  const frames = ds.frames();
  expect(frames.length).toBe(3);
  // Corrupt the ego's 64-beam scan of the middle frame: that frame must be skipped, not the run.
  const ref = frames[1];
  badFile = path.join(data, ref.split, ref.scenario, String(ref.agentIds[0]), `${ref.timestamp}.pcd`);
  const bytes = await fs.readFile(badFile);
  await fs.writeFile(badFile, bytes.subarray(0, Math.floor(bytes.length / 2)));

  report = await evaluate({
    data,
    split: 'test',
    combos: COMBOS,
    fusion: [...FUSION],
    dtypes: ['float32', 'int8'],
    keep: [1, 0.5],
    device: 'cpu',
    profile: 'small',
    weights: null,
    poseNoise: [0.2, 0.2, 0.2],
    latency: 1,
    drop: 0.3,
    seed: 4,
    out: path.join(dir, 'run'),
    mcap: path.join(dir, 'run', 'scene.mcap'),
    // The random head's scores sit near its 0.01 prior: a low threshold gives detections to score.
    scoreThreshold: 0.005,
  });
  lines = (await fs.readFile(report.files.frames, 'utf8'))
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
}, WORLD_TIMEOUT_MS);

afterAll(async () => {
  if (dir) await fs.rm(dir, { recursive: true, force: true });
});

describe('heal eval (random weights)', () => {
  it('evaluates the readable frames and reports the corrupted one with its file', () => {
    expect(report.frames).toEqual({ total: 3, evaluated: 2, failed: 1 });
    expect(report.failures).toHaveLength(1);
    expect(report.failures[0].file).toBe(badFile);
    expect(report.failures[0].reason.length).toBeGreaterThan(0);
    expect(report.failures[0].timestamp).toBe(path.basename(badFile, '.pcd'));
    expect(report.provider).toBe('cpu');
    expect(report.randomWeights).toBe(true);
  });

  it('has one row per combination × configuration, with AP in [0, 1] and real byte counts', () => {
    const variants = variantsOf({ fusion: [...FUSION], dtypes: ['float32', 'int8'], keep: [1, 0.5] });
    expect(variants).toHaveLength(6);
    expect(report.rows).toHaveLength(COMBOS.length * variants.length);
    for (const r of report.rows) {
      expect(r.frames).toBe(2);
      for (const t of ['0.3', '0.5', '0.7'] as const) {
        expect(r.ap[t]).toBeGreaterThanOrEqual(0);
        expect(r.ap[t]).toBeLessThanOrEqual(1);
      }
      expect(r.gt).toBeGreaterThan(0);
      expect(r.detections).toBeGreaterThan(0);
      expect(r.pr.map((p) => p.iou)).toEqual([0.3, 0.5, 0.7]);
      expect(r.latency.total.median).toBeGreaterThan(0);
      expect(r.latency.total.p95).toBeGreaterThanOrEqual(r.latency.total.median);
      expect(r.latency['warp+fuse+head'].n).toBe(2);
      expect(r.byUsedTypes.reduce((a, u) => a + u.frames, 0)).toBe(2);
    }
    const row = (combo: string, fusion: string, dtype: string, keep: number) =>
      report.rows.find((r) => r.combo.join(',') === combo && r.fusion === fusion && r.dtype === dtype && r.keep === keep)!;
    const dense32 = row('m1,m3', 'pyramid', 'float32', 1);
    expect(dense32.bytes.mean).toBeGreaterThan(0);
    expect(dense32.bytes.log2).toBeCloseTo(Math.log2(dense32.bytes.mean), 9);
    // int8 is a quarter of float32, and half the cells about half the bytes (plus a mask).
    expect(row('m1,m3', 'pyramid', 'int8', 1).bytes.mean).toBeLessThan(dense32.bytes.mean / 3);
    expect(row('m1,m3', 'pyramid', 'float32', 0.5).bytes.mean).toBeLessThan(dense32.bytes.mean * 0.6);
    expect(row('m1,m3', 'none', 'float32', 1).bytes.mean).toBe(0);
    expect(row('m1,m3', 'none', 'float32', 1).bytes.log2).toBeNull();
    expect(formatTable(report).split('\n')).toHaveLength(2 + report.rows.length);
  });

  it('a finished run folder carries no INCOMPLETE marker', async () => {
    expect(await isIncompleteRun(path.join(dir, 'run'))).toBe(false);
  });

  it('writes run.json as the viewer contract says', async () => {
    const run = JSON.parse(await fs.readFile(path.join(dir, 'run', 'run.json'), 'utf8'));
    expect(run).toMatchObject({
      version: 1,
      data: path.resolve(data),
      split: 'test',
      profile: 'small',
      types: ['m1'],
      combos: COMBOS,
      fusion: [...FUSION],
      dtype: 'float32',
      device: 'cpu',
      provider: 'cpu',
      weights: null,
      fusionTrust: {},
      poseNoise: [0.2, 0.2, 0.2],
      latency: 1,
      drop: 0.3,
      seed: 4,
    });
    expect(path.isAbsolute(run.data)).toBe(true);
    expect(new Date(run.createdAt).toISOString()).toBe(run.createdAt);
  });

  it('writes one frames.jsonl line per frame × combination × configuration, boxes scored at IoU 0.5', async () => {
    expect(lines).toHaveLength(2 * report.rows.length);
    const ds = await openDataset(data);
    for (const l of lines) {
      expect(Object.keys(l)).toEqual(
        expect.arrayContaining(['scenario', 'split', 'timestamp', 'egoId', 'combo', 'fusion', 'dtype', 'agents', 'detections', 'gt', 'bytes', 'times']),
      );
      expect(l.timestamp).not.toBe(path.basename(badFile, '.pcd'));
      expect(l.egoId).toBeGreaterThan(0);
      expect(l.agents[0]).toMatchObject({ id: l.egoId, type: 'm1', used: true });
      for (const d of l.detections) {
        expect(d.box).toHaveLength(7);
        expect(typeof d.tp).toBe('boolean');
        expect(d.score).toBeGreaterThan(0.005);
      }
      for (const g of l.gt) {
        expect(g.box).toHaveLength(7);
        expect(Math.abs(g.box[0])).toBeLessThanOrEqual(51.2);
        expect(Math.abs(g.box[1])).toBeLessThanOrEqual(51.2);
      }
      // Matching is one to one.
      expect(l.detections.filter((d) => d.tp).length).toBe(l.gt.filter((g) => g.matched).length);
      expect(l.times.total).toBeGreaterThan(0);
      if (l.fusion === 'none') expect(l.bytes).toBe(0);
      if (l.fusion === 'none') expect(l.agents.slice(1).every((a) => !a.used)).toBe(true);
    }
    // The GT is egoGroundTruth's, for every line of a frame.
    const first = lines[0];
    const ref = ds.frames().find((f) => f.timestamp === first.timestamp)!;
    const ego = await ds.readAgentFrame(ref, first.egoId);
    const gt = await egoGroundTruth(ds, ref, ego, SMALL_SPACE);
    expect(first.gt.map((g) => g.box.map((v) => Math.round(v * 100) / 100))).toEqual(gt.map((g) => g.box.map((v) => Math.round(v * 100) / 100)));
  });

  it('writes a self-contained HTML report with plots, and the MCAP file', async () => {
    const html = await fs.readFile(report.files.html, 'utf8');
    expect(html.startsWith('<!doctype html>')).toBe(true);
    expect((html.match(/<svg/g) ?? []).length).toBeGreaterThanOrEqual(5);
    expect(html).not.toMatch(/(src|href)\s*=\s*["']?\s*(https?:)?\/\//i);
    expect(html).not.toMatch(/<script|<link|@import|url\(/i);
    for (const text of [
      'Precision–recall',
      'AP per configuration',
      'against bandwidth',
      'Latency per stage',
      'Robustness settings',
      'σx 0.2 m',
      'Random weights',
      path.basename(badFile),
    ]) {
      expect(html).toContain(text);
    }
    const mcap = await fs.readFile(report.files.mcap!);
    expect(mcap.subarray(1, 5).toString('latin1')).toBe('MCAP');
  });
});

describe('eval pieces', () => {
  it('marks detections on GT as true positives, one to one', () => {
    const gt: { id: number; box: Box7 }[] = [
      { id: 1, box: [10, 0, -1, 1.5, 1.8, 4.5, 0] },
      { id: 2, box: [-20, 5, -1, 1.5, 1.8, 4.5, 1] },
    ];
    const det = [
      { box: [10.1, 0, -1, 1.5, 1.8, 4.5, 0] as Box7, score: 0.9 },
      { box: [10, 0.1, -1, 1.5, 1.8, 4.5, 0] as Box7, score: 0.8 }, // a duplicate: the GT is taken
      { box: [40, 40, -1, 1.5, 1.8, 4.5, 0] as Box7, score: 0.7 },
    ];
    expect(markMatches(det, gt)).toEqual({ tp: [true, false, false], matched: [true, false] });
    expect(markMatches([], gt)).toEqual({ tp: [], matched: [false, false] });
  });

  it('pose noise keeps a proper rotation and the height, and is off at σ = 0', () => {
    const pose = poseToMatrix([10, 20, 1.9, 0, 30, 0]);
    let k = 0;
    const next = () => ((k = (k * 7 + 3) % 11) + 0.5) / 11;
    expect(Array.from(noisyPose(pose, [0, 0, 0], next))).toEqual(Array.from(pose).map((v) => expect.closeTo(v, 12)));
    const n = noisyPose(pose, [1, 1, 5], next);
    expect(n[11]).toBe(pose[11]);
    for (let a = 0; a < 3; a++)
      for (let b = 0; b < 3; b++) {
        expect(n[a] * n[b] + n[4 + a] * n[4 + b] + n[8 + a] * n[8 + b]).toBeCloseTo(a === b ? 1 : 0, 12);
      }
    expect(Math.hypot(n[3] - pose[3], n[7] - pose[7])).toBeGreaterThan(0);
  });

  it('sparse messages keep the strongest cells', () => {
    const grid = { xMin: 0, xMax: 4, yMin: 0, yMax: 1, cellSize: 1, width: 4, height: 1, channels: 2 };
    // Cell strength = max |feature| over channels: 0.1, 3, 0.5, 2.
    const f = Float32Array.from([0.1, -3, 0.2, 1, 0, 0.5, -0.4, 2]);
    expect(Array.from(strongestCellsMask(f, grid, 0.5))).toEqual([0, 1, 0, 1]);
    expect(Array.from(strongestCellsMask(f, grid, 1))).toEqual([1, 1, 1, 1]);
    expect(() => strongestCellsMask(f, grid, 0)).toThrow(/keep fraction/);
  });

  it('percentile is nearest-rank', () => {
    expect(percentile([5, 1, 4, 2, 3], 95)).toBe(5);
    expect(percentile([1, 2, 3, 4], 50)).toBe(2);
  });

  it('parses the command line with clear errors', () => {
    const p = parseEvalArgs([
      '--data',
      'x',
      '--combos',
      'm1;m1,m3',
      '--fusion',
      'pyramid,late',
      '--dtypes',
      'float32,int8',
      '--pose-noise',
      '0.2,0.2,0.2',
      '--random-weights',
    ]);
    if (p === 'help') throw new Error('unexpected help');
    expect(p.options.combos).toEqual([['m1'], ['m1', 'm3']]);
    expect(p.options.fusion).toEqual(['pyramid', 'late']);
    expect(p.options.poseNoise).toEqual([0.2, 0.2, 0.2]);
    expect(p.options.weights).toBeNull();
    expect(() => parseEvalArgs(['--data', 'x', '--pose-noise', '0.2,a,1'])).toThrow(/--pose-noise: "a" is not a number/);
    expect(() => parseEvalArgs(['--data', 'x', '--pose-noise', '0.2,0.1'])).toThrow(/--pose-noise needs 3 values/);
    expect(() => parseEvalArgs([])).toThrow(/missing --data DIR/);
    const trusted = parseEvalArgs(['--data', 'x', '--trust', 'm2=0.3']);
    expect(trusted !== 'help' && trusted.options.trust).toEqual({ m2: 0.3 });
    const heal = parseEvalArgs(['--data', 'x', '--trust', 'none']);
    expect(heal !== 'help' && heal.options.trust).toBeNull();
    expect(() => parseEvalArgs(['--data', 'x', '--trust', 'm2=a'])).toThrow(/--trust: expected TYPE=T/);
    expect(() => parseEvalArgs(['--data', 'x', '--latency', '1.5'])).toThrow(/--latency must be an integer in \[0, 1000\] \(got "1.5"\)/);
  });
});

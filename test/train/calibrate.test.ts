// Fusion trust and `heal calibrate` on a copy of the shared generated world (LiDAR types, random weights). The
// calibration encodes each scene once and fuses it under every trust, outside the message path;
// its AP at trust 1 must be heal eval's pyramid AP and at trust 0 the ego alone's, on the same
// frames, with a corrupted frame skipped by both.

import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { WORLD_TIMEOUT_MS, copySplit } from '../helpers/world.ts';
import { openDataset } from '../../datasets/open.ts';
import { SMALL_SPACE } from '../../perception/space.ts';
import { loadRegistry } from '../../perception/registry.ts';
import { initWeights, loadWeights, saveWeights, type Weights } from '../../models/weights.ts';
import { agentNetwork } from '../../perception/encoders/agent.ts';
import { CollabPipeline, egoNetworkFor } from '../../fusion/pipeline.ts';
import { calibrate, chooseTrust, formatCalibration, type CalibrateRecord } from '../../train/calibrate.ts';
import { evaluate } from '../../eval/evaluate.ts';
import type { EvalReport } from '../../eval/contracts.ts';
import { trustFromWeights, withTrust, formatTrust } from '../../fusion/trust.ts';
import { parseCalibrateArgs } from '../../cli/calibrate.ts';

let dir = '';
let data = '';
let weightsFile = '';
let badFile = '';
let result: Awaited<ReturnType<typeof calibrate>>;
let report: EvalReport;
const SCORE = 0.005;
const GRID = [0, 1, 0.5];

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'heal-calibrate-'));
  // The shared world's test scenario, copied: a file of it is corrupted below.
  data = await copySplit('test', path.join(dir, 'data'));
  const registry = await loadRegistry();
  const weights: Weights = new Map(initWeights(egoNetworkFor(SMALL_SPACE), 3));
  for (const t of ['m1', 'm3']) for (const [k, v] of initWeights(agentNetwork(registry.profile(t, 'small').network, SMALL_SPACE), 3)) weights.set(k, v);
  weightsFile = path.join(dir, 'random.bin');
  await saveWeights(weightsFile, weights, { seed: 3 });

  // A partner's 32-beam scan of the middle frame is cut short: both runs must skip that frame.
  const ds = await openDataset(data);
  const ref = ds.frames()[1];
  badFile = path.join(data, ref.split, ref.scenario, String(ref.agentIds[1]), `${ref.timestamp}_32.pcd`);
  const bytes = await fs.readFile(badFile);
  await fs.writeFile(badFile, bytes.subarray(0, Math.floor(bytes.length / 2)));

  result = await calibrate({
    data,
    weightsFiles: [weightsFile],
    types: ['m3'],
    base: 'm1',
    split: 'test',
    grid: GRID,
    device: 'cpu',
    profile: 'small',
    scoreThreshold: SCORE,
    out: path.join(dir, 'cal'),
    command: 'test',
  });
  report = await evaluate({
    data,
    split: 'test',
    combos: [['m1', 'm3', 'm3', 'm3', 'm3']],
    fusion: ['pyramid', 'none'],
    dtypes: ['float32'],
    keep: [1],
    device: 'cpu',
    profile: 'small',
    weights: weightsFile,
    poseNoise: null,
    latency: 0,
    drop: 0,
    seed: 0,
    out: path.join(dir, 'eval'),
    scoreThreshold: SCORE,
  });
}, WORLD_TIMEOUT_MS);

afterAll(async () => {
  if (dir) await fs.rm(dir, { recursive: true, force: true });
});

describe('heal calibrate', () => {
  it('scores every trust of the grid on the same frames as heal eval, skipping the corrupted one (random weights)', async () => {
    const { record } = result;
    expect(record.frames).toEqual({ total: 3, evaluated: 2, failed: 1 });
    expect(record.failures[0].file).toBe(badFile);
    expect(report.frames).toEqual({ total: 3, evaluated: 2, failed: 1 });
    expect(record.grid).toEqual([1, 0.5, 0]);
    const rows = record.types.m3.rows;
    expect(rows.map((r) => r.trust)).toEqual([1, 0.5, 0]);
    const pyramid = report.rows.find((r) => r.fusion === 'pyramid')!;
    const alone = report.rows.find((r) => r.fusion === 'none')!;
    expect(pyramid.detections).toBeGreaterThan(0);
    for (const t of ['0.3', '0.5', '0.7'] as const) {
      expect(rows[0].ap[t]).toBeCloseTo(pyramid.ap[t], 6);
      expect(rows[2].ap[t]).toBeCloseTo(alone.ap[t], 3);
    }
    expect(rows[0].detections).toBe(pyramid.detections);
    expect(rows[2].detections).toBe(alone.detections);
    // The random partner does change the boxes, so the rows above can tell trust 1 from trust 0.
    expect(pyramid.detections).not.toBe(alone.detections);
    expect(formatCalibration(record)).toMatch(/m1\+m3/);
    const page = await fs.readFile(result.pageFile, 'utf8');
    expect(page).toMatch(/<svg[^>]*>/);
    expect(page).toContain('m1 ego + m3 partners');
  });

  it('writes the chosen trust into the weights, and every command that loads them uses it (random weights)', async () => {
    const { record } = result;
    expect(record.types.m3.trust).toBe(chooseTrust(record.types.m3.rows));
    const { weights, meta } = await loadWeights(result.weightsFile);
    expect(trustFromWeights(weights)).toEqual({ m3: record.types.m3.trust });
    expect(meta.seed).toBe(3);
    const original = (await loadWeights(weightsFile)).weights;
    for (const [k, v] of original) expect(weights.get(k)!.data).toEqual(v.data);
    const saved = JSON.parse(await fs.readFile(result.recordFile, 'utf8')) as CalibrateRecord;
    expect(saved.fusionTrust).toEqual({ m3: record.types.m3.trust });
    const registry = await loadRegistry();
    const p = await CollabPipeline.create({ space: SMALL_SPACE, registry, device: 'cpu', weightsFile: result.weightsFile });
    expect(p.trustOf('m3')).toBe(record.types.m3.trust);
    expect(p.trustOf('m1')).toBe(1);
    const heal = await CollabPipeline.create({ space: SMALL_SPACE, registry, device: 'cpu', weightsFile: result.weightsFile, trust: null });
    expect(heal.trust).toEqual({});
    const over = await CollabPipeline.create({ space: SMALL_SPACE, registry, device: 'cpu', weightsFile: result.weightsFile, trust: { m3: 0.25 } });
    expect(over.trustOf('m3')).toBe(0.25);
  });

  it('writes nothing when it cannot calibrate', async () => {
    const out = path.join(dir, 'cal-none');
    await expect(
      calibrate({
        data,
        weightsFiles: [weightsFile],
        types: ['m3'],
        base: 'm1',
        split: 'train',
        grid: GRID,
        device: 'cpu',
        profile: 'small',
        out,
      }),
    ).rejects.toThrow(/no frames in split "train"/);
    await expect(fs.stat(out)).rejects.toThrow(/ENOENT/);
  });
});

describe('fusion trust', () => {
  it('chooses the best AP@0.5, and the larger trust between equals', () => {
    const ap = (a: number) => ({ '0.3': 0, '0.5': a, '0.7': 0 });
    expect(
      chooseTrust([
        { trust: 1, ap: ap(0.2) },
        { trust: 0.3, ap: ap(0.25) },
        { trust: 0, ap: ap(0.1) },
      ]),
    ).toBe(0.3);
    expect(
      chooseTrust([
        { trust: 0.3, ap: ap(0.25) },
        { trust: 0.5, ap: ap(0.25) },
        { trust: 0, ap: ap(0.25) },
      ]),
    ).toBe(0.5);
  });

  // heal eval --trust is parsed by the CLI (test/cli/args.test.ts).
  it('formats trusts, leaving out the types at 1', () => {
    expect(formatTrust({ m2: 0.3, m3: 1 })).toBe('m2 0.3');
    expect(formatTrust({})).toMatch(/HEAL's rule/);
  });

  it('keeps trusts as one-number tensors and names the file and tensor of a bad one', () => {
    const w = withTrust(new Map(), { m2: 0.3 });
    expect(trustFromWeights(w)).toEqual({ m2: 0.3 });
    w.set('trust.m4', { shape: [2], data: Float32Array.of(1, 1) });
    expect(() => trustFromWeights(w, 'x.bin')).toThrow(/x\.bin.*trust\.m4.*shape \[2\]/);
    w.set('trust.m4', { shape: [1], data: Float32Array.of(-1) });
    expect(() => trustFromWeights(w, 'x.bin')).toThrow(/trust\.m4.*-1/);
  });

  it('heal calibrate checks its arguments', () => {
    expect(() => parseCalibrateArgs(['--data', 'd', '--out', 'o'])).toThrow(/--weights/);
    expect(() => parseCalibrateArgs(['--data', 'd', '--weights', 'w', '--out', 'o', '--grid', '1,x'])).toThrow(/--grid: "x"/);
    const o = parseCalibrateArgs(['--data', 'd', '--weights', 'w', '--out', 'o']);
    expect(o).not.toBe('help');
    if (o !== 'help') {
      expect(o.split).toBe('train');
      expect(o.types).toEqual(['m2', 'm3', 'm4']);
    }
  });
});

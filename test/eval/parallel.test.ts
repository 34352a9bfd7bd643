// heal eval --jobs N and --shard I/N + merge on the shared test world (shipped weights): the
// parallel and sharded runs write what the single run writes (frames.jsonl apart from the stage
// times, AP, the report apart from timings), a worker that dies fails only its frame, and a merge
// refuses missing, duplicated and foreign shards, naming them.

import { describe, it, expect, beforeAll, afterAll, afterEach } from 'vitest';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { WORLD_TIMEOUT_MS, testWorld } from '../helpers/world.ts';
import { evaluate, prepareEval } from '../../eval/evaluate.ts';
import { evaluateShard, mergeShards, shardIndices } from '../../eval/shards.ts';
import { prestartWorkers, spareWorkers, stopSpareWorkers, workerInit } from '../../eval/pool.ts';
import type { EvalOptions, EvalReport } from '../../eval/contracts.ts';
import { shippedWeights } from '../../models/shipped.ts';
import { readRun } from '../../viewer/run.ts';
import { parseEvalArgs } from '../../cli/eval.ts';

let dir = '';
let base: EvalOptions;
let single: EvalReport;
let singleFrames = '';

/** frames.jsonl without the stage times, the one thing in it that differs between two runs. */
async function framesWithoutTimes(report: EvalReport): Promise<string> {
  return (await fs.readFile(report.files.frames, 'utf8')).replace(/"times":\{[^}]*\},/g, '');
}

/** report.json's rows without latency: AP, PR curves, counts, bytes. */
function rowsWithoutTimes(report: EvalReport) {
  return report.rows.map(({ latency: _latency, ...r }) => r);
}

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'heal-parallel-'));
  base = {
    data: await testWorld(),
    split: 'all',
    combos: [['m1', 'm3']],
    fusion: ['pyramid', 'late'],
    dtypes: ['float32'],
    keep: [1],
    device: 'cpu',
    profile: 'small',
    weights: shippedWeights('small') ?? null,
    poseNoise: null,
    latency: 0,
    drop: 0,
    seed: 0,
    out: path.join(dir, 'single'),
  };
  single = await evaluate(base);
  singleFrames = await framesWithoutTimes(single);
}, WORLD_TIMEOUT_MS);

afterAll(async () => {
  if (dir) await fs.rm(dir, { recursive: true, force: true });
});

afterEach(() => {
  delete process.env.HEAL_TEST_WORKER_EXIT;
});

describe('shards', () => {
  it('deals frames out scenario by scenario: every shard gets its share of every scenario', () => {
    const frames = [...Array(5)].map(() => ({ split: 'test', scenario: 'a' })).concat([...Array(3)].map(() => ({ split: 'test', scenario: 'b' })));
    const shards = [0, 1, 2].map((index) => shardIndices(frames, { index, count: 3 }));
    expect(shards).toEqual([
      [0, 3, 6],
      [1, 4, 7],
      [2, 5],
    ]);
    expect(shards.flat().sort((a, b) => a - b)).toEqual([...Array(8).keys()]);
  });

  it('4 shards run one after another and merged equal the single run: frames.jsonl, AP, report', async () => {
    expect(single.frames).toEqual({ total: 9, evaluated: 9, failed: 0 });
    expect(single.rows[0].detections).toBeGreaterThan(0);
    const setup = await prepareEval(base);
    for (let index = 0; index < 4; index++) {
      const r = await evaluateShard({ ...base, out: path.join(dir, 'shards', `s${index}`) }, { index, count: 4 });
      expect(r.frames).toBe(shardIndices(setup.frames, { index, count: 4 }).length);
    }
    const merged = await mergeShards([path.join(dir, 'shards')], path.join(dir, 'merged'));
    expect(await framesWithoutTimes(merged)).toBe(singleFrames);
    expect(rowsWithoutTimes(merged)).toEqual(rowsWithoutTimes(single));
    for (const [k, row] of merged.rows.entries()) expect(row.ap).toStrictEqual(single.rows[k].ap);
    expect(merged.frames).toEqual(single.frames);
    const { createdAt: _a, ...mergedRun } = merged.run;
    const { createdAt: _b, ...singleRun } = single.run;
    expect(mergedRun).toEqual(singleRun);
    // The merged run opens in heal view with every frame.
    const run = await readRun(path.join(dir, 'merged'));
    expect(run.warnings).toEqual([]);
    expect(run.frames.size).toBe(9);
  });

  it('refuses a missing, a duplicated and a foreign shard, naming it', async () => {
    const s = (i: number) => path.join(dir, 'shards', `s${i}`);
    await expect(mergeShards([s(0), s(1), s(3)], path.join(dir, 'm1'))).rejects.toThrow(/shard 2\/4 is missing/);
    await expect(mergeShards([s(0), s(1), s(2), s(3), s(1)], path.join(dir, 'm2'))).rejects.toThrow(
      new RegExp(`shard 1/4 is given 2 times: ${s(1)}, ${s(1)}`.replace(/[/\\]/g, '\\$&')),
    );
    // Shard 2 of an evaluation with another score threshold, put in place of the real one.
    const foreign = path.join(dir, 'foreign');
    await evaluateShard({ ...base, scoreThreshold: 0.3, out: foreign }, { index: 2, count: 4 });
    const err = await mergeShards([s(0), s(1), foreign, s(3)], path.join(dir, 'm3')).catch((e: Error) => e);
    expect(String(err)).toContain(`${foreign}: shard of another evaluation`);
    expect(String(err)).toContain('scoreThreshold 0.3');
    expect(String(err)).toContain('shard 2/4 is missing');
    // A shard of a 2-way split is foreign to a 4-way one.
    const half = path.join(dir, 'half');
    await evaluateShard({ ...base, out: half }, { index: 1, count: 2 });
    await expect(mergeShards([s(0), s(1), s(2), s(3), half], path.join(dir, 'm4'))).rejects.toThrow(
      new RegExp(`${half.replace(/[/\\]/g, '\\$&')}: shard of another evaluation.*shards 2`),
    );
    // A shard folder whose job has not finished (no shard.json) is named.
    const unfinished = path.join(dir, 'unfinished');
    await fs.mkdir(unfinished);
    await expect(mergeShards([s(0), s(1), s(2), unfinished], path.join(dir, 'm5'))).rejects.toThrow(`${unfinished}: not a finished shard`);
  });
});

describe('heal eval --jobs', () => {
  it('--jobs 2 (threads) writes what one process writes', async () => {
    const r = await evaluate({ ...base, jobs: 2, workerKind: 'thread', out: path.join(dir, 'jobs2') });
    expect(await framesWithoutTimes(r)).toBe(singleFrames);
    expect(rowsWithoutTimes(r)).toEqual(rowsWithoutTimes(single));
  });

  it('--jobs 2 --workers process: a worker that dies has its frame retried once, and the run is the same', async () => {
    const setup = await prepareEval(base);
    const ref = setup.frames[4];
    process.env.HEAL_TEST_WORKER_EXIT = `${ref.split}/${ref.scenario}/${ref.timestamp}`;
    const logs: string[] = [];
    const r = await evaluate({ ...base, jobs: 2, workerKind: 'process', out: path.join(dir, 'jobs2p'), log: (l) => logs.push(l) });
    expect(logs.join('\n')).toContain(`died (exit code 70) on ${ref.split}/${ref.scenario} ${ref.timestamp}; that frame is retried once`);
    expect(await framesWithoutTimes(r)).toBe(singleFrames);
    expect(rowsWithoutTimes(r)).toEqual(rowsWithoutTimes(single));
  });

  it('workers started ahead of the run with its init (prestartWorkers, as heal eval does) are the ones it uses; one for another run is not, and is stopped', async () => {
    const o: EvalOptions = { ...base, jobs: 2, workerKind: 'process', out: path.join(dir, 'jobs2pre') };
    await prestartWorkers(2, 'process', workerInit(o));
    // One started for another evaluation is not taken.
    await prestartWorkers(1, 'process', workerInit({ ...o, seed: 1 }));
    expect(spareWorkers()).toBe(3);
    const r = await evaluate(o);
    expect(spareWorkers()).toBe(1);
    expect(await framesWithoutTimes(r)).toBe(singleFrames);
    await stopSpareWorkers();
    expect(spareWorkers()).toBe(0);
  });

  it('heal eval --jobs 2: the workers it prestarts from its command line are the ones the run takes', async () => {
    const parsed = parseEvalArgs(['--data', base.data, '--split', 'all', '--types', 'm1,m3', '--jobs', '2', '--out', path.join(dir, 'cli-jobs2')]);
    if (parsed === 'help') throw new Error('unexpected help');
    await prestartWorkers(2, 'process', workerInit(parsed.options));
    await evaluate({ ...parsed.options, log: () => {}, progress: () => ({ tick: () => {}, stop: () => {} }) });
    expect(spareWorkers()).toBe(0);
  });

  it('a frame whose worker dies twice fails alone, named; the other frames are scored (threads)', async () => {
    const setup = await prepareEval(base);
    const ref = setup.frames[4];
    process.env.HEAL_TEST_WORKER_EXIT = `${ref.split}/${ref.scenario}/${ref.timestamp},always`;
    const r = await evaluate({ ...base, jobs: 2, workerKind: 'thread', out: path.join(dir, 'jobs2dies') });
    expect(r.frames).toEqual({ total: 9, evaluated: 8, failed: 1 });
    expect(r.failures).toEqual([
      {
        split: ref.split,
        scenario: ref.scenario,
        timestamp: ref.timestamp,
        file: '',
        reason: 'the evaluation workers running it died twice (last: exit code 70)',
      },
    ]);
    const others = singleFrames.split('\n').filter((l) => !(l.includes(`"scenario":"${ref.scenario}"`) && l.includes(`"timestamp":"${ref.timestamp}"`)));
    expect(await framesWithoutTimes(r)).toBe(others.join('\n'));
  });
});

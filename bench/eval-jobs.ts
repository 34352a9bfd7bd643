// `heal eval --jobs N` against --jobs 1, side by side in one process: frames per second of the whole
// evaluation (workers' start included) on the test split of a 40-scenario world (the world of
// `heal generate --scenarios 40 --frames 5 --seed 11 --no-shadows --pcd binary_compressed`: 8 test
// scenarios, 40 frames), types m1-m4 in pyramid fusion with the shipped weights; and whether each
// run wrote what --jobs 1 wrote (frames.jsonl apart from stage times, and every AP).
//
// HEAL_BENCH_DATA=DIR evaluates that world instead of generating the test split here (cached);
// HEAL_BENCH_JOBS=1,2,4 picks the job counts (default 1,2). The largest also runs as processes.
// --jobs 1 runs first and last with onnxruntime's own thread count, and once with one thread per
// session (as each worker has); the fastest of the three is the baseline.

import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { cachedWorld, type WorldOptions } from '../datasets/synthetic/cached.ts';
import { evaluate } from '../eval/evaluate.ts';
import type { EvalOptions, EvalReport, WorkerKind } from '../eval/contracts.ts';
import { shippedWeights } from '../models/shipped.ts';

export const W40_TEST: WorldOptions = {
  scenarios: 40,
  frames: 5,
  seed: 11,
  camera: { width: 400, height: 300 },
  splits: ['test'],
  pcdFormat: 'binary_compressed',
  shadows: false,
};

const load = () => os.loadavg()[0].toFixed(2);

export async function run(): Promise<Record<string, number | string | boolean>> {
  const data = process.env.HEAL_BENCH_DATA ?? (await cachedWorld(W40_TEST, { name: 'bench-w40-test' })).dir;
  const jobsList = (process.env.HEAL_BENCH_JOBS ?? '1,2').split(',').map(Number);
  const most = Math.max(...jobsList);
  const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'heal-bench-jobs-'));
  const base: EvalOptions = {
    data,
    split: 'test',
    combos: [['m1', 'm2', 'm3', 'm4']],
    fusion: ['pyramid'],
    dtypes: ['float32'],
    keep: [1],
    device: 'cpu',
    profile: 'small',
    weights: shippedWeights('small') ?? null,
    poseNoise: null,
    latency: 0,
    drop: 0,
    seed: 0,
    out: '',
  };
  const out: Record<string, number | string | boolean> = { data, cores: os.availableParallelism(), load_before: load() };
  const withoutTimes = async (r: EvalReport) => (await fs.readFile(r.files.frames, 'utf8')).replace(/"times":\{[^}]*\},/g, '');
  const once = async (name: string, jobs: number, kind: WorkerKind, threads?: number) => {
    const t0 = performance.now();
    const r = await evaluate({ ...base, jobs, workerKind: kind, threads, out: path.join(tmp, name) });
    const s = (performance.now() - t0) / 1000;
    process.stderr.write(`  ${name}: ${r.frames.evaluated} frames, ${s.toFixed(1)} s, load ${load()}\n`);
    return { r, s, frames: await withoutTimes(r) };
  };
  try {
    const first = await once('jobs1', 1, 'thread');
    out.frames = first.r.frames.evaluated;
    out['AP@0.5'] = first.r.rows[0].ap['0.5'];
    const runs: { name: string; jobs: number; s: number; same: boolean }[] = [];
    for (const jobs of jobsList.filter((j) => j > 1)) {
      for (const kind of jobs === most ? (['thread', 'process'] as const) : (['thread'] as const)) {
        const name = `jobs${jobs}.${kind}`;
        const r = await once(name, jobs, kind);
        const same = r.frames === first.frames && JSON.stringify(r.r.rows.map((x) => x.ap)) === JSON.stringify(first.r.rows.map((x) => x.ap));
        runs.push({ name, jobs, s: r.s, same });
        out[`${name}.load_after`] = load();
      }
    }
    const last = await once('jobs1.again', 1, 'thread');
    // One onnxruntime thread per session in one process: what each worker runs with.
    const single = await once('jobs1.threads1', 1, 'thread', 1);
    const baseline = Math.min(first.s, last.s, single.s);
    out['jobs1.seconds'] = +first.s.toFixed(2);
    out['jobs1.again.seconds'] = +last.s.toFixed(2);
    out['jobs1.threads1.seconds'] = +single.s.toFixed(2);
    out['jobs1.frames_per_s'] = +(first.r.frames.total / baseline).toFixed(3);
    for (const r of runs) {
      out[`${r.name}.seconds`] = +r.s.toFixed(2);
      out[`${r.name}.frames_per_s`] = +(first.r.frames.total / r.s).toFixed(3);
      out[`${r.name}.speedup`] = +(baseline / r.s).toFixed(3);
      out[`${r.name}.same_frames_and_AP`] = r.same;
    }
    out.load_after = load();
    out.note =
      'frames_per_s: frames over the whole evaluation, workers starting included; speedup against the fastest of the three --jobs 1 runs (twice with the default onnxruntime threads, once with 1); workers use 1 intra-op thread per session; load: 1-minute load average';
  } finally {
    await fs.rm(tmp, { recursive: true, force: true });
  }
  return out;
}

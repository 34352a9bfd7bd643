// `heal eval --jobs N` against --jobs 1, side by side in one run: frames per second of the whole
// `heal eval` command as a user runs it (node cli/heal.js eval …: start, module loading, workers'
// start, frames, report), on the test split of a 40-scenario world (the world of `heal generate
// --scenarios 40 --frames 5 --seed 11 --no-shadows --pcd binary_compressed`: 8 test scenarios,
// 40 frames), types m1-m4 in pyramid fusion with the shipped weights; and whether each run wrote
// what --jobs 1 wrote (frames.jsonl apart from stage times, and every AP).
//
// HEAL_BENCH_DATA=DIR evaluates that world instead of generating the test split here (cached);
// HEAL_BENCH_JOBS=1,2,4 picks the job counts (default 1,2); the largest also runs as threads.
// Every configuration runs HEAL_BENCH_ROUNDS times (default 2), the rounds interleaved so that a
// change of load touches all alike; each configuration's fastest round counts. --jobs 1 runs with
// onnxruntime's own thread count and with one thread per session (as each worker has); the faster
// of the two is the baseline.

import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { cachedWorld, type WorldOptions } from '../datasets/synthetic/cached.ts';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const W40_TEST: WorldOptions = {
  scenarios: 40,
  frames: 5,
  seed: 11,
  camera: { width: 400, height: 300 },
  splits: ['test'],
  pcdFormat: 'binary_compressed',
  shadows: false,
};

const HEAL = fileURLToPath(new URL('../cli/heal.js', import.meta.url));

const load = () => os.loadavg()[0].toFixed(2);

export async function run(): Promise<Record<string, number | string | boolean>> {
  const data = process.env.HEAL_BENCH_DATA ?? (await cachedWorld(W40_TEST, { name: 'bench-w40-test' })).dir;
  const jobsList = (process.env.HEAL_BENCH_JOBS ?? '1,2').split(',').map(Number);
  const rounds = Number(process.env.HEAL_BENCH_ROUNDS ?? 2);
  const most = Math.max(...jobsList);
  const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'heal-bench-jobs-'));
  const configs: { name: string; args: string[] }[] = [
    { name: 'jobs1', args: ['--jobs', '1'] },
    { name: 'jobs1.threads1', args: ['--jobs', '1', '--threads', '1'] },
  ];
  for (const jobs of jobsList.filter((j) => j > 1)) {
    configs.push({ name: `jobs${jobs}.process`, args: ['--jobs', String(jobs)] });
    if (jobs === most) configs.push({ name: `jobs${jobs}.thread`, args: ['--jobs', String(jobs), '--workers', 'thread'] });
  }
  const out: Record<string, number | string | boolean> = { data, cores: os.availableParallelism(), rounds, load_before: load() };
  const best = new Map<string, number>();
  const results = new Map<string, string>();
  try {
    for (let round = 0; round < rounds; round++) {
      for (const c of configs) {
        const dir = path.join(tmp, `${c.name}-${round}`);
        const r = await runHealCommand(['eval', '--data', data, '--split', 'test', '--types', 'm1,m2,m3,m4', '--out', dir, ...c.args]);
        if (r.code !== 0) throw new Error(`heal eval ${c.args.join(' ')} failed (exit ${r.code}): ${r.err.trim().split('\n').at(-1)}`);
        process.stderr.write(`  ${c.name} round ${round + 1}: ${r.seconds.toFixed(1)} s, load ${load()}\n`);
        best.set(c.name, Math.min(best.get(c.name) ?? Infinity, r.seconds));
        const frames = (await fs.readFile(path.join(dir, 'frames.jsonl'), 'utf8')).replace(/"times":\{[^}]*\},/g, '');
        const report = JSON.parse(await fs.readFile(path.join(dir, 'report.json'), 'utf8')) as { rows: { ap: unknown }[]; frames: { total: number } };
        results.set(c.name, frames + JSON.stringify(report.rows.map((x) => x.ap)));
        out.frames = report.frames.total;
        out['AP@0.5'] = (report.rows[0].ap as Record<string, number>)['0.5'];
      }
    }
    const frames = Number(out.frames);
    const baseline = Math.min(best.get('jobs1')!, best.get('jobs1.threads1')!);
    out['jobs1.frames_per_s'] = +(frames / baseline).toFixed(3);
    for (const c of configs) {
      const s = best.get(c.name)!;
      out[`${c.name}.seconds`] = +s.toFixed(2);
      if (c.name.startsWith('jobs1')) continue;
      out[`${c.name}.frames_per_s`] = +(frames / s).toFixed(3);
      out[`${c.name}.speedup`] = +(baseline / s).toFixed(3);
      out[`${c.name}.same_frames_and_AP`] = results.get(c.name) === results.get('jobs1');
    }
    out.load_after = load();
    out.note =
      'seconds: wall time of the whole `heal eval` command, fastest of the rounds; speedup against the faster --jobs 1 (onnxruntime threads or 1); workers use 1 intra-op thread per session; load: 1-minute load average';
  } finally {
    await fs.rm(tmp, { recursive: true, force: true });
  }
  return out;
}

/** `node cli/heal.js ARGS`, as a user runs it. */
function runHealCommand(args: string[]): Promise<{ code: number | null; err: string; seconds: number }> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [HEAL, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, err, seconds: (performance.now() - t0) / 1000 }));
  });
}

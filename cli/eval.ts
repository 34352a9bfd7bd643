// `heal eval`: evaluate a dataset split. AP table, bandwidth and latency in the terminal; run.json,
// frames.jsonl, report.json and a self-contained report.html in the run folder; optionally MCAP.

import { readdirSync } from 'node:fs';
import * as path from 'node:path';
import { DEVICES } from '../models/runtime.ts';
import { shippedCodecs, shippedWeights } from '../models/shipped.ts';
import { formatSecurity, SIGNING_OPTIONS } from './keys.ts';
import { parseLink } from '../eval/link.ts';
import { MERGE_RULES } from '../models/weights.ts';
import { SPACES, spaceByName } from '../perception/space.ts';
import { prestartWorkers, stopSpareWorkers, workerInit } from '../eval/pool.ts';
import { EVAL_DTYPES, EVAL_FUSIONS, defaultRunDir, type EvalOptions, type EvalReport, type ShardSpec } from '../eval/contracts.ts';
import { formatTable, formatLatency, formatLinkTable } from '../eval/table.ts';
import { progress } from './progress.ts';
import { parseShard } from './shard.ts';
import { formatTrust, type Trust } from '../fusion/trust.ts';
import {
  UsageError,
  choice,
  choices,
  command,
  flag,
  int,
  list,
  number,
  numbers,
  option,
  parseCommand,
  readList,
  readMap,
  real,
  repeat,
  runCommand,
  string,
  text,
  type Parsed,
  dirs,
  outFile,
} from './args.ts';

/** --trust: TYPE=T pairs over the weight file's trusts, or "none" for HEAL's rule (null). */
export const trustOption = option((given, flag): Trust | null => (given.trim() === 'none' ? null : readMap(real({ min: 0 }), given, flag, ['TYPE', 'T'])), {
  arg: 'TYPE=T,...',
  help: 'fusion trust per type over the weight file\'s (heal calibrate fits them), e.g. m2=0.3,m4=0.3; "none" is HEAL\'s rule (every type 1)',
});

export const EVAL = command({
  name: 'eval',
  usage: '--data DIR [options]',
  about: `Evaluates collaborative perception on a dataset split (generated, OPV2V-H, V2XSet, DAIR-V2X-C):
AP@0.3/0.5/0.7 with HEAL's protocol per agent-type combination and fusion mode, bytes on the wire,
per-stage latency. Writes RUNDIR/run.json, frames.jsonl, report.json and report.html.
Large evaluations: --jobs N on one machine; --shard I/N per cluster task, then
\`heal eval merge SHARD... --out RUNDIR\` (see \`heal eval merge --help\`).`,
  positionals: { name: 'DIR', min: 0, max: 1 },
  options: {
    data: string({ arg: 'DIR', help: 'dataset folder (required; or give it as the one argument)' }),
    split: string({ arg: 'NAME', default: 'test', help: 'split to evaluate; "all" for every frame' }),
    types: list({ default: ['m1', 'm2', 'm3', 'm4'], help: 'agent types given to the agents in ego-first order, cycled' }),
    combos: string({ arg: '"A;B;..."', help: 'several --types lists in one run, e.g. "m1;m1,m2;m1,m3;m1,m2,m3,m4"' }),
    fusion: choices(EVAL_FUSIONS, { default: ['pyramid'], help: 'fusion mode(s); a comma list runs each' }),
    dtype: choices(EVAL_DTYPES, { defaultText: 'float32', help: 'feature dtype(s) on the wire; a comma list sweeps' }),
    dtypes: choices(EVAL_DTYPES, { help: 'the same as --dtype' }),
    codecs: string({
      arg: '"C1;C2;..."',
      help: 'message codecs, one pyramid row each, e.g. "int8+top200+deflate;learned16+int8+fg0.3" (parts: float32|float16|int8|int4, learned<R>, top<K>, fg<P>, keep<F>, max<B>, fill, deflate|brotli; or a preset: fit6500, fit1398)',
    }),
    'codec-weights': repeat({ arg: 'FILE', help: 'weight file with learned codecs (heal train-codec); default: the shipped codecs of the profile, if any' }),
    link: repeat({
      arg: 'SPEC',
      help: 'simulate the radio: a preset (dsrc, cv2x, ideal) and/or bandwidth=27Mbps,latency=20ms,loss=0.01,mtu=1398,deadline=100ms,late=use|drop; repeat for several',
    }),
    sweep: repeat({
      arg: 'KEY=V1,V2,...',
      help: 'one more link per value over the first --link (default dsrc): link.bandwidth=3,6,12,27Mbps, latency=0,100,200ms, link.loss=0,0.05,...; or pose-noise=0,0.2,0.4,0.6 (σ m and degrees on x, y, yaw): every row once per value',
    }),
    'min-agents': int({ min: 1, help: 'only frames with at least N agents, ego included (5: the ego and 4 senders)' }),
    'reuse-encodings': flag({
      help: "encode each agent once per frame for every row (codec and link sweeps); later rows' stage times then leave the encoders out",
    }),
    sparsity: numbers({ above: 0, max: 1, default: [1], help: 'fraction(s) of BEV cells senders transmit, strongest first (1 = dense), e.g. 1,0.5,0.25' }),
    device: choice(DEVICES, { arg: 'D', default: 'auto', help: 'where the networks run' }),
    profile: choice(Object.keys(SPACES), { arg: 'P', default: 'small', help: 'shared-space profile' }),
    weights: repeat({
      arg: 'FILE',
      help: "weight file: heal's or a HEAL checkpoint (.pth, with --profile heal); repeat it to merge files (see --merge-weights), the first one first; default: the shipped weights of the profile, else seeded random ones",
    }),
    'merge-weights': choice(MERGE_RULES, {
      arg: 'RULE',
      default: 'identical',
      help: 'with several --weights: identical = parameters the files share must be equal; encoders = fusion and head from the first file, only encoders and aligners from the others',
    }),
    'random-weights': flag({ help: 'use seeded random weights even when weights are shipped' }),
    trust: trustOption,
    'types-dir': dirs({ help: 'extra agent-type declarations (*.json)' }),
    'pose-noise': numbers({
      arg: 'SX,SY,SYAW',
      min: 0,
      max: 100,
      count: 3,
      help: "Gaussian noise on senders' poses: σx m, σy m, σyaw degrees (e.g. 0.2,0.2,0.2)",
    }),
    latency: int({ min: 0, max: 1000, default: 0, help: "collaborators' messages come from frame t−N of the same scenario" }),
    drop: number({ arg: 'P', min: 0, max: 1, default: 0, help: "each collaborator's message is lost with probability P, seeded" }),
    seed: int({ default: 0, help: 'seed of the noise, the drops and random weights' }),
    'score-threshold': number({ arg: 'S', min: 0, below: 1, defaultText: "0.2, HEAL's", help: 'detection score threshold' }),
    limit: int({ min: 1, help: 'evaluate only the first N frames of the split' }),
    out: string({ arg: 'RUNDIR', defaultText: 'runs/eval-<YYYYMMDD-HHMMSS>', help: 'run folder; one that is not empty needs --overwrite' }),
    overwrite: flag({ help: "write into a --out folder that is not empty, replacing an earlier run's files" }),
    mcap: outFile({ help: 'also write the scenes as MCAP (Foxglove schemas), openable in Foxglove' }),
    ...SIGNING_OPTIONS,
    jobs: int({ min: 1, default: 1, help: 'spread the frames over N workers, each with its own sessions; the result is the same as with 1' }),
    workers: choice(['process', 'thread'] as const, {
      arg: 'KIND',
      default: 'process',
      help: 'with --jobs: workers as child processes (isolated: a native crash takes only its worker) or as threads (a little faster)',
    }),
    threads: int({ min: 1, defaultText: "1 with --jobs N > 1, else onnxruntime's choice", help: 'onnxruntime intra-op threads per session' }),
    shard: string({
      arg: 'I/N',
      help: 'evaluate shard I of N (0 ≤ I < N; frames dealt out scenario by scenario) into a shard folder for `heal eval merge`; I may be auto, $SLURM_ARRAY_TASK_ID or $JOB_COMPLETION_INDEX (read here from the environment)',
    }),
  },
  exclusive: [
    ['insecure', 'keys'],
    ['types', 'combos'],
    ['dtype', 'dtypes'],
    ['weights', 'random-weights'],
    ['shard', 'mcap'],
  ],
});

/** --link and --sweep as link specs: each sweep value overrides one key of the first link (default dsrc). */
export function linksOf(links: string[], sweeps: string[]): string[] | undefined {
  const out = [...links];
  for (const sweep of sweeps) {
    if (sweep.startsWith('pose-noise=')) continue;
    const eq = sweep.indexOf('=');
    if (eq < 0) throw new UsageError(`--sweep ${sweep}: expected KEY=V1,V2,...`);
    const key = sweep
      .slice(0, eq)
      .trim()
      .replace(/^link\./, '');
    if (!['bandwidth', 'latency', 'loss', 'mtu', 'deadline'].includes(key)) {
      throw new UsageError(`--sweep ${sweep}: unknown key "${key}" (have link.bandwidth, latency, link.loss, link.mtu, link.deadline)`);
    }
    const raw = sweep
      .slice(eq + 1)
      .split(',')
      .map((v) => v.trim())
      .filter(Boolean);
    // A unit on the last value applies to all ("3,6,12,27Mbps").
    const unit = raw.at(-1)?.match(/[A-Za-z%]+$/)?.[0] ?? '';
    const base = links[0] ?? 'dsrc';
    for (const v of raw) out.push(`${base},${key}=${/[A-Za-z%]$/.test(v) ? v : v + unit}`);
  }
  const uniq = [...new Set(out)];
  try {
    for (const l of uniq) parseLink(l);
  } catch (err) {
    throw new UsageError(`--link: ${(err as Error).message}`);
  }
  return uniq.length ? uniq : undefined;
}

/** --sweep pose-noise=0,0.2,0.4,0.6: σ values (m and degrees on x, y, yaw). */
export function poseNoiseSweepOf(sweeps: string[]): number[] | undefined {
  const s = sweeps.filter((x) => x.startsWith('pose-noise='));
  if (!s.length) return undefined;
  if (s.length > 1) throw new UsageError('--sweep pose-noise=...: give it once');
  return readList(real({ min: 0 }), s[0].slice('pose-noise='.length), '--sweep pose-noise');
}

export interface ParsedEval {
  options: Omit<EvalOptions, 'log' | 'progress'>;
  /** --shard: this process evaluates one shard into a shard folder. */
  shard?: ShardSpec;
  randomWeightsReason?: string;
}

/** heal eval's options from its parsed command line. */
export function evalOptions({ values, positionals }: Parsed<typeof EVAL.options>): ParsedEval {
  const data = values.data ?? positionals[0];
  if (!data) throw new UsageError('missing --data DIR');
  if (values.data && positionals.length) throw new UsageError(`unexpected argument "${positionals[0]}"`);
  // Checked here, before any work: an earlier run must not be overwritten, nor mixed with this one, by accident.
  if (values.out !== undefined && !values.overwrite && inUse(values.out)) {
    throw new UsageError(`--out ${values.out} is not empty; give --overwrite to replace the run there, or another --out`);
  }
  const combos =
    values.combos === undefined
      ? [values.types]
      : values.combos
          .split(';')
          .filter((c) => c.trim())
          .map((c) => readList(text, c, '--combos'));
  if (!combos.length) throw new UsageError(`--combos needs at least one list of agent types (got "${values.combos}")`);
  const shard = values.shard === undefined ? undefined : parseShard(values.shard);
  // A link holds a late message over for the sender's next frame, so a scenario's frames must run in
  // order in one process; --jobs and --shard deal them out one by one.
  if ((values.link.length || values.sweep.some((x: string) => !x.startsWith('pose-noise='))) && (values.jobs > 1 || shard)) {
    throw new UsageError(
      '--link and link sweeps run with --jobs 1 and no --shard: a late message is used in the next frame of its scenario, which another worker may hold',
    );
  }
  let weights: string[] | null;
  let randomWeightsReason: string | undefined;
  if (values['random-weights']) {
    weights = null;
    randomWeightsReason = '--random-weights';
  } else if (values.weights.length) {
    weights = values.weights.map((w) => path.resolve(w));
  } else {
    const shipped = shippedWeights(values.profile);
    weights = shipped ? [shipped] : null;
    if (!weights) randomWeightsReason = `no weights are shipped for profile "${values.profile}" (models/shipped/${values.profile}/weights.bin)`;
  }
  return {
    options: {
      data,
      split: values.split,
      combos,
      fusion: values.fusion,
      dtypes: values.dtype ?? values.dtypes ?? ['float32'],
      keep: values.sparsity,
      codecs: values.codecs
        ?.split(';')
        .map((c) => c.trim())
        .filter(Boolean),
      codecWeights: values['codec-weights'].length ? values['codec-weights'].map((w) => path.resolve(w)) : shippedCodecs(values.profile),
      links: linksOf(values.link, values.sweep),
      reuseEncodings: values['reuse-encodings'],
      poseNoiseSweep: poseNoiseSweepOf(values.sweep),
      minAgents: values['min-agents'],
      device: values.device,
      profile: values.profile,
      weights: weights?.length === 1 ? weights[0] : weights,
      mergeWeights: values['merge-weights'],
      trust: values.trust,
      typesDirs: values['types-dir'],
      poseNoise: (values['pose-noise'] as [number, number, number] | undefined) ?? null,
      latency: values.latency,
      drop: values.drop,
      seed: values.seed,
      insecure: values.insecure,
      keys: values.keys,
      scoreThreshold: values['score-threshold'],
      limit: values.limit,
      out: values.out ?? (shard ? path.join('runs', `eval-shard-${shard.index}-of-${shard.count}`) : defaultRunDir()),
      mcap: values.mcap,
      jobs: values.jobs,
      workerKind: values.workers,
      threads: values.threads,
    },
    shard,
    randomWeightsReason,
  };
}

/** Whether PATH exists and is anything but an empty folder. */
function inUse(p: string): boolean {
  try {
    return readdirSync(p).length > 0;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'ENOENT';
  }
}

/** Parses heal eval's arguments (UsageError on a mistake); 'help' for -h/--help. */
export function parseEvalArgs(args: readonly string[]): ParsedEval | 'help' {
  const parsed = parseCommand(EVAL, args);
  return parsed === 'help' ? 'help' : evalOptions(parsed);
}

/** Prints the summary a user needs after a run: table, latency, provider, weights, where things are. */
export function printSummary(report: EvalReport): void {
  console.log('');
  console.log(formatTable(report));
  if (report.rows.some((r) => r.linkStats)) console.log(`\nthe link, per configuration:\n${formatLinkTable(report)}`);
  const main = report.rows[0];
  if (main) {
    console.log(`\nlatency per stage, ${main.label}:`);
    console.log(formatLatency(main));
  }
  console.log('');
  console.log(
    `frames: ${report.frames.evaluated} evaluated, ${report.frames.failed} skipped, of ${report.frames.total}; ${report.seconds.toFixed(1)} s (${report.msPerFrame.toFixed(0)} ms per collaborative pass)`,
  );
  for (const f of report.failures) console.log(`  skipped ${f.split}/${f.scenario} ${f.timestamp}: ${f.reason}`);
  console.log(`execution provider: ${report.provider}${report.fallbackReason ? ` (${report.fallbackReason})` : ''}`);
  const space = spaceByName(report.run.profile);
  const r = space.range;
  const gtRule =
    space.groundTruth === 'corners'
      ? `GT by all corners, z in [${r[2]}, ${r[5]}] m${space.maxAgents ? `, of the first ${space.maxAgents} agents` : ''}`
      : 'GT by centre';
  console.log(
    `protocol: AP at BEV IoU 0.3/0.5/0.7 of detections with score > ${report.run.scoreThreshold}; inside the ${report.run.profile} profile's range x [${r[0]}, ${r[3]}] m, y [${r[1]}, ${r[4]}] m (detections by all corners, ${gtRule})`,
  );
  console.log(`weights: ${report.run.weights ?? 'seeded random (the AP values mean nothing)'}`);
  if (report.security) console.log(`messages: ${report.run.messages}; ${formatSecurity(report.security)}`);
  console.log(`fusion trust: ${formatTrust(report.run.fusionTrust ?? {})}`);
  console.log(`report: ${report.files.html}`);
  console.log(`run folder: ${path.dirname(report.files.run)} (run.json, frames.jsonl, report.json)`);
  if (report.files.mcap) console.log(`MCAP: ${report.files.mcap} (open it in Foxglove)`);
}

/** Relative to the working folder when inside it, else absolute: what a user can paste. */
export function shownPath(p: string): string {
  const rel = path.relative(process.cwd(), p);
  return !rel ? '.' : rel.startsWith('..') || path.isAbsolute(rel) ? p : rel;
}

export async function run(args: string[]): Promise<number> {
  if (args[0] === 'merge') return (await import('./eval-merge.ts')).run(args.slice(1), { printSummary, shownPath });
  return runCommand(EVAL, args, async (parsed) => {
    const { options, shard, randomWeightsReason } = evalOptions(parsed);
    // The workers load their modules while this process loads its own (eval/pool.ts).
    if ((options.jobs ?? 1) > 1) await prestartWorkers(options.jobs ?? 1, options.workerKind ?? 'process', workerInit(options));
    try {
      return await evaluateAndPrint(options, shard, randomWeightsReason);
    } finally {
      await stopSpareWorkers();
    }
  });
}

async function evaluateAndPrint(options: ParsedEval['options'], shard: ParsedEval['shard'], randomWeightsReason: string | undefined): Promise<number> {
  if (randomWeightsReason) console.warn(`heal eval: warning: seeded random weights (${randomWeightsReason}): AP values mean nothing`);
  if (shard) {
    const { evaluateShard } = await import('../eval/shards.ts');
    const r = await evaluateShard(
      { ...options, log: (line) => console.error(line), progress: (total) => progress(`eval shard ${shard.index}/${shard.count}`, total) },
      shard,
    );
    console.log(
      `shard ${shard.index}/${shard.count}: ${r.evaluated} of ${r.frames} frames evaluated, ${r.failures.length} failed, ${r.seconds.toFixed(1)} s -> ${shownPath(r.dir)}`,
    );
    for (const f of r.failures) console.log(`  failed ${f.split}/${f.scenario} ${f.timestamp}: ${f.reason}`);
    console.log(`when every shard is done: heal eval merge ${shownPath(path.dirname(r.dir))}/... --out RUNDIR`);
    return 0;
  }
  const { evaluate } = await import('../eval/evaluate.ts');
  const report = await evaluate({
    ...options,
    log: (line) => console.error(line),
    progress: (total) => progress('eval', total),
  });
  printSummary(report);
  console.log(`view it: heal view ${shownPath(path.dirname(report.files.run))}`);
  return report.frames.evaluated > 0 ? 0 : 1;
}

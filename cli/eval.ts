// `heal eval`: evaluate a dataset split. AP table, bandwidth and latency in the terminal; run.json,
// frames.jsonl, report.json and a self-contained report.html in the run folder; optionally MCAP.

import { parseArgs } from 'node:util';
import * as path from 'node:path';
import { DEVICES, type Device } from '../models/runtime.ts';
import { shippedWeights } from '../models/shipped.ts';
import type { FeatureDType } from '../fusion/messages.ts';
import { evaluate } from '../eval/evaluate.ts';
import { defaultRunDir, type EvalFusion, type EvalOptions, type EvalReport } from '../eval/contracts.ts';
import { formatTable, formatLatency } from '../eval/table.ts';
import { progress } from './progress.ts';
import { formatTrust, parseTrust } from '../fusion/trust.ts';

const USAGE = `usage: heal eval --data DIR [options]

Evaluates collaborative perception on a dataset split (generated, OPV2V-H, V2XSet, DAIR-V2X-C):
AP@0.3/0.5/0.7 with HEAL's protocol per agent-type combination and fusion mode, bytes on the wire,
per-stage latency. Writes RUNDIR/run.json, frames.jsonl, report.json and report.html.

options:
  --data DIR            dataset folder (required)
  --split NAME          split to evaluate (default test; "all" for every frame)
  --types LIST          agent types given to the agents in ego-first order, cycled (default m1,m2,m3,m4)
  --combos "A;B;..."    several --types lists in one run, e.g. "m1;m1,m2;m1,m3;m1,m2,m3,m4"
  --fusion LIST         pyramid (default) | late | none, or a comma list
  --dtype LIST          feature dtype(s) on the wire: float32 (default), float16, int8; a comma list sweeps
  --dtypes LIST         the same as --dtype
  --sparsity LIST       fraction(s) of BEV cells senders transmit, strongest first (default 1 = dense), e.g. 1,0.5,0.25
  --device D            auto (default) | cuda | webgpu | cpu
  --profile P           shared-space profile: small (default) | heal
  --weights FILE        weight file (default: the shipped weights of the profile, else seeded random ones)
  --random-weights      use seeded random weights even when weights are shipped
  --trust T             fusion trust per type over the weight file's (heal calibrate fits them), e.g.
                        m2=0.3,m4=0.3; "none" is HEAL's rule (every type 1)
  --types-dir DIR       extra agent-type declarations (*.json)
  --pose-noise SX,SY,SYAW  Gaussian noise on senders' poses: σx m, σy m, σyaw degrees (e.g. 0.2,0.2,0.2)
  --latency N           collaborators' messages come from frame t−N of the same scenario (default 0)
  --drop P              each collaborator's message is lost with probability P (seeded; default 0)
  --seed N              seed of the noise, the drops and random weights (default 0)
  --score-threshold S   detection score threshold (default 0.2, HEAL's)
  --limit N             evaluate only the first N frames of the split
  --out RUNDIR          run folder (default runs/eval-<YYYYMMDD-HHMMSS>)
  --mcap FILE           also write the scenes as MCAP (Foxglove schemas), openable in Foxglove
  -h, --help            this text`;

export function numberList(text: string, flag: string): number[] {
  return text.split(',').map((s) => {
    const v = Number(s.trim());
    if (s.trim() === '' || !Number.isFinite(v)) throw new Error(`${flag}: "${s}" is not a number (in "${text}")`);
    return v;
  });
}

export function list(text: string): string[] {
  return text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

export function parseEvalArgs(args: string[]): { options: Omit<EvalOptions, 'log' | 'progress'>; randomWeightsReason?: string } | 'help' {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      data: { type: 'string' },
      split: { type: 'string' },
      types: { type: 'string' },
      combos: { type: 'string' },
      fusion: { type: 'string' },
      dtype: { type: 'string' },
      dtypes: { type: 'string' },
      sparsity: { type: 'string' },
      device: { type: 'string' },
      profile: { type: 'string' },
      weights: { type: 'string' },
      'random-weights': { type: 'boolean' },
      trust: { type: 'string' },
      'types-dir': { type: 'string', multiple: true },
      'pose-noise': { type: 'string' },
      latency: { type: 'string' },
      drop: { type: 'string' },
      seed: { type: 'string' },
      'score-threshold': { type: 'string' },
      limit: { type: 'string' },
      out: { type: 'string' },
      mcap: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return 'help';
  const data = values.data ?? positionals[0];
  if (!data) throw new Error('--data DIR is required (a dataset folder); see heal eval --help');
  if (positionals.length > (values.data ? 0 : 1)) throw new Error(`unexpected argument "${positionals[values.data ? 0 : 1]}"`);
  if (values.types && values.combos) throw new Error('give --types or --combos, not both');
  const combos = values.combos
    ? values.combos
        .split(';')
        .map(list)
        .filter((c) => c.length)
    : [list(values.types ?? 'm1,m2,m3,m4')];
  if (values.dtype && values.dtypes) throw new Error('give --dtype or --dtypes, not both');
  const dtypes = list(values.dtype ?? values.dtypes ?? 'float32') as FeatureDType[];
  const device = (values.device ?? 'auto') as Device;
  if (!DEVICES.includes(device)) throw new Error(`--device must be one of ${DEVICES.join(', ')} (got "${values.device}")`);
  const profile = values.profile ?? 'small';
  let weights: string | null;
  let randomWeightsReason: string | undefined;
  if (values['random-weights']) {
    if (values.weights) throw new Error('give --weights or --random-weights, not both');
    weights = null;
    randomWeightsReason = '--random-weights';
  } else if (values.weights) {
    weights = path.resolve(values.weights);
  } else {
    weights = shippedWeights(profile) ?? null;
    if (!weights) randomWeightsReason = `no weights are shipped for profile "${profile}" (models/shipped/${profile}/weights.bin)`;
  }
  const poseNoise = values['pose-noise'] ? numberList(values['pose-noise'], '--pose-noise') : null;
  if (poseNoise && poseNoise.length !== 3) throw new Error(`--pose-noise: needs three values σx,σy,σyaw (got "${values['pose-noise']}")`);
  const int = (v: string | undefined, flag: string, dflt: number) => {
    if (v === undefined) return dflt;
    const n = Number(v);
    if (!Number.isInteger(n)) throw new Error(`${flag}: must be an integer (got "${v}")`);
    return n;
  };
  const num = (v: string | undefined, flag: string) => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n)) throw new Error(`${flag}: must be a number (got "${v}")`);
    return n;
  };
  return {
    options: {
      data,
      split: values.split ?? 'test',
      combos,
      fusion: list(values.fusion ?? 'pyramid') as EvalFusion[],
      dtypes,
      keep: values.sparsity ? numberList(values.sparsity, '--sparsity') : [1],
      device,
      profile,
      weights,
      trust: values.trust === undefined ? undefined : parseTrust(values.trust),
      typesDirs: values['types-dir'] ?? [],
      poseNoise: poseNoise as [number, number, number] | null,
      latency: int(values.latency, '--latency', 0),
      drop: num(values.drop, '--drop') ?? 0,
      seed: int(values.seed, '--seed', 0),
      scoreThreshold: num(values['score-threshold'], '--score-threshold'),
      limit: values.limit === undefined ? undefined : int(values.limit, '--limit', 0),
      out: values.out ?? defaultRunDir(),
      mcap: values.mcap,
    },
    randomWeightsReason,
  };
}

/** Prints the summary a user needs after a run: table, latency, provider, weights, where things are. */
export function printSummary(report: EvalReport): void {
  console.log('');
  console.log(formatTable(report));
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
  console.log(`weights: ${report.run.weights ?? 'seeded random (the AP values mean nothing)'}`);
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
  const parsed = parseEvalArgs(args);
  if (parsed === 'help') {
    console.log(USAGE);
    return 0;
  }
  const { options, randomWeightsReason } = parsed;
  if (randomWeightsReason) console.warn(`heal eval: warning: seeded random weights (${randomWeightsReason}): AP values mean nothing`);
  const report = await evaluate({
    ...options,
    log: (line) => console.error(line),
    progress: (total) => progress('eval', total),
  });
  printSummary(report);
  console.log(`view it: heal view ${shownPath(path.dirname(report.files.run))}`);
  return report.frames.evaluated > 0 ? 0 : 1;
}

// `heal train`: stage 1 of HEAL's training, the base agent type (m1) with the pyramid fusion and
// the detection head, on cooperative frames of a dataset's train split.

import { parseArgs } from 'node:util';
import * as path from 'node:path';
import { selectTrainingBackend, TRAINING_BACKENDS, type TrainingBackendPref } from '../train/backend.ts';
import { train } from '../train/trainer.ts';
import { DEFAULT_LOSS_WEIGHTS } from '../train/losses.ts';
import { writeFileAtomic } from '../datasets/io.ts';
import { progress } from './progress.ts';
import { promises as fs } from 'node:fs';
import { agentNetwork } from '../perception/encoders/agent.ts';
import { loadRegistry } from '../perception/registry.ts';
import { SMALL_SPACE } from '../perception/space.ts';
import { egoNetworkFor } from '../fusion/pipeline.ts';

/**
 * What an alignment trained against what end-to-end training of every built-in type plus the
 * new one would train, and the stage-1 run's time per step when its train.json sits beside --base.
 */
async function alignmentCost(align: { type: string; base: string; typesDirs: string[] }, wallSeconds: number, steps: number) {
  const registry = await loadRegistry(align.typesDirs);
  const space = SMALL_SPACE;
  const count = (names: string[]) =>
    names.reduce(
      (s, n) => s + agentNetwork(registry.profile(n, space.name).network, space).params.reduce((a, p) => a + p.shape.reduce((x, y) => x * y, 1), 0),
      0,
    );
  const types = [...new Set(['m1', 'm2', 'm3', 'm4', align.type])].filter((n) => registry.types.has(n));
  const trainableParams = count([align.type]);
  const fusionParams = egoNetworkFor(space).params.reduce((a, p) => a + p.shape.reduce((x, y) => x * y, 1), 0);
  const endToEndParams = count(types) + fusionParams;
  let base: { wallSeconds?: number; totalWallSeconds?: number; steps?: number } = {};
  try {
    base = JSON.parse(await fs.readFile(path.join(path.dirname(align.base), 'train.json'), 'utf8'));
  } catch {
    // No stage-1 record beside the base weights (e.g. shipped weights): no time comparison.
  }
  // A resumed stage-1 run's own wallSeconds covers only its last segment; steps count them all.
  const baseWall = base.totalWallSeconds ?? base.wallSeconds;
  return {
    trainableParams,
    endToEndParams,
    endToEndTypes: types,
    trainableFraction: trainableParams / endToEndParams,
    alignStepSeconds: wallSeconds / Math.max(1, steps),
    baseStepSeconds: baseWall && base.steps ? baseWall / base.steps : undefined,
    baseSteps: base.steps,
    baseWallSeconds: baseWall,
  };
}

const USAGE = `usage: heal train --data DIR --out RUNDIR [options]

Stage 1: trains the base agent type (m1, 64-beam LiDAR PointPillars) with its aligner, the
pyramid fusion and the detection head, on cooperative frames of DIR's train split. Losses:
focal classification, smooth-L1 boxes with the sin-difference yaw, direction, and the pyramid's
per-level foreground. Validation AP uses the validate split only.

RUNDIR gets checkpoint.bin (every parameter, readable by --weights; the loss history is in its
metadata), optimizer.bin (Adam's state, for --resume), validation.jsonl and train.json (command,
seed, data, backend, wall time).

options:
  --data DIR          dataset with a train split (and a validate split for validation AP)
  --out RUNDIR        where checkpoints and logs go
  --steps N           total optimisation steps, one cooperative frame each (default 400)
  --lr X              Adam learning rate (default 0.002)
  --seed S            weight initialisation and sampling seed (default 0)
  --max-agents N      agents per sample, ego included, chosen at random within range (default 3)
  --no-augment        no flip / rotation / scaling augmentation
  --val-every N       validation AP every N steps and at the end (default 100; 0: never)
  --val-frames N      validate frames used (default 20)
  --checkpoint-every N  (default 50)
  --resume            continue RUNDIR's run from its last checkpoint
  --backend B         auto (default) | tfjs-node-gpu | webgpu | wasm | cpu
  -h, --help          this text`;

export function run(args: string[]): Promise<number> {
  return runTraining('train', USAGE, args);
}

/** `heal train` and `heal align` share options, progress and records; align adds --type and --base. */
export async function runTraining(command: 'train' | 'align', usage: string, args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      data: { type: 'string' },
      out: { type: 'string' },
      steps: { type: 'string' },
      lr: { type: 'string' },
      seed: { type: 'string' },
      'max-agents': { type: 'string' },
      'no-augment': { type: 'boolean' },
      'val-every': { type: 'string' },
      'val-frames': { type: 'string' },
      'checkpoint-every': { type: 'string' },
      resume: { type: 'boolean' },
      backend: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
      ...(command === 'align'
        ? ({ type: { type: 'string' }, base: { type: 'string' }, 'types-dir': { type: 'string', multiple: true }, 'depth-weight': { type: 'string' } } as const)
        : {}),
    },
  });
  if (values.help) {
    console.log(usage);
    return 0;
  }
  const alignType = (values as { type?: string }).type;
  const alignBase = (values as { base?: string }).base;
  const missing = [
    ['data', values.data],
    ['out', values.out],
    ...(command === 'align'
      ? [
          ['type', alignType],
          ['base', alignBase],
        ]
      : []),
  ]
    .filter(([, v]) => !v)
    .map(([k]) => `--${k}`);
  if (missing.length || !values.data || !values.out) {
    console.error(`heal ${command}: missing ${missing.join(', ')}\n\n${usage}`);
    return 2;
  }
  const align =
    command === 'align'
      ? { type: alignType!, base: path.resolve(alignBase!), typesDirs: (values as { 'types-dir'?: string[] })['types-dir'] ?? [] }
      : undefined;
  const int = (name: string, v: string | undefined, def: number, min = 0) => {
    if (v === undefined) return def;
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer >= ${min} (got "${v}")`);
    return n;
  };
  const steps = int('steps', values.steps, command === 'align' ? 200 : 400, 1);
  const lr = values.lr === undefined ? undefined : Number(values.lr);
  if (lr !== undefined && !(lr > 0)) throw new Error(`--lr must be a positive number (got "${values.lr}")`);
  const depthArg = (values as { 'depth-weight'?: string })['depth-weight'];
  const depthWeight = depthArg === undefined ? DEFAULT_LOSS_WEIGHTS.depth : Number(depthArg);
  if (!(depthWeight >= 0)) throw new Error(`--depth-weight must be a number >= 0 (got "${depthArg}")`);
  const backendPref = (values.backend ?? 'auto') as TrainingBackendPref;
  if (backendPref !== 'auto' && !TRAINING_BACKENDS.includes(backendPref))
    throw new Error(`--backend must be auto, ${TRAINING_BACKENDS.join(', ')} (got "${values.backend}")`);

  const backend = await selectTrainingBackend(backendPref, (l) => console.log(l));
  const out = path.resolve(values.out);
  const t0 = Date.now();
  const log = (l: string) => {
    if (bar) process.stderr.write('\n');
    console.log(l);
  };
  let bar: ReturnType<typeof progress> | undefined;
  const recordFile = path.join(out, `${command}.json`);
  if (!values.resume) {
    // Written first, so that a run stopped before its end still says how it was started.
    await fs.mkdir(out, { recursive: true });
    const start = {
      command: `heal ${command} ${args.join(' ')}`,
      data: path.resolve(values.data),
      seed: int('seed', values.seed, 0),
      backend: backend.backend,
      startedAt: new Date(t0).toISOString(),
      finished: false,
    };
    await writeFileAtomic(recordFile, JSON.stringify(start, null, 2) + '\n');
  }
  let first = 0;
  const result = await train({
    data: values.data,
    out,
    steps,
    lr,
    seed: int('seed', values.seed, 0),
    resume: values.resume,
    maxAgents: int('max-agents', values['max-agents'], 3, 1),
    augment: !values['no-augment'],
    valEvery: int('val-every', values['val-every'], 100),
    valFrames: int('val-frames', values['val-frames'], 20, 1),
    checkpointEvery: int('checkpoint-every', values['checkpoint-every'], 50, 1),
    align,
    lossWeights: { ...DEFAULT_LOSS_WEIGHTS, depth: depthWeight },
    log,
    onStep: (info) => {
      if (!bar) {
        first = info.step - 1;
        bar = progress(command, steps - first);
      }
      bar.tick(1, {
        loss: info.loss.toFixed(3),
        ...Object.fromEntries(Object.entries(info.parts).map(([k, v]) => [k, v.toFixed(3)])),
        step_s: (info.ms / 1000).toFixed(1),
        agents: info.agents,
      });
    },
  });
  bar?.stop();
  const record: Record<string, unknown> = {
    command: `heal ${command} ${args.join(' ')}`,
    data: path.resolve(values.data),
    seed: int('seed', values.seed, 0),
    steps: result.step,
    backend: backend.backend,
    backendReason: backend.reason,
    wallSeconds: (Date.now() - t0) / 1000,
    resumedFrom: first,
    validations: result.validations,
    finishedAt: new Date().toISOString(),
    finished: true,
  };
  // This segment's time over this segment's steps: a resumed alignment's wallSeconds covers only the resumed part.
  if (align) Object.assign(record, await alignmentCost(align, record.wallSeconds as number, result.step - first));
  // A resumed run keeps the records of its earlier segments (their commands, e.g. another --lr,
  // and wall times), so the record says how the weights were really made.
  if (values.resume) {
    try {
      const before = JSON.parse(await fs.readFile(recordFile, 'utf8')) as Record<string, unknown>;
      const earlier = (before.segments as unknown[] | undefined) ?? [{ ...before, validations: undefined }];
      record.segments = [
        ...earlier,
        { command: record.command, resumedFrom: first, steps: result.step, wallSeconds: record.wallSeconds, backend: backend.backend },
      ];
      record.totalWallSeconds = (record.segments as { wallSeconds: number }[]).reduce((s, g) => s + g.wallSeconds, 0);
    } catch {
      log(`no earlier ${command}.json in ${out}: this record covers only the resumed part`);
    }
  }
  await writeFileAtomic(recordFile, JSON.stringify(record, null, 2) + '\n');
  console.log(`heal ${command}: ${result.step} steps in ${(record.wallSeconds as number).toFixed(0)} s on ${backend.backend}; weights in ${result.checkpoint}`);
  if (align) {
    const c = record as unknown as Awaited<ReturnType<typeof alignmentCost>>;
    console.log(
      `heal align: trained ${c.trainableParams.toLocaleString('en')} parameters (${align.type}'s encoder and aligner), ${(100 * c.trainableFraction).toFixed(1)} % of the ${c.endToEndParams.toLocaleString('en')} that end-to-end training of ${c.endToEndTypes.join(', ')} would train`,
    );
    if (c.baseStepSeconds !== undefined)
      console.log(
        `heal align: ${(c.alignStepSeconds).toFixed(2)} s per step, against ${c.baseStepSeconds.toFixed(2)} s per step of the stage-1 run (${c.baseSteps} steps, ${c.baseWallSeconds?.toFixed(0)} s)`,
      );
  }
  return 0;
}

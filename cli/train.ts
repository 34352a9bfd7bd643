// `heal train`: stage 1 of HEAL's training, the base agent type (m1) with the pyramid fusion and
// the detection head, on cooperative frames of a dataset's train split.

import * as path from 'node:path';
import { selectTrainingBackend, TRAINING_BACKENDS } from '../train/backend.ts';
import { train } from '../train/trainer.ts';
import { DEFAULT_LOSS_WEIGHTS } from '../train/losses.ts';
import { writeFileAtomic } from '../datasets/io.ts';
import { progress } from './progress.ts';
import { promises as fs } from 'node:fs';
import { agentNetwork } from '../perception/encoders/agent.ts';
import { loadRegistry } from '../perception/registry.ts';
import { SPACES, spaceByName, trainingSpace, type SharedSpace } from '../perception/space.ts';
import { egoNetworkFor } from '../fusion/pipeline.ts';
import { stageOneModels } from '../train/stages.ts';
import { codeChannels, codecGraphs } from '../fusion/codec.ts';
import { exportSingle } from '../train/single.ts';
import { type Values, UsageError, choice, command, dirs, flag, int, number, runCommand, string } from './args.ts';

/**
 * What an alignment trained against what end-to-end training of every built-in type plus the
 * new one would train, and the stage-1 run's time per step when its train.json sits beside --base.
 */
async function alignmentCost(align: { type: string; base: string; typesDirs: string[] }, space: SharedSpace, wallSeconds: number, steps: number) {
  const registry = await loadRegistry(align.typesDirs);
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

/** What the learned codec trains and sends: its parameters against the frozen networks', its code channels. */
function codecCost(codec: { ratio: number; base: string }, space: SharedSpace) {
  const count = (d: { params: { shape: number[] }[] }) => d.params.reduce((a, p) => a + p.shape.reduce((x, y) => x * y, 1), 0);
  const g = codecGraphs(space.channels, codec.ratio);
  return {
    ratio: codec.ratio,
    base: codec.base,
    channels: space.channels,
    codeChannels: codeChannels(space.channels, codec.ratio),
    trainableParams: count(g.both),
    encoderParams: count(g.encoder),
    decoderParams: count(g.decoder),
    frozenParams: count(egoNetworkFor(space)) + count(agentNetwork(stageOneModels(space).network, space)),
  };
}

/** The options heal train and heal align share; stage 2 trains fewer steps by default. */
export function trainingOptions(defaultSteps: number) {
  return {
    data: string({ arg: 'DIR', required: true, help: 'dataset with a train split (and a validate split for validation AP)' }),
    out: string({ arg: 'RUNDIR', required: true, help: 'where checkpoints and logs go' }),
    steps: int({ min: 1, default: defaultSteps, help: 'total optimisation steps, one cooperative frame each' }),
    profile: choice(Object.keys(SPACES), {
      arg: 'P',
      default: 'small',
      help: "shared-space profile; training uses its training range (heal: HEAL's ±102.4 × ±51.2 m, 256×128 features)",
    }),
    lr: number({ above: 0, max: 1, defaultText: '0.002', help: 'Adam learning rate' }),
    seed: int({ arg: 'S', default: 0, help: 'weight initialisation and sampling seed' }),
    'max-agents': int({ min: 1, default: 3, help: 'agents per sample, ego included, chosen at random within range' }),
    'no-augment': flag({ help: 'no flip / rotation / scaling augmentation' }),
    'val-every': int({ min: 0, default: 100, help: 'validation AP every N steps and at the end (0: never)' }),
    'val-frames': int({ min: 1, default: 20, help: 'validate frames used' }),
    'checkpoint-every': int({ min: 1, default: 50, help: 'checkpoint every N steps' }),
    resume: flag({ help: "continue RUNDIR's run from its last checkpoint" }),
    backend: choice(['auto', ...TRAINING_BACKENDS], { arg: 'B', default: 'auto', help: 'training backend' }),
  };
}

export const TRAIN = command({
  name: 'train',
  usage: '--data DIR --out RUNDIR [options]',
  about: `Stage 1: trains the base agent type (m1, 64-beam LiDAR PointPillars) with its aligner, the
pyramid fusion and the detection head, on cooperative frames of DIR's train split. Losses:
focal classification, smooth-L1 boxes with the sin-difference yaw, direction, and the pyramid's
per-level foreground. Validation AP uses the validate split only.

RUNDIR gets checkpoint.bin (every parameter, readable by --weights; the loss history is in its
metadata), optimizer.bin (Adam's state, for --resume), validation.jsonl and train.json (command,
seed, data, backend, wall time).

With --single --type T: trains T's encoder and its own head alone, on T's single-agent frames
(what a maker does before it joins any fleet), and exports RUNDIR/T.encoder.onnx (output
"bev", in its own feature space) and RUNDIR/T.head.onnx, the files heal adapt takes.`,
  options: {
    ...trainingOptions(400),
    single: flag({ help: 'train one agent type alone: its encoder and its own head (needs --type)' }),
    type: string({ arg: 'T', help: 'with --single: the agent type (built-in or declared in --types-dir)' }),
    'types-dir': dirs({ help: 'extra agent-type declarations (*.json)' }),
  },
});

export function run(args: string[]): Promise<number> {
  return runCommand(TRAIN, args, ({ values }) => {
    if (values.single !== (values.type !== undefined)) throw new UsageError('--single and --type go together');
    const single = values.type === undefined ? undefined : { type: values.type, typesDirs: values['types-dir'] };
    return runTraining('train', args, values, DEFAULT_LOSS_WEIGHTS.depth, undefined, undefined, single);
  });
}

/** `heal train` and `heal align` share options, progress and records; align adds its type and base. */
export async function runTraining(
  command: 'train' | 'align' | 'train-codec',
  args: string[],
  values: Values<ReturnType<typeof trainingOptions>>,
  depthWeight: number,
  align?: { type: string; base: string; typesDirs: string[] },
  codec?: { ratio: number; base: string },
  single?: { type: string; typesDirs: string[] },
): Promise<number> {
  const steps = values.steps;
  const backend = await selectTrainingBackend(values.backend, (l) => console.log(l));
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
      seed: values.seed,
      backend: backend.backend,
      startedAt: new Date(t0).toISOString(),
      finished: false,
    };
    await writeFileAtomic(recordFile, JSON.stringify(start, null, 2) + '\n');
  }
  let first = 0;
  const space = trainingSpace(spaceByName(values.profile));
  const result = await train({
    models: stageOneModels(space),
    data: values.data,
    out,
    steps,
    lr: values.lr,
    seed: values.seed,
    resume: values.resume,
    maxAgents: values['max-agents'],
    augment: !values['no-augment'],
    valEvery: values['val-every'],
    valFrames: values['val-frames'],
    checkpointEvery: values['checkpoint-every'],
    align,
    codec,
    single,
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
    seed: values.seed,
    profile: values.profile,
    range: space.range,
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
  if (align) Object.assign(record, await alignmentCost(align, space, record.wallSeconds as number, result.step - first));
  if (codec) Object.assign(record, codecCost(codec, space));
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
  if (single) {
    const network = (await loadRegistry(single.typesDirs)).profile(single.type, space.name).network;
    const files = await exportSingle(result.checkpoint, network, space, out);
    record.exported = { encoder: path.basename(files.encoder), head: path.basename(files.head) };
    console.log(`heal train: ${single.type}'s encoder in ${files.encoder} (output "bev"), its own head in ${files.head}`);
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

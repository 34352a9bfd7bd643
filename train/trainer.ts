// The training loop of HEAL's two stages: stage 1 trains the base agent type (m1, 64-beam LiDAR
// PointPillars) with its aligner, the pyramid fusion and the detection head jointly on
// cooperative frames of the train split; stage 2 (`align`) trains a new type's encoder and
// aligner against the frozen rest (stages.ts). Adam is in optimizer.ts, checkpoints and --resume
// in checkpoint.ts. Validation AP runs on the validate split only.

import * as path from 'node:path';
import { promises as fs } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import type { Dataset, FrameRef, LidarBeams } from '../datasets/dataset.ts';
import { openDataset } from '../datasets/open.ts';
import { DataError, writeFileAtomic } from '../datasets/io.ts';
import { ApAccumulator } from '../eval/metrics.ts';
import { bevFromCorners, boxToCorners } from '../datasets/geometry/boxes.ts';
import { initWeights } from '../models/weights.ts';
import { weightsFromFile } from '../fusion/pipeline.ts';
import { codecGraphs } from '../fusion/codec.ts';
import { agentNetwork } from '../perception/encoders/agent.ts';
import { decodeDetections } from '../fusion/detect.ts';
import { loadSample, loadSingleAgentSample, TrainRng, type TrainSample } from './batch.ts';
import { loadRegistry } from '../perception/registry.ts';
import { DEFAULT_LOSS_WEIGHTS, depthLoss, detectionLoss, disposeTargets, occupancyLoss, targetTensors, type LossWeights } from './losses.ts';
import { NamedAdam } from './optimizer.ts';
import { CHECKPOINT_FILE, type CheckpointMeta, resumeCheckpoint, saveCheckpoint } from './checkpoint.ts';
import { SingleNet } from './single.ts';
import { AlignNet, CodecNet, defaultStageOneModels, StageOne, type StepLoss, type StageOneModels, type TrainNet } from './stages.ts';

export interface TrainOptions {
  data: string;
  out: string;
  steps: number;
  lr?: number;
  seed?: number;
  resume?: boolean;
  /** Validate every N steps (and at the end); 0 turns validation off. */
  valEvery?: number;
  /** Checkpoint every N steps (and at the end). */
  checkpointEvery?: number;
  /** At most this many validate frames per validation (all by default). */
  valFrames?: number;
  augment?: boolean;
  /** Agents per training sample, ego included (default 3). */
  maxAgents?: number;
  models?: StageOneModels;
  lossWeights?: LossWeights;
  /**
   * Stage 2 instead of stage 1: train only `type`'s encoder and aligner against the frozen fusion
   * and head of the weight file `base`, on that type's single-agent frames.
   */
  align?: { type: string; base: string; typesDirs?: string[] };
  /**
   * The learned channel compressor instead (fusion/codec.ts): only its two 1×1 convolutions train,
   * between the partners' frozen encoders and the frozen fusion and head of `base`, on cooperative frames.
   */
  codec?: { ratio: number; base: string };
  /** Instead of either stage: `type`'s encoder and its own head, alone on its single-agent frames (train/single.ts). */
  single?: { type: string; typesDirs?: string[] };
  log?: (line: string) => void;
  /** Called after each step (the CLI draws its progress bar here). */
  onStep?: (info: StepInfo) => void;
}

export interface StepInfo {
  step: number;
  loss: number;
  parts: Record<string, number>;
  ms: number;
  agents: number;
  positives: number;
}

export interface ValidationResult {
  step: number;
  frames: number;
  ap: Record<string, number>;
}

export interface TrainResult {
  step: number;
  losses: number[];
  validations: ValidationResult[];
  checkpoint: string;
}

/** One optimisation step: loss value and its parts. */
export function trainStep(
  net: TrainNet,
  opt: NamedAdam,
  sample: TrainSample,
  lossWeights: LossWeights = DEFAULT_LOSS_WEIGHTS,
): { loss: tf.Scalar; parts: Record<string, tf.Scalar> } {
  const targets = targetTensors(sample.targets);
  const params = net.trainable();
  const parts: Record<string, tf.Scalar> = {};
  const loss: StepLoss = {
    head: (out) => {
      const det = detectionLoss({ cls: out.cls, reg: out.reg, dir: out.dir }, targets, lossWeights);
      const occOut = net.levels.map((_, l) => out[`occ${l}`]);
      const occ = occupancyLoss(occOut, sample.occTargets, lossWeights.occ);
      for (const [k, t] of Object.entries({ cls: det.cls, reg: det.reg, dir: det.dir, occ })) parts[k] = tf.keep(t);
      return tf.add(det.total, occ) as tf.Scalar;
    },
    depth: (depth) => {
      if (!sample.depth || lossWeights.depth <= 0) return undefined;
      parts.depth = tf.keep(depthLoss(depth, sample.depth));
      return tf.mul(parts.depth, lossWeights.depth) as tf.Scalar;
    },
  };
  try {
    const { value, grads } = net.gradients
      ? net.gradients(sample, loss)
      : tf.variableGrads(() => {
          const out = net.forward(sample, true);
          const head = loss.head(out);
          const depth = out.depth && loss.depth(out.depth);
          return depth ? (tf.add(head, depth) as tf.Scalar) : head;
        }, [...params.values()]);
    const byName = new Map<string, tf.Tensor>();
    const nameOf = new Map([...params].map(([n, v]) => [v.name, n]));
    for (const [varName, g] of Object.entries(grads)) byName.set(nameOf.get(varName)!, g);
    opt.apply(params, byName);
    tf.dispose(Object.values(grads));
    return { loss: value, parts };
  } finally {
    disposeTargets(targets);
  }
}

/** AP@0.3/0.5/0.7 of the current weights on `refs` (default ego, no augmentation). */
export async function validate(net: TrainNet, refs: FrameRef[], load: (ref: FrameRef) => Promise<TrainSample>): Promise<Record<string, number>> {
  const acc = new ApAccumulator();
  const { space } = net.models;
  for (const ref of refs) {
    const sample = await load(ref);
    const out = tf.tidy(() => {
      const o = net.forward(sample, false);
      return { cls: o.cls, reg: o.reg, dir: o.dir };
    });
    const [cls, reg, dir] = await Promise.all([out.cls.data(), out.reg.data(), out.dir.data()]);
    tf.dispose(Object.values(out));
    const dets = decodeDetections(net.anchors, cls as Float32Array, reg as Float32Array, dir as Float32Array, { range: space.range });
    acc.addFrame(
      dets.map((d) => bevFromCorners(boxToCorners(d.box))),
      dets.map((d) => d.score),
      sample.gt.map((b) => bevFromCorners(boxToCorners(b))),
    );
  }
  return Object.fromEntries(acc.result().map((r) => [`AP@${r.iouThreshold}`, r.ap]));
}

/** The sensors a stage's agent type reads. */
interface Sensor {
  lidar: LidarBeams;
  images: boolean;
}

/** What a run trains, fixed once its options are read. */
interface Stage {
  models: StageOneModels;
  sensor: Sensor;
  lossWeights: LossWeights;
  /**
   * A camera type's depth distribution learns from the dataset's depth maps (HEAL's camera models
   * are depth-supervised too); without them Lift-Splat has only the detection loss to place features.
   */
  depthSupervised: boolean;
}

/** A network and its optimizer, with the checkpoint metadata the run continues from. */
interface RunStart {
  net: TrainNet;
  opt: NamedAdam;
  meta: CheckpointMeta;
}

/** The train split's frames (none is an error) and the first `valFrames` of the validate split. */
export function trainingFrames(ds: Dataset, data: string, valFrames?: number): { trainRefs: FrameRef[]; valRefs: FrameRef[] } {
  const trainRefs = ds.frames().filter((f) => f.split === 'train');
  if (trainRefs.length === 0) throw new DataError(data, 'train', 'the dataset has no frames in its train split');
  const valRefs = ds
    .frames()
    .filter((f) => f.split === 'validate')
    .slice(0, valFrames ?? Infinity);
  return { trainRefs, valRefs };
}

export async function train(opts: TrainOptions): Promise<TrainResult> {
  const log = opts.log ?? ((l: string) => console.error(l));
  const stage = await stageOf(opts);
  const valEvery = opts.valEvery ?? 0;
  const checkpointEvery = opts.checkpointEvery ?? 100;
  const ds = await openDataset(opts.data);
  const { trainRefs, valRefs } = trainingFrames(ds, opts.data, opts.valFrames);
  if (valEvery > 0 && valRefs.length === 0) log('heal train: the dataset has no validate split, so no validation AP is computed');

  const ckpt = path.join(opts.out, CHECKPOINT_FILE);
  const { net, opt, meta } = opts.resume ? await resume(opts, stage, log) : await startFresh(opts, stage);
  const rng = new TrainRng(meta.rngState);
  const losses = [...meta.losses];
  const validations: ValidationResult[] = [];
  let step = meta.step;
  let warnedNoDepth = false;
  if (stage.depthSupervised)
    log(`heal align: ${opts.align!.type}'s depth distribution is supervised by the dataset's depth maps (weight ${stage.lossWeights.depth})`);
  const save = () => saveCheckpoint(opts.out, net, opt, { ...meta, step, rngState: rng.state, lr: opt.lr, losses });
  try {
    while (step < opts.steps) {
      const t0 = performance.now();
      const { ref, sample } = await drawSample(opts, stage, ds, trainRefs, net, rng);
      if (stage.depthSupervised && !sample.depth && !warnedNoDepth) {
        warnedNoDepth = true;
        log(
          `heal align: ${ref.split}/${ref.scenario}/${ref.timestamp} agent ${sample.egoId} has no depth map for every camera; such frames train without depth supervision`,
        );
      }
      const { value, parts } = await stepValues(net, opt, sample, stage.lossWeights);
      if (!Number.isFinite(value))
        throw new Error(`loss is ${value} at step ${step + 1} (frame ${ref.split}/${ref.scenario}/${ref.timestamp}); lower the learning rate`);
      step++;
      losses.push(value);
      opts.onStep?.({ step, loss: value, parts, ms: performance.now() - t0, agents: sample.inputs.length, positives: sample.targets.positives });
      if (step % checkpointEvery === 0 || step === opts.steps) await save();
      if (valEvery > 0 && valRefs.length && (step % valEvery === 0 || step === opts.steps)) {
        validations.push(await validateAndRecord(opts, stage, ds, valRefs, net, step, log));
      }
    }
    if (step === meta.step) await save();
  } finally {
    opt.dispose();
    net.dispose();
  }
  return { step, losses, validations, checkpoint: ckpt };
}

/** The models and sensors the options ask for: stage 1's, or the aligned type's from the registry. */
async function stageOf(opts: TrainOptions): Promise<Stage> {
  let models = opts.models ?? defaultStageOneModels();
  let sensor: Sensor = { lidar: 64, images: false };
  const lossWeights = opts.lossWeights ?? DEFAULT_LOSS_WEIGHTS;
  const typed = opts.align ?? opts.single;
  if (typed) {
    const registry = await loadRegistry(typed.typesDirs ?? []);
    const type = registry.get(typed.type);
    models = { ...models, network: registry.profile(type.name, models.space.name).network };
    sensor = { lidar: type.sensor.lidar ?? 64, images: type.modality === 'camera' };
  }
  const depthSupervised = !!opts.align && sensor.images && lossWeights.depth > 0;
  return { models, sensor, lossWeights, depthSupervised };
}

/** A new run: initial weights from the seed (an alignment's base from its file), Adam at step 0. */
async function startFresh(opts: TrainOptions, { models, depthSupervised }: Stage): Promise<RunStart> {
  const seed = opts.seed ?? 0;
  let net: TrainNet;
  if (opts.codec) {
    const base = await weightsFromFile(opts.codec.base, models.space, await loadRegistry([]));
    net = new CodecNet(models, base, initWeights(codecGraphs(models.space.channels, opts.codec.ratio).both, seed), opts.codec.ratio);
  } else if (opts.align) {
    // The base may be a HEAL checkpoint (.pth): the same loader as every --weights.
    const registry = await loadRegistry(opts.align.typesDirs ?? []);
    const base = await weightsFromFile(opts.align.base, models.space, registry);
    net = new AlignNet(models, base, initWeights(agentNetwork(models.network, models.space), seed), depthSupervised);
  } else if (opts.single) {
    net = SingleNet.initial(models, seed);
  } else {
    net = StageOne.initial(models, seed);
  }
  const opt = new NamedAdam(opts.lr ?? 2e-3);
  const meta = { step: 0, rngState: (seed * 0x9e3779b1 + 1) >>> 0, seed, lr: opt.lr, data: path.resolve(opts.data), losses: [] };
  return { net, opt, meta };
}

/** The run saved in opts.out, continued; its seed and sampling state come from the checkpoint. */
async function resume(opts: TrainOptions, { models, depthSupervised }: Stage, log: (line: string) => void): Promise<RunStart> {
  const start = await resumeCheckpoint(
    opts.out,
    (weights) =>
      opts.codec
        ? new CodecNet(models, weights, weights, opts.codec.ratio)
        : opts.align
          ? new AlignNet(models, weights, weights, depthSupervised)
          : opts.single
            ? new SingleNet(models, weights)
            : new StageOne(models, weights),
    opts.lr,
  );
  log(`heal train: resumed ${path.join(opts.out, CHECKPOINT_FILE)} at step ${start.meta.step}`);
  return start;
}

/** One training sample: a random train frame, and for an alignment a random agent of it as ego. */
async function drawSample(
  opts: TrainOptions,
  { models, sensor, depthSupervised }: Stage,
  ds: Dataset,
  trainRefs: FrameRef[],
  net: TrainNet,
  rng: TrainRng,
): Promise<{ ref: FrameRef; sample: TrainSample }> {
  const ref = trainRefs[rng.int(trainRefs.length)];
  const sampleOpts = {
    space: models.space,
    network: models.network,
    anchors: net.anchors,
    levels: net.levels,
    rng,
    augment: opts.augment ?? true,
    maxAgents: opts.maxAgents ?? 3,
    depth: depthSupervised,
    ...sensor,
  };
  const sample =
    opts.align || opts.single
      ? await loadSingleAgentSample(ds, ref, ref.agentIds[rng.int(ref.agentIds.length)], sampleOpts)
      : await loadSample(ds, ref, sampleOpts);
  return { ref, sample };
}

/** trainStep, with the loss and its parts read back to numbers and the tensors freed. */
async function stepValues(
  net: TrainNet,
  opt: NamedAdam,
  sample: TrainSample,
  lossWeights: LossWeights,
): Promise<{ value: number; parts: Record<string, number> }> {
  const { loss, parts } = trainStep(net, opt, sample, lossWeights);
  const value = (await loss.data())[0];
  const partValues: Record<string, number> = {};
  for (const [k, t] of Object.entries(parts)) partValues[k] = (await t.data())[0];
  tf.dispose([loss, ...Object.values(parts)]);
  return { value, parts: partValues };
}

/** Validation AP at `step`, logged and appended to the run's validation.jsonl. */
async function validateAndRecord(
  opts: TrainOptions,
  { models, sensor }: Stage,
  ds: Dataset,
  valRefs: FrameRef[],
  net: TrainNet,
  step: number,
  log: (line: string) => void,
): Promise<ValidationResult> {
  const valOpts = { space: models.space, network: models.network, anchors: net.anchors, levels: net.levels, ...sensor };
  const ap = await validate(net, valRefs, (ref) =>
    opts.align || opts.single ? loadSingleAgentSample(ds, ref, ref.agentIds[0], valOpts) : loadSample(ds, ref, valOpts),
  );
  log(
    `heal train: step ${step} validation on ${valRefs.length} validate frames: ${Object.entries(ap)
      .map(([k, v]) => `${k} ${v.toFixed(4)}`)
      .join(' ')}`,
  );
  await writeFileAtomic(
    path.join(opts.out, 'validation.jsonl'),
    (await readText(path.join(opts.out, 'validation.jsonl'))) + JSON.stringify({ step, frames: valRefs.length, ap }) + '\n',
  );
  return { step, frames: valRefs.length, ap };
}

async function readText(file: string): Promise<string> {
  try {
    return await fs.readFile(file, 'utf8');
  } catch {
    return '';
  }
}

// Stage 1 of HEAL training: the base agent type (m1, 64-beam LiDAR PointPillars) with its
// aligner, the pyramid fusion and the detection head, trained jointly with Adam on cooperative
// frames of the train split. Checkpoints hold every parameter (one heal weight file, the same
// names inference reads), Adam's moments, the step count and the RNG state, so --resume continues
// exactly where a run stopped. Validation AP runs on the validate split only.

import * as path from 'node:path';
import { promises as fs } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import type { FrameRef } from '../datasets/dataset.ts';
import { openDataset } from '../datasets/open.ts';
import { DataError, writeFileAtomic } from '../datasets/io.ts';
import { ApAccumulator } from '../eval/metrics.ts';
import { bevFromCorners, boxToCorners } from '../datasets/geometry/boxes.ts';
import type { GraphDesc, HostTensor } from '../models/graph.ts';
import { buildTfModel, type TfModel } from '../models/tfjs.ts';
import { initWeights, loadWeights, pickWeights, saveWeights, type Weights } from '../models/weights.ts';
import { agentNetwork, type AgentNetworkConfig } from '../perception/encoders/agent.ts';
import { featureGrid, SMALL_SPACE, type SharedSpace } from '../perception/space.ts';
import { builtinAgentConfig } from '../perception/registry.ts';
import { egoNetworkFor } from '../fusion/pipeline.ts';
import { makeAnchors, type Anchors } from '../fusion/anchors.ts';
import { decodeDetections } from '../fusion/detect.ts';
import { warpGrids } from '../fusion/warp.ts';
import { loadSample, loadSingleAgentSample, TrainRng, type TrainSample } from './batch.ts';
import { loadRegistry } from '../perception/registry.ts';
import { DEFAULT_LOSS_WEIGHTS, depthLoss, detectionLoss, disposeTargets, occupancyLoss, targetTensors, type LossWeights } from './losses.ts';

export interface StageOneModels {
  space: SharedSpace;
  /** The base agent type's network config (type name prefixes its parameters). */
  network: AgentNetworkConfig;
  /** egoNetwork description: inputs features/valid/grid, outputs cls/reg/dir/occ*. */
  ego: GraphDesc;
}

/** m1 on the small space with the small pyramid fusion: what `heal train` trains by default. */
export function defaultStageOneModels(): StageOneModels {
  return { space: SMALL_SPACE, network: builtinAgentConfig('m1', 'small'), ego: egoNetworkFor(SMALL_SPACE) };
}

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

const ADAM = { beta1: 0.9, beta2: 0.999, epsilon: 1e-8 };
export const CHECKPOINT_FILE = 'checkpoint.bin';
export const OPTIMIZER_FILE = 'optimizer.bin';

/** Adam with its state keyed by parameter name, so it saves and restores exactly. */
export class NamedAdam {
  readonly m = new Map<string, tf.Variable>();
  readonly v = new Map<string, tf.Variable>();
  constructor(
    public lr: number,
    public step = 0,
  ) {}

  apply(params: Map<string, tf.Variable>, grads: Map<string, tf.Tensor>): void {
    this.step++;
    const { beta1, beta2, epsilon } = ADAM;
    const c1 = 1 - beta1 ** this.step;
    const c2 = 1 - beta2 ** this.step;
    tf.tidy(() => {
      for (const [name, g] of grads) {
        const p = params.get(name)!;
        if (!this.m.has(name)) {
          this.m.set(name, tf.variable(tf.zerosLike(p), false));
          this.v.set(name, tf.variable(tf.zerosLike(p), false));
        }
        const m = this.m.get(name)!,
          v = this.v.get(name)!;
        m.assign(tf.add(tf.mul(m, beta1), tf.mul(g, 1 - beta1)));
        v.assign(tf.add(tf.mul(v, beta2), tf.mul(tf.square(g), 1 - beta2)));
        p.assign(tf.sub(p, tf.mul(tf.div(tf.div(m, c1), tf.add(tf.sqrt(tf.div(v, c2)), epsilon)), this.lr)));
      }
    });
  }

  async state(): Promise<Weights> {
    const w: Weights = new Map();
    for (const [name, m] of this.m) {
      w.set(`m/${name}`, { shape: [...m.shape], data: new Float32Array(await m.data()) });
      const v = this.v.get(name)!;
      w.set(`v/${name}`, { shape: [...v.shape], data: new Float32Array(await v.data()) });
    }
    return w;
  }

  restore(state: Weights): void {
    for (const [key, t] of state) {
      const [kind, ...rest] = key.split('/');
      const map = kind === 'm' ? this.m : kind === 'v' ? this.v : undefined;
      if (!map) continue;
      map.get(rest.join('/'))?.dispose();
      map.set(rest.join('/'), tf.variable(tf.tensor(t.data, t.shape), false));
    }
  }

  dispose(): void {
    for (const t of [...this.m.values(), ...this.v.values()]) t.dispose();
  }
}

function toTensor(h: HostTensor): tf.Tensor {
  return tf.tensor(h.data as Float32Array | Int32Array, h.shape, h.data instanceof Int32Array ? 'int32' : 'float32');
}

/** What the training loop needs of a network pair (stage 1's, or an alignment's). */
export interface TrainNet {
  readonly models: { space: SharedSpace; network: AgentNetworkConfig };
  readonly anchors: Anchors;
  readonly levels: [number, number][];
  /** The variables this stage optimises, keyed by parameter name. */
  trainable(): Map<string, tf.Variable>;
  forward(sample: TrainSample, training: boolean): Record<string, tf.Tensor>;
  /** Every parameter a checkpoint holds (an alignment's includes the frozen base). */
  readWeights(): Promise<Weights>;
  dispose(): void;
}

function levelsOf(ego: GraphDesc): [number, number][] {
  return ego.outputs
    .filter((o) => /^occ\d+$/.test(o.name))
    .sort((a, b) => Number(a.name.slice(3)) - Number(b.name.slice(3)))
    .map((o) => [o.shape[2] as number, o.shape[3] as number]);
}

/** The ego network's inputs for agents whose BEV features are `bevs` (ego first). */
function egoInputs(space: SharedSpace, bevs: tf.Tensor[], poses: Float64Array[]): Record<string, tf.Tensor> {
  const [W, H] = featureGrid(space);
  const A = bevs.length;
  return {
    features: A === 1 ? bevs[0] : tf.concat(bevs, 0),
    valid: tf.ones([A, 1, H, W]),
    grid: tf.tensor4d(warpGrids(poses[0], poses, space, H, W), [A, H, W, 2]),
  };
}

/**
 * Stage 2, backward alignment: a new agent type's encoder and aligner in front of the frozen
 * pyramid fusion and head of a stage-1 model. Only the new type's parameters train; the fusion's
 * batch norms stay in inference mode so their statistics do not drift either.
 */
export class AlignNet implements TrainNet {
  readonly agent: TfModel;
  readonly ego: TfModel;
  readonly anchors: Anchors;
  readonly levels: [number, number][];

  /** `depthOutput`: the agent network also outputs its depth distribution, for depth supervision. */
  constructor(
    readonly models: StageOneModels,
    readonly base: Weights,
    typeWeights: Weights,
    depthOutput = false,
  ) {
    const agentDesc = agentNetwork(models.network, models.space, { depthOutput });
    this.agent = buildTfModel(agentDesc, pickWeights(agentDesc, typeWeights, `agent type ${models.network.type}`), `agent type ${models.network.type}`);
    this.ego = buildTfModel(models.ego, pickWeights(models.ego, base, 'the base model'), 'the base model');
    this.anchors = makeAnchors(models.space);
    this.levels = levelsOf(models.ego);
  }

  trainable(): Map<string, tf.Variable> {
    const out = new Map<string, tf.Variable>();
    for (const [n, v] of this.agent.variables) if (v.trainable) out.set(n, v);
    return out;
  }

  /** The head's outputs, and "depth", the first agent's depth distribution, when the network has it. */
  forward(sample: TrainSample, training: boolean): Record<string, tf.Tensor> {
    const outs = sample.inputs.map((inp) => this.agent.apply(Object.fromEntries(Object.entries(inp).map(([k, v]) => [k, toTensor(v)])), { training }));
    const head = this.ego.apply(
      egoInputs(
        this.models.space,
        outs.map((o) => o.bev),
        sample.poses,
      ),
      { training: false },
    );
    return outs[0].depth ? { ...head, depth: outs[0].depth } : head;
  }

  async readWeights(): Promise<Weights> {
    // The live fusion and head, not the base's copy: a checkpoint then shows whether they stayed frozen.
    return new Map([...this.base, ...(await this.ego.readWeights()), ...(await this.agent.readWeights())]);
  }

  dispose(): void {
    this.agent.dispose();
    this.ego.dispose();
  }
}

/** The two models of stage 1, built from one weight map. */
export class StageOne implements TrainNet {
  readonly agent: TfModel;
  readonly ego: TfModel;
  readonly anchors: Anchors;
  readonly levels: [number, number][];

  constructor(
    readonly models: StageOneModels,
    weights: Weights,
  ) {
    const agentDesc = agentNetwork(models.network, models.space);
    this.agent = buildTfModel(agentDesc, pickWeights(agentDesc, weights));
    this.ego = buildTfModel(models.ego, pickWeights(models.ego, weights));
    this.anchors = makeAnchors(models.space);
    this.levels = levelsOf(models.ego);
  }

  static initial(models: StageOneModels, seed: number): StageOne {
    const agentDesc = agentNetwork(models.network, models.space);
    return new StageOne(models, new Map([...initWeights(agentDesc, seed), ...initWeights(models.ego, seed + 1)]));
  }

  /** Every trainable variable, keyed by parameter name (names are unique across both models). */
  trainable(): Map<string, tf.Variable> {
    const out = new Map<string, tf.Variable>();
    for (const m of [this.agent, this.ego]) for (const [n, v] of m.variables) if (v.trainable) out.set(n, v);
    return out;
  }

  /** Head and foreground outputs for one sample (agents ego first). Call inside a tidy/tape. */
  forward(sample: TrainSample, training: boolean): Record<string, tf.Tensor> {
    const bevs = sample.inputs.map((inp) => this.agent.apply(Object.fromEntries(Object.entries(inp).map(([k, v]) => [k, toTensor(v)])), { training }).bev);
    return this.ego.apply(egoInputs(this.models.space, bevs, sample.poses), { training });
  }

  async readWeights(): Promise<Weights> {
    return new Map([...(await this.agent.readWeights()), ...(await this.ego.readWeights())]);
  }

  dispose(): void {
    this.agent.dispose();
    this.ego.dispose();
  }
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
  try {
    const { value, grads } = tf.variableGrads(() => {
      const out = net.forward(sample, true);
      const det = detectionLoss({ cls: out.cls, reg: out.reg, dir: out.dir }, targets, lossWeights);
      const occOut = net.levels.map((_, l) => out[`occ${l}`]);
      const occ = occupancyLoss(occOut, sample.occTargets, lossWeights.occ);
      const terms: Record<string, tf.Scalar> = { cls: det.cls, reg: det.reg, dir: det.dir, occ };
      let total = tf.add(det.total, occ) as tf.Scalar;
      if (out.depth && sample.depth && lossWeights.depth > 0) {
        terms.depth = depthLoss(out.depth, sample.depth);
        total = tf.add(total, tf.mul(terms.depth, lossWeights.depth)) as tf.Scalar;
      }
      for (const [k, t] of Object.entries(terms)) parts[k] = tf.keep(t);
      return total;
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

interface CheckpointMeta {
  step: number;
  rngState: number;
  seed: number;
  lr: number;
  data: string;
  losses: number[];
}

async function saveCheckpoint(dir: string, net: TrainNet, opt: NamedAdam, meta: CheckpointMeta): Promise<string> {
  await fs.mkdir(dir, { recursive: true });
  const file = path.join(dir, CHECKPOINT_FILE);
  // Optimizer first: a checkpoint file only exists once its optimizer state does.
  await saveWeights(path.join(dir, OPTIMIZER_FILE), await opt.state(), { step: opt.step });
  await saveWeights(file, await net.readWeights(), {
    ...meta,
    stage: net instanceof AlignNet ? 2 : 1,
    type: net.models.network.type,
    space: net.models.space.name,
  });
  return file;
}

function checkMeta(file: string, meta: Record<string, unknown>): CheckpointMeta {
  for (const k of ['step', 'rngState', 'seed', 'lr'] as const) {
    if (typeof meta[k] !== 'number' || !Number.isFinite(meta[k])) throw new DataError(file, `meta.${k}`, 'must be a number', meta[k]);
  }
  return { ...(meta as unknown as CheckpointMeta), losses: Array.isArray(meta.losses) ? (meta.losses as number[]) : [] };
}

export async function train(opts: TrainOptions): Promise<TrainResult> {
  const log = opts.log ?? ((l: string) => console.error(l));
  let models = opts.models ?? defaultStageOneModels();
  let sensor: { lidar: 64 | 32 | 16; images: boolean } = { lidar: 64, images: false };
  const lossWeights = opts.lossWeights ?? DEFAULT_LOSS_WEIGHTS;
  if (opts.align) {
    const registry = await loadRegistry(opts.align.typesDirs ?? []);
    const type = registry.get(opts.align.type);
    models = { ...models, network: registry.profile(type.name, models.space.name).network };
    sensor = { lidar: type.sensor.lidar ?? 64, images: type.modality === 'camera' };
  }
  // A camera type's depth distribution learns from the dataset's depth maps (HEAL's camera models
  // are depth-supervised too); without them Lift-Splat has only the detection loss to place features.
  const depthSupervised = !!opts.align && sensor.images && lossWeights.depth > 0;
  const valEvery = opts.valEvery ?? 0;
  const checkpointEvery = opts.checkpointEvery ?? 100;
  const ds = await openDataset(opts.data);
  const trainRefs = ds.frames().filter((f) => f.split === 'train');
  if (trainRefs.length === 0) throw new DataError(opts.data, 'train', 'the dataset has no frames in its train split');
  const valRefs = ds
    .frames()
    .filter((f) => f.split === 'validate')
    .slice(0, opts.valFrames ?? Infinity);
  if (valEvery > 0 && valRefs.length === 0) log('heal train: the dataset has no validate split, so no validation AP is computed');

  let net: TrainNet;
  let opt: NamedAdam;
  let meta: CheckpointMeta;
  const ckpt = path.join(opts.out, CHECKPOINT_FILE);
  if (opts.resume) {
    const { weights, meta: raw } = await loadWeights(ckpt);
    meta = checkMeta(ckpt, raw);
    net = opts.align ? new AlignNet(models, weights, weights, depthSupervised) : new StageOne(models, weights);
    opt = new NamedAdam(opts.lr ?? meta.lr, meta.step);
    const optState = await loadWeights(path.join(opts.out, OPTIMIZER_FILE));
    if (optState.meta.step !== meta.step) {
      throw new DataError(path.join(opts.out, OPTIMIZER_FILE), 'meta.step', `does not match the checkpoint's step ${meta.step}`, optState.meta.step);
    }
    opt.restore(optState.weights);
    log(`heal train: resumed ${ckpt} at step ${meta.step}`);
  } else {
    const seed = opts.seed ?? 0;
    if (opts.align) {
      const base = (await loadWeights(opts.align.base)).weights;
      net = new AlignNet(models, base, initWeights(agentNetwork(models.network, models.space), seed), depthSupervised);
    } else {
      net = StageOne.initial(models, seed);
    }
    opt = new NamedAdam(opts.lr ?? 2e-3);
    meta = { step: 0, rngState: (seed * 0x9e3779b1 + 1) >>> 0, seed, lr: opt.lr, data: path.resolve(opts.data), losses: [] };
  }
  const rng = new TrainRng(meta.rngState);
  const losses = [...meta.losses];
  const validations: ValidationResult[] = [];
  let step = meta.step;
  let warnedNoDepth = false;
  if (depthSupervised) log(`heal align: ${opts.align!.type}'s depth distribution is supervised by the dataset's depth maps (weight ${lossWeights.depth})`);
  const save = () => saveCheckpoint(opts.out, net, opt, { ...meta, step, rngState: rng.state, lr: opt.lr, losses });
  try {
    while (step < opts.steps) {
      const t0 = performance.now();
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
      const sample = opts.align
        ? await loadSingleAgentSample(ds, ref, ref.agentIds[rng.int(ref.agentIds.length)], sampleOpts)
        : await loadSample(ds, ref, sampleOpts);
      if (depthSupervised && !sample.depth && !warnedNoDepth) {
        warnedNoDepth = true;
        log(
          `heal align: ${ref.split}/${ref.scenario}/${ref.timestamp} agent ${sample.egoId} has no depth map for every camera; such frames train without depth supervision`,
        );
      }
      const { loss, parts } = trainStep(net, opt, sample, lossWeights);
      const value = (await loss.data())[0];
      const partValues: Record<string, number> = {};
      for (const [k, t] of Object.entries(parts)) partValues[k] = (await t.data())[0];
      tf.dispose([loss, ...Object.values(parts)]);
      if (!Number.isFinite(value))
        throw new Error(`heal train: loss is ${value} at step ${step + 1} (frame ${ref.split}/${ref.scenario}/${ref.timestamp}); lower --lr`);
      step++;
      losses.push(value);
      opts.onStep?.({ step, loss: value, parts: partValues, ms: performance.now() - t0, agents: sample.inputs.length, positives: sample.targets.positives });
      if (step % checkpointEvery === 0 || step === opts.steps) await save();
      if (valEvery > 0 && valRefs.length && (step % valEvery === 0 || step === opts.steps)) {
        const valOpts = { space: models.space, network: models.network, anchors: net.anchors, levels: net.levels, ...sensor };
        const ap = await validate(net, valRefs, (ref) =>
          opts.align ? loadSingleAgentSample(ds, ref, ref.agentIds[0], valOpts) : loadSample(ds, ref, valOpts),
        );
        validations.push({ step, frames: valRefs.length, ap });
        log(
          `heal train: step ${step} validation on ${valRefs.length} validate frames: ${Object.entries(ap)
            .map(([k, v]) => `${k} ${v.toFixed(4)}`)
            .join(' ')}`,
        );
        await writeFileAtomic(
          path.join(opts.out, 'validation.jsonl'),
          (await readText(path.join(opts.out, 'validation.jsonl'))) + JSON.stringify({ step, frames: valRefs.length, ap }) + '\n',
        );
      }
    }
    if (step === meta.step) await save();
  } finally {
    opt.dispose();
    net.dispose();
  }
  return { step, losses, validations, checkpoint: ckpt };
}

async function readText(file: string): Promise<string> {
  try {
    return await fs.readFile(file, 'utf8');
  } catch {
    return '';
  }
}

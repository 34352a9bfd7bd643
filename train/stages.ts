// The networks a training run optimises: stage 1 (StageOne: the base agent type with the
// pyramid fusion and the head) and stage 2 (AlignNet: a new type's encoder and aligner in front of
// a frozen stage-1 fusion and head). The loop (trainer.ts) and the checkpoints (checkpoint.ts)
// see both through TrainNet.

import * as tf from '@tensorflow/tfjs';
import type { GraphDesc, HostTensor } from '../models/graph.ts';
import { buildTfModel, type TfModel } from '../models/tfjs.ts';
import { initWeights, pickWeights, type Weights } from '../models/weights.ts';
import { agentNetwork, type AgentNetworkConfig } from '../perception/encoders/agent.ts';
import { featureGrid, SMALL_SPACE, trainingSpace, type SharedSpace } from '../perception/space.ts';
import { builtinAgentConfig } from '../perception/registry.ts';
import { egoInputsFor, egoNetworkFor } from '../fusion/pipeline.ts';
import { makeAnchors, type Anchors } from '../fusion/anchors.ts';
import type { TrainSample } from './batch.ts';
import { codecGraphs } from '../fusion/codec.ts';

export interface StageOneModels {
  space: SharedSpace;
  /** The base agent type's network config (type name prefixes its parameters). */
  network: AgentNetworkConfig;
  /** egoNetwork description: inputs features/valid/grid, outputs cls/reg/dir/occ*. */
  ego: GraphDesc;
}

/** m1 and the pyramid fusion of a profile, on its training range (perception/space.ts trainingSpace). */
export function stageOneModels(profile: SharedSpace): StageOneModels {
  const space = trainingSpace(profile);
  return { space, network: builtinAgentConfig('m1', space.name), ego: egoNetworkFor(space) };
}

/** m1 on the small space with the small pyramid fusion: what `heal train` trains by default. */
export function defaultStageOneModels(): StageOneModels {
  return stageOneModels(SMALL_SPACE);
}

function toTensor(h: HostTensor): tf.Tensor {
  return tf.tensor(h.data as Float32Array | Int32Array, h.shape, h.data instanceof Int32Array ? 'int32' : 'float32');
}

/** A training step's loss, in the two parts a network may reach by different routes. */
export interface StepLoss {
  /** Detection and foreground terms, from the ego network's outputs (cls, reg, dir, occ*). */
  head(outputs: Record<string, tf.Tensor>): tf.Scalar;
  /** The weighted depth term of a camera agent's depth distribution, or undefined when there is none. */
  depth(depth: tf.Tensor): tf.Scalar | undefined;
}

/** What the training loop needs of a network pair (stage 1's, or an alignment's). */
export interface TrainNet {
  readonly models: { space: SharedSpace; network: AgentNetworkConfig };
  readonly anchors: Anchors;
  readonly levels: [number, number][];
  /** The variables this stage optimises, keyed by parameter name. */
  trainable(): Map<string, tf.Variable>;
  forward(sample: TrainSample, training: boolean): Record<string, tf.Tensor>;
  /**
   * The loss and its gradient per trainable variable (keyed by the tf variable's name, as
   * tf.variableGrads gives them), where the network computes them otherwise than by taping
   * `forward` whole.
   */
  gradients?(sample: TrainSample, loss: StepLoss): { value: tf.Scalar; grads: Record<string, tf.Tensor> };
  /** Every parameter a checkpoint holds (an alignment's includes the frozen base). */
  readWeights(): Promise<Weights>;
  dispose(): void;
}

/**
 * Runs of nodes the ego network is recomputed in (gradientsInRuns), per agent when it trains:
 * measured on wasm with HEAL's pyramid on 256×128 maps, 16 runs keep a frozen one on one map
 * well inside 4 GB, and a training one (batch statistics tape more) of 3 agents needs 48.
 */
const EGO_RUNS = 16;

/**
 * Whether a step takes its gradients in runs (gradientsInRuns): for HEAL's per-level pyramid.
 * The small profile's network fits taped whole, which takes one forward pass fewer and keeps
 * its runs' losses as they were.
 */
function inRuns(space: SharedSpace): boolean {
  return space.fusion.warp === 'per-level';
}

function levelsOf(ego: GraphDesc): [number, number][] {
  return ego.outputs
    .filter((o) => /^occ\d+$/.test(o.name))
    .sort((a, b) => Number(a.name.slice(3)) - Number(b.name.slice(3)))
    .map((o) => [o.shape[2] as number, o.shape[3] as number]);
}

/**
 * The ego network's inputs for agents whose BEV features are `bevs` (ego first): the grids (one,
 * or one per pyramid level), validity and trust as inference builds them (egoInputsFor), every
 * cell sent and every agent trusted 1, and the live feature tensors, so gradients reach them.
 */
export function egoInputs(space: SharedSpace, bevs: tf.Tensor[], poses: Float64Array[]): Record<string, tf.Tensor> {
  const [W, H] = featureGrid(space);
  const A = bevs.length;
  // egoInputsFor only wraps the stacked host features; the tensors replace them, so none are copied.
  const { features: _, ...rest } = egoInputsFor(space, new Float32Array(0), poses, new Float32Array(A * H * W).fill(1), []);
  const inputs: Record<string, tf.Tensor> = { features: A === 1 ? bevs[0] : tf.concat(bevs, 0) };
  for (const [name, t] of Object.entries(rest)) inputs[name] = toTensor(t);
  return inputs;
}

/**
 * The loss and its gradients for HEAL's per-level pyramid, which taped whole needs more memory
 * than wasm can address (over 4 GB for one 256×128 map), in three passes: the agents' maps
 * without the tape (their batch-norm statistics put back after, so the taped pass moves them
 * once); the loss's gradient with respect to the maps, and to the ego network's variables when
 * it trains, a run of its nodes at a time (TfModel.segmentedGradients); then each agent alone
 * under the tape, whose gradient of Σ map · (d loss / d map), plus its depth term, is the
 * loss's. Gradients are keyed by the tf variable's name.
 */
function gradientsInRuns(
  agent: TfModel,
  ego: TfModel,
  trainEgo: boolean,
  space: SharedSpace,
  sample: TrainSample,
  loss: StepLoss,
): { value: tf.Scalar; grads: Record<string, tf.Tensor> } {
  const inputs = sample.inputs.map((inp) => Object.fromEntries(Object.entries(inp).map(([k, v]) => [k, toTensor(v)])));
  try {
    const stats = [...agent.variables.values()].filter((v) => !v.trainable).map((v) => [v, tf.clone(v)] as const);
    const maps = tf.tidy(() => inputs.map((inp) => agent.apply(inp, { training: true }).bev));
    for (const [v, saved] of stats) {
      v.assign(saved);
      saved.dispose();
    }
    const egoIn = egoInputs(space, maps, sample.poses);
    const egoVars = trainEgo ? [...ego.variables.values()].filter((v) => v.trainable) : [];
    const segments = EGO_RUNS * (trainEgo ? sample.inputs.length : 1);
    const { value, grads } = ego.segmentedGradients(egoIn, ['features'], (out) => loss.head(out), { segments, training: trainEgo, variables: egoVars });
    tf.dispose([...maps, ...Object.values(egoIn)]);
    const dMaps = grads.features;
    delete grads.features;
    const agentVars = [...agent.variables.values()].filter((v) => v.trainable);
    let total = value;
    inputs.forEach((inp, i) => {
      const g = tf.variableGrads(() => {
        const out = agent.apply(inp, { training: true });
        let objective = tf.sum(tf.mul(out.bev, tf.slice(dMaps, [i], [1]))) as tf.Scalar;
        const depth = i === 0 && out.depth ? loss.depth(out.depth) : undefined;
        if (depth) {
          const t = tf.add(total, depth) as tf.Scalar;
          total.dispose();
          total = tf.keep(t);
          objective = tf.add(objective, depth) as tf.Scalar;
        }
        return objective;
      }, agentVars);
      g.value.dispose();
      for (const [name, t] of Object.entries(g.grads)) {
        const prev = grads[name];
        grads[name] = prev ? tf.add(prev, t) : t;
        if (prev) tf.dispose([prev, t]);
      }
    });
    dMaps.dispose();
    return { value: total, grads };
  } finally {
    for (const inp of inputs) tf.dispose(Object.values(inp));
  }
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
    if (inRuns(models.space)) this.gradients = (sample, loss) => gradientsInRuns(this.agent, this.ego, false, models.space, sample, loss);
  }

  gradients?: TrainNet['gradients'];

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
    if (inRuns(models.space)) this.gradients = (sample, loss) => gradientsInRuns(this.agent, this.ego, true, models.space, sample, loss);
  }

  gradients?: TrainNet['gradients'];

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

/**
 * The learned channel compressor (fusion/codec.ts) between every partner's encoder and the frozen
 * pyramid fusion: only the codec's two 1×1 convolutions train, like an alignment; the encoder,
 * fusion and head stay frozen (batch norms in inference mode). The ego's own map does not go
 * through the codec, as in inference: it never travels.
 */
export class CodecNet implements TrainNet {
  readonly agent: TfModel;
  readonly ego: TfModel;
  readonly codec: TfModel;
  readonly anchors: Anchors;
  readonly levels: [number, number][];

  constructor(
    readonly models: StageOneModels,
    readonly base: Weights,
    codecWeights: Weights,
    readonly ratio: number,
  ) {
    const agentDesc = agentNetwork(models.network, models.space);
    this.agent = buildTfModel(agentDesc, pickWeights(agentDesc, base, 'the base model'), 'the base model');
    this.ego = buildTfModel(models.ego, pickWeights(models.ego, base, 'the base model'), 'the base model');
    const desc = codecGraphs(models.space.channels, ratio).both;
    this.codec = buildTfModel(desc, pickWeights(desc, codecWeights, 'the codec'), 'the codec');
    this.anchors = makeAnchors(models.space);
    this.levels = levelsOf(models.ego);
  }

  trainable(): Map<string, tf.Variable> {
    return new Map([...this.codec.variables].filter(([, v]) => v.trainable));
  }

  forward(sample: TrainSample, _training: boolean): Record<string, tf.Tensor> {
    const bevs = sample.inputs.map((inp, i) => {
      const bev = this.agent.apply(Object.fromEntries(Object.entries(inp).map(([k, v]) => [k, toTensor(v)])), { training: false }).bev;
      return i === 0 ? bev : this.codec.apply({ bev }).restored;
    });
    const out = this.ego.apply(egoInputs(this.models.space, bevs, sample.poses), { training: false });
    // An ego with no partner in range sends nothing through the codec; a zero-weighted path keeps
    // its variables connected to the loss, so the step's gradient is zero rather than an error.
    if (bevs.length === 1) out.cls = tf.add(out.cls, tf.mul(tf.sum(this.codec.apply({ bev: bevs[0] }).restored), 0));
    return out;
  }

  async readWeights(): Promise<Weights> {
    return new Map([...this.base, ...(await this.codec.readWeights())]);
  }

  dispose(): void {
    this.agent.dispose();
    this.ego.dispose();
    this.codec.dispose();
  }
}

// The networks a training run optimises: stage 1 (StageOne: the base agent type with the
// pyramid fusion and the head) and stage 2 (AlignNet: a new type's encoder and aligner in front of
// a frozen stage-1 fusion and head). The loop (trainer.ts) and the checkpoints (checkpoint.ts)
// see both through TrainNet.

import * as tf from '@tensorflow/tfjs';
import type { GraphDesc, HostTensor } from '../models/graph.ts';
import { buildTfModel, type TfModel } from '../models/tfjs.ts';
import { initWeights, pickWeights, type Weights } from '../models/weights.ts';
import { agentNetwork, type AgentNetworkConfig } from '../perception/encoders/agent.ts';
import { featureGrid, SMALL_SPACE, type SharedSpace } from '../perception/space.ts';
import { builtinAgentConfig } from '../perception/registry.ts';
import { egoNetworkFor } from '../fusion/pipeline.ts';
import { makeAnchors, type Anchors } from '../fusion/anchors.ts';
import { warpGrids } from '../fusion/warp.ts';
import type { TrainSample } from './batch.ts';

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

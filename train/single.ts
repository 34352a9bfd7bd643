// A new agent type trained alone, as its maker would before it ever meets heal's fleet (heal
// train --single --type T): its encoder and its own head (fusion/networks/own-head.ts) on its own
// single-agent frames, no fusion. What comes out is what a maker ships: the encoder as an ONNX
// file that outputs BEV features (the black box heal adapt joins), and its own head.

import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { HostTensor } from '../models/graph.ts';
import { exportOnnx } from '../models/onnx.ts';
import { buildTfModel, type TfModel } from '../models/tfjs.ts';
import { initWeights, loadWeights, pickWeights, type Weights } from '../models/weights.ts';
import { writeFileAtomic } from '../datasets/io.ts';
import { encoderNetwork, encoderOutChannels } from '../perception/encoders/agent.ts';
import { featureGrid, type SharedSpace } from '../perception/space.ts';
import { ownHeadNetwork, type OwnHeadConfig } from '../fusion/networks/own-head.ts';
import { makeAnchors, type Anchors } from '../fusion/anchors.ts';
import type { StageOneModels, TrainNet } from './stages.ts';
import type { TrainSample } from './batch.ts';
import type { AgentNetworkConfig } from '../perception/encoders/agent.ts';

export function ownHeadConfig(network: AgentNetworkConfig, space: SharedSpace): OwnHeadConfig {
  return { inChannels: encoderOutChannels(network.encoder), anchors: space.anchor.yawsDeg.length, dirBins: 2 };
}

export function ownHeadFor(network: AgentNetworkConfig, space: SharedSpace) {
  const [width, height] = featureGrid(space);
  return ownHeadNetwork(network.type, ownHeadConfig(network, space), { height, width });
}

function toTensor(h: HostTensor): tf.Tensor {
  return tf.tensor(h.data as Float32Array | Int32Array, h.shape, h.data instanceof Int32Array ? 'int32' : 'float32');
}

/** Encoder + own head of one type; everything trains. */
export class SingleNet implements TrainNet {
  readonly encoder: TfModel;
  readonly head: TfModel;
  readonly anchors: Anchors;
  /** No pyramid: no foreground levels to supervise. */
  readonly levels: [number, number][] = [];

  constructor(
    readonly models: StageOneModels,
    weights: Weights,
  ) {
    const enc = encoderNetwork(models.network, models.space);
    const head = ownHeadFor(models.network, models.space);
    this.encoder = buildTfModel(enc, pickWeights(enc, weights, `agent type ${models.network.type}`));
    this.head = buildTfModel(head, pickWeights(head, weights, `agent type ${models.network.type}'s own head`));
    this.anchors = makeAnchors(models.space);
  }

  static initial(models: StageOneModels, seed: number): SingleNet {
    const enc = encoderNetwork(models.network, models.space);
    return new SingleNet(models, new Map([...initWeights(enc, seed), ...initWeights(ownHeadFor(models.network, models.space), seed + 1)]));
  }

  trainable(): Map<string, tf.Variable> {
    const out = new Map<string, tf.Variable>();
    for (const m of [this.encoder, this.head]) for (const [n, v] of m.variables) if (v.trainable) out.set(n, v);
    return out;
  }

  forward(sample: TrainSample, training: boolean): Record<string, tf.Tensor> {
    const inputs = Object.fromEntries(Object.entries(sample.inputs[0]).map(([k, v]) => [k, toTensor(v)]));
    return this.head.apply({ features: this.encoder.apply(inputs, { training }).bev }, { training });
  }

  async readWeights(): Promise<Weights> {
    return new Map([...(await this.encoder.readWeights()), ...(await this.head.readWeights())]);
  }

  dispose(): void {
    this.encoder.dispose();
    this.head.dispose();
  }
}

/** The files `heal train --single` leaves beside its checkpoint: the encoder (output "bev", in its own space) and the own head. */
export function singleFiles(out: string, type: string): { encoder: string; head: string } {
  return { encoder: path.join(out, `${type}.encoder.onnx`), head: path.join(out, `${type}.head.onnx`) };
}

/** Exports a --single checkpoint's encoder and own head as ONNX files (singleFiles). */
export async function exportSingle(
  checkpoint: string,
  network: AgentNetworkConfig,
  space: SharedSpace,
  out: string,
): Promise<{ encoder: string; head: string }> {
  const { weights } = await loadWeights(checkpoint);
  const files = singleFiles(out, network.type);
  const enc = encoderNetwork(network, space);
  const head = ownHeadFor(network, space);
  await writeFileAtomic(files.encoder, exportOnnx(enc, pickWeights(enc, weights, checkpoint)));
  await writeFileAtomic(files.head, exportOnnx(head, pickWeights(head, weights, checkpoint)));
  return files;
}

// A training run's checkpoint: checkpoint.bin holds every parameter (one heal weight file, the
// same names inference reads, so --weights takes it as it is) and, in its metadata, the step, the
// sampling RNG's state and the loss history; optimizer.bin holds Adam's moments at that step.
// Together they let --resume continue exactly where a run stopped.

import * as path from 'node:path';
import { promises as fs } from 'node:fs';
import { DataError } from '../datasets/io.ts';
import { loadWeights, saveWeights, type Weights } from '../models/weights.ts';
import { NamedAdam } from './optimizer.ts';
import { AlignNet, type TrainNet } from './stages.ts';
import { SingleNet } from './single.ts';

export const CHECKPOINT_FILE = 'checkpoint.bin';
export const OPTIMIZER_FILE = 'optimizer.bin';

export interface CheckpointMeta {
  step: number;
  rngState: number;
  seed: number;
  lr: number;
  data: string;
  losses: number[];
}

export async function saveCheckpoint(dir: string, net: TrainNet, opt: NamedAdam, meta: CheckpointMeta): Promise<string> {
  await fs.mkdir(dir, { recursive: true });
  const file = path.join(dir, CHECKPOINT_FILE);
  // Optimizer first: a checkpoint file only exists once its optimizer state does.
  await saveWeights(path.join(dir, OPTIMIZER_FILE), await opt.state(), { step: opt.step });
  await saveWeights(file, await net.readWeights(), {
    ...meta,
    stage: net instanceof AlignNet ? 2 : net instanceof SingleNet ? 'single' : 1,
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

/**
 * Picks up the run saved in `dir`: the network `build` makes from the checkpoint's weights, and
 * Adam at the checkpoint's step with its moments restored (learning rate `lr`, or the saved one).
 * An optimizer state from another step (a run stopped between the two writes) is refused.
 */
export async function resumeCheckpoint(
  dir: string,
  build: (weights: Weights) => TrainNet,
  lr: number | undefined,
): Promise<{ net: TrainNet; opt: NamedAdam; meta: CheckpointMeta }> {
  const file = path.join(dir, CHECKPOINT_FILE);
  const { weights, meta: raw } = await loadWeights(file);
  const meta = checkMeta(file, raw);
  const net = build(weights);
  const opt = new NamedAdam(lr ?? meta.lr, meta.step);
  const optState = await loadWeights(path.join(dir, OPTIMIZER_FILE));
  if (optState.meta.step !== meta.step) {
    throw new DataError(path.join(dir, OPTIMIZER_FILE), 'meta.step', `does not match the checkpoint's step ${meta.step}`, optState.meta.step);
  }
  opt.restore(optState.weights);
  return { net, opt, meta };
}

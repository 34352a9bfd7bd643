// One stage-1 training step (m1 encoders for 3 agents, pyramid fusion, head, losses, Adam) on
// every TensorFlow.js training backend that starts here, side by side: wasm (XNNPACK, with heal's
// convolution gradients), WebGPU (a GPU, or lavapipe on a CPU-only machine), and the pure-JS cpu
// backend. Also the sample loading (PCD, pillars, targets) that precedes each step.

import * as tf from '@tensorflow/tfjs';
import { openDataset } from '../datasets/open.ts';
import { selectTrainingBackend, type TrainingBackend } from '../train/backend.ts';
import { trainStep } from '../train/trainer.ts';
import { NamedAdam } from '../train/optimizer.ts';
import { StageOne, defaultStageOneModels } from '../train/stages.ts';
import { loadSample, TrainRng, type TrainSample } from '../train/batch.ts';
import { world } from './inference.ts';
import { median } from './timing.ts';

const BACKENDS: TrainingBackend[] = ['wasm', 'webgpu', 'cpu'];
// The cpu backend takes tens of seconds a step: fewer repeats there.
const REPEATS: Record<string, number> = { wasm: 5, webgpu: 5, cpu: 1 };

export async function run(): Promise<Record<string, number | string>> {
  const ds = await openDataset(await world());
  const ref = ds.frames()[0];
  const models = defaultStageOneModels();
  const out: Record<string, number | string> = { agents: 3, profile: models.space.name };
  const loadTimes: number[] = [];
  let sample: TrainSample | undefined;
  for (const backend of BACKENDS) {
    try {
      await selectTrainingBackend(backend, () => {});
    } catch (err) {
      out[`${backend}.step_ms`] = `skipped: ${(err as Error).message}`;
      continue;
    }
    const net = StageOne.initial(models, 0);
    const opt = new NamedAdam(2e-3);
    const rng = new TrainRng(1);
    const opts = {
      space: models.space,
      network: models.network,
      anchors: net.anchors,
      levels: net.levels,
      rng,
      augment: true,
      maxAgents: 3,
      lidar: 64 as const,
      images: false,
    };
    const step = async () => {
      const t0 = performance.now();
      sample = await loadSample(ds, ref, opts);
      loadTimes.push(performance.now() - t0);
      const t1 = performance.now();
      const { loss, parts } = trainStep(net, opt, sample);
      await loss.data();
      tf.dispose([loss, ...Object.values(parts)]);
      return performance.now() - t1;
    };
    await step(); // warm-up: kernels, shaders, wasm memory growth
    const times: number[] = [];
    for (let r = 0; r < REPEATS[backend]; r++) times.push(await step());
    out[`${backend}.step_ms`] = median(times);
    out[`${backend}.tf_backend`] = tf.getBackend();
    opt.dispose();
    net.dispose();
  }
  out.load_sample_ms = median(loadTimes);
  return out;
}

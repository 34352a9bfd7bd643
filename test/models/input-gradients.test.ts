// TfModel.segmentedGradients (models/tfjs.ts): the gradient through a frozen network recomputed a run
// of nodes at a time equals the one taped whole, for any number of runs, on a network whose
// tensors cross run boundaries in both layouts and whose outputs are read again inside it
// (a tiny HEAL-style ego network: per-level warps, ResNeXt bottlenecks, skip connections to the
// decoder), and it frees every tensor it made.

import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { buildTfModel } from '../../models/tfjs.ts';
import { initWeights } from '../../models/weights.ts';
import { egoInputsFor, egoNetworkFor } from '../../fusion/pipeline.ts';
import { tinyPerLevelSpace } from '../helpers/tiny.ts';
import { poseToMatrix } from '../../datasets/geometry/transforms.ts';
import { rngFor } from '../../datasets/rng.ts';

const TINY = tinyPerLevelSpace([1, 2]);

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('segmentedGradients', () => {
  it('equals the whole-tape gradient for 1 to 12 runs and leaves no tensor behind; in training mode also for the variables, moving the batch statistics once', () => {
    const desc = egoNetworkFor(TINY);
    const model = buildTfModel(desc, initWeights(desc, 2));
    const [A, C, H, W] = [2, 8, 16, 16];
    const poses = [poseToMatrix([0, 0, 1.9, 0, 0, 0]), poseToMatrix([4, -3, 1.9, 0, 20, 0])];
    const { features: _, ...host } = egoInputsFor(TINY, new Float32Array(0), poses, new Float32Array(A * H * W).fill(1), []);
    const rng = rngFor('input-gradients', 1);
    const feats = tf.tensor4d(
      Float32Array.from({ length: A * C * H * W }, () => rng.normal()),
      [A, C, H, W],
    );
    const inputs: Record<string, tf.Tensor> = { features: feats };
    for (const [k, v] of Object.entries(host)) inputs[k] = tf.tensor(v.data as Float32Array, v.shape);
    // Every output counts, with its own weight, so a lost output gradient shows.
    const loss = (out: Record<string, tf.Tensor>) =>
      Object.values(out).reduce((s: tf.Scalar, t, i) => tf.add(s, tf.mul(tf.sum(tf.square(t)), 1 + i)) as tf.Scalar, tf.scalar(0));
    const whole = tf.grad((f: tf.Tensor) => loss(model.apply({ ...inputs, features: f })))(feats);
    const ref = whole.dataSync();
    let scale = 0;
    for (const v of ref) scale = Math.max(scale, Math.abs(v));
    expect(scale).toBeGreaterThan(0);
    const before = tf.memory().numTensors;
    for (const segments of [1, 2, 3, 5, 12]) {
      const { value, grads } = model.segmentedGradients(inputs, ['features'], loss, { segments });
      const g = grads.features.dataSync();
      let err = 0;
      for (let i = 0; i < g.length; i++) err = Math.max(err, Math.abs(g[i] - ref[i]));
      expect(err / scale, `${segments} runs`).toBeLessThan(1e-5);
      tf.dispose([value, grads.features]);
      expect(tf.memory().numTensors, `${segments} runs`).toBe(before);
    }
    tf.dispose(whole);

    // Training mode, with the variables: batch statistics, running statistics moved once.
    const vars = [...model.variables.values()].filter((v) => v.trainable);
    const stats = [...model.variables.values()].filter((v) => !v.trainable);
    const initial = stats.map((v) => tf.clone(v));
    const ref2 = tf.variableGrads(() => loss(model.apply(inputs, { training: true })), vars);
    const statsAfter = stats.map((v) => v.dataSync().slice());
    stats.forEach((v, i) => v.assign(initial[i]));
    const { value, grads } = model.segmentedGradients(inputs, ['features'], loss, { segments: 4, training: true, variables: vars });
    expect(Math.abs(value.dataSync()[0] - ref2.value.dataSync()[0]) / Math.abs(ref2.value.dataSync()[0])).toBeLessThan(1e-5);
    for (const v of vars) {
      const a = ref2.grads[v.name].dataSync();
      const b = grads[v.name].dataSync();
      let err = 0;
      let mag = 1e-6;
      for (let i = 0; i < a.length; i++) {
        err = Math.max(err, Math.abs(a[i] - b[i]));
        mag = Math.max(mag, Math.abs(a[i]));
      }
      expect(err / mag, v.name).toBeLessThan(1e-4);
    }
    stats.forEach((v, i) => {
      const d = v.dataSync();
      for (let k = 0; k < d.length; k++) expect(Math.abs(d[k] - statsAfter[i][k])).toBeLessThan(1e-5);
    });
    tf.dispose([value, ...Object.values(grads), ref2.value, ...Object.values(ref2.grads), ...initial, ...Object.values(inputs)]);
    model.dispose();
  });
});

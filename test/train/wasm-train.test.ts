// The wasm training backend: heal's convolution, depthwise, transposed-convolution and max
// gradients (models/train/wasm.ts) against tfjs's own gradients on the cpu backend, for the
// strides, paddings and kernels the networks use; and gatherRows' host path on wasm.

import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { selectTrainingBackend } from '../../train/backend.ts';
import { gatherRows } from '../../models/tfjs.ts';

type Case = { name: string; x: number[]; w: number[]; f: (x: tf.Tensor4D, w: tf.Tensor4D) => tf.Tensor; integers?: boolean };

const cases: Case[] = [];
for (const k of [1, 3]) {
  for (const s of [1, 2]) {
    for (const pad of ['same', 'valid', 1] as const) {
      cases.push({ name: `conv2d k${k} s${s} pad ${pad}`, x: [2, 9, 8, 5], w: [k, k, 5, 4], f: (x, w) => tf.conv2d(x, w, s, pad) });
      cases.push({ name: `depthwise k${k} s${s} pad ${pad}`, x: [2, 9, 8, 5], w: [k, k, 5, 1], f: (x, w) => tf.depthwiseConv2d(x, w, s, pad) });
    }
  }
}
for (const s of [1, 2, 4]) {
  cases.push({
    name: `conv2dTranspose k${s} s${s}`,
    x: [2, 5, 4, 6],
    w: [s, s, 3, 6],
    f: (x, w) => tf.conv2dTranspose(x, w, [2, 5 * s, 4 * s, 3], s, 'valid'),
  });
}
// Integer inputs make ties at the maximum, where both tfjs and heal pass the gradient to each.
cases.push({ name: 'max over an axis, with ties', x: [6, 5, 4, 3], w: [1, 1, 1, 1], f: (x, w) => tf.mul(tf.max(x, 1), tf.sum(w)), integers: true });

/** Gradients of sum(f(x, w) · g) for a fixed g, on the active backend. */
function grads(c: Case, xv: Float32Array, wv: Float32Array): Float32Array[] {
  return tf.tidy(() => {
    const x = tf.tensor4d(xv, c.x as [number, number, number, number]);
    const w = tf.tensor4d(wv, c.w as [number, number, number, number]);
    const y = c.f(x, w);
    const g = tf.tensor(
      Float32Array.from({ length: y.size }, (_, i) => Math.sin(i)),
      y.shape,
    );
    return tf
      .grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(c.f(a as tf.Tensor4D, b as tf.Tensor4D), g)))([x, w])
      .map((t) => t.dataSync() as Float32Array);
  });
}

function random(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return (s / 2 ** 32) * 4 - 2;
  });
}

describe('wasm training backend', () => {
  let reference: Float32Array[][];
  const inputs = cases.map((c, i) => {
    const x = random(
      c.x.reduce((a, b) => a * b),
      2 * i + 1,
    );
    return [
      c.integers ? x.map(Math.round) : x,
      random(
        c.w.reduce((a, b) => a * b),
        2 * i + 2,
      ),
    ];
  });

  beforeAll(async () => {
    await tf.setBackend('cpu');
    reference = cases.map((c, i) => grads(c, inputs[i][0], inputs[i][1]));
    const choice = await selectTrainingBackend('wasm', () => {});
    expect(choice.backend).toBe('wasm');
    expect(tf.getBackend()).toBe('wasm');
  });

  it.each(cases.map((c, i) => [c.name, i] as const))('%s: gradients match tfjs on cpu', (_name, i) => {
    const got = grads(cases[i], inputs[i][0], inputs[i][1]);
    for (const [j, ref] of reference[i].entries()) {
      const scale = Math.max(1, ...ref.map(Math.abs));
      for (let k = 0; k < ref.length; k++) expect(Math.abs(got[j][k] - ref[k]) / scale).toBeLessThan(1e-5);
    }
  });

  it('gatherRows on wasm: rows, an error for an index out of range, and its gradient', () => {
    const table = tf.tensor2d([
      [1, 2],
      [3, 4],
      [5, 6],
    ]);
    expect(Array.from(gatherRows(table, tf.tensor1d([2, 0, 2], 'int32')).dataSync())).toEqual([5, 6, 1, 2, 5, 6]);
    expect(() => gatherRows(table, tf.tensor1d([3], 'int32'))).toThrow(/index 3 outside \[0, 3\)/);
    const g = tf.grad((t: tf.Tensor) => tf.sum(gatherRows(t, tf.tensor1d([2, 0, 2], 'int32'))))(table);
    expect(Array.from(g.dataSync())).toEqual([1, 1, 0, 0, 2, 2]);
  });
});

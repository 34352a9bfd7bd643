// Adam for the training loop. Its moments are keyed by parameter name rather than by tfjs
// variable, so a checkpoint can save them next to the weights (which use the same names) and a
// resumed run, whose variables are new objects, picks them up exactly.

import * as tf from '@tensorflow/tfjs';
import type { Weights } from '../models/weights.ts';

const ADAM = { beta1: 0.9, beta2: 0.999, epsilon: 1e-8 };

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

  /** The moments as weights named m/<param> and v/<param>. */
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

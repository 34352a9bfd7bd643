// A network description as a differentiable TensorFlow.js function, for training.
//
// Each parameter becomes one tf.Variable holding the ONNX layout, so the variables read back
// (readWeights) are exactly what models/onnx.ts exports. tfjs convolutions want NHWC, so image
// tensors produced by conv-like nodes stay NHWC internally and are transposed back to NCHW only
// where a node needs the logical layout (reshape, gather, ...) and at the outputs: every tensor
// that goes in or comes out of `apply` is NCHW, like the description.

import * as tf from '@tensorflow/tfjs';
import type { GraphDesc, Node } from './graph.ts';
import { checkWeights, type Weights } from './weights.ts';

export interface ApplyOptions {
  /**
   * Training mode: batch norm normalises with the batch's statistics and moves its running
   * statistics towards them (PyTorch convention). Default false: running statistics, which is
   * what the ONNX export computes.
   */
  training?: boolean;
}

export interface TfModel {
  desc: GraphDesc;
  /** One variable per parameter, keyed by parameter name. Running statistics have trainable = false. */
  variables: Map<string, tf.Variable>;
  /**
   * Runs the graph. Inputs and outputs are NCHW, keyed by the description's names. Call it
   * inside tf.variableGrads / optimizer.minimize to train; pass the variables to train explicitly
   * (see trainableVariables) so frozen parts stay frozen.
   */
  apply(inputs: Record<string, tf.Tensor>, opts?: ApplyOptions): Record<string, tf.Tensor>;
  /** Trainable variables whose names pass `keep` (default: all of them). */
  trainableVariables(keep?: (name: string) => boolean): tf.Variable[];
  /**
   * Current values of every parameter, in the description's order. Asynchronous because the
   * WebGPU backend cannot read GPU memory synchronously in Node.
   */
  readWeights(): Promise<Weights>;
  dispose(): void;
}

/** A tensor during evaluation; `nhwc` marks a rank-4 tensor held transposed from its logical NCHW. */
interface Value {
  t: tf.Tensor;
  nhwc: boolean;
}

const NHWC_AXIS = [0, 3, 1, 2];

export function buildTfModel(desc: GraphDesc, weights: Weights, source = 'weights'): TfModel {
  checkWeights(desc, weights, source);
  const variables = new Map<string, tf.Variable>();
  // No variable names: tfjs names must be unique per process, and tests build the same net twice.
  for (const p of desc.params) {
    // tidy frees the staging tensor; the variable keeps its own reference to the data.
    variables.set(
      p.name,
      tf.tidy(() => tf.variable(tf.tensor(weights.get(p.name)!.data, p.shape, 'float32'), p.trainable)),
    );
  }
  const constants = new Map<string, tf.Tensor>();
  for (const c of desc.constants) constants.set(c.name, tf.keep(tf.tensor(c.values, c.shape, c.dtype)));

  const apply = (inputs: Record<string, tf.Tensor>, opts: ApplyOptions = {}): Record<string, tf.Tensor> =>
    tf.tidy(() => {
      const values = new Map<string, Value>();
      for (const spec of desc.inputs) {
        const t = inputs[spec.name];
        if (!t) throw new Error(`${desc.name}: input "${spec.name}" is missing`);
        if (t.dtype !== spec.dtype) throw new Error(`${desc.name}: input "${spec.name}" must be ${spec.dtype}, got ${t.dtype}`);
        if (t.rank !== spec.shape.length || spec.shape.some((d, i) => typeof d === 'number' && d !== t.shape[i])) {
          throw new Error(`${desc.name}: input "${spec.name}" has shape [${t.shape}], expected [${spec.shape}]`);
        }
        values.set(spec.name, { t, nhwc: false });
      }
      for (const [name, v] of variables) values.set(name, { t: v, nhwc: false });
      for (const [name, c] of constants) values.set(name, { t: c, nhwc: false });
      for (const node of desc.nodes) {
        const args = node.inputs.map((name) => {
          const v = values.get(name);
          if (!v) throw new Error(`${desc.name}: node "${node.name}" reads unknown tensor "${name}"`);
          return v;
        });
        values.set(
          node.name,
          runNode(
            node,
            args,
            opts.training ?? false,
            node.inputs.map((n) => variables.get(n)),
          ),
        );
      }
      const out: Record<string, tf.Tensor> = {};
      for (const o of desc.outputs) out[o.name] = logical(values.get(o.name)!).t;
      return out;
    });

  return {
    desc,
    variables,
    apply,
    trainableVariables: (keep = () => true) => [...variables].filter(([n, v]) => v.trainable && keep(n)).map(([, v]) => v),
    readWeights: async () => {
      const w: Weights = new Map();
      for (const p of desc.params) w.set(p.name, { shape: [...p.shape], data: new Float32Array(await variables.get(p.name)!.data()) });
      return w;
    },
    dispose: () => {
      for (const v of variables.values()) v.dispose();
      for (const c of constants.values()) c.dispose();
    },
  };
}

function logical(v: Value): Value {
  return v.nhwc ? { t: tf.transpose(v.t, [0, 3, 1, 2]), nhwc: false } : v;
}

function toNhwc(v: Value, where: string): tf.Tensor4D {
  if (v.nhwc) return v.t as tf.Tensor4D;
  if (v.t.rank !== 4) throw new Error(`${where}: expected a rank-4 NCHW tensor, got shape [${v.t.shape}]`);
  return tf.transpose(v.t, [0, 2, 3, 1]) as tf.Tensor4D;
}

/** Axis of `v`'s storage that holds logical axis `axis`. */
function physicalAxis(v: Value, axis: number): number {
  return v.nhwc ? NHWC_AXIS[axis] : axis;
}

function runNode(node: Node, args: Value[], training: boolean, vars: (tf.Variable | undefined)[]): Value {
  const where = `node "${node.name}" (${node.op})`;
  switch (node.op) {
    case 'conv2d': {
      const x = toNhwc(args[0], where);
      const w = args[1].t as tf.Tensor4D; // [O, I/g, kh, kw]
      const [o, ig] = w.shape;
      const cin = x.shape[3];
      const g = node.groups;
      let y: tf.Tensor4D;
      if (g === 1) {
        y = tf.conv2d(x, tf.transpose(w, [2, 3, 1, 0]) as tf.Tensor4D, node.stride, node.pad);
      } else if (g === cin && ig === 1) {
        // Depthwise: output channel c·m + q reads input channel c in both ONNX and tfjs.
        const m = o / cin;
        const f = tf.transpose(tf.reshape(w, [cin, m, node.kernel[0], node.kernel[1]]), [2, 3, 0, 1]) as tf.Tensor4D;
        y = tf.depthwiseConv2d(x, f, node.stride, node.pad);
      } else {
        const xs = tf.split(x, g, 3);
        const fs = tf.split(tf.transpose(w, [2, 3, 1, 0]) as tf.Tensor4D, g, 3);
        y = tf.concat(
          xs.map((xi, i) => tf.conv2d(xi as tf.Tensor4D, fs[i] as tf.Tensor4D, node.stride, node.pad)),
          3,
        );
      }
      if (args[2]) y = tf.add(y, args[2].t);
      return { t: y, nhwc: true };
    }
    case 'convTranspose2d': {
      const x = toNhwc(args[0], where);
      const w = args[1].t as tf.Tensor4D; // [I, O, kh, kw]
      const [n, h, wd] = x.shape;
      const [kh, kw] = node.kernel;
      const s = node.stride;
      const outShape: [number, number, number, number] = [n, (h - 1) * s + kh, (wd - 1) * s + kw, w.shape[1]];
      let y = tf.conv2dTranspose(x, tf.transpose(w, [2, 3, 1, 0]) as tf.Tensor4D, outShape, s, 'valid');
      if (args[2]) y = tf.add(y, args[2].t);
      return { t: y, nhwc: true };
    }
    case 'batchNorm': {
      // Keep an NHWC tensor as it is when the channel axis is the logical axis 1.
      const v = args[0].nhwc && node.axis !== 1 ? logical(args[0]) : args[0];
      const x = v.t;
      const axis = physicalAxis(v, node.axis);
      const bshape = x.shape.map((d, i) => (i === axis ? d : 1));
      const [gamma, beta, runMean, runVar] = args.slice(1).map((a) => tf.reshape(a.t, bshape));
      let mean = runMean;
      let variance = runVar;
      if (training) {
        const axes = x.shape.map((_, i) => i).filter((i) => i !== axis);
        const m = tf.moments(x, axes, true);
        mean = m.mean;
        variance = m.variance;
        const count = x.size / x.shape[axis];
        const meanVar = vars[3];
        const varVar = vars[4];
        if (!meanVar || !varVar) throw new Error(`${where}: running statistics must be parameters`);
        const k = node.momentum;
        // PyTorch keeps the unbiased batch variance in its running estimate.
        const unbiased = tf.mul(variance, count / Math.max(1, count - 1));
        meanVar.assign(tf.add(tf.mul(meanVar, 1 - k), tf.mul(tf.reshape(mean, meanVar.shape), k)));
        varVar.assign(tf.add(tf.mul(varVar, 1 - k), tf.mul(tf.reshape(unbiased, varVar.shape), k)));
      }
      const scale = tf.mul(gamma, tf.rsqrt(tf.add(variance, node.epsilon)));
      return { t: tf.add(tf.mul(tf.sub(x, mean), scale), beta), nhwc: v.nhwc };
    }
    case 'linear': {
      const x = logical(args[0]).t;
      const w = args[1].t as tf.Tensor2D;
      const [inF, outF] = w.shape;
      let y: tf.Tensor = tf.matMul(tf.reshape(x, [-1, inF]) as tf.Tensor2D, w);
      if (args[2]) y = tf.add(y, args[2].t);
      return { t: tf.reshape(y, [...x.shape.slice(0, -1), outF]), nhwc: false };
    }
    case 'relu':
      return { t: tf.relu(args[0].t), nhwc: args[0].nhwc };
    case 'sigmoid':
      return { t: tf.sigmoid(args[0].t), nhwc: args[0].nhwc };
    case 'exp':
      return { t: tf.exp(args[0].t), nhwc: args[0].nhwc };
    case 'identity':
      return args[0];
    case 'add':
    case 'sub':
    case 'mul':
    case 'div': {
      let [a, b] = args;
      if (a.t.rank === 4 && b.t.rank === 4) {
        // Same permutation on both sides keeps numpy broadcasting intact.
        if (a.nhwc !== b.nhwc) {
          if (a.nhwc) b = { t: toNhwc(b, where), nhwc: true };
          else a = { t: toNhwc(a, where), nhwc: true };
        }
      } else {
        a = logical(a);
        b = logical(b);
      }
      const f = { add: tf.add, sub: tf.sub, mul: tf.mul, div: tf.div }[node.op];
      return { t: f(a.t, b.t), nhwc: a.nhwc };
    }
    case 'concat': {
      const nhwc = args.every((a) => a.t.rank === 4) && args.some((a) => a.nhwc);
      const ts = args.map((a) => (nhwc ? toNhwc(a, where) : logical(a).t));
      return { t: tf.concat(ts, nhwc ? NHWC_AXIS[node.axis] : node.axis), nhwc };
    }
    case 'reduceMax':
    case 'reduceSum':
    case 'reduceMean': {
      const v = node.keepDims ? args[0] : logical(args[0]);
      const f = { reduceMax: tf.max, reduceSum: tf.sum, reduceMean: tf.mean }[node.op];
      return { t: f(v.t, physicalAxis(v, node.axis), node.keepDims), nhwc: v.nhwc };
    }
    case 'softmax': {
      // tf.softmax works on the last axis only.
      const v = args[0];
      return { t: alongLastAxis(v.t, physicalAxis(v, node.axis), (t) => tf.softmax(t)), nhwc: v.nhwc };
    }
    case 'cumsum': {
      // tfjs 4.22's Cumsum gradient mis-transposes for any axis but the last, so only use that one.
      const v = args[0];
      return { t: alongLastAxis(v.t, physicalAxis(v, node.axis), (t) => tf.cumsum(t, t.rank - 1)), nhwc: v.nhwc };
    }
    case 'reshape': {
      const x = logical(args[0]).t;
      const shape = node.shape.map((d, i) => (d === 0 ? x.shape[i] : d));
      return { t: tf.reshape(x, shape), nhwc: false };
    }
    case 'transpose':
      return { t: tf.transpose(logical(args[0]).t, node.perm), nhwc: false };
    case 'gather': {
      const data = logical(args[0]).t;
      const idx = logical(args[1]).t;
      const axis = node.axis < 0 ? node.axis + data.rank : node.axis;
      return { t: axis === 0 && idx.rank === 1 ? gatherRows(data, idx) : tf.gather(data, idx, node.axis), nhwc: false };
    }
    case 'maxPool': {
      const x = toNhwc(args[0], where);
      return { t: tf.maxPool(x, node.kernel, node.stride, 'valid'), nhwc: true };
    }
    case 'gridSample':
      return { t: gridSampleNhwc(toNhwc(args[0], where), logical(args[1]).t as tf.Tensor4D, where), nhwc: true };
  }
}

/**
 * tf.gather(x, idx, 0) for 1-D indices, with its gradient as one scatterND (which sums repeated
 * indices). tfjs's own gather gradient goes through UnsortedSegmentSum, which on the cpu backend
 * costs rows × indices: 351 s for a 2001-row table gathered 65,536 times, against 0.33 s here.
 */
export function gatherRows(x: tf.Tensor, idx: tf.Tensor): tf.Tensor {
  const shape = x.shape;
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [xv, iv, save] = args as [tf.Tensor, tf.Tensor, tf.GradSaveFunc];
    save([iv]);
    return {
      value: tf.getBackend() === 'wasm' ? gatherRowsHost(xv, iv) : tf.gather(xv, iv, 0),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => [
        tf.scatterND(tf.expandDims(saved[0], 1), dy, shape),
        // Indices get no gradient; customGrad still wants one tensor per input.
        tf.zerosLike(saved[0]),
      ],
    };
  });
  return f(x, idx) as tf.Tensor;
}

/**
 * The same gather done in JavaScript: the wasm backend's GatherV2 takes 22 ms for 16,384 rows of
 * 32 floats, this 3.7 ms (reading wasm memory is a copy, not a GPU download).
 */
function gatherRowsHost(x: tf.Tensor, idx: tf.Tensor): tf.Tensor {
  const xv = x.dataSync();
  const iv = idx.dataSync();
  const rows = x.shape[0];
  const c = x.size / rows;
  const out = x.dtype === 'int32' ? new Int32Array(iv.length * c) : new Float32Array(iv.length * c);
  for (let j = 0; j < iv.length; j++) {
    const r = iv[j];
    if (r < 0 || r >= rows) throw new Error(`gather: index ${r} outside [0, ${rows})`);
    out.set(xv.subarray(r * c, r * c + c) as Float32Array & Int32Array, j * c);
  }
  return tf.tensor(out, [iv.length, ...x.shape.slice(1)], x.dtype);
}

/** Applies `f` (which works on the last axis) along `axis`, by swapping that axis to the end. */
function alongLastAxis(t: tf.Tensor, axis: number, f: (t: tf.Tensor) => tf.Tensor): tf.Tensor {
  const last = t.rank - 1;
  if (axis === last) return f(t);
  const perm = t.shape.map((_, i) => i);
  perm[axis] = last;
  perm[last] = axis;
  return tf.transpose(f(tf.transpose(t, perm)), perm);
}

/**
 * Bilinear sampling with zero padding and align_corners = false, as ONNX GridSample, built from
 * gathers so it is differentiable with respect to the sampled features.
 */
function gridSampleNhwc(x: tf.Tensor4D, grid: tf.Tensor4D, where: string): tf.Tensor4D {
  const [n, h, w, c] = x.shape;
  const [gn, ho, wo, two] = grid.shape;
  if (gn !== n || two !== 2) throw new Error(`${where}: grid [${grid.shape}] does not fit features with batch ${n}`);
  const m = ho * wo;
  const flatGrid = tf.reshape(grid, [n * m, 2]);
  const [gx, gy] = tf.split(flatGrid, 2, 1).map((t) => tf.reshape(t, [n * m]));
  // Pixel coordinates of the sample point: -1 is the left edge of pixel 0, +1 the right edge of the last.
  const ix = tf.mul(tf.sub(tf.mul(tf.add(gx, 1), w), 1), 0.5);
  const iy = tf.mul(tf.sub(tf.mul(tf.add(gy, 1), h), 1), 0.5);
  const x0 = tf.floor(ix);
  const y0 = tf.floor(iy);
  const fx = tf.sub(ix, x0);
  const fy = tf.sub(iy, y0);
  const base = new Int32Array(n * m);
  for (let b = 0; b < n; b++) base.fill(b * h * w, b * m, (b + 1) * m);
  const baseT = tf.tensor1d(base, 'int32');
  const flat = tf.reshape(x, [n * h * w, c]);
  let out: tf.Tensor | undefined;
  for (const [dx, dy] of [
    [0, 0],
    [1, 0],
    [0, 1],
    [1, 1],
  ]) {
    const xc = dx ? tf.add(x0, 1) : x0;
    const yc = dy ? tf.add(y0, 1) : y0;
    const wx = dx ? fx : tf.sub(1, fx);
    const wy = dy ? fy : tf.sub(1, fy);
    const inside = tf.logicalAnd(
      tf.logicalAnd(tf.greaterEqual(xc, 0), tf.lessEqual(xc, w - 1)),
      tf.logicalAnd(tf.greaterEqual(yc, 0), tf.lessEqual(yc, h - 1)),
    );
    const weight = tf.mul(tf.mul(wx, wy), tf.cast(inside, 'float32'));
    const cx = tf.cast(tf.clipByValue(xc, 0, w - 1), 'int32');
    const cy = tf.cast(tf.clipByValue(yc, 0, h - 1), 'int32');
    const idx = tf.add(baseT, tf.add(tf.mul(cy, tf.scalar(w, 'int32')), cx));
    const term = tf.mul(gatherRows(flat, idx), tf.reshape(weight, [n * m, 1]));
    out = out ? tf.add(out, term) : term;
  }
  return tf.reshape(out!, [n, ho, wo, c]);
}

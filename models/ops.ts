// The ops of the graph description (models/graph.ts), each with both of its lowerings side by side:
// `onnx` writes the op as ONNX nodes (models/onnx.ts exports them for onnxruntime) and `tfjs` runs
// it in TensorFlow.js (models/tfjs.ts, for training). OPS is typed as a map from every OpName to
// both lowerings, so an op added to the description does not compile until it has the two of them.
//
// TensorFlow.js reaches the tfjs lowerings through their context (ctx.tf and the layout helpers of
// models/tfjs.ts) rather than an import: loading it takes over a second, and exporting ONNX on the
// inference path must not pay for it. This file imports tfjs's types only.

import type * as tfjs from '@tensorflow/tfjs';
import type { Node, NodeOf, OpName } from './graph.ts';
import type { Weights } from './weights.ts';

/** An ONNX AttributeProto, as protobufjs takes it (proto/onnx.proto). */
export interface OnnxAttr {
  name: string;
  type: number;
  f?: number;
  i?: number;
  s?: Uint8Array;
  ints?: number[];
}

/** What an ONNX lowering writes into; models/onnx.ts provides it. Nodes and initializers keep the order they are added in. */
export interface OnnxContext {
  /** Every parameter's value: a batch norm off axis 1 is folded into constants. */
  weights: Weights;
  /** Appends a node with one output, named after that output. */
  node(opType: string, inputs: string[], output: string, attrs?: OnnxAttr[]): void;
  floatInitializer(name: string, dims: number[], data: Float32Array): void;
  int64Initializer(name: string, dims: number[], values: number[]): void;
}

/** A tensor during tfjs evaluation; `nhwc` marks a rank-4 tensor held transposed from its logical NCHW. */
export interface TfValue {
  t: tfjs.Tensor;
  nhwc: boolean;
}

/** TensorFlow.js and the layout helpers of models/tfjs.ts, the same for every node. */
export interface TfKernels {
  tf: typeof tfjs;
  /** The value in its logical NCHW layout. */
  logical(v: TfValue): TfValue;
  toNhwc(v: TfValue, where: string): tfjs.Tensor4D;
  /** Applies `f` (which works on the last axis) along `axis`. */
  alongLastAxis(t: tfjs.Tensor, axis: number, f: (t: tfjs.Tensor) => tfjs.Tensor): tfjs.Tensor;
  /** Gather of rows with a scatter gradient (see models/tfjs.ts). */
  gatherRows(x: tfjs.Tensor, idx: tfjs.Tensor): tfjs.Tensor;
  /** Bilinear, zeros padding, align_corners 0, on NHWC features and an N×Ho×Wo×2 grid. */
  gridSampleNhwc(x: tfjs.Tensor4D, grid: tfjs.Tensor4D, where: string): tfjs.Tensor4D;
}

/** What a tfjs lowering works with; models/tfjs.ts provides it. */
export interface TfContext extends TfKernels {
  /** The node's inputs, in the order of node.inputs. */
  args: TfValue[];
  /** The variable behind each input that is a parameter (batch norm moves its running statistics). */
  vars: (tfjs.Variable | undefined)[];
  training: boolean;
  /** `node "name" (op)`, for error messages. */
  where: string;
}

export interface OpLowering<K extends OpName> {
  onnx: (node: NodeOf<K>, ctx: OnnxContext) => void;
  tfjs: (node: NodeOf<K>, ctx: TfContext) => TfValue;
}

export type OpTable = { [K in OpName]: OpLowering<K> };

interface AnyLowering {
  onnx: (node: Node, ctx: OnnxContext) => void;
  tfjs: (node: Node, ctx: TfContext) => TfValue;
}

/** The lowerings of `node`'s op. */
export function lowering(node: Node): AnyLowering {
  // OPS[node.op] is the entry of this very node's op; TypeScript cannot follow that correlation.
  return OPS[node.op] as AnyLowering;
}

/** Storage axis of each logical NCHW axis in an NHWC tensor. */
const NHWC_AXIS = [0, 3, 1, 2];

/** Axis of `v`'s storage that holds logical axis `axis`. */
function physicalAxis(v: TfValue, axis: number): number {
  return v.nhwc ? NHWC_AXIS[axis] : axis;
}

const ATTR = { FLOAT: 1, INT: 2, STRING: 3, INTS: 7 } as const;
/** TensorProto.DataType FLOAT and DOUBLE, for Cast. */
const ONNX_FLOAT = 1;
const ONNX_DOUBLE = 11;
const intAttr = (name: string, i: number): OnnxAttr => ({ name, type: ATTR.INT, i });
const intsAttr = (name: string, ints: number[]): OnnxAttr => ({ name, type: ATTR.INTS, ints });
const floatAttr = (name: string, f: number): OnnxAttr => ({ name, type: ATTR.FLOAT, f });
const stringAttr = (name: string, s: string): OnnxAttr => ({ name, type: ATTR.STRING, s: Buffer.from(s, 'utf8') });

/** One ONNX node of the same inputs and no attributes. */
const plainOnnx =
  (opType: string) =>
  (node: Node, ctx: OnnxContext): void =>
    ctx.node(opType, node.inputs, node.name);

/** A unary op that keeps the layout it is given. */
const unaryTf =
  (f: (tf: typeof tfjs) => (t: tfjs.Tensor) => tfjs.Tensor) =>
  (_node: Node, { tf, args }: TfContext): TfValue => ({ t: f(tf)(args[0].t), nhwc: args[0].nhwc });

/** Numpy-broadcast binary op; two rank-4 sides get the same permutation, which keeps broadcasting intact. */
const binaryTf =
  (f: (tf: typeof tfjs) => (a: tfjs.Tensor, b: tfjs.Tensor) => tfjs.Tensor) =>
  (_node: Node, ctx: TfContext): TfValue => {
    let [a, b] = ctx.args;
    if (a.t.rank === 4 && b.t.rank === 4) {
      if (a.nhwc !== b.nhwc) {
        if (a.nhwc) b = { t: ctx.toNhwc(b, ctx.where), nhwc: true };
        else a = { t: ctx.toNhwc(a, ctx.where), nhwc: true };
      }
    } else {
      a = ctx.logical(a);
      b = ctx.logical(b);
    }
    return { t: f(ctx.tf)(a.t, b.t), nhwc: a.nhwc };
  };

type ReduceNode = NodeOf<'reduceMax' | 'reduceSum' | 'reduceMean'>;

/** Opset 17 still takes ReduceMax/ReduceMean axes as an attribute (an input only from opset 18). */
const reduceOnnx =
  (opType: string) =>
  (node: ReduceNode, ctx: OnnxContext): void =>
    ctx.node(opType, node.inputs, node.name, [intsAttr('axes', [node.axis]), intAttr('keepdims', node.keepDims ? 1 : 0)]);

const reduceTf =
  (f: (tf: typeof tfjs) => (t: tfjs.Tensor, axis: number, keepDims: boolean) => tfjs.Tensor) =>
  (node: ReduceNode, ctx: TfContext): TfValue => {
    const v = node.keepDims ? ctx.args[0] : ctx.logical(ctx.args[0]);
    return { t: f(ctx.tf)(v.t, physicalAxis(v, node.axis), node.keepDims), nhwc: v.nhwc };
  };

/**
 * onnxruntime's CPU provider runs a convolution in its blocked layout (NCHWc: 16 channels a block
 * with AVX-512, 8 with AVX2) only when every group has whole blocks; a group of 4 or 8 channels
 * (HEAL's ResNeXt levels 0 and 1) runs as 32 small matrix products, with the whole map converted
 * out of the blocked layout before it and back after it. Merging k neighbouring groups into one
 * with a block-diagonal weight (the other groups' entries exactly 0) gives the same sums plus
 * exact zeros, in the blocked layout, at k times the multiply-adds: HEAL's ego network for 3
 * agents took 8 % less CPU time and 4–13 % less wall time on a 2-core AVX-512 machine, and stays
 * within HEAL's reference tolerances. Depthwise convolutions have their own blocked kernel and are
 * left alone, as are weights not known at export (not a parameter).
 */
const GROUP_CHANNELS = 16;

function mergedGroups(node: NodeOf<'conv2d'>, ctx: OnnxContext): { groups: number; dims: number[]; data: Float32Array } | undefined {
  const g = node.groups;
  const w = ctx.weights.get(node.inputs[1]);
  if (g === 1 || !w) return undefined;
  const [o, ig, kh, kw] = w.shape;
  const og = o / g;
  if (ig === 1 || ig >= GROUP_CHANNELS || og >= GROUP_CHANNELS || GROUP_CHANNELS % ig !== 0 || GROUP_CHANNELS % og !== 0) return undefined;
  const k = Math.min(GROUP_CHANNELS / ig, GROUP_CHANNELS / og, g);
  if (g % k !== 0) return undefined;
  const kk = kh * kw;
  const data = new Float32Array(o * ig * k * kk);
  for (let oc = 0; oc < o; oc++) {
    // Output channel oc belongs to old group oc/og, which sits at slot (oc/og) mod k of its new group's inputs.
    const slot = Math.floor(oc / og) % k;
    data.set(w.data.subarray(oc * ig * kk, (oc + 1) * ig * kk), (oc * ig * k + slot * ig) * kk);
  }
  return { groups: g / k, dims: [o, ig * k, kh, kw], data };
}

export const OPS: OpTable = {
  conv2d: {
    onnx: (node, ctx) => {
      const p = node.pad;
      const merged = mergedGroups(node, ctx);
      const inputs = [...node.inputs];
      if (merged) {
        inputs[1] = `${node.name}/merged_weight`;
        ctx.floatInitializer(inputs[1], merged.dims, merged.data);
      }
      ctx.node('Conv', inputs, node.name, [
        intsAttr('kernel_shape', node.kernel),
        intsAttr('strides', [node.stride, node.stride]),
        intsAttr('pads', [p, p, p, p]),
        intsAttr('dilations', [1, 1]),
        intAttr('group', merged?.groups ?? node.groups),
      ]);
    },
    tfjs: (node, { tf, args, toNhwc, where }) => {
      const x = toNhwc(args[0], where);
      const w = args[1].t as tfjs.Tensor4D; // [O, I/g, kh, kw]
      const [o, ig] = w.shape;
      const cin = x.shape[3];
      const g = node.groups;
      let y: tfjs.Tensor4D;
      if (g === 1) {
        y = tf.conv2d(x, tf.transpose(w, [2, 3, 1, 0]) as tfjs.Tensor4D, node.stride, node.pad);
      } else if (g === cin && ig === 1) {
        // Depthwise: output channel c·m + q reads input channel c in both ONNX and tfjs.
        const m = o / cin;
        const f = tf.transpose(tf.reshape(w, [cin, m, node.kernel[0], node.kernel[1]]), [2, 3, 0, 1]) as tfjs.Tensor4D;
        y = tf.depthwiseConv2d(x, f, node.stride, node.pad);
      } else {
        const xs = tf.split(x, g, 3);
        const fs = tf.split(tf.transpose(w, [2, 3, 1, 0]) as tfjs.Tensor4D, g, 3);
        y = tf.concat(
          xs.map((xi, i) => tf.conv2d(xi as tfjs.Tensor4D, fs[i] as tfjs.Tensor4D, node.stride, node.pad)),
          3,
        );
      }
      if (args[2]) y = tf.add(y, args[2].t);
      return { t: y, nhwc: true };
    },
  },

  convTranspose2d: {
    onnx: (node, ctx) =>
      ctx.node('ConvTranspose', node.inputs, node.name, [
        intsAttr('kernel_shape', node.kernel),
        intsAttr('strides', [node.stride, node.stride]),
        intAttr('group', 1),
      ]),
    tfjs: (node, { tf, args, toNhwc, where }) => {
      const x = toNhwc(args[0], where);
      const w = args[1].t as tfjs.Tensor4D; // [I, O, kh, kw]
      const [n, h, wd] = x.shape;
      const [kh, kw] = node.kernel;
      const s = node.stride;
      const outShape: [number, number, number, number] = [n, (h - 1) * s + kh, (wd - 1) * s + kw, w.shape[1]];
      let y = tf.conv2dTranspose(x, tf.transpose(w, [2, 3, 1, 0]) as tfjs.Tensor4D, outShape, s, 'valid');
      if (args[2]) y = tf.add(y, args[2].t);
      return { t: y, nhwc: true };
    },
  },

  batchNorm: {
    onnx: (node, ctx) => {
      const n = node.name;
      if (node.axis === 1) {
        ctx.node('BatchNormalization', node.inputs, n, [floatAttr('epsilon', node.epsilon)]);
        return;
      }
      // ONNX BatchNormalization only normalises axis 1: fold the inference form into x·scale + shift.
      const [, gName, bName, mName, vName] = node.inputs;
      const [gamma, beta, mean, variance] = [gName, bName, mName, vName].map((k) => ctx.weights.get(k)!.data);
      const c = gamma.length;
      const scale = new Float32Array(c);
      const shift = new Float32Array(c);
      for (let i = 0; i < c; i++) {
        scale[i] = gamma[i] / Math.sqrt(variance[i] + node.epsilon);
        shift[i] = beta[i] - mean[i] * scale[i];
      }
      const dims = [c, ...new Array<number>(node.rank - 1 - node.axis).fill(1)];
      ctx.floatInitializer(`${n}/scale`, dims, scale);
      ctx.floatInitializer(`${n}/shift`, dims, shift);
      ctx.node('Mul', [node.inputs[0], `${n}/scale`], `${n}/scaled`);
      ctx.node('Add', [`${n}/scaled`, `${n}/shift`], n);
    },
    tfjs: (node, { tf, args, vars, training, where, logical }) => {
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
      if (!training && x.rank === 4 && axis === 3) {
        // A frozen network (an alignment's fusion and head) still passes gradients back, and
        // the tape keeps what each op saves: one fused kernel saves its input instead of the
        // three maps sub, mul and add would, which keeps HEAL's pyramid inside wasm's 4 GB.
        return { t: tf.batchNorm4d(x as tfjs.Tensor4D, runMean.flatten(), runVar.flatten(), beta.flatten(), gamma.flatten(), node.epsilon), nhwc: v.nhwc };
      }
      const scale = tf.mul(gamma, tf.rsqrt(tf.add(variance, node.epsilon)));
      return { t: tf.add(tf.mul(tf.sub(x, mean), scale), beta), nhwc: v.nhwc };
    },
  },

  linear: {
    onnx: (node, ctx) => {
      const n = node.name;
      if (node.inputs.length === 3) {
        ctx.node('MatMul', node.inputs.slice(0, 2), `${n}/matmul`);
        ctx.node('Add', [`${n}/matmul`, node.inputs[2]], n);
      } else {
        ctx.node('MatMul', node.inputs, n);
      }
    },
    tfjs: (_node, { tf, args, logical }) => {
      const x = logical(args[0]).t;
      const w = args[1].t as tfjs.Tensor2D;
      const [inF, outF] = w.shape;
      let y: tfjs.Tensor = tf.matMul(tf.reshape(x, [-1, inF]) as tfjs.Tensor2D, w);
      if (args[2]) y = tf.add(y, args[2].t);
      return { t: tf.reshape(y, [...x.shape.slice(0, -1), outF]), nhwc: false };
    },
  },

  relu: { onnx: plainOnnx('Relu'), tfjs: unaryTf((tf) => tf.relu) },
  sigmoid: { onnx: plainOnnx('Sigmoid'), tfjs: unaryTf((tf) => tf.sigmoid) },
  exp: { onnx: plainOnnx('Exp'), tfjs: unaryTf((tf) => tf.exp) },
  sign: { onnx: plainOnnx('Sign'), tfjs: unaryTf((tf) => tf.sign) },
  identity: { onnx: plainOnnx('Identity'), tfjs: (_node, { args }) => args[0] },

  add: { onnx: plainOnnx('Add'), tfjs: binaryTf((tf) => tf.add) },
  sub: { onnx: plainOnnx('Sub'), tfjs: binaryTf((tf) => tf.sub) },
  mul: { onnx: plainOnnx('Mul'), tfjs: binaryTf((tf) => tf.mul) },
  div: { onnx: plainOnnx('Div'), tfjs: binaryTf((tf) => tf.div) },

  concat: {
    onnx: (node, ctx) => ctx.node('Concat', node.inputs, node.name, [intAttr('axis', node.axis)]),
    tfjs: (node, { tf, args, toNhwc, logical, where }) => {
      const nhwc = args.every((a) => a.t.rank === 4) && args.some((a) => a.nhwc);
      const ts = args.map((a) => (nhwc ? toNhwc(a, where) : logical(a).t));
      return { t: tf.concat(ts, nhwc ? NHWC_AXIS[node.axis] : node.axis), nhwc };
    },
  },

  reduceMax: { onnx: reduceOnnx('ReduceMax'), tfjs: reduceTf((tf) => tf.max) },
  reduceMean: { onnx: reduceOnnx('ReduceMean'), tfjs: reduceTf((tf) => tf.mean) },
  reduceSum: {
    // ReduceSum has taken its axes as an input since opset 13.
    onnx: (node, ctx) => {
      ctx.int64Initializer(`${node.name}/axes`, [1], [node.axis]);
      ctx.node('ReduceSum', [node.inputs[0], `${node.name}/axes`], node.name, [intAttr('keepdims', node.keepDims ? 1 : 0)]);
    },
    tfjs: reduceTf((tf) => tf.sum),
  },

  softmax: {
    onnx: (node, ctx) => ctx.node('Softmax', node.inputs, node.name, [intAttr('axis', node.axis)]),
    // tf.softmax works on the last axis only.
    tfjs: (node, { tf, args, alongLastAxis }) => {
      const v = args[0];
      return { t: alongLastAxis(v.t, physicalAxis(v, node.axis), (t) => tf.softmax(t)), nhwc: v.nhwc };
    },
  },

  cumsum: {
    onnx: (node, ctx) => {
      const n = node.name;
      ctx.int64Initializer(`${n}/axis`, [], [node.axis]);
      if (node.accumulate !== 'float64') {
        ctx.node('CumSum', [node.inputs[0], `${n}/axis`], n);
        return;
      }
      ctx.node('Cast', [node.inputs[0]], `${n}/float64`, [intAttr('to', ONNX_DOUBLE)]);
      ctx.node('CumSum', [`${n}/float64`, `${n}/axis`], `${n}/sums`);
      ctx.node('Cast', [`${n}/sums`], n, [intAttr('to', ONNX_FLOAT)]);
    },
    // tfjs 4.22's Cumsum gradient mis-transposes for any axis but the last, so only use that one.
    // TensorFlow.js has no float64: there a float64 accumulation is float32 (training only).
    tfjs: (node, { tf, args, alongLastAxis }) => {
      const v = args[0];
      return { t: alongLastAxis(v.t, physicalAxis(v, node.axis), (t) => tf.cumsum(t, t.rank - 1)), nhwc: v.nhwc };
    },
  },

  reshape: {
    onnx: (node, ctx) => {
      ctx.int64Initializer(`${node.name}/shape`, [node.shape.length], node.shape);
      ctx.node('Reshape', [node.inputs[0], `${node.name}/shape`], node.name);
    },
    tfjs: (node, { tf, args, logical }) => {
      const x = logical(args[0]).t;
      const shape = node.shape.map((d, i) => (d === 0 ? x.shape[i] : d));
      return { t: tf.reshape(x, shape), nhwc: false };
    },
  },

  transpose: {
    onnx: (node, ctx) => ctx.node('Transpose', node.inputs, node.name, [intsAttr('perm', node.perm)]),
    tfjs: (node, { tf, args, logical }) => ({ t: tf.transpose(logical(args[0]).t, node.perm), nhwc: false }),
  },

  gather: {
    onnx: (node, ctx) => ctx.node('Gather', node.inputs, node.name, [intAttr('axis', node.axis)]),
    tfjs: (node, { tf, args, logical, gatherRows }) => {
      const data = logical(args[0]).t;
      const idx = logical(args[1]).t;
      const axis = node.axis < 0 ? node.axis + data.rank : node.axis;
      return { t: axis === 0 && idx.rank === 1 ? gatherRows(data, idx) : tf.gather(data, idx, node.axis), nhwc: false };
    },
  },

  maxPool: {
    onnx: (node, ctx) => {
      const attrs = [intsAttr('kernel_shape', [node.kernel, node.kernel]), intsAttr('strides', [node.stride, node.stride])];
      const p = node.pad ?? 0;
      if (p > 0) attrs.push(intsAttr('pads', [p, p, p, p]));
      ctx.node('MaxPool', node.inputs, node.name, attrs);
    },
    // tfjs's pooling skips the padded cells (they never win), as ONNX's and PyTorch's do.
    tfjs: (node, { tf, args, toNhwc, where }) => ({
      t: tf.maxPool(toNhwc(args[0], where), node.kernel, node.stride, (node.pad ?? 0) > 0 ? node.pad! : 'valid'),
      nhwc: true,
    }),
  },

  layerNorm: {
    onnx: (node, ctx) => {
      const n = node.name;
      const [x, gamma, beta] = node.inputs;
      if (node.axis === node.rank - 1) {
        ctx.node('LayerNormalization', node.inputs, n, [intAttr('axis', -1), floatAttr('epsilon', node.epsilon)]);
        return;
      }
      // LayerNormalization normalises every axis from `axis` on; over one inner axis it is spelt out.
      const axes = [intsAttr('axes', [node.axis]), intAttr('keepdims', 1)];
      ctx.node('ReduceMean', [x], `${n}/mean`, axes);
      ctx.node('Sub', [x, `${n}/mean`], `${n}/centred`);
      ctx.node('Mul', [`${n}/centred`, `${n}/centred`], `${n}/squared`);
      ctx.node('ReduceMean', [`${n}/squared`], `${n}/var`, axes);
      ctx.floatInitializer(`${n}/epsilon`, [], Float32Array.of(node.epsilon));
      ctx.node('Add', [`${n}/var`, `${n}/epsilon`], `${n}/var_eps`);
      ctx.node('Sqrt', [`${n}/var_eps`], `${n}/std`);
      ctx.node('Div', [`${n}/centred`, `${n}/std`], `${n}/normed`);
      ctx.int64Initializer(`${n}/param_shape`, [node.rank - node.axis], [-1, ...new Array<number>(node.rank - 1 - node.axis).fill(1)]);
      ctx.node('Reshape', [gamma, `${n}/param_shape`], `${n}/gamma`);
      ctx.node('Reshape', [beta, `${n}/param_shape`], `${n}/beta`);
      ctx.node('Mul', [`${n}/normed`, `${n}/gamma`], `${n}/scaled`);
      ctx.node('Add', [`${n}/scaled`, `${n}/beta`], n);
    },
    tfjs: (node, { tf, args }) => {
      const v = args[0];
      const axis = physicalAxis(v, node.axis);
      const bshape = v.t.shape.map((d, i) => (i === axis ? d : 1));
      const { mean, variance } = tf.moments(v.t, axis, true);
      const normed = tf.mul(tf.sub(v.t, mean), tf.rsqrt(tf.add(variance, node.epsilon)));
      return { t: tf.add(tf.mul(normed, tf.reshape(args[1].t, bshape)), tf.reshape(args[2].t, bshape)), nhwc: v.nhwc };
    },
  },

  gelu: {
    // Gelu is an ONNX op only from opset 20; Erf has been one since 9.
    onnx: (node, ctx) => {
      const n = node.name;
      const x = node.inputs[0];
      ctx.floatInitializer(`${n}/sqrt1_2`, [], Float32Array.of(Math.SQRT1_2));
      ctx.floatInitializer(`${n}/one`, [], Float32Array.of(1));
      ctx.floatInitializer(`${n}/half`, [], Float32Array.of(0.5));
      ctx.node('Mul', [x, `${n}/sqrt1_2`], `${n}/scaled`);
      ctx.node('Erf', [`${n}/scaled`], `${n}/erf`);
      ctx.node('Add', [`${n}/erf`, `${n}/one`], `${n}/erf1`);
      ctx.node('Mul', [x, `${n}/half`], `${n}/halved`);
      ctx.node('Mul', [`${n}/halved`, `${n}/erf1`], n);
    },
    tfjs: unaryTf((tf) => (t) => tf.mul(tf.mul(t, 0.5), tf.add(tf.erf(tf.mul(t, Math.SQRT1_2)), 1))),
  },

  pad: {
    onnx: (node, ctx) => {
      ctx.int64Initializer(`${node.name}/pads`, [node.pads.length], node.pads);
      ctx.node('Pad', [node.inputs[0], `${node.name}/pads`], node.name);
    },
    tfjs: (node, { tf, args, logical }) => {
      const x = logical(args[0]).t;
      const r = x.rank;
      return {
        t: tf.pad(
          x,
          x.shape.map((_, i) => [node.pads[i], node.pads[r + i]] as [number, number]),
        ),
        nhwc: false,
      };
    },
  },

  gridSample: {
    onnx: (node, ctx) =>
      ctx.node('GridSample', node.inputs, node.name, [stringAttr('mode', 'bilinear'), stringAttr('padding_mode', 'zeros'), intAttr('align_corners', 0)]),
    tfjs: (_node, { args, toNhwc, logical, gridSampleNhwc, where }) => ({
      t: gridSampleNhwc(toNhwc(args[0], where), logical(args[1]).t as tfjs.Tensor4D, where),
      nhwc: true,
    }),
  },
};

// A network description as a differentiable TensorFlow.js function, for training.
//
// Each parameter becomes one tf.Variable holding the ONNX layout, so the variables read back
// (readWeights) are exactly what models/onnx.ts exports. tfjs convolutions want NHWC, so image
// tensors produced by conv-like nodes stay NHWC internally and are transposed back to NCHW only
// where a node needs the logical layout (reshape, gather, ...) and at the outputs: every tensor
// that goes in or comes out of `apply` is NCHW, like the description. Each op's tfjs code is its
// entry in models/ops.ts; this file runs the nodes and provides the layout helpers and kernels.

import * as tf from '@tensorflow/tfjs';
import type { GraphDesc } from './graph.ts';
import { lowering, type TfKernels, type TfValue } from './ops.ts';
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
  /**
   * The gradient of `loss` (a scalar of the outputs) with respect to the inputs named in `wrt`
   * and to `variables` (keyed by the tf variable's name, as tf.variableGrads gives them), the
   * nodes run in `segments` consecutive runs: a first pass without the tape keeps only the
   * tensors that cross a run's boundary, then each run, last first, is computed again under the
   * tape and taken back to its own inputs and variables. At most one run's intermediates are
   * alive at a time, at the price of one more forward pass: HEAL's pyramid on one 256×128 map
   * holds over 4 GB when taped whole, more than the wasm backend can address. In training mode
   * batch norms move their running statistics once, in the taped pass.
   */
  segmentedGradients(
    inputs: Record<string, tf.Tensor>,
    wrt: string[],
    loss: (outputs: Record<string, tf.Tensor>) => tf.Scalar,
    opts?: ApplyOptions & { segments?: number; variables?: tf.Variable[] },
  ): { value: tf.Scalar; grads: Record<string, tf.Tensor> };
  /** Trainable variables whose names pass `keep` (default: all of them). */
  trainableVariables(keep?: (name: string) => boolean): tf.Variable[];
  /**
   * Current values of every parameter, in the description's order. Asynchronous because the
   * WebGPU backend cannot read GPU memory synchronously in Node.
   */
  readWeights(): Promise<Weights>;
  dispose(): void;
}

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

  /** Checks the inputs and sets them, the variables and the constants into a fresh value map. */
  const startValues = (inputs: Record<string, tf.Tensor>): Map<string, TfValue> => {
    const values = new Map<string, TfValue>();
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
    return values;
  };

  /** Runs nodes [from, to) of the description on `values`, adding each node's result. */
  const runNodes = (values: Map<string, TfValue>, from: number, to: number, training: boolean): void => {
    for (const node of desc.nodes.slice(from, to)) {
      const args = node.inputs.map((name) => {
        const v = values.get(name);
        if (!v) throw new Error(`${desc.name}: node "${node.name}" reads unknown tensor "${name}"`);
        return v;
      });
      const ctx = {
        ...KERNELS,
        args,
        vars: node.inputs.map((n) => variables.get(n)),
        training,
        where: `node "${node.name}" (${node.op})`,
      };
      values.set(node.name, lowering(node).tfjs(node, ctx));
    }
  };

  const apply = (inputs: Record<string, tf.Tensor>, opts: ApplyOptions = {}): Record<string, tf.Tensor> =>
    tf.tidy(() => {
      const values = startValues(inputs);
      runNodes(values, 0, desc.nodes.length, opts.training ?? false);
      const out: Record<string, tf.Tensor> = {};
      for (const o of desc.outputs) out[o.name] = logical(values.get(o.name)!).t;
      return out;
    });

  const segmentedGradients: TfModel['segmentedGradients'] = (inputs, wrt, loss, opts = {}) => {
    const training = opts.training ?? false;
    const trained = new Set(opts.variables ?? []);
    const n = desc.nodes.length;
    const runs = Math.max(1, Math.min(opts.segments ?? 8, n));
    const bounds = Array.from({ length: runs + 1 }, (_, k) => Math.round((k * n) / runs));
    const runOf = new Map<string, number>();
    desc.nodes.forEach((node, i) =>
      runOf.set(
        node.name,
        bounds.findIndex((b, k) => i >= b && i < bounds[k + 1]),
      ),
    );
    const outputs = new Set(desc.outputs.map((o) => o.name));
    // What each run reads from before it (graph inputs, earlier runs), and what it hands on.
    const reads = bounds.slice(0, -1).map(() => new Set<string>());
    const handsOn = bounds.slice(0, -1).map(() => new Set<string>());
    for (const node of desc.nodes) {
      const r = runOf.get(node.name)!;
      for (const name of node.inputs) {
        if (variables.has(name) || constants.has(name)) continue;
        const from = runOf.get(name);
        if (from === r) continue;
        reads[r].add(name);
        if (from !== undefined) handsOn[from].add(name);
      }
      if (outputs.has(node.name)) handsOn[runOf.get(node.name)!].add(node.name);
    }
    // Forward, untaped: keep only what crosses a boundary. Batch norm's running statistics are
    // put back after it, so that the taped pass moves them once.
    const stats = training ? [...variables.values()].filter((v) => !v.trainable).map((v) => [v, tf.clone(v)] as const) : [];
    const kept = new Map<string, TfValue>();
    const start = startValues(inputs);
    // A node may hand on a tensor it was given (identity): those belong to the caller or the model.
    const owned = (t: tf.Tensor) => ![...start.values()].some((v) => v.t === t);
    for (let r = 0; r < runs; r++) {
      tf.tidy(() => {
        const values = new Map(start);
        for (const [k, v] of kept) values.set(k, v);
        runNodes(values, bounds[r], bounds[r + 1], training);
        for (const name of handsOn[r]) kept.set(name, { t: tf.keep(values.get(name)!.t), nhwc: values.get(name)!.nhwc });
      });
    }
    for (const [v, saved] of stats) {
      v.assign(saved);
      saved.dispose();
    }
    const outs: Record<string, tf.Tensor> = {};
    const logicalOuts: tf.Tensor[] = [];
    for (const o of desc.outputs) {
      outs[o.name] = tf.keep(logical(kept.get(o.name)!).t);
      logicalOuts.push(outs[o.name]);
    }
    // d loss / d output, from the loss alone.
    const { value, grads: outGrads } = tf.engine().gradients(() => loss(outs), logicalOuts, undefined, true) as {
      value: tf.Scalar;
      grads: (tf.Tensor | null)[];
    };
    const acc = new Map<string, tf.Tensor>();
    const varGrads: Record<string, tf.Tensor> = {};
    const addVarGrad = (name: string, g: tf.Tensor) => {
      const prev = varGrads[name];
      varGrads[name] = tf.keep(prev ? tf.add(prev, g) : tf.clone(g));
      prev?.dispose();
    };
    const addGrad = (name: string, g: tf.Tensor) => {
      const prev = acc.get(name);
      // A clone, since one gradient tensor may come back for two names of one tensor.
      acc.set(name, tf.keep(prev ? tf.add(prev, g) : tf.clone(g)));
      prev?.dispose();
    };
    desc.outputs.forEach((o, i) => {
      const g = outGrads[i];
      if (!g) return;
      // An output is handed on in its stored layout; its gradient arrives in the logical one.
      const nhwc = kept.get(o.name)!.nhwc;
      tf.tidy(() => addGrad(o.name, nhwc ? tf.transpose(g, [0, 2, 3, 1]) : g));
      g.dispose();
      if (nhwc) outs[o.name].dispose();
    });
    // Backward, one run at a time, last first.
    for (let r = runs - 1; r >= 0; r--) {
      const names = [...reads[r]];
      const given = names.map((name) => kept.get(name) ?? start.get(name)!);
      // Graph inputs other than `wrt` (grids, validity) are held fixed like the variables.
      const differentiable = names.filter((name, i) => given[i].t.dtype === 'float32' && (runOf.has(name) || wrt.includes(name)));
      const runVars = [...new Set(desc.nodes.slice(bounds[r], bounds[r + 1]).flatMap((node) => node.inputs))]
        .map((name) => variables.get(name))
        .filter((v): v is tf.Variable => v !== undefined && trained.has(v));
      const xs = [...differentiable.map((name) => given[names.indexOf(name)].t), ...runVars];
      tf.tidy(() => {
        const { grads } = tf.engine().gradients(
          () => {
            const values = new Map(start);
            names.forEach((name, i) => values.set(name, given[i]));
            runNodes(values, bounds[r], bounds[r + 1], training);
            let total: tf.Tensor = tf.scalar(0);
            for (const name of handsOn[r]) {
              const dy = acc.get(name);
              if (dy) total = tf.add(total, tf.sum(tf.mul(values.get(name)!.t, dy)));
            }
            return total as tf.Scalar;
          },
          xs,
          undefined,
          true,
        ) as { grads: (tf.Tensor | null)[] };
        differentiable.forEach((name, i) => {
          if (grads[i]) addGrad(name, grads[i]!);
        });
        runVars.forEach((v, i) => {
          const g = grads[differentiable.length + i];
          if (g) addVarGrad(v.name, g);
        });
      });
      const done = [...handsOn[r]].map((name) => kept.get(name)?.t);
      for (const name of handsOn[r]) {
        acc.get(name)?.dispose();
        acc.delete(name);
        kept.delete(name);
      }
      // One tensor may stand under several names (identity): it goes with the last of them.
      const live = new Set([...kept.values()].map((v) => v.t));
      for (const t of done) if (t && owned(t) && !live.has(t) && !t.isDisposed) t.dispose();
    }
    const grads: Record<string, tf.Tensor> = { ...varGrads };
    for (const v of trained) grads[v.name] ??= tf.zerosLike(v);
    for (const name of wrt) {
      const g = acc.get(name);
      if (!g) throw new Error(`${desc.name}: the loss does not depend on input "${name}"`);
      grads[name] = g;
      acc.delete(name);
    }
    for (const g of acc.values()) g.dispose();
    for (const v of kept.values()) if (owned(v.t) && !v.t.isDisposed) v.t.dispose();
    return { value, grads };
  };

  return {
    desc,
    variables,
    apply,
    segmentedGradients,
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

function logical(v: TfValue): TfValue {
  return v.nhwc ? { t: tf.transpose(v.t, [0, 3, 1, 2]), nhwc: false } : v;
}

function toNhwc(v: TfValue, where: string): tf.Tensor4D {
  if (v.nhwc) return v.t as tf.Tensor4D;
  if (v.t.rank !== 4) throw new Error(`${where}: expected a rank-4 NCHW tensor, got shape [${v.t.shape}]`);
  return tf.transpose(v.t, [0, 2, 3, 1]) as tf.Tensor4D;
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

/** What every tfjs lowering of models/ops.ts is given besides its node's own inputs. */
const KERNELS: TfKernels = { tf, logical, toNhwc, alongLastAxis, gatherRows, gridSampleNhwc };

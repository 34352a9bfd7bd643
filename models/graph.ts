// Network descriptions: one description, two runtimes.
//
// A network is described ONCE, as plain data (a `GraphDesc`): named inputs, named parameters,
// a list of nodes in execution order, and named outputs. Every tensor is addressed by name and
// image-like tensors are NCHW, the ONNX layout. From a description heal builds
//   - a differentiable TensorFlow.js model with one tf.Variable per parameter (models/tfjs.ts),
//     used for training, and
//   - an ONNX model with the same weights (models/onnx.ts), run by onnxruntime-node for inference.
// Both walk the nodes through one table, models/ops.ts, that holds each op's two lowerings side
// by side. test/models/parity.test.ts checks that both give the same numbers.
//
// How to describe a network
// -------------------------
//   const g = new GraphBuilder('tiny');
//   const x = g.input('features', ['agents', 32, 64, 64]);      // strings are dynamic dims
//   let y = g.conv2d(x, { name: 'enc.conv1', out: 32, kernel: 3 });  // params enc.conv1.weight/.bias
//   y = g.relu(g.batchNorm(y, { name: 'enc.bn1' }));
//   g.output('bev', y);
//   const desc = g.build();
//   const weights = initWeights(desc, 42);                        // models/weights.ts
//
// - Layers with parameters need a `name`; their parameters are `<name>.weight`, `<name>.bias`,
//   (batch norm: `<name>.gamma/.beta/.mean/.var`). Those names are the keys of weight files, so
//   keep them stable. Calling a layer again with the same name shares its parameters.
// - Every builder call returns a `TensorRef` (name + inferred shape). Shapes are checked as the
//   graph is built, so a wrong channel count fails here with the layer's name, not at run time.
// - Compose networks as functions `(g, inputRefs, config, prefix) => outputRefs` (see
//   models/networks/); a standalone graph is then one call between `new GraphBuilder` and `build`.
// - Semantics follow ONNX (opset 17) exactly: numpy broadcasting, Reshape's 0 = "copy this dim"
//   and -1 = "infer", GridSample with align_corners = 0 and zero padding, and so on.
// - Parameter layouts are ONNX's: conv weight [out, in/groups, kh, kw], conv-transpose weight
//   [in, out, kh, kw]; linear weight is [in, out] (y = x·W + b, no transpose in either runtime).
// - Ops: conv2d (groups), convTranspose2d, batchNorm (any channel axis), linear, relu, sigmoid,
//   exp, sign, add/sub/mul/div, concat, reduceMax/Sum/Mean, softmax, cumsum, reshape, transpose,
//   gather, maxPool (optional padding, −∞ semantics), gridSample, layerNorm (over one
//   axis), gelu (exact, erf), pad (zeros), constants. Adding an op means:
//     1. its member of `Node` below (op name, attributes, inputs) and a builder method with its
//        shape rule here;
//     2. its entry in OPS (models/ops.ts): `onnx` writes it as ONNX nodes, `tfjs` runs it in
//        TensorFlow.js. OPS is typed over every OpName, so nothing compiles until both exist;
//     3. a use of it in the every-op graph of test/models/parity.test.ts, which runs both
//        lowerings against each other and fails while an op of OPS is missing from that graph.
// - Batch norm: training (tfjs, `apply(…, { training: true })`) normalises with batch statistics
//   and updates the running ones; inference and the ONNX export use the running statistics.
//
// Using it
//   const model = buildTfModel(desc, weights);                    // models/tfjs.ts
//   const vars = model.trainableVariables((n) => n.startsWith('encoder.'));   // freeze the rest
//   optimizer.minimize(() => loss(model.apply(inputs, { training: true })), false, vars);
//   const onnx = exportOnnx(desc, await model.readWeights());      // models/onnx.ts
//   const { session, provider } = await createSession(onnx, { device: 'auto' }); // models/runtime.ts

export type Dim = number | string;
export type DType = 'float32' | 'int32';

export interface TensorSpec {
  name: string;
  shape: Dim[];
  dtype: DType;
}

/** How a parameter is initialised (models/weights.ts initWeights). */
export type InitKind = 'he' | 'glorot' | 'zeros' | 'ones' | 'constant';

export interface ParamSpec {
  name: string;
  shape: number[];
  init: InitKind;
  /** For 'constant'. */
  value?: number;
  /** For 'he' / 'glorot'. */
  fanIn?: number;
  fanOut?: number;
  /** False for batch-norm running statistics: stored and exported, never given gradients. */
  trainable: boolean;
}

/** A fixed tensor baked into the description (e.g. the zero row of a gather-based scatter). */
export interface ConstSpec {
  name: string;
  shape: number[];
  dtype: DType;
  values: number[];
}

interface NodeBase {
  /** Unique; also the name of the tensor the node produces. */
  name: string;
  /** Tensor names: graph inputs, parameters, constants or earlier nodes. Order as in ONNX. */
  inputs: string[];
}

export type Node = NodeBase &
  (
    | { op: 'conv2d'; kernel: [number, number]; stride: number; pad: number; groups: number } // [x, w, b?]
    | { op: 'convTranspose2d'; kernel: [number, number]; stride: number } // [x, w, b?]
    | { op: 'batchNorm'; axis: number; rank: number; epsilon: number; momentum: number } // [x, gamma, beta, mean, var]
    | { op: 'linear' } // [x, w, b?] over the last axis
    | { op: 'relu' | 'sigmoid' | 'exp' | 'sign' | 'identity' }
    | { op: 'add' | 'sub' | 'mul' | 'div' } // [a, b], numpy broadcasting
    | { op: 'concat'; axis: number }
    | { op: 'reduceMax' | 'reduceSum' | 'reduceMean'; axis: number; keepDims: boolean }
    | { op: 'softmax'; axis: number }
    | { op: 'cumsum'; axis: number; accumulate?: 'float64' } // float64: summed in float64, each running value rounded to float32
    | { op: 'reshape'; shape: number[] }
    | { op: 'transpose'; perm: number[] }
    | { op: 'gather'; axis: number } // [data, indices(int32)]
    | { op: 'maxPool'; kernel: number; stride: number; pad?: number } // pad: padded cells never win (−∞)
    | { op: 'layerNorm'; axis: number; rank: number; epsilon: number } // [x, gamma, beta]: normalised over `axis` alone (biased variance)
    | { op: 'gelu' } // exact: 0.5·x·(1 + erf(x/√2))
    | { op: 'pad'; pads: number[] } // zeros; ONNX order: every axis's count before, then every axis's count after
    | { op: 'gridSample' } // [x NCHW, grid N×Ho×Wo×2]; bilinear, zeros padding, align_corners 0
  );

export type OpName = Node['op'];

/** The node type of one op (or of several, given a union of names). */
export type NodeOf<K extends OpName> = Node & { op: K };

export interface GraphDesc {
  name: string;
  inputs: TensorSpec[];
  params: ParamSpec[];
  constants: ConstSpec[];
  nodes: Node[];
  /** Graph outputs with their inferred shapes (dims that cannot be inferred are named strings). */
  outputs: TensorSpec[];
}

/** A tensor in a graph under construction. */
export interface TensorRef {
  name: string;
  shape: Dim[];
  dtype: DType;
}

/** A plain host tensor, the exchange type between the runtimes and the rest of heal. */
export interface HostTensor {
  data: Float32Array | Int32Array;
  shape: number[];
}

export interface Conv2dOptions {
  name: string;
  out: number;
  kernel: number;
  stride?: number;
  /** Zero padding on every side; default keeps the size at stride 1 (kernel >> 1). */
  pad?: number;
  groups?: number;
  bias?: boolean;
  /** Initial value of every bias entry (default 0). */
  biasInit?: number;
}

export interface ConvTranspose2dOptions {
  name: string;
  out: number;
  kernel: number;
  /** Default: kernel (non-overlapping upsampling, as HEAL's deblocks). */
  stride?: number;
  bias?: boolean;
}

export interface BatchNormOptions {
  name: string;
  /** Channel axis; 1 for NCHW maps, -1 for point features [P, N, C]. */
  axis?: number;
  epsilon?: number;
  /** Running-statistics update rate in training, PyTorch convention. */
  momentum?: number;
}

export interface LinearOptions {
  name: string;
  out: number;
  bias?: boolean;
}

export class GraphBuilder {
  private readonly inputs: TensorSpec[] = [];
  private readonly params = new Map<string, ParamSpec>();
  private readonly constants: ConstSpec[] = [];
  private readonly nodes: Node[] = [];
  private readonly outputs: TensorSpec[] = [];
  /** Every named tensor and its shape, to check references and infer shapes. */
  private readonly known = new Map<string, TensorRef>();
  private counter = 0;

  constructor(readonly name: string) {}

  input(name: string, shape: Dim[], dtype: DType = 'float32'): TensorRef {
    this.claim(name);
    const ref = { name, shape: [...shape], dtype };
    this.inputs.push({ ...ref });
    this.known.set(name, ref);
    return ref;
  }

  constant(name: string, shape: number[], values: ArrayLike<number>, dtype: DType = 'float32'): TensorRef {
    const n = shape.reduce((a, b) => a * b, 1);
    if (values.length !== n) {
      throw new Error(`${this.name}: constant "${name}" has ${values.length} values for shape [${shape}] (${n})`);
    }
    this.claim(name);
    this.constants.push({ name, shape: [...shape], dtype, values: Array.from(values) });
    const ref = { name, shape: [...shape], dtype };
    this.known.set(name, ref);
    return ref;
  }

  /** Declares a parameter, or returns the existing one of that name (weight sharing). */
  param(spec: ParamSpec): TensorRef {
    const old = this.params.get(spec.name);
    if (old) {
      if (!sameShape(old.shape, spec.shape)) {
        throw new Error(`${this.name}: parameter "${spec.name}" reused with shape [${spec.shape}], declared [${old.shape}]`);
      }
      return this.known.get(spec.name)!;
    }
    this.claim(spec.name);
    this.params.set(spec.name, { ...spec, shape: [...spec.shape] });
    const ref = { name: spec.name, shape: [...spec.shape], dtype: 'float32' as DType };
    this.known.set(spec.name, ref);
    return ref;
  }

  conv2d(x: TensorRef, o: Conv2dOptions): TensorRef {
    const stride = o.stride ?? 1;
    const pad = o.pad ?? o.kernel >> 1;
    const groups = o.groups ?? 1;
    const [n, cin, h, w] = this.expectRank(x, 4, o.name);
    const inC = this.staticDim(cin, o.name, 'input channels');
    if (inC % groups !== 0 || o.out % groups !== 0) {
      throw new Error(`${this.name}: ${o.name}: channels ${inC}→${o.out} not divisible by groups ${groups}`);
    }
    const fanIn = (inC / groups) * o.kernel * o.kernel;
    const wRef = this.param({
      name: `${o.name}.weight`,
      shape: [o.out, inC / groups, o.kernel, o.kernel],
      init: 'he',
      fanIn,
      trainable: true,
    });
    const inputs = [x.name, wRef.name];
    if (o.bias ?? true) {
      const init = o.biasInit === undefined ? { init: 'zeros' as const } : { init: 'constant' as const, value: o.biasInit };
      inputs.push(this.param({ name: `${o.name}.bias`, shape: [o.out], ...init, trainable: true }).name);
    }
    const size = (d: number) => Math.floor((d + 2 * pad - o.kernel) / stride) + 1;
    const hOut = this.mapDim(h, size, o.name, 2);
    const wOut = this.mapDim(w, size, o.name, 3);
    return this.node({ op: 'conv2d', name: o.name, inputs, kernel: [o.kernel, o.kernel], stride, pad, groups }, [n, o.out, hOut, wOut]);
  }

  convTranspose2d(x: TensorRef, o: ConvTranspose2dOptions): TensorRef {
    const stride = o.stride ?? o.kernel;
    const [n, cin, h, w] = this.expectRank(x, 4, o.name);
    const inC = this.staticDim(cin, o.name, 'input channels');
    const wRef = this.param({
      name: `${o.name}.weight`,
      shape: [inC, o.out, o.kernel, o.kernel],
      init: 'he',
      // Each output pixel sees in·(k/s)² inputs; this keeps the output variance like a conv's.
      fanIn: (inC * o.kernel * o.kernel) / (stride * stride),
      trainable: true,
    });
    const inputs = [x.name, wRef.name];
    if (o.bias ?? true) inputs.push(this.param({ name: `${o.name}.bias`, shape: [o.out], init: 'zeros', trainable: true }).name);
    const size = (d: number) => (d - 1) * stride + o.kernel;
    return this.node({ op: 'convTranspose2d', name: o.name, inputs, kernel: [o.kernel, o.kernel], stride }, [
      n,
      o.out,
      this.mapDim(h, size, o.name, 2),
      this.mapDim(w, size, o.name, 3),
    ]);
  }

  batchNorm(x: TensorRef, o: BatchNormOptions): TensorRef {
    const axis = normAxis(o.axis ?? 1, x.shape.length, `${this.name}: ${o.name}`);
    const c = this.staticDim(x.shape[axis], o.name, 'channels');
    const p = (suffix: string, init: InitKind, trainable: boolean) => this.param({ name: `${o.name}.${suffix}`, shape: [c], init, trainable }).name;
    const inputs = [x.name, p('gamma', 'ones', true), p('beta', 'zeros', true), p('mean', 'zeros', false), p('var', 'ones', false)];
    return this.node({ op: 'batchNorm', name: o.name, inputs, axis, rank: x.shape.length, epsilon: o.epsilon ?? 1e-5, momentum: o.momentum ?? 0.1 }, [
      ...x.shape,
    ]);
  }

  linear(x: TensorRef, o: LinearOptions): TensorRef {
    if (x.shape.length < 1) throw new Error(`${this.name}: ${o.name}: linear needs rank ≥ 1`);
    const inF = this.staticDim(x.shape[x.shape.length - 1], o.name, 'input features');
    const wRef = this.param({ name: `${o.name}.weight`, shape: [inF, o.out], init: 'he', fanIn: inF, trainable: true });
    const inputs = [x.name, wRef.name];
    if (o.bias ?? true) inputs.push(this.param({ name: `${o.name}.bias`, shape: [o.out], init: 'zeros', trainable: true }).name);
    return this.node({ op: 'linear', name: o.name, inputs }, [...x.shape.slice(0, -1), o.out]);
  }

  relu(x: TensorRef, name?: string): TensorRef {
    return this.unary('relu', x, name);
  }
  sigmoid(x: TensorRef, name?: string): TensorRef {
    return this.unary('sigmoid', x, name);
  }
  exp(x: TensorRef, name?: string): TensorRef {
    return this.unary('exp', x, name);
  }
  /** −1, 0 or 1 by the sign of each element (ONNX Sign); its gradient is zero. */
  sign(x: TensorRef, name?: string): TensorRef {
    return this.unary('sign', x, name);
  }

  add(a: TensorRef, b: TensorRef, name?: string): TensorRef {
    return this.binary('add', a, b, name);
  }
  sub(a: TensorRef, b: TensorRef, name?: string): TensorRef {
    return this.binary('sub', a, b, name);
  }
  mul(a: TensorRef, b: TensorRef, name?: string): TensorRef {
    return this.binary('mul', a, b, name);
  }
  div(a: TensorRef, b: TensorRef, name?: string): TensorRef {
    return this.binary('div', a, b, name);
  }

  concat(xs: TensorRef[], axis: number, name?: string): TensorRef {
    if (xs.length === 0) throw new Error(`${this.name}: concat of nothing`);
    const id = name ?? this.autoName('concat');
    const rank = xs[0].shape.length;
    const ax = normAxis(axis, rank, `${this.name}: ${id}`);
    const shape = [...xs[0].shape];
    for (const x of xs.slice(1)) {
      if (x.shape.length !== rank) throw new Error(`${this.name}: ${id}: concat of ranks ${rank} and ${x.shape.length}`);
      for (let i = 0; i < rank; i++) {
        if (i === ax) continue;
        if (typeof shape[i] === 'number' && typeof x.shape[i] === 'number' && shape[i] !== x.shape[i]) {
          throw new Error(`${this.name}: ${id}: concat shapes [${xs[0].shape}] and [${x.shape}] differ on axis ${i}`);
        }
      }
    }
    const sizes = xs.map((x) => x.shape[ax]);
    shape[ax] = sizes.every((d) => typeof d === 'number') ? (sizes as number[]).reduce((a, b) => a + b, 0) : `${id}.d${ax}`;
    return this.node({ op: 'concat', name: id, inputs: xs.map((x) => x.name), axis: ax }, shape, xs[0].dtype);
  }

  reduceMax(x: TensorRef, axis: number, keepDims = false, name?: string): TensorRef {
    return this.reduce('reduceMax', x, axis, keepDims, name);
  }
  reduceSum(x: TensorRef, axis: number, keepDims = false, name?: string): TensorRef {
    return this.reduce('reduceSum', x, axis, keepDims, name);
  }
  reduceMean(x: TensorRef, axis: number, keepDims = false, name?: string): TensorRef {
    return this.reduce('reduceMean', x, axis, keepDims, name);
  }

  softmax(x: TensorRef, axis: number, name?: string): TensorRef {
    const id = name ?? this.autoName('softmax');
    return this.node({ op: 'softmax', name: id, inputs: [x.name], axis: normAxis(axis, x.shape.length, id) }, [...x.shape]);
  }

  /**
   * Inclusive running sum along an axis (the Lift-Splat "cumsum trick"). `accumulate: 'float64'`
   * sums in float64 and rounds each running value to float32, as torch's CPU cumsum does (HEAL's
   * splat): over 10⁵ rows a float32 running sum drifts by ~1e-1, this by half an ulp of each value.
   * ONNX only (Cast, CumSum in double); TensorFlow.js has no float64 and sums in float32.
   */
  cumsum(x: TensorRef, axis: number, name?: string, accumulate?: 'float64'): TensorRef {
    const id = name ?? this.autoName('cumsum');
    // Absent unless asked for, so existing descriptions (and their exports) stay as they were.
    const node = { op: 'cumsum' as const, name: id, inputs: [x.name], axis: normAxis(axis, x.shape.length, id), ...(accumulate ? { accumulate } : {}) };
    return this.node(node, [...x.shape]);
  }

  /** ONNX Reshape: 0 copies the input dim at that position, one -1 is inferred. */
  reshape(x: TensorRef, shape: number[], name?: string): TensorRef {
    const id = name ?? this.autoName('reshape');
    if (shape.filter((d) => d === -1).length > 1) throw new Error(`${this.name}: ${id}: more than one -1 in [${shape}]`);
    const out: Dim[] = shape.map((d, i) => {
      if (d === 0) {
        if (i >= x.shape.length) throw new Error(`${this.name}: ${id}: 0 at axis ${i} beyond input rank ${x.shape.length}`);
        return x.shape[i];
      }
      if (d < -1) throw new Error(`${this.name}: ${id}: bad reshape dim ${d}`);
      return d;
    });
    const minus = out.indexOf(-1);
    if (minus >= 0) {
      // Dims copied with 0 cancel out, so [n, 6, 6, 6] → [0, -1] still infers 216.
      const copied = (i: number) => shape[i] === 0;
      const total = staticSize(x.shape.filter((_, i) => !copied(i)));
      const known = staticSize(out.filter((_, i) => i !== minus && !copied(i)));
      if (total !== undefined && known !== undefined) {
        if (known === 0 || total % known !== 0) throw new Error(`${this.name}: ${id}: cannot reshape [${x.shape}] to [${shape}]`);
        out[minus] = total / known;
      } else {
        out[minus] = `${id}.d${minus}`;
      }
    } else {
      const a = staticSize(x.shape);
      const b = staticSize(out);
      if (a !== undefined && b !== undefined && a !== b) throw new Error(`${this.name}: ${id}: cannot reshape [${x.shape}] to [${shape}]`);
    }
    return this.node({ op: 'reshape', name: id, inputs: [x.name], shape: [...shape] }, out, x.dtype);
  }

  transpose(x: TensorRef, perm: number[], name?: string): TensorRef {
    const id = name ?? this.autoName('transpose');
    const sorted = [...perm].sort((a, b) => a - b);
    if (perm.length !== x.shape.length || sorted.some((p, i) => p !== i)) {
      throw new Error(`${this.name}: ${id}: perm [${perm}] does not fit rank ${x.shape.length}`);
    }
    return this.node(
      { op: 'transpose', name: id, inputs: [x.name], perm: [...perm] },
      perm.map((p) => x.shape[p]),
      x.dtype,
    );
  }

  /** ONNX Gather: out = data indexed along `axis` by every entry of `indices` (int32). */
  gather(data: TensorRef, indices: TensorRef, axis = 0, name?: string): TensorRef {
    const id = name ?? this.autoName('gather');
    if (indices.dtype !== 'int32') throw new Error(`${this.name}: ${id}: indices "${indices.name}" must be int32`);
    const ax = normAxis(axis, data.shape.length, id);
    const shape = [...data.shape.slice(0, ax), ...indices.shape, ...data.shape.slice(ax + 1)];
    return this.node({ op: 'gather', name: id, inputs: [data.name, indices.name], axis: ax }, shape, data.dtype);
  }

  /** Max pooling; `pad` cells on every side never win (PyTorch/ONNX MaxPool padding, −∞). */
  maxPool(x: TensorRef, kernel: number, stride = kernel, name?: string, pad = 0): TensorRef {
    const id = name ?? this.autoName('maxPool');
    const [n, c, h, w] = this.expectRank(x, 4, id);
    if (!(Number.isInteger(pad) && pad >= 0 && pad < kernel))
      throw new Error(`${this.name}: ${id}: pad ${pad} must be a whole number below the kernel ${kernel}`);
    const size = (d: number) => Math.floor((d + 2 * pad - kernel) / stride) + 1;
    // A pad of 0 stays off the node, so descriptions (and exported models) of unpadded pools are unchanged.
    const node = { op: 'maxPool' as const, name: id, inputs: [x.name], kernel, stride, ...(pad > 0 ? { pad } : {}) };
    return this.node(node, [n, c, this.mapDim(h, size, id, 2), this.mapDim(w, size, id, 3)]);
  }

  /** Layer norm over one axis (e.g. the channels of an NCHW map): (x − mean)/√(var + ε)·gamma + beta; params `<name>.gamma/.beta`. */
  layerNorm(x: TensorRef, o: { name: string; axis?: number; epsilon?: number }): TensorRef {
    const axis = normAxis(o.axis ?? -1, x.shape.length, `${this.name}: ${o.name}`);
    const c = this.staticDim(x.shape[axis], o.name, 'normalised size');
    const gamma = this.param({ name: `${o.name}.gamma`, shape: [c], init: 'ones', trainable: true });
    const beta = this.param({ name: `${o.name}.beta`, shape: [c], init: 'zeros', trainable: true });
    return this.node({ op: 'layerNorm', name: o.name, inputs: [x.name, gamma.name, beta.name], axis, rank: x.shape.length, epsilon: o.epsilon ?? 1e-5 }, [
      ...x.shape,
    ]);
  }

  /** Exact GELU, 0.5·x·(1 + erf(x/√2)) (PyTorch's default nn.GELU). */
  gelu(x: TensorRef, name?: string): TensorRef {
    const id = name ?? this.autoName('gelu');
    return this.node({ op: 'gelu', name: id, inputs: [x.name] }, [...x.shape]);
  }

  /** Zero padding: `before[i]` and `after[i]` zeros on axis i (non-negative). */
  pad(x: TensorRef, before: number[], after: number[], name?: string): TensorRef {
    const id = name ?? this.autoName('pad');
    const rank = x.shape.length;
    if (before.length !== rank || after.length !== rank || ![...before, ...after].every((p) => Number.isInteger(p) && p >= 0)) {
      throw new Error(`${this.name}: ${id}: pads [${before}] / [${after}] must be ${rank} whole numbers ≥ 0 each`);
    }
    const shape = x.shape.map((d, i) => (typeof d === 'number' ? d + before[i] + after[i] : before[i] + after[i] === 0 ? d : `${id}.d${i}`));
    return this.node({ op: 'pad', name: id, inputs: [x.name], pads: [...before, ...after] }, shape, x.dtype);
  }

  /**
   * Bilinear sampling of x [N, C, H, W] at grid [N, Ho, Wo, 2] (x, y in [-1, 1], align_corners
   * false, zeros outside): PyTorch grid_sample / ONNX GridSample. Build grids with affineGrid.
   */
  gridSample(x: TensorRef, grid: TensorRef, name?: string): TensorRef {
    const id = name ?? this.autoName('gridSample');
    const [n, c] = this.expectRank(x, 4, id);
    const [, ho, wo, two] = this.expectRank(grid, 4, id);
    if (two !== 2) throw new Error(`${this.name}: ${id}: grid "${grid.name}" must end in 2, has [${grid.shape}]`);
    return this.node({ op: 'gridSample', name: id, inputs: [x.name, grid.name] }, [n, c, ho, wo]);
  }

  /** Marks `x` as a graph output called `name` (adds an identity node when the names differ). */
  output(name: string, x: TensorRef): TensorRef {
    this.ref(x.name);
    const ref = x.name === name ? x : this.node({ op: 'identity', name, inputs: [x.name] }, [...x.shape], x.dtype);
    if (this.outputs.some((o) => o.name === name)) throw new Error(`${this.name}: output "${name}" declared twice`);
    this.outputs.push({ name, shape: [...ref.shape], dtype: ref.dtype });
    return ref;
  }

  build(): GraphDesc {
    if (this.outputs.length === 0) throw new Error(`${this.name}: graph has no outputs`);
    return {
      name: this.name,
      inputs: this.inputs.map((t) => ({ ...t, shape: [...t.shape] })),
      params: [...this.params.values()].map((p) => ({ ...p, shape: [...p.shape] })),
      constants: this.constants.map((c) => ({ ...c })),
      nodes: this.nodes.map((n) => ({ ...n, inputs: [...n.inputs] }) as Node),
      outputs: this.outputs.map((t) => ({ ...t, shape: [...t.shape] })),
    };
  }

  private unary(op: 'relu' | 'sigmoid' | 'exp' | 'sign', x: TensorRef, name?: string): TensorRef {
    return this.node({ op, name: name ?? this.autoName(op), inputs: [x.name] }, [...x.shape]);
  }

  private binary(op: 'add' | 'sub' | 'mul' | 'div', a: TensorRef, b: TensorRef, name?: string): TensorRef {
    const id = name ?? this.autoName(op);
    return this.node({ op, name: id, inputs: [a.name, b.name] }, broadcastShapes(a.shape, b.shape, `${this.name}: ${id}`));
  }

  private reduce(op: 'reduceMax' | 'reduceSum' | 'reduceMean', x: TensorRef, axis: number, keepDims: boolean, name?: string): TensorRef {
    const id = name ?? this.autoName(op);
    const ax = normAxis(axis, x.shape.length, id);
    const shape = keepDims ? x.shape.map((d, i) => (i === ax ? 1 : d)) : x.shape.filter((_, i) => i !== ax);
    return this.node({ op, name: id, inputs: [x.name], axis: ax, keepDims }, shape);
  }

  private node(n: Node, shape: Dim[], dtype: DType = 'float32'): TensorRef {
    for (const i of n.inputs) this.ref(i);
    this.claim(n.name);
    this.nodes.push(n);
    const ref = { name: n.name, shape, dtype };
    this.known.set(n.name, ref);
    return ref;
  }

  private ref(name: string): TensorRef {
    const r = this.known.get(name);
    if (!r) throw new Error(`${this.name}: unknown tensor "${name}"`);
    return r;
  }

  private claim(name: string): void {
    if (!name) throw new Error(`${this.name}: empty tensor name`);
    if (this.known.has(name)) throw new Error(`${this.name}: name "${name}" is already used`);
  }

  private autoName(op: string): string {
    let id: string;
    do id = `${op}_${this.counter++}`;
    while (this.known.has(id));
    return id;
  }

  private expectRank(x: TensorRef, rank: number, where: string): Dim[] {
    if (x.shape.length !== rank) throw new Error(`${this.name}: ${where}: "${x.name}" must have rank ${rank}, has [${x.shape}]`);
    return x.shape;
  }

  private staticDim(d: Dim, where: string, what: string): number {
    if (typeof d !== 'number') throw new Error(`${this.name}: ${where}: ${what} must be a fixed number, got "${d}"`);
    return d;
  }

  private mapDim(d: Dim, f: (n: number) => number, where: string, axis: number): Dim {
    if (typeof d !== 'number') return `${where}.d${axis}`;
    const out = f(d);
    if (!(out >= 1)) throw new Error(`${this.name}: ${where}: input size ${d} gives output size ${out} on axis ${axis}`);
    return out;
  }
}

export function normAxis(axis: number, rank: number, where: string): number {
  const a = axis < 0 ? axis + rank : axis;
  if (!Number.isInteger(a) || a < 0 || a >= rank) throw new Error(`${where}: axis ${axis} out of range for rank ${rank}`);
  return a;
}

export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

function staticSize(shape: readonly Dim[]): number | undefined {
  let n = 1;
  for (const d of shape) {
    if (typeof d !== 'number') return undefined;
    n *= d;
  }
  return n;
}

/** Numpy broadcasting. A named dim against a number takes the number; two names cannot be checked. */
export function broadcastShapes(a: readonly Dim[], b: readonly Dim[], where: string): Dim[] {
  const rank = Math.max(a.length, b.length);
  const out: Dim[] = [];
  for (let i = 0; i < rank; i++) {
    const da = a[a.length - rank + i] ?? 1;
    const db = b[b.length - rank + i] ?? 1;
    if (da === db || db === 1) out.push(da);
    else if (da === 1) out.push(db);
    else if (typeof da === 'number' && typeof db === 'number') throw new Error(`${where}: shapes [${a}] and [${b}] do not broadcast`);
    else out.push(typeof da === 'number' ? da : db);
  }
  return out;
}

/** Number of elements of a parameter or constant. */
export function sizeOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

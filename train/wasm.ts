// Training on tfjs's wasm backend (XNNPACK, SIMD). Its forward convolution is fast (9 ms for a
// 3×3, 32→32 conv on 3×64×64, against 250 ms on the pure-JS cpu backend), but it has no
// Conv2DBackpropFilter kernel and its Conv2DBackpropInput is a plain loop (98 ms for the same
// layer). So the gradients of the convolutions are re-expressed here as forward convolutions:
//   - the input gradient is a convolution of the zero-dilated, padded output gradient with the
//     filter rotated by 180° and its in/out channels swapped;
//   - the filter gradient is a convolution whose "batch" is the input's channels and whose filter
//     is the output gradient (batch as its in-channel), dilated by the stride.
// Both run on XNNPACK (9 ms and 16 ms for the layer above). The depthwise filter gradient is a
// sum of k² shifted products. The gradient of Max (the PointPillars max over points) avoids the
// wasm backend's broadcasting Equal and its Cast (228 ms and 50 ms for 3072×16×32; the
// subtraction and Step used instead take 3 ms each). The gradients are registered for every backend but only take this
// route on wasm; elsewhere the original tfjs gradient runs unchanged.

import * as tf from '@tensorflow/tfjs';

type Pad = 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
type Info = ReturnType<typeof tf.backend_util.computeConv2DInfo>;

function pair(v: number | number[]): [number, number] {
  return Array.isArray(v) ? [v[0], v[1] ?? v[0]] : [v, v];
}

function onWasm(dilations: number | number[] | undefined, dataFormat: string | undefined): boolean {
  const [dh, dw] = pair(dilations ?? 1);
  return tf.getBackend() === 'wasm' && dh === 1 && dw === 1 && (dataFormat ?? 'NHWC') === 'NHWC';
}

/** Inserts stride−1 zeros between the rows and columns of dy ([B, H, W, C]). */
function dilate(dy: tf.Tensor4D, sh: number, sw: number): tf.Tensor4D {
  if (sh === 1 && sw === 1) return dy;
  const [b, h, w, c] = dy.shape;
  const up = tf.pad(tf.reshape(dy, [b, h, 1, w, 1, c]), [
    [0, 0],
    [0, 0],
    [0, sh - 1],
    [0, 0],
    [0, sw - 1],
    [0, 0],
  ]);
  return tf.slice(tf.reshape(up, [b, h * sh, w * sw, c]) as tf.Tensor4D, [0, 0, 0, 0], [b, (h - 1) * sh + 1, (w - 1) * sw + 1, c]);
}

/** Pads (negative: crops) the rows and columns of x. */
function padOrCrop(x: tf.Tensor4D, top: number, bottom: number, left: number, right: number): tf.Tensor4D {
  const padded = tf.pad(x, [
    [0, 0],
    [Math.max(0, top), Math.max(0, bottom)],
    [Math.max(0, left), Math.max(0, right)],
    [0, 0],
  ]);
  const [b, h, w, c] = padded.shape;
  const t = Math.max(0, -top);
  const l = Math.max(0, -left);
  return tf.slice(padded, [0, t, l, 0], [b, h - t - Math.max(0, -bottom), w - l - Math.max(0, -right), c]);
}

/** Gradient of conv2d(x, filter) with respect to x, whose shape is info's input shape. */
function inputGrad(dy: tf.Tensor4D, filter: tf.Tensor4D, info: Info): tf.Tensor4D {
  const { filterHeight: kh, filterWidth: kw, strideHeight: sh, strideWidth: sw, inHeight, inWidth } = info;
  const { top, left } = info.padInfo;
  const d = dilate(dy, sh, sw);
  const padTop = kh - 1 - top;
  const padLeft = kw - 1 - left;
  const full = padOrCrop(d, padTop, inHeight + kh - 1 - padTop - d.shape[1], padLeft, inWidth + kw - 1 - padLeft - d.shape[2]);
  const rotated = tf.transpose(tf.reverse(filter, [0, 1]), [0, 1, 3, 2]) as tf.Tensor4D;
  return tf.conv2d(full, rotated, 1, 'valid');
}

/** Gradient of conv2d(x, filter) with respect to the filter ([kh, kw, Ci, Co]). */
function filterGrad(x: tf.Tensor4D, dy: tf.Tensor4D, info: Info): tf.Tensor4D {
  const { filterHeight: kh, filterWidth: kw, strideHeight: sh, strideWidth: sw, outHeight, outWidth, inHeight, inWidth } = info;
  const { top, left } = info.padInfo;
  const needH = (outHeight - 1) * sh + kh;
  const needW = (outWidth - 1) * sw + kw;
  const xp = padOrCrop(x, top, needH - inHeight - top, left, needW - inWidth - left);
  const xt = tf.transpose(xp, [3, 1, 2, 0]) as tf.Tensor4D; // [Ci, H, W, B]
  const f = tf.transpose(dy, [1, 2, 0, 3]) as tf.Tensor4D; // [Ho, Wo, B, Co]
  const r = tf.conv2d(xt, f, 1, 'valid', 'NHWC', [sh, sw]); // [Ci, kh, kw, Co]
  return tf.transpose(r, [1, 2, 0, 3]) as tf.Tensor4D;
}

function depthwiseFilterGrad(x: tf.Tensor4D, dy: tf.Tensor4D, info: Info): tf.Tensor4D {
  const { filterHeight: kh, filterWidth: kw, strideHeight: sh, strideWidth: sw, outHeight, outWidth, inHeight, inWidth } = info;
  const { top, left } = info.padInfo;
  const needH = (outHeight - 1) * sh + kh;
  const needW = (outWidth - 1) * sw + kw;
  const xp = padOrCrop(x, top, needH - inHeight - top, left, needW - inWidth - left);
  const [b, , , c] = xp.shape;
  const taps: tf.Tensor[] = [];
  for (let i = 0; i < kh; i++) {
    for (let j = 0; j < kw; j++) {
      const shifted = tf.stridedSlice(xp, [0, i, j, 0], [b, i + (outHeight - 1) * sh + 1, j + (outWidth - 1) * sw + 1, c], [1, sh, sw, 1]);
      taps.push(tf.sum(tf.mul(shifted, dy), [0, 1, 2]));
    }
  }
  return tf.reshape(tf.stack(taps), [kh, kw, c, 1]);
}

function depthwiseInputGrad(dy: tf.Tensor4D, filter: tf.Tensor4D, info: Info): tf.Tensor4D {
  const { filterHeight: kh, filterWidth: kw, strideHeight: sh, strideWidth: sw, inHeight, inWidth } = info;
  const { top, left } = info.padInfo;
  const d = dilate(dy, sh, sw);
  const padTop = kh - 1 - top;
  const padLeft = kw - 1 - left;
  const full = padOrCrop(d, padTop, inHeight + kh - 1 - padTop - d.shape[1], padLeft, inWidth + kw - 1 - padLeft - d.shape[2]);
  return tf.depthwiseConv2d(full, tf.reverse(filter, [0, 1]) as tf.Tensor4D, 1, 'valid');
}

interface ConvAttrs {
  strides: number | [number, number];
  pad: Pad;
  dataFormat?: 'NHWC' | 'NCHW';
  dilations?: number | [number, number];
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
}

function convInfo(xShape: number[], filterShape: number[], a: ConvAttrs, depthwise = false): Info {
  return tf.backend_util.computeConv2DInfo(
    xShape as [number, number, number, number],
    filterShape as [number, number, number, number],
    a.strides,
    a.dilations ?? 1,
    a.pad,
    a.dimRoundingMode,
    depthwise,
  );
}

let installed = false;

/** Re-registers the convolution gradients so that they run as forward convolutions on wasm. */
export function installWasmGradients(): void {
  if (installed) return;
  installed = true;
  const originals = new Map<string, tf.GradConfig>();
  for (const name of ['Conv2D', 'Conv2DBackpropInput', 'DepthwiseConv2dNative', 'Max']) {
    const g = tf.getGradient(name);
    if (!g) throw new Error(`tfjs has no gradient for ${name}`);
    originals.set(name, g);
  }
  const override = (cfg: tf.GradConfig) => {
    const original = originals.get(cfg.kernelName)!;
    const gradFunc: tf.GradFunc = (dy, saved, attrs) => {
      const a = attrs as unknown as ConvAttrs;
      if (!onWasm(a.dilations, a.dataFormat) || typeof a.pad === 'object') return original.gradFunc(dy, saved, attrs);
      return cfg.gradFunc(dy, saved, attrs);
    };
    // tfjs warns when a gradient is overridden; the override is the point here.
    const warn = console.warn;
    console.warn = () => {};
    try {
      tf.registerGradient({ ...original, gradFunc });
    } finally {
      console.warn = warn;
    }
  };

  override({
    kernelName: 'Conv2D',
    gradFunc: (dy, saved, attrs) => {
      const [x, filter] = saved as [tf.Tensor4D, tf.Tensor4D];
      const info = convInfo(x.shape, filter.shape, attrs as unknown as ConvAttrs);
      return {
        x: () => inputGrad(dy as tf.Tensor4D, filter, info),
        filter: () => filterGrad(x, dy as tf.Tensor4D, info),
      };
    },
  });

  // The forward pass of conv2dTranspose: its "dy" input is the transposed convolution's input.
  override({
    kernelName: 'Conv2DBackpropInput',
    gradFunc: (ddx, saved, attrs) => {
      const [dy, filter] = saved as [tf.Tensor4D, tf.Tensor4D];
      const a = attrs as unknown as ConvAttrs & { inputShape: number[] };
      const info = convInfo(a.inputShape, filter.shape, a);
      return {
        dy: () => tf.conv2d(ddx as tf.Tensor4D, filter, a.strides, a.pad as 'valid' | 'same' | number, 'NHWC', 1, a.dimRoundingMode),
        filter: () => filterGrad(ddx as tf.Tensor4D, dy, info),
      };
    },
  });

  override({
    kernelName: 'DepthwiseConv2dNative',
    gradFunc: (dy, saved, attrs) => {
      const [x, filter] = saved as [tf.Tensor4D, tf.Tensor4D];
      if (filter.shape[3] !== 1) return originals.get('DepthwiseConv2dNative')!.gradFunc(dy, saved, attrs);
      const info = convInfo(x.shape, filter.shape, attrs as unknown as ConvAttrs, true);
      return {
        x: () => depthwiseInputGrad(dy as tf.Tensor4D, filter, info),
        filter: () => depthwiseFilterGrad(x, dy as tf.Tensor4D, info),
      };
    },
  });

  override({
    kernelName: 'Max',
    gradFunc: (dy, saved, attrs) => {
      const [x, y] = saved as [tf.Tensor, tf.Tensor];
      const { reductionIndices } = attrs as unknown as { reductionIndices: number | number[] };
      const axes = tf.util.parseAxisParam(reductionIndices, x.shape);
      const keep = tf.backend_util.expandShapeToKeepDim(y.shape, axes);
      const yk = tf.reshape(y, keep);
      const dyk = tf.reshape(dy as tf.Tensor, keep);
      // 1 where x equals the maximum (y − x is 0 there and positive elsewhere).
      const atMax = tf.sub(1, tf.step(tf.sub(yk, x)));
      return { x: () => tf.mul(dyk, atMax) };
    },
  });
}

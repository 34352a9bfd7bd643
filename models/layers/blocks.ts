// Building blocks shared by the networks: conv + batch norm (+ ReLU), the ResNet basic block and
// the ResNeXt bottleneck block.

import type { GraphBuilder, TensorRef } from '../graph.ts';

export interface ConvBnOptions {
  name: string;
  out: number;
  kernel: number;
  stride?: number;
  groups?: number;
  /** Batch norm after the conv (the conv then has no bias of its own). */
  batchNorm: boolean;
  relu: boolean;
}

/** conv → [batch norm] → [ReLU]; parameters under `<name>.conv` and `<name>.bn`. */
export function convBn(g: GraphBuilder, x: TensorRef, o: ConvBnOptions): TensorRef {
  let y = g.conv2d(x, { name: `${o.name}.conv`, out: o.out, kernel: o.kernel, stride: o.stride ?? 1, groups: o.groups ?? 1, bias: !o.batchNorm });
  if (o.batchNorm) y = g.batchNorm(y, { name: `${o.name}.bn` });
  return o.relu ? g.relu(y) : y;
}

/** The projection shortcut (strided 1×1 conv) when a block changes resolution or width, else the identity. */
function shortcut(g: GraphBuilder, x: TensorRef, o: { name: string; out: number; stride: number; batchNorm: boolean }): TensorRef {
  return o.stride !== 1 || x.shape[1] !== o.out
    ? convBn(g, x, { name: `${o.name}.down`, out: o.out, kernel: 1, stride: o.stride, batchNorm: o.batchNorm, relu: false })
    : x;
}

/**
 * ResNet basic block: two 3×3 convs with a shortcut, ReLU after the sum. The shortcut is a
 * strided 1×1 conv when the block changes resolution or width, the identity otherwise.
 */
export function basicBlock(g: GraphBuilder, x: TensorRef, o: { name: string; out: number; stride: number; batchNorm: boolean }): TensorRef {
  let y = convBn(g, x, { name: `${o.name}.conv1`, out: o.out, kernel: 3, stride: o.stride, batchNorm: o.batchNorm, relu: true });
  y = convBn(g, y, { name: `${o.name}.conv2`, out: o.out, kernel: 3, batchNorm: o.batchNorm, relu: false });
  return g.relu(g.add(y, shortcut(g, x, o)));
}

export interface BottleneckOptions {
  name: string;
  /** Output channels (expansion 1, as HEAL's pyramid sets it). */
  out: number;
  stride: number;
  /** Groups of the 3×3 conv. */
  groups: number;
  /** Channels per group per 64 output channels (ResNeXt's base width): width = ⌊out·widthPerGroup/64⌋·groups. */
  widthPerGroup: number;
  batchNorm: boolean;
}

/** Inner width of a bottleneck block (torchvision's ResNeXt rule). */
export function bottleneckWidth(out: number, groups: number, widthPerGroup: number): number {
  return Math.floor((out * widthPerGroup) / 64) * groups;
}

/**
 * ResNeXt bottleneck block with expansion 1 (HEAL's PyramidFusion): 1×1 conv to the inner width,
 * grouped 3×3 conv carrying the stride (ResNet v1.5), 1×1 conv back to `out`, each with batch
 * norm, ReLU after the first two; shortcut as in the basic block; ReLU after the sum.
 */
export function bottleneck(g: GraphBuilder, x: TensorRef, o: BottleneckOptions): TensorRef {
  const width = bottleneckWidth(o.out, o.groups, o.widthPerGroup);
  if (!(width >= o.groups)) throw new Error(`${o.name}: bottleneck width ${width} for ${o.out} channels, ${o.groups} groups × ${o.widthPerGroup}`);
  let y = convBn(g, x, { name: `${o.name}.conv1`, out: width, kernel: 1, batchNorm: o.batchNorm, relu: true });
  y = convBn(g, y, { name: `${o.name}.conv2`, out: width, kernel: 3, stride: o.stride, groups: o.groups, batchNorm: o.batchNorm, relu: true });
  y = convBn(g, y, { name: `${o.name}.conv3`, out: o.out, kernel: 1, batchNorm: o.batchNorm, relu: false });
  return g.relu(g.add(y, shortcut(g, x, o)));
}

// Building blocks shared by the networks: conv + batch norm (+ ReLU) and the ResNet basic block.

import type { GraphBuilder, TensorRef } from '../graph.ts';

export interface ConvBnOptions {
  name: string;
  out: number;
  kernel: number;
  stride?: number;
  /** Batch norm after the conv (the conv then has no bias of its own). */
  batchNorm: boolean;
  relu: boolean;
}

/** conv → [batch norm] → [ReLU]; parameters under `<name>.conv` and `<name>.bn`. */
export function convBn(g: GraphBuilder, x: TensorRef, o: ConvBnOptions): TensorRef {
  let y = g.conv2d(x, { name: `${o.name}.conv`, out: o.out, kernel: o.kernel, stride: o.stride ?? 1, bias: !o.batchNorm });
  if (o.batchNorm) y = g.batchNorm(y, { name: `${o.name}.bn` });
  return o.relu ? g.relu(y) : y;
}

/**
 * ResNet basic block: two 3×3 convs with a shortcut, ReLU after the sum. The shortcut is a
 * strided 1×1 conv when the block changes resolution or width, the identity otherwise.
 */
export function basicBlock(g: GraphBuilder, x: TensorRef, o: { name: string; out: number; stride: number; batchNorm: boolean }): TensorRef {
  const inC = x.shape[1];
  let y = convBn(g, x, { name: `${o.name}.conv1`, out: o.out, kernel: 3, stride: o.stride, batchNorm: o.batchNorm, relu: true });
  y = convBn(g, y, { name: `${o.name}.conv2`, out: o.out, kernel: 3, batchNorm: o.batchNorm, relu: false });
  const shortcut =
    o.stride !== 1 || inC !== o.out
      ? convBn(g, x, { name: `${o.name}.down`, out: o.out, kernel: 1, stride: o.stride, batchNorm: o.batchNorm, relu: false })
      : x;
  return g.relu(g.add(y, shortcut));
}

// Grouped convolutions with narrow groups are exported with neighbouring groups merged under a
// block-diagonal weight (models/ops.ts mergedGroups), so onnxruntime runs them in its blocked
// layout. The merged convolution must compute the grouped one: checked against a direct
// evaluation of PyTorch's grouped convolution here, for HEAL's group widths 4, 8 and 16 with
// stride 1 and 2, plus the cases that must stay as they are (depthwise, wide groups).

import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../models/graph.ts';
import { exportOnnx, onnxModelType } from '../../models/onnx.ts';
import { initWeights } from '../../models/weights.ts';
import { createSession, runSession } from '../../models/runtime.ts';
import { rngFor } from '../../datasets/rng.ts';

interface Case {
  cin: number;
  cout: number;
  groups: number;
  stride: number;
  /** group attribute and weight shape expected in the ONNX file. */
  group: number;
  weightDims: number[];
}

const CASES: Case[] = [
  { cin: 128, cout: 128, groups: 32, stride: 1, group: 8, weightDims: [128, 16, 3, 3] }, // HEAL level 0: 4 a group
  { cin: 256, cout: 256, groups: 32, stride: 2, group: 16, weightDims: [256, 16, 3, 3] }, // level 1: 8 a group
  { cin: 512, cout: 512, groups: 32, stride: 1, group: 32, weightDims: [512, 16, 3, 3] }, // level 2: already 16
  { cin: 32, cout: 32, groups: 32, stride: 1, group: 32, weightDims: [32, 1, 3, 3] }, // depthwise: untouched
  { cin: 12, cout: 6, groups: 3, stride: 1, group: 1, weightDims: [6, 12, 3, 3] }, // 4 in, 2 out a group: all three merge
];

/** PyTorch's grouped 3×3 convolution (zero padding 1), computed directly in float64. */
function groupedConv(x: Float32Array, w: Float32Array, c: Case, H: number, W: number): Float64Array {
  const ig = c.cin / c.groups;
  const og = c.cout / c.groups;
  const Ho = Math.floor((H + 2 - 3) / c.stride) + 1;
  const Wo = Math.floor((W + 2 - 3) / c.stride) + 1;
  const out = new Float64Array(c.cout * Ho * Wo);
  for (let o = 0; o < c.cout; o++) {
    const g = Math.floor(o / og);
    for (let r = 0; r < Ho; r++) {
      for (let q = 0; q < Wo; q++) {
        let s = 0;
        for (let i = 0; i < ig; i++) {
          for (let a = 0; a < 3; a++) {
            for (let b = 0; b < 3; b++) {
              const y = r * c.stride + a - 1;
              const xx = q * c.stride + b - 1;
              if (y < 0 || y >= H || xx < 0 || xx >= W) continue;
              s += x[((g * ig + i) * H + y) * W + xx] * w[((o * ig + i) * 3 + a) * 3 + b];
            }
          }
        }
        out[(o * Ho + r) * Wo + q] = s;
      }
    }
  }
  return out;
}

describe('grouped convolutions in ONNX', () => {
  for (const c of CASES) {
    it(`${c.cin}→${c.cout} in ${c.groups} groups, stride ${c.stride}: exported with group ${c.group}, equal to the grouped convolution`, async () => {
      const [H, W] = [6, 6];
      const g = new GraphBuilder('grouped');
      const x = g.input('x', [1, c.cin, H, W]);
      g.output('y', g.conv2d(x, { name: 'conv', out: c.cout, kernel: 3, stride: c.stride, groups: c.groups, bias: false }));
      const desc = g.build();
      const weights = initWeights(desc, 1);
      const bytes = exportOnnx(desc, weights);
      const model = onnxModelType().decode(bytes) as unknown as {
        graph: {
          node: { op_type: string; input: string[]; attribute: { name: string; i?: number | { toNumber(): number } }[] }[];
          initializer: { name: string; dims: unknown[] }[];
        };
      };
      const conv = model.graph.node.find((n) => n.op_type === 'Conv')!;
      const group = conv.attribute.find((a) => a.name === 'group')!.i!;
      expect(typeof group === 'number' ? group : group.toNumber()).toBe(c.group);
      const init = model.graph.initializer.find((t) => t.name === conv.input[1])!;
      expect(init.dims.map(Number)).toEqual(c.weightDims);

      const rng = rngFor('conv-groups', c.cin, String(c.groups));
      const input = Float32Array.from({ length: c.cin * H * W }, () => rng.normal());
      const { session } = await createSession(bytes, { device: 'cpu' });
      const y = (await runSession(session, { x: { data: input, shape: [1, c.cin, H, W] } })).y.data as Float32Array;
      const ref = groupedConv(input, weights.get('conv.weight')!.data, c, H, W);
      expect(y.length).toBe(ref.length);
      let err = 0;
      for (let i = 0; i < y.length; i++) err = Math.max(err, Math.abs(y[i] - ref[i]) / (1 + Math.abs(ref[i])));
      expect(err).toBeLessThan(1e-5);
      await session.release();
    });
  }
});

// A merged HEAL checkpoint loads modality by modality: the shared pyramid, shrink and heads always,
// each modality heal holds, and every other modality left out with its reason (SECOND's sparse 3-D
// convolutions, another camera encoder, a modality with no agent type here, layers of other shapes).
// The checkpoints are built from heal's own networks through the inverse mapping (healKeyFor).

import { describe, expect, it } from 'vitest';
import type { GraphDesc } from '../../models/graph.ts';
import type { StateDict, TorchTensor } from '../../models/pth.ts';
import { HEAL_SPACE } from '../../perception/space.ts';
import { builtinAgentConfig } from '../../perception/registry.ts';
import { agentNetwork } from '../../perception/encoders/agent.ts';
import { egoNetworkFor } from '../../fusion/pipeline.ts';
import { healKeyFor } from '../../fusion/heal-checkpoint.ts';
import { importHealModalities, leftOutLines, modalityOf } from '../../fusion/heal-import.ts';

const m1 = agentNetwork(builtinAgentConfig('m1', 'heal'), HEAL_SPACE);
const m3 = agentNetwork(builtinAgentConfig('m3', 'heal'), HEAL_SPACE);
const ego = egoNetworkFor(HEAL_SPACE);

const t = (shape: number[]): TorchTensor => ({ dtype: 'float32', shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)) });

/** HEAL keys for `descs` (values are zeros; shapes in PyTorch's layout). */
function keysOf(descs: GraphDesc[], sd: StateDict = new Map()): StateDict {
  for (const d of descs) {
    for (const p of d.params) {
      const key = healKeyFor(p.name)!;
      sd.set(key, t(key.endsWith('linear.weight') ? [p.shape[1], p.shape[0]] : p.shape));
      if (key.endsWith('.running_var')) sd.set(key.replace(/running_var$/, 'num_batches_tracked'), { dtype: 'int64', shape: [], data: BigInt64Array.of(1n) });
    }
  }
  return sd;
}

describe('importHealModalities', () => {
  it('modalityOf: encoder_/backbone_/aligner_<m>, nothing for the shared modules', () => {
    expect(['encoder_m1.pillar_vfe.x', 'backbone_m3.resnet.y', 'aligner_m4.channel_align.z', 'pyramid_backbone.a', 'cls_head.weight'].map(modalityOf)).toEqual([
      'm1',
      'm3',
      'm4',
      undefined,
      undefined,
    ]);
  });

  it("a merged m1 + m2 (EfficientNet) + m3 (SECOND) checkpoint loads m1 and names m2's and m3's keys with why", () => {
    const sd = keysOf([m1, ego]);
    sd.set('encoder_m3.spconv_block.conv_input.0.weight', t([3, 3, 3, 4, 16]));
    sd.set('encoder_m3.spconv_block.conv_input.1.running_var', t([16]));
    sd.set('backbone_m3.resnet.layer0.0.conv1.weight', t([64, 64, 3, 3]));
    sd.set('encoder_m2.camencode.trunk._conv_stem.weight', t([32, 3, 3, 3]));
    const imp = importHealModalities(sd, ego, new Map([['m1', m1]]), 'merged.pth');
    expect(imp.types).toEqual(['m1']);
    expect(imp.mapped.length).toBe(321);
    expect(imp.leftOut.map((l) => [l.modality, l.keys.length])).toEqual([
      ['m3', 3],
      ['m2', 1],
    ]);
    const m3Out = imp.leftOut[0];
    expect(m3Out.reason).toMatch(/modality m3: a SECOND encoder \(sparse 3-D convolutions, spconv; HEAL's m3\): not supported/);
    // A key that says nothing itself carries the modality's reason.
    expect(m3Out.keys.find((k) => k.key.startsWith('backbone_m3'))!.reason).toBe(m3Out.reason);
    expect(imp.leftOut[1].reason).toMatch(/^modality m2: a camera \(Lift-Splat\) encoder layer other than HEAL's ResNet-101 trunk/);
    expect(leftOutLines(imp)[0]).toMatch(/^left out m3 \(3 keys\): modality m3: a SECOND encoder/);
  });

  it("a modality whose layers do not fit heal's network of that name is left out, naming the first difference", () => {
    // HEAL's m1 (0.4 m pillars, 64 channels) offered as heal's m3 (0.8 m pillars, a 128-channel PFN).
    const sd = keysOf([m1, ego]);
    for (const [k, v] of [...sd]) if (k.startsWith('encoder_m1.') || k.startsWith('backbone_m1.')) sd.set(k.replace(/_m1\./, '_m3.'), v);
    const imp = importHealModalities(
      sd,
      ego,
      new Map([
        ['m1', m1],
        ['m3', m3],
      ]),
      'm.pth',
    );
    expect(imp.types).toEqual(['m1']);
    expect(imp.leftOut.map((l) => l.modality)).toEqual(['m3']);
    expect(imp.leftOut[0].reason).toMatch(
      /^modality m3: does not fit heal's m3 network: has shape \[10, 64\] \(transposed from \[64, 10\]\), heal's "encoder\.m3\.pfn\.linear\.weight" .* needs \[10, 128\]/,
    );
  });

  it('a shared key that cannot load is an error, not left out', () => {
    const sd = keysOf([m1, ego]);
    sd.set('compressor.weight', t([1]));
    expect(() => importHealModalities(sd, ego, new Map([['m1', m1]]), 'c.pth')).toThrow(/compressor\.weight: a feature compressor, which heal does not have/);
  });
});

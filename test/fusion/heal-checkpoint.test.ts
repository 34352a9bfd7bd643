// HEAL state dict → heal parameters: the name mapping, the transposed linear, and the refusals.
// The checkpoints here are built from heal's own networks through the inverse mapping, so this
// runs without HEAL's file (test/fusion/heal-reference.test.ts loads the real one).

import { describe, expect, it } from 'vitest';
import type { GraphDesc } from '../../models/graph.ts';
import type { StateDict, TorchTensor } from '../../models/pth.ts';
import { HEAL_SPACE } from '../../perception/space.ts';
import { builtinAgentConfig } from '../../perception/registry.ts';
import { agentNetwork } from '../../perception/encoders/agent.ts';
import { egoNetworkFor } from '../../fusion/pipeline.ts';
import { describeImport, healKeyFor, importHealStateDict } from '../../fusion/heal-checkpoint.ts';
import { DataError } from '../../datasets/io.ts';

const descs: GraphDesc[] = [agentNetwork(builtinAgentConfig('m1', 'heal'), HEAL_SPACE), egoNetworkFor(HEAL_SPACE)];

/** A HEAL-style state dict for `descs`, every value its element index (so a transpose is visible). */
function fakeCheckpoint(): StateDict {
  const sd: StateDict = new Map();
  for (const d of descs) {
    for (const p of d.params) {
      const key = healKeyFor(p.name);
      if (!key) throw new Error(`no HEAL key for ${p.name}`);
      const shape = key.endsWith('linear.weight') ? [p.shape[1], p.shape[0]] : p.shape;
      const n = shape.reduce((a, b) => a * b, 1);
      sd.set(key, { dtype: 'float32', shape, data: Float32Array.from({ length: n }, (_, i) => i) });
      if (key.endsWith('.running_var')) {
        sd.set(key.replace(/running_var$/, 'num_batches_tracked'), { dtype: 'int64', shape: [], data: BigInt64Array.of(12345n) });
      }
    }
  }
  return sd;
}

const count = (ds: GraphDesc[]) => ds.reduce((s, d) => s + d.params.reduce((a, p) => a + p.shape.reduce((x, y) => x * y, 1), 0), 0);

describe('HEAL checkpoint import', () => {
  it("the heal profile's m1 networks are HEAL's m1 stage-1 model: 382 keys, 5,496,151 values", () => {
    const sd = fakeCheckpoint();
    // 321 tensors plus one num_batches_tracked per batch norm (61), as m1_stage1.pth.
    expect(sd.size).toBe(382);
    expect(count(descs)).toBe(5_496_151);
    const imp = importHealStateDict(sd, descs, 'fake.pth');
    expect(imp.mapped.length).toBe(321);
    expect(imp.skipped.length).toBe(61);
    for (const m of imp.mapped) expect(healKeyFor(m.to)).toBe(m.from);
    // The PyTorch linear weight [out, in] = [64, 10] arrives as heal's [in, out].
    const lin = imp.weights.get('encoder.m1.pfn.linear.weight')!;
    expect(lin.shape).toEqual([10, 64]);
    expect(lin.data[1]).toBe(10); // heal (0, 1) = PyTorch (1, 0)
    expect(imp.mapped.find((m) => m.to === 'encoder.m1.pfn.linear.weight')!.how).toBe('transpose');
    expect(imp.weights.get('fusion.level1.block0.down.bn.var')!.shape).toEqual([128]);
    expect(describeImport(imp)).toContain('pyramid_backbone → fusion.*: 271 tensors');
  });

  it('refuses a missing key, a wrong shape and a wrong dtype, naming the key', () => {
    const missing = fakeCheckpoint();
    missing.delete('pyramid_backbone.resnet.layer2.7.bn3.running_mean');
    expect(() => importHealStateDict(missing, descs, 'a.pth')).toThrow(
      /a\.pth: field "pyramid_backbone\.resnet\.layer2\.7\.bn3\.running_mean": 1 key\(s\) .* missing:\n {2}pyramid_backbone\.resnet\.layer2\.7\.bn3\.running_mean \(for heal's "fusion\.level2\.block7\.conv3\.bn\.mean"\)/,
    );
    const shape = fakeCheckpoint();
    shape.set('pyramid_backbone.resnet.layer0.0.conv2.weight', { dtype: 'float32', shape: [128, 128, 3, 3], data: new Float32Array(128 * 128 * 9) });
    expect(() => importHealStateDict(shape, descs, 'b.pth')).toThrow(
      /b\.pth: field "pyramid_backbone\.resnet\.layer0\.0\.conv2\.weight": has shape \[128, 128, 3, 3\], heal's "fusion\.level0\.block0\.conv2\.conv\.weight" in network "ego" needs \[128, 4, 3, 3\]/,
    );
    const linear = fakeCheckpoint();
    linear.set('encoder_m1.pillar_vfe.pfn_layers.0.linear.weight', { dtype: 'float32', shape: [10, 64], data: new Float32Array(640) });
    expect(() => importHealStateDict(linear, descs, 'c.pth')).toThrow(/has shape \[64, 10\] \(transposed from \[10, 64\]\)/);
    const dtype = fakeCheckpoint();
    dtype.set('cls_head.bias', { dtype: 'float64', shape: [2], data: new Float64Array(2) });
    expect(() => importHealStateDict(dtype, descs, 'd.pth')).toThrow(DataError);
    expect(() => importHealStateDict(dtype, descs, 'd.pth')).toThrow(/cls_head\.bias": is float64/);
  });

  it('names every key it cannot use, and why (SECOND, cameras, other modalities, aligners)', () => {
    const sd = fakeCheckpoint();
    const t = (shape: number[]): TorchTensor => ({ dtype: 'float32', shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)) });
    sd.set('encoder_m3.spconv_block.conv_input.0.weight', t([3, 3, 3, 4, 16]));
    sd.set('backbone_m3.resnet.layer0.0.conv1.weight', t([64, 64, 3, 3]));
    sd.set('encoder_m2.camencode.depthnet.weight', t([4, 4, 1, 1]));
    sd.set('aligner_m2.channel_align.weight', t([64, 64, 1, 1]));
    sd.set('encoder_m1.pillar_vfe.pfn_layers.1.linear.weight', t([64, 128]));
    sd.set('something_else.weight', t([1]));
    // HEAL's m4 (ResNet-101 Lift-Splat, ConvNeXt aligner) maps, but m4 is not being loaded here.
    sd.set('encoder_m4.camencode.layer1.0.conv1.weight', t([64, 64, 1, 1]));
    sd.set('aligner_m4.channel_align.model.0.gamma', t([64]));
    let message = '';
    try {
      importHealStateDict(sd, descs, 'm.pth');
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toMatch(/^m\.pth: 8 checkpoint key\(s\) cannot be loaded/);
    expect(message).toMatch(
      /encoder_m4\.camencode\.layer1\.0\.conv1\.weight: modality m4 is in the checkpoint but not among the agent types being loaded \(m1\)/,
    );
    expect(message).toMatch(/aligner_m4\.channel_align\.model\.0\.gamma: modality m4 is in the checkpoint but not among the agent types being loaded \(m1\)/);
    expect(message).toMatch(
      /encoder_m3\.spconv_block\.conv_input\.0\.weight: modality m3: a SECOND encoder \(sparse 3-D convolutions, spconv; HEAL's m3\): not supported, because heal's graph has no sparse 3-D convolution/,
    );
    expect(message).toMatch(
      /backbone_m3\.resnet\.layer0\.0\.conv1\.weight: modality m3 is in the checkpoint but not among the agent types being loaded \(m1\)/,
    );
    expect(message).toMatch(/encoder_m2\.camencode\.depthnet\.weight: modality m2: a camera \(Lift-Splat\) encoder/);
    expect(message).toMatch(/aligner_m2\.channel_align\.weight: modality m2: an aligner layer outside HEAL's ConvNeXt blocks/);
    expect(message).toMatch(/pfn_layers\.1\.linear\.weight: modality m1: a pillar feature net with more than one layer/);
    expect(message).toMatch(/something_else\.weight: no counterpart in heal/);
  });
});

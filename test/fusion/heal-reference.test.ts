// The heal profile against HEAL itself: HEAL's m1 stage-1 checkpoint (m1_stage1.pth) through the
// one weight loader (readWeightFile), heal's networks run through onnxruntime (CPU) on the
// fixture's own voxels, stage by stage against the tensors HEAL's PyTorch code stored
// (../shared/fixtures/heal_reference, README there). The comparison is eval/reference-lidar.ts's
// 'networks' group, the same code `heal verify-reference` runs; the tolerances are the README's.

import { describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { HEAL_SPACE } from '../../perception/space.ts';
import { loadRegistry } from '../../perception/registry.ts';
import { readWeightFile } from '../../fusion/pipeline.ts';
import { describeImport } from '../../fusion/heal-checkpoint.ts';
import { formatChecks, verifyReference } from '../../eval/reference.ts';
import { LIDAR_SUITE } from '../../eval/reference-lidar.ts';
import { healFixture } from '../helpers/heal-fixtures.ts';

const DIR = healFixture('heal_reference');
const CHECKPOINT = path.join(DIR ?? '', 'm1_stage1.pth');
const CASE = path.join(DIR ?? '', 'case1');
const present =
  DIR !== undefined && existsSync(CHECKPOINT) && existsSync(path.join(CASE, 'expected.safetensors')) && existsSync(path.join(CASE, 'expected.json'));
if (DIR !== undefined && !present) console.log(`heal-reference: skipped, ${DIR} lacks m1_stage1.pth, case1/expected.safetensors or case1/expected.json`);

describe.skipIf(!present)("HEAL's m1 stage-1 model (case1) in the heal profile", () => {
  it('loads every key of m1_stage1.pth: 321 tensors mapped, 61 counters skipped, 5,496,151 values, nothing left out', async () => {
    const lines: string[] = [];
    const file = await readWeightFile(CHECKPOINT, HEAL_SPACE, await loadRegistry(), (l) => lines.push(l));
    const imp = file.heal!;
    expect(imp.mapped.length).toBe(321);
    expect(imp.skipped.length).toBe(61);
    expect(imp.types).toEqual(['m1']);
    expect(imp.leftOut).toEqual([]);
    expect(imp.sha256).toBe('1d525475c9c613a9605dca69c2693d0970706803c7ec7b7327cbcb13bb718ecd');
    expect([...file.weights.values()].reduce((s, w) => s + w.data.length, 0)).toBe(5_496_151);
    expect(file.meta.importedFrom).toMatchObject({ sha256: imp.sha256, types: ['m1'], profile: 'heal' });
    expect(lines.join('\n')).toMatch(
      /HEAL checkpoint .*m1_stage1\.pth → the heal profile's ego network and m1:\n {2}encoder_m1 → encoder\.m1\.pfn\.\*: 5 tensors/,
    );
    console.log(`heal-reference: ${CHECKPOINT}\n  ${describeImport(imp).join('\n  ')}`);
  });

  it("PFN, scatter, backbone_m1, θ, per-level warp and fusion, shrink, heads and the decoded boxes: every stage within the README's tolerance", async () => {
    const result = await verifyReference(CASE, [LIDAR_SUITE], { only: ['networks'], device: 'cpu' });
    console.log(`heal-reference (case1, networks on HEAL's voxels):\n${formatChecks(result.checks)}`);
    const stages = result.checks.map((c) => c.stage);
    for (const s of [
      'pillar_features',
      'bev_backbone_m1.crop',
      'occ_single_list.2',
      'fused_level0.channel_sum',
      'fused_shrink.crop',
      'cls_preds',
      'boxes.anchor_index',
    ]) {
      expect(stages).toContain(s);
    }
    expect(result.checks.filter((c) => !c.pass)).toEqual([]);
    expect(result.checks.find((c) => c.stage === 'boxes.count')!.note).toBe('251 boxes, HEAL 251');
  }, 300_000);
});

// The heal profile's m4 against HEAL itself: HEAL's m4 stage-2 checkpoint (m4_stage2.pth, a
// HeterPyramidSingle: ResNet-101 Lift-Splat, ResNetBEVBackbone, ConvNeXt aligner, CenterCrop, the
// frozen pyramid's forward_single, shrink, heads) loaded into heal's networks, run through
// onnxruntime (CPU) on the fixture's camera inputs, stage by stage against the tensors HEAL's
// PyTorch code stored (../shared/fixtures/heal_reference_cameras, README there). The images and
// calibration are the fixture's own tensors (the geometry from them with perception/camera.ts's
// torch-order float32 code), so this checks the networks independently of the picture resizing.
// The comparison is eval/reference-camera.ts's (the code `heal verify-reference` runs), with the
// README's tolerances; this test asserts which stages it compared and that all are within them.

import { describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { HEAL_SPACE } from '../../perception/space.ts';
import { builtinAgentConfig } from '../../perception/registry.ts';
import { agentNetwork } from '../../perception/encoders/agent.ts';
import { egoNetworkFor } from '../../fusion/pipeline.ts';
import { describeImport, importHealStateDict, loadHealCheckpoint } from '../../fusion/heal-checkpoint.ts';
import { readStateDict } from '../../models/pth.ts';
import { formatChecks, verifyReference, type StageCheck } from '../../eval/reference.ts';
import { CAMERA_SUITE } from '../../eval/reference-camera.ts';
import { healFixture } from '../helpers/heal-fixtures.ts';

const DIR = healFixture('heal_reference_cameras');
const CHECKPOINT = path.join(DIR ?? '', 'm4_stage2.pth');
const CASE = path.join(DIR ?? '', 'case_cam');
const present =
  DIR !== undefined && existsSync(CHECKPOINT) && existsSync(path.join(CASE, 'expected_m4.safetensors')) && existsSync(path.join(CASE, 'expected_m4.json'));
if (DIR !== undefined && !present) console.log(`heal-reference-cameras: skipped, ${DIR} lacks m4_stage2.pth, case_cam/expected_m4.safetensors or .json`);

/** The suite's rows for one group, printed, with none out of tolerance. */
async function group(name: string): Promise<StageCheck[]> {
  const result = await verifyReference(CASE, [CAMERA_SUITE], { only: [name], device: 'cpu' });
  console.log(`heal-reference-cameras (case_cam, ${name}):\n${formatChecks(result.checks)}`);
  expect(result.checks.filter((c) => !c.pass)).toEqual([]);
  return result.checks;
}

const agentDesc = () => agentNetwork(builtinAgentConfig('m4', 'heal'), HEAL_SPACE, { depthOutput: true, intermediates: true });

describe.skipIf(!present)("HEAL's m4 stage-2 camera model (case_cam) in the heal profile", () => {
  it('loads every key of m4_stage2.pth: 467 tensors mapped, 84 counters skipped, 7,190,983 values', async () => {
    const imp = await loadHealCheckpoint(CHECKPOINT, [agentDesc(), egoNetworkFor(HEAL_SPACE, { intermediates: true })]);
    expect(imp.mapped.length).toBe(467);
    expect(imp.skipped.length).toBe(84);
    const values = [...imp.weights.values()].reduce((s, w) => s + w.data.length, 0);
    expect(values).toBe(7_190_983);
    console.log(`heal-reference-cameras: ${CHECKPOINT}\n  ${describeImport(imp).join('\n  ')}`);
  });

  it("a merged checkpoint (m1's stage-1 LiDAR agent + m4's camera agent, one frozen pyramid) loads m1 and m4 together; without m4 it names m4's keys", async () => {
    const m1File = path.join(DIR!, '..', 'heal_reference', 'm1_stage1.pth');
    if (!existsSync(m1File)) {
      console.log(`heal-reference-cameras: merged-checkpoint check skipped, ${m1File} is absent`);
      return;
    }
    const m1 = await readStateDict(m1File);
    const m4 = await readStateDict(CHECKPOINT);
    // HEAL's merge (stage-2 heterogeneous): each type's own modules, the shared fusion modules once (here m1's).
    const merged = new Map([...m1, ...[...m4].filter(([k]) => /^(encoder|backbone|aligner)_m4\./.test(k))]);
    const m1Desc = agentNetwork(builtinAgentConfig('m1', 'heal'), HEAL_SPACE);
    const egoDesc = egoNetworkFor(HEAL_SPACE, { intermediates: true });
    const both = importHealStateDict(merged, [m1Desc, agentDesc(), egoDesc], 'merged.pth');
    // m1: 321 tensors; m4's own: trunk and heads 124, backbone_m4 35, aligner 27.
    expect(both.mapped.length).toBe(321 + 186);
    // m1's 61 counters and m4's own 31 (trunk 24, backbone_m4 7).
    expect(both.skipped.length).toBe(61 + 31);
    const m4Keys = both.mapped.filter((m) => /_m4\./.test(m.from)).map((m) => m.to);
    expect(m4Keys.every((n) => n.startsWith('encoder.m4.') || n.startsWith('aligner.m4.'))).toBe(true);
    expect(() => importHealStateDict(merged, [m1Desc, egoDesc], 'merged.pth')).toThrow(
      /186 checkpoint key\(s\) cannot be loaded[\s\S]*encoder_m4\.camencode\.conv1\.weight: modality m4 is in the checkpoint but not among the agent types being loaded \(m1\)/,
    );
  });

  it("heal's camera inputs from the case's pictures and YAML: pictures, depth, calibration and frustum exactly, geometry within 1e-4 m", async () => {
    const stages = (await group('inputs')).map((c) => c.stage);
    expect(stages).toEqual(
      expect.arrayContaining(['imgs.rgb_u8', 'imgs.depth_u8', 'rots', 'trans', 'intrins', 'post_rots', 'post_trans', 'frustum', 'geom.depth_bins_first_last']),
    );
  }, 120_000);

  it("the m4 agent network and the ego network on the fixture's images: depth_prob, bev_lss/backbone/aligner/pyramid_in, occ, levels, shrink, cls/reg/dir and HEAL's 76 boxes by anchor set", async () => {
    const checks = await group('networks');
    const stages = checks.map((c) => c.stage);
    for (const s of [
      'depth_prob',
      'bev_lss.occupied_cells',
      'bev_lss.crop',
      'bev_backbone.crop',
      'bev_aligner.crop',
      'pyramid_in.crop',
      'occ_single_list.2',
      'pyramid_level2.channel_sum',
      'shrink.crop',
      'cls_preds',
      'reg_preds',
      'dir_preds',
      'boxes.anchor_set',
      'boxes.corners',
    ]) {
      expect(stages).toContain(s);
    }
    expect(checks.find((c) => c.stage === 'boxes.count')!.note).toBe('76 boxes, HEAL 76');
    expect(checks.find((c) => c.stage === 'bev_lss.occupied_cells')!.note).toBe('7998 cells, 371556 points');
  }, 300_000);

  it("heal detect's path (CollabPipeline on the case_cam folder, the camera-only ego, m4_stage2.pth as the weight file): HEAL's 76 boxes", async () => {
    const checks = await group('detect');
    expect(checks.find((c) => c.stage === 'detect.boxes.count')!.note).toBe('76 boxes, HEAL 76');
  }, 300_000);
});

// HEAL's post-processing on its own network outputs: from the fixture's cls/reg/dir maps, heal's
// decoding gives HEAL's boxes: the same anchors in the same (NMS pick) order, box7, corners and
// scores within the fixture README's tolerances.
import { describe, expect, it } from 'vitest';
import * as path from 'node:path';
import { boxToCorners } from '../../datasets/geometry/boxes.ts';
import { makeAnchors } from '../../fusion/anchors.ts';
import { decodeDetections } from '../../fusion/detect.ts';
import { readSafetensors } from '../../models/safetensors.ts';
import { HEAL_SPACE } from '../../perception/space.ts';
import { healFixture } from '../helpers/heal-fixtures.ts';

const dir = healFixture('heal_reference');

describe.skipIf(!dir)("HEAL's post-processing (case1)", () => {
  it("gives the fixture's 251 boxes from the fixture's head outputs", async () => {
    const { tensors } = await readSafetensors(path.join(dir!, 'case1', 'expected.safetensors'));
    const get = (n: string) => tensors.get(n)!.data as Float32Array;
    const dets = decodeDetections(makeAnchors(HEAL_SPACE), get('cls_preds'), get('reg_preds'), get('dir_preds'), { range: HEAL_SPACE.range });
    const anchors = Array.from(tensors.get('boxes.anchor_index')!.data as BigInt64Array, Number);
    expect(dets.map((d) => d.anchor)).toEqual(anchors);
    const box7 = get('boxes.box7');
    const corners = get('boxes.corners');
    const scores = get('boxes.scores');
    const labels = Array.from(tensors.get('boxes.dir_label')!.data as BigInt64Array, Number);
    let boxDiff = 0,
      cornerDiff = 0,
      scoreDiff = 0;
    dets.forEach((d, k) => {
      for (let j = 0; j < 7; j++) boxDiff = Math.max(boxDiff, Math.abs(d.box[j] - box7[k * 7 + j]));
      const c = boxToCorners(d.box);
      for (let j = 0; j < 24; j++) cornerDiff = Math.max(cornerDiff, Math.abs(c[j] - corners[k * 24 + j]));
      scoreDiff = Math.max(scoreDiff, Math.abs(d.score - scores[k]));
      expect(d.dirLabel).toBe(labels[k]);
    });
    console.log(
      `HEAL post-processing, case1: ${dets.length} boxes; max |diff| box7 ${boxDiff.toExponential(2)}, corners ${cornerDiff.toExponential(2)} m, scores ${scoreDiff.toExponential(2)}`,
    );
    expect(cornerDiff).toBeLessThan(3e-4);
    expect(boxDiff).toBeLessThan(1e-4);
    expect(scoreDiff).toBeLessThan(5e-5);
  });
});

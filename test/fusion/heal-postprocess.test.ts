// HEAL's post-processing on its own network outputs: from the fixture's cls/reg/dir maps, heal's
// decoding gives HEAL's boxes: the same anchors in the same (NMS pick) order, the same direction
// bins and anchor boxes, box7, corners and scores within the fixture README's tolerances. The
// comparison is eval/reference-lidar.ts's 'postprocess' group, the one `heal verify-reference` runs.
import { describe, expect, it } from 'vitest';
import * as path from 'node:path';
import { formatChecks, verifyReference } from '../../eval/reference.ts';
import { LIDAR_SUITE } from '../../eval/reference-lidar.ts';
import { healFixture } from '../helpers/heal-fixtures.ts';

const dir = healFixture('heal_reference');

describe.skipIf(!dir)("HEAL's post-processing (case1)", () => {
  it("gives the fixture's 251 boxes from the fixture's head outputs", async () => {
    const { checks } = await verifyReference(path.join(dir!, 'case1'), [LIDAR_SUITE], { only: ['postprocess'] });
    console.log(formatChecks(checks));
    expect(checks.length).toBe(8);
    expect(checks.filter((c) => !c.pass)).toEqual([]);
    expect(checks[0].note).toBe('251 boxes, HEAL 251');
    // Tighter than the README's bounds: the decoding emulates float32 as torch does.
    const diff = (s: string) => checks.find((c) => c.stage.endsWith(s))!.diff;
    expect(diff('box7 (x,y,z,h,w,l)')).toBeLessThan(1e-5);
    expect(diff('corners')).toBeLessThan(2e-5);
    expect(diff('scores')).toBeLessThan(1e-6);
  });
});

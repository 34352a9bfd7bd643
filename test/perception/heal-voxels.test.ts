// HEAL's voxelizer on its own reference frame: heal's pillars for the `heal` profile, as the detect
// path builds them (agentInputs), are the fixture's point for point (spconv's float32 cell index,
// the voxelizer's range rule, first 32 points in file order, pillars numbered by first point). The
// comparison is eval/reference-lidar.ts's 'voxels' group, the one `heal verify-reference` runs.
import { describe, expect, it } from 'vitest';
import * as path from 'node:path';
import { formatChecks, verifyReference } from '../../eval/reference.ts';
import { LIDAR_SUITE } from '../../eval/reference-lidar.ts';
import { healFixture } from '../helpers/heal-fixtures.ts';

const dir = healFixture('heal_reference');

describe.skipIf(!dir)("HEAL's voxelizer (case1)", () => {
  it('gives the fixture pillars for all three agents, in order, exactly', async () => {
    const { checks } = await verifyReference(path.join(dir!, 'case1'), [LIDAR_SUITE], { only: ['voxels'] });
    console.log(formatChecks(checks));
    expect(checks.map((c) => [c.stage, c.diff, c.pass, c.note])).toEqual([['voxels (pillars, cells, points)', 0, true, '8889 / 7421 / 1581 pillars']]);
  });
});

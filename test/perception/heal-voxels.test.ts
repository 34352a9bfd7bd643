// HEAL's voxelizer on its own reference frame: heal's pillars for the `heal` profile are the
// fixture's, point for point (spconv's float32 cell index, the voxelizer's range rule, first 32
// points in file order, pillars numbered by first point).
import { describe, expect, it } from 'vitest';
import * as path from 'node:path';
import { openDataset } from '../../datasets/open.ts';
import { readSafetensors, type SafeTensor } from '../../models/safetensors.ts';
import { pillarConfigForSpace, pillarize } from '../../perception/pillars.ts';
import { HEAL_SPACE } from '../../perception/space.ts';
import { healFixture } from '../helpers/heal-fixtures.ts';

const dir = healFixture('heal_reference');

describe.skipIf(!dir)("HEAL's voxelizer (case1)", () => {
  it('gives the fixture pillars for all three agents, in order, exactly', async () => {
    const { tensors } = await readSafetensors(path.join(dir!, 'case1', 'expected.safetensors'));
    const ds = await openDataset(path.join(dir!, 'case1'));
    const ref = ds.frames()[0];
    // OpenCOOD's order: folder names sorted as strings, a roadside unit (negative id) last.
    const order = [1996, 1998, -1];
    expect([...ref.agentIds].sort()).toEqual([...order].sort());
    const cfg = { ...pillarConfigForSpace(HEAL_SPACE, { maskEgo: true }), maxPillars: 70_000 };
    for (const [k, id] of order.entries()) {
      const frame = await ds.readAgentFrame(ref, id, { lidar: 64 });
      const p = pillarize(frame.points, cfg);
      const want = (name: string): SafeTensor => tensors.get(`agent${k}.${name}`)!;
      const coords = want('voxel_coords').data as Int32Array;
      const nums = want('voxel_num_points').data as Int32Array;
      const feats = want('voxel_features').data as Float32Array;
      expect(p.numPillars).toBe(nums.length);
      let mismatches = 0;
      for (let v = 0; v < p.numPillars; v++) {
        const n = Math.min(p.pointCounts[v], 32);
        if (coords[v * 4] !== k || coords[v * 4 + 1] !== 0 || coords[v * 4 + 2] !== p.coords[v * 2] || coords[v * 4 + 3] !== p.coords[v * 2 + 1]) mismatches++;
        if (nums[v] !== n) mismatches++;
        for (let s = 0; s < 32; s++) {
          for (let c = 0; c < 4; c++) if (feats[(v * 32 + s) * 4 + c] !== p.features[(v * 32 + s) * 10 + c]) mismatches++;
        }
      }
      expect(mismatches, `agent ${id}`).toBe(0);
    }
  });
});

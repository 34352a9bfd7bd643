// The reference comparison (eval/reference.ts): a stage out of tolerance fails and is shown, case
// folders are found, a missing checkpoint or case is an error naming the file. The pass side on
// HEAL's real tensors is in test/fusion/heal-reference.test.ts and its neighbours.

import { describe, expect, it } from 'vitest';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { readSafetensors, writeSafetensors, type SafeTensor } from '../../models/safetensors.ts';
import { check, formatChecks, verifyReference, type ReferenceSuite } from '../../eval/reference.ts';
import { LIDAR_SUITE } from '../../eval/reference-lidar.ts';
import { healFixture } from '../helpers/heal-fixtures.ts';

const dir = healFixture('heal_reference');

describe('reference checks', () => {
  it('a stage passes below its tolerance and fails at or above it; exact stages allow none', () => {
    const base = { case: 'c', suite: 's', stage: 'x' } as const;
    expect(check({ ...base, kind: 'abs', diff: 1e-5, tolerance: 1e-4 }).pass).toBe(true);
    expect(check({ ...base, kind: 'abs', diff: 1e-4, tolerance: 1e-4 }).pass).toBe(false);
    expect(check({ ...base, kind: 'abs', diff: Number.NaN, tolerance: 1 }).pass).toBe(false);
    expect(check({ ...base, kind: 'count', diff: 0, tolerance: 0 }).pass).toBe(true);
    expect(check({ ...base, kind: 'count', diff: 1, tolerance: 0 }).pass).toBe(false);
    const table = formatChecks([check({ ...base, kind: 'rel', diff: 2e-5, tolerance: 1e-5, note: 'n' })]);
    expect(table.split('\n')[2]).toMatch(/^c\s+x\s+2\.00e-5 rel\s+1\.00e-5\s+FAIL\s+n$/);
  });

  it('finds case folders by their expected file, and names what is missing', async () => {
    const root = await fs.mkdtemp(path.join(os.tmpdir(), 'heal-reference-'));
    try {
      const seen: string[] = [];
      const suite: ReferenceSuite = {
        name: 'probe',
        expected: 'expected_probe',
        groups: ['all'],
        run: async (c) => {
          seen.push(c.name);
          c.tensors.get('a');
          return [check({ case: c.name, suite: 'probe', stage: 'a', kind: 'abs', diff: 0, tolerance: 1 })];
        },
      };
      await expect(verifyReference(root, [suite])).rejects.toThrow(/no case folder with expected_probe\.safetensors/);
      for (const name of ['b', 'a']) {
        await fs.mkdir(path.join(root, name));
        const t: SafeTensor = { dtype: 'F32', shape: [1], data: Float32Array.of(1) };
        await writeSafetensors(
          path.join(root, name, 'expected_probe.safetensors'),
          new Map([
            ['a', t],
            ['b', t],
          ]),
        );
        await fs.writeFile(path.join(root, name, 'expected_probe.json'), JSON.stringify({ checkpoint: { path: '../model.pth' } }));
      }
      await expect(verifyReference(root, [suite])).rejects.toThrow(
        /expected_probe\.json: field "checkpoint\.path": the checkpoint .*model\.pth does not exist/,
      );
      await fs.writeFile(path.join(root, 'model.pth'), '');
      const r = await verifyReference(root, [suite]);
      expect(seen).toEqual(['a', 'b']);
      expect(r.pass).toBe(true);
      expect(r.cases).toEqual([
        { name: 'a', suites: ['probe'] },
        { name: 'b', suites: ['probe'] },
      ]);
      expect(r.unchecked).toEqual([
        { case: 'a', file: 'expected_probe.safetensors', names: ['b'] },
        { case: 'b', file: 'expected_probe.safetensors', names: ['b'] },
      ]);
      // One case folder given directly.
      expect((await verifyReference(path.join(root, 'b'), [suite])).cases.map((c) => c.name)).toEqual(['b']);
    } finally {
      await fs.rm(root, { recursive: true, force: true });
    }
  });

  it.skipIf(!dir)("fails the stages a wrong HEAL tensor touches: HEAL's boxes in another order, a shifted score", async () => {
    const caseDir = path.join(dir!, 'case1');
    const { tensors } = await readSafetensors(path.join(caseDir, 'expected.safetensors'));
    const anchors = tensors.get('boxes.anchor_index')!;
    const swapped = (anchors.data as BigInt64Array).slice();
    [swapped[3], swapped[4]] = [swapped[4], swapped[3]];
    const scores = (tensors.get('boxes.scores')!.data as Float32Array).slice();
    scores[10] += 1e-4;
    const changed = new Map(tensors);
    changed.set('boxes.anchor_index', { ...anchors, data: swapped });
    changed.set('boxes.scores', { dtype: 'F32', shape: [scores.length], data: scores });
    const json = JSON.parse(await fs.readFile(path.join(caseDir, 'expected.json'), 'utf8'));
    const checks = await LIDAR_SUITE.run(
      { name: 'case1', dir: caseDir, tensors: changed, json, checkpoint: path.join(dir!, 'm1_stage1.pth') },
      { device: 'cpu', only: ['postprocess'], log: () => {} },
    );
    const failed = checks.filter((c) => !c.pass).map((c) => [c.stage.replace(/^.*boxes\./, ''), c.diff]);
    expect(failed).toEqual([
      ['anchor_index', 2],
      ['scores', expect.closeTo(1e-4, 6)],
    ]);
  });
});

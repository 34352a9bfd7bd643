// A merged multi-modality HEAL checkpoint through `heal import` and `heal detect`, as a user runs
// them: HEAL's m1 stage-1 file with a SECOND m3 and an EfficientNet m2 added (written with
// torch.save's format by test/helpers/torch-save.ts). m1 and the shared fusion load; m2 and m3 are
// left out, named, with why; running an m3 agent on it fails with that reason.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { decodeStateDict, readStateDict, type TorchTensor } from '../../models/pth.ts';
import { loadWeights } from '../../models/weights.ts';
import { openDataset } from '../../datasets/open.ts';
import { loadRegistry } from '../../perception/registry.ts';
import { HEAL_SPACE } from '../../perception/space.ts';
import { CollabPipeline } from '../../fusion/pipeline.ts';
import { healFixture } from '../helpers/heal-fixtures.ts';
import { torchSave } from '../helpers/torch-save.ts';
import { runHeal } from '../helpers/cli.ts';

const DIR = healFixture('heal_reference');
const CHECKPOINT = path.join(DIR ?? '', 'm1_stage1.pth');
const present = DIR !== undefined && existsSync(CHECKPOINT);
if (DIR !== undefined && !present) console.log(`heal-import e2e: skipped, ${DIR} lacks m1_stage1.pth`);

const t = (shape: number[]): TorchTensor => ({ dtype: 'float32', shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(0.5) });

describe.skipIf(!present)('a merged HEAL checkpoint (m1 + SECOND m3 + EfficientNet m2)', () => {
  let tmp = '';
  let merged = '';
  beforeAll(async () => {
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'heal-import-e2e-'));
    const sd = await readStateDict(CHECKPOINT);
    sd.set('encoder_m3.spconv_block.conv_input.0.weight', t([3, 3, 3, 4, 16]));
    sd.set('encoder_m3.spconv_block.conv_input.1.running_mean', t([16]));
    sd.set('backbone_m3.resnet.layer0.0.conv1.weight', t([64, 64, 3, 3]));
    sd.set('encoder_m2.camencode.trunk._conv_stem.weight', t([32, 3, 3, 3]));
    sd.set('encoder_m2.camencode.depth_head.weight', t([112, 112, 1, 1]));
    const bytes = torchSave(sd);
    // What was written is what was meant: the reader gives the same tensors back.
    const back = decodeStateDict(bytes, 'merged.pth');
    expect([...back.keys()]).toEqual([...sd.keys()]);
    expect(back.get('cls_head.bias')).toEqual(sd.get('cls_head.bias'));
    merged = path.join(tmp, 'merged.pth');
    await fs.writeFile(merged, bytes);
  });
  afterAll(() => fs.rm(tmp, { recursive: true, force: true }));

  it('heal import loads m1 and the shared fusion, and names m3 and m2 with why', async () => {
    const out = path.join(tmp, 'imported');
    const r = await runHeal(['import', merged, '--out', out]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/→ the heal profile's ego network and m1\n/);
    expect(r.out).toMatch(/left out m3 \(3 keys\): modality m3: a SECOND encoder \(sparse 3-D convolutions, spconv; HEAL's m3\): not supported/);
    expect(r.out).toMatch(/left out m2 \(2 keys\): modality m2: a camera \(Lift-Splat\) encoder layer other than HEAL's ResNet-101 trunk/);
    const manifest = JSON.parse(await fs.readFile(path.join(out, 'manifest.json'), 'utf8'));
    expect(manifest.types).toEqual(['m1']);
    expect(manifest.mapped.length).toBe(321);
    expect(manifest.leftOut.map((l: { modality: string; keys: { key: string }[] }) => [l.modality, l.keys.map((k) => k.key)])).toEqual([
      ['m3', ['encoder_m3.spconv_block.conv_input.0.weight', 'encoder_m3.spconv_block.conv_input.1.running_mean', 'backbone_m3.resnet.layer0.0.conv1.weight']],
      ['m2', ['encoder_m2.camencode.trunk._conv_stem.weight', 'encoder_m2.camencode.depth_head.weight']],
    ]);
    const { weights, meta } = await loadWeights(path.join(out, 'weights.bin'));
    expect(weights.size).toBe(321);
    expect((meta.importedFrom as { leftOut: { modality: string }[] }).leftOut.map((l) => l.modality)).toEqual(['m3', 'm2']);
  }, 60_000);

  it('an m3 agent run on it fails with the reason m3 was left out; an absent modality is named too', async () => {
    const registry = await loadRegistry();
    const pipeline = await CollabPipeline.create({ space: HEAL_SPACE, registry, device: 'cpu', weightsFile: merged });
    const ds = await openDataset(path.join(DIR!, 'case1'));
    const ref = ds.frames()[0];
    // case1 has no 32-beam scans; the type is refused before its sensor data is looked at.
    const frame = await ds.readAgentFrame(ref, ref.agentIds[1], { lidar: 64 });
    await expect(pipeline.encode({ frame, type: 'm3' })).rejects.toThrow(
      /merged\.pth: agent type m3: this HEAL checkpoint's m3 was left out: modality m3: a SECOND encoder/,
    );
    await expect(pipeline.encode({ frame, type: 'm4' })).rejects.toThrow(
      /merged\.pth: agent type m4: this HEAL checkpoint holds no m4 encoder \(it holds m1\)/,
    );
  }, 120_000);
});

// Training against HEAL's kind of ego network (pyramid run per agent, warped per level) and on a
// profile's training range (SharedSpace.trainRange): the trainer gives that network the same
// per-level grids, validity and trust as inference (egoInputsFor), and a tiny backward alignment
// against it (random weights, tfjs cpu backend, a 16×8 grid) lowers its loss. The heal profile's
// two ranges are checked for the grids, anchors and warp normalisation they give.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { AlignNet, type StageOneModels } from '../../train/stages.ts';
import { loadSingleAgentSample } from '../../train/batch.ts';
import { train, trainStep } from '../../train/trainer.ts';
import { NamedAdam } from '../../train/optimizer.ts';
import { egoNetworkFor, fusionConfigFor } from '../../fusion/pipeline.ts';
import { pyramidLevelSizes } from '../../fusion/networks/pyramid.ts';
import { makeAnchors } from '../../fusion/anchors.ts';
import { agentFromEgo, warpTheta } from '../../fusion/warp.ts';
import { openDataset } from '../../datasets/open.ts';
import { initWeights, loadWeights, saveWeights } from '../../models/weights.ts';
import { agentNetwork } from '../../perception/encoders/agent.ts';
import { featureGrid, HEAL_SPACE, SMALL_SPACE, trainingSpace, type SharedSpace } from '../../perception/space.ts';
import { poseToMatrix } from '../../datasets/geometry/transforms.ts';
import { WORLD_TIMEOUT_MS, testWorld } from '../helpers/world.ts';
import { tinyLidar, tinyPerLevelSpace } from '../helpers/tiny.ts';

const TINY = tinyPerLevelSpace([1, 1]);

/** ±12.8 m at 1.6 m cells for detect, ±12.8 × ±6.4 m (16×8) for training; a two-level ResNeXt pyramid warped per level. */
describe("the heal profile's two ranges", () => {
  it('detect and eval use ±102.4 m (256×256 features); training ±102.4 × ±51.2 m (256 wide, 128 high), the same networks', () => {
    expect(HEAL_SPACE.range).toEqual([-102.4, -102.4, -3, 102.4, 102.4, 1]);
    const t = trainingSpace(HEAL_SPACE);
    expect(t.range).toEqual([-102.4, -51.2, -3, 102.4, 51.2, 1]);
    expect(t.name).toBe('heal');
    expect(featureGrid(HEAL_SPACE)).toEqual([256, 256]);
    expect(featureGrid(t)).toEqual([256, 128]);
    expect(pyramidLevelSizes(fusionConfigFor(t))).toEqual([
      [128, 256],
      [64, 128],
      [32, 64],
    ]);
    // The same parameters, name for name and shape for shape: one checkpoint serves both ranges.
    const shapes = (s: SharedSpace) => egoNetworkFor(s).params.map((p) => `${p.name} ${p.shape.join('x')}`);
    expect(shapes(t)).toEqual(shapes(HEAL_SPACE));
    // Anchors follow the grid: HEAL's linspace(ymin + 0.4, ymax − 0.4, 128) rows.
    const a = makeAnchors(t);
    expect([a.rows, a.cols, a.count]).toEqual([128, 256, 256 * 128 * 2]);
    expect(a.boxes[1]).toBeCloseTo(-51.2 + 0.4, 5);
    expect(a.boxes[127 * 256 * 2 * 7 + 1]).toBeCloseTo(51.2 - 0.4, 5);
    // The small profile has one range.
    expect(trainingSpace(SMALL_SPACE)).toBe(SMALL_SPACE);
  });

  it("the warp normalises by each axis's metric extent, as HEAL's normalize_pairwise_tfm (W_m 204.8, H_m 102.4)", () => {
    const t = trainingSpace(HEAL_SPACE);
    const ego = poseToMatrix([10, 20, 1.9, 0, 30, 0]);
    const other = poseToMatrix([25, 5, 1.7, 2, -15, 1]);
    const m = agentFromEgo(ego, other); // T_{other←ego}, row-major 4×4
    const [Wm, Hm] = [204.8, 102.4];
    const heal = [m[0], (m[1] * Hm) / Wm, (m[3] / Wm) * 2, (m[4] * Wm) / Hm, m[5], (m[7] / Hm) * 2];
    const theta = warpTheta(m, t);
    for (let i = 0; i < 6; i++) expect(theta[i]).toBeCloseTo(heal[i], 12);
  });
});

describe('alignment against a per-level ego network (tiny, random weights)', () => {
  let root: string;
  let data: string;
  const space = trainingSpace(TINY);
  const ego = egoNetworkFor(space);
  const models: StageOneModels = { space, network: tinyLidar('m1', 0), ego };

  beforeAll(async () => {
    await tf.setBackend('cpu');
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'heal-align-per-level-'));
    data = await testWorld();
  }, WORLD_TIMEOUT_MS);
  afterAll(async () => {
    if (root) await fs.rm(root, { recursive: true, force: true });
  });

  it('the ego network takes a grid per level, validity and trust, on the 16×8 training grid', () => {
    const names = ego.inputs.map((i) => i.name);
    expect(names).toContain('grid0');
    expect(names).toContain('grid1');
    expect(names).toContain('trust');
    expect(names).not.toContain('grid');
    expect(ego.inputs.find((i) => i.name === 'features')!.shape).toEqual(['agents', 8, 8, 16]);
  });

  it('lowers its loss on one frame, and trains only the new type', async () => {
    const network = tinyLidar('tinylidar32', 0);
    const base = initWeights(ego, 3);
    const net = new AlignNet({ ...models, network }, base, initWeights(agentNetwork(network, space), 5));
    const ds = await openDataset(data);
    const ref = ds.frames().find((f) => f.split === 'train')!;
    const sample = await loadSingleAgentSample(ds, ref, ref.agentIds[0], { space, network, anchors: net.anchors, levels: net.levels, lidar: 32 });
    expect(sample.targets.positives).toBeGreaterThan(0);
    const opt = new NamedAdam(1e-2);
    const losses: number[] = [];
    for (let i = 0; i < 8; i++) {
      const { loss, parts } = trainStep(net, opt, sample);
      losses.push((await loss.data())[0]);
      tf.dispose([loss, ...Object.values(parts)]);
    }
    for (const l of losses) expect(Number.isFinite(l)).toBe(true);
    expect(losses[7]).toBeLessThan(0.9 * losses[0]);
    // The fusion and head stayed as they were.
    const after = await net.readWeights();
    for (const [name, w] of base) expect(Buffer.from(after.get(name)!.data.buffer).equals(Buffer.from(w.data.buffer)), name).toBe(true);
    opt.dispose();
    net.dispose();
  }, 30_000);

  it('stage 1 trains a per-level ego network too (its gradients taken a run of nodes at a time): finite losses, fusion weights moved', async () => {
    const out = path.join(root, 'stage1');
    const r = await train({ data, out, steps: 2, models, seed: 1, maxAgents: 2, log: () => {} });
    for (const l of r.losses) expect(Number.isFinite(l)).toBe(true);
    const ckpt = await loadWeights(r.checkpoint);
    const init = initWeights(ego, 2);
    const moved = [...init].filter(
      ([name, w]) => name.startsWith('fusion.') && name.endsWith('.weight') && ckpt.weights.get(name)!.data.some((v, i) => v !== w.data[i]),
    );
    expect(moved.length).toBeGreaterThan(0);
  }, 30_000);

  it('train() aligns a --types-dir type against a per-level base file (2 steps)', async () => {
    const typesDir = path.join(root, 'types');
    await fs.mkdir(typesDir, { recursive: true });
    const { encoder, aligner } = tinyLidar('tinylidar32', 0);
    await fs.writeFile(
      path.join(typesDir, 'tinylidar32.json'),
      JSON.stringify({
        name: 'tinylidar32',
        description: 'LiDAR-32, tiny (test)',
        modality: 'lidar',
        sensor: { lidar: 32 },
        profiles: { tiny: { encoder, aligner } },
      }),
    );
    const baseFile = path.join(root, 'base.bin');
    await saveWeights(baseFile, initWeights(ego, 3));
    const out = path.join(root, 'aligned');
    const r = await train({ data, out, steps: 2, models, seed: 1, log: () => {}, align: { type: 'tinylidar32', base: baseFile, typesDirs: [typesDir] } });
    expect(r.losses).toHaveLength(2);
    for (const l of r.losses) expect(Number.isFinite(l)).toBe(true);
    expect((await loadWeights(r.checkpoint)).meta).toMatchObject({ stage: 2, type: 'tinylidar32', step: 2 });
  }, 30_000);
});

// Adapter mode (train/adapt.ts, fusion/adapter-agent.ts): a type declared in a --types-dir folder
// with a black-box ONNX encoder joins with no code change; its adapter (and reverter) train and
// lower their losses; the encoder file and the fusion stay bit-identical.

import { describe, it, expect, beforeAll } from 'vitest';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { selectTrainingBackend } from '../../train/backend.ts';
import { exportOnnx } from '../../models/onnx.ts';
import { initWeights, loadWeights, saveWeights } from '../../models/weights.ts';
import { adapterNetwork } from '../../fusion/networks/adapter.ts';
import { shippedWeightsPath } from '../../models/shipped.ts';
import { encoderNetwork, type AgentNetworkConfig } from '../../perception/encoders/agent.ts';
import { loadRegistry } from '../../perception/registry.ts';
import { SMALL_SPACE } from '../../perception/space.ts';
import { openDataset } from '../../datasets/open.ts';
import { CollabPipeline } from '../../fusion/pipeline.ts';
import { adapt, scheduledLr, type AdaptRecord } from '../../train/adapt.ts';
import { exportModels } from '../../train/export.ts';
import { exportSingle, ownHeadFor } from '../../train/single.ts';
import { train } from '../../train/trainer.ts';
import { stageOneModels } from '../../train/stages.ts';
import { builtinAgentConfig } from '../../perception/registry.ts';
import { createSession, runSession } from '../../models/runtime.ts';
import { agentInputs } from '../../perception/encoders/agent.ts';
import { testSplit, testWorld, WORLD_TIMEOUT_MS } from '../helpers/world.ts';

/** The maker's encoder: a small PointPillars the test builds and exports, then only ever reads as bytes. */
const MAKER: AgentNetworkConfig = {
  type: 'x9',
  encoder: {
    arch: 'pointpillars',
    pillarSize: [0.8, 0.8],
    maxPointsPerPillar: 16,
    maxPillars: 12000,
    maskEgo: true,
    pfnChannels: 8,
    backbone: { layerNums: [1], layerStrides: [2], numFilters: [12] },
  },
  aligner: { inChannels: 12, channels: 32, blocks: 1, batchNorm: true },
};

const DECLARATION = {
  name: 'x9',
  description: 'a vendor LiDAR-32 detector, encoder shipped as ONNX',
  modality: 'lidar',
  sensor: { lidar: 32 },
  profiles: {
    small: {
      join: 'adapter',
      encoder: {
        arch: 'external',
        model: 'x9.encoder.onnx',
        input: 'pillars',
        pillarSize: [0.8, 0.8],
        maxPointsPerPillar: 16,
        maxPillars: 12000,
        maskEgo: true,
        outChannels: 12,
      },
    },
  },
};

let dir: string;
let encoderFile: string;
let encoderBytes: Buffer;
let record: AdaptRecord;
const losses: Record<string, number[]> = {};

beforeAll(async () => {
  // The small profile's fusion is too slow to differentiate on the pure-JS cpu backend.
  await selectTrainingBackend('wasm', () => {});
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'heal-adapt-'));
  const declared = path.join(dir, 'declared');
  await fs.mkdir(declared);
  encoderFile = path.join(declared, 'x9.encoder.onnx');
  const enc = encoderNetwork(MAKER, SMALL_SPACE);
  await fs.writeFile(encoderFile, exportOnnx(enc, initWeights(enc, 5)));
  await fs.writeFile(path.join(declared, 'x9.json'), JSON.stringify(DECLARATION));
  encoderBytes = await fs.readFile(encoderFile);
  // The maker's own head, as heal train --single leaves it in its checkpoint.
  const headFile = path.join(dir, 'head.bin');
  await saveWeights(headFile, initWeights(ownHeadFor(MAKER, SMALL_SPACE), 6));
  record = await adapt({
    data: await testWorld(),
    out: path.join(dir, 'out'),
    type: 'x9',
    typesDirs: [declared],
    space: SMALL_SPACE,
    base: shippedWeightsPath('small'),
    encoder: encoderFile,
    head: headFile,
    featureSteps: 30,
    steps: 1,
    reverterSteps: 12,
    reverterMaps: 2,
    valFrames: 1,
    lr: 0.01,
    seed: 1,
    log: () => {},
    onStep: (s) => {
      (losses[s.phase] ??= []).push(s.loss);
    },
  });
}, WORLD_TIMEOUT_MS);

const mean = (a: number[]) => a.reduce((s, v) => s + v, 0) / a.length;

describe('heal adapt: a black-box encoder joins by a small adapter', () => {
  it('trains only the adapter and reverter (≤ 0.1 M parameters), and their losses go down', () => {
    expect(record.trainableParams).toBe(record.adapter.parameters + record.reverter!.parameters);
    expect(record.trainableParams).toBeLessThanOrEqual(100_000);
    expect(losses['align features']).toHaveLength(30);
    expect(mean(losses['align features'].slice(-5))).toBeLessThan(mean(losses['align features'].slice(0, 5)));
    // The feature alignment learned on 32×32 windows of the 64×64 map (the default).
    expect(record.featureCrop).toBe(32);
    expect(losses.detect).toHaveLength(1);
    expect(mean(losses.revert.slice(-4))).toBeLessThan(mean(losses.revert.slice(0, 4)));
  });

  it('copies what the windowed feature alignment learned into the adapter it saves', async () => {
    const saved = (await loadWeights(path.join(dir, 'out', 'adapter.bin'))).weights;
    const initial = initWeights(adapterNetwork('x9', record.adapter.config, { height: 64, width: 64 }), 1);
    // Its one detection step at lr 0.01 moves no weight by more than a few hundredths; the 30 feature steps move some by more.
    const largest = Math.max(...[...initial].flatMap(([name, t]) => Array.from(saved.get(name)!.data, (v, i) => Math.abs(v - t.data[i]))));
    expect(largest).toBeGreaterThan(0.05);
  });

  it('leaves the encoder file and the frozen fusion and head bit-identical', async () => {
    expect(Buffer.compare(await fs.readFile(encoderFile), encoderBytes)).toBe(0);
    expect(record.encoder.unchanged).toBe(true);
    expect(record.encoder.sha256Before).toBe(record.encoder.sha256After);
    expect(record.fusionUnchanged).toBe(true);
  });

  it('writes the adapter as ONNX, lists it in the manifest, and declares the type as joined by adapter', async () => {
    const manifest = JSON.parse(await fs.readFile(path.join(dir, 'out', 'manifest.json'), 'utf8')) as AdaptRecord;
    expect(manifest.files.map((f) => f.file).sort()).toEqual(['adapter.bin', 'types/x9.json', 'x9.adapter.onnx', 'x9.head.onnx', 'x9.reverter.onnx']);
    const decl = JSON.parse(await fs.readFile(path.join(dir, 'out', 'types', 'x9.json'), 'utf8'));
    expect(decl.profiles.small.join).toBe('adapter');
    expect(decl.profiles.small.encoder.sha256).toBe(record.encoder.sha256Before);
    const registry = await loadRegistry([path.join(dir, 'out', 'types')]);
    expect(registry.profile('x9', 'small').join).toBe('adapter');
    expect(registry.profile('x9', 'small').adapter?.model).toBe(path.join(dir, 'out', 'x9.adapter.onnx'));
    // heal export ships it beside the built-in types: the encoder byte for byte, the adapter, reverter and own head.
    const exported = await exportModels({
      weightsFiles: [shippedWeightsPath('small')],
      out: path.join(dir, 'export'),
      space: SMALL_SPACE,
      registry,
      types: ['m1', 'x9'],
      records: [],
    });
    const m = JSON.parse(await fs.readFile(exported.manifest, 'utf8'));
    expect(m.types.map((t: { name: string; join: string }) => [t.name, t.join])).toEqual([
      ['m1', 'backward'],
      ['x9', 'adapter'],
    ]);
    expect(m.types[1].encoder.sha256).toBe(record.encoder.sha256Before);
    expect(Buffer.compare(await fs.readFile(path.join(dir, 'export', 'x9.encoder.onnx')), encoderBytes)).toBe(0);
  });

  it('a type declared in --types-dir runs in the pipeline with no code change: as partner, as ego with its own head, alone', async () => {
    const registry = await loadRegistry([path.join(dir, 'out', 'types')]);
    const pipeline = await CollabPipeline.create({ space: SMALL_SPACE, registry, device: 'cpu', weightsFile: shippedWeightsPath('small') });
    const ds = await openDataset(await testSplit('test'));
    const ref = ds.frames()[0];
    const agents = [];
    for (const [i, id] of ref.agentIds.entries()) {
      const type = i === 0 ? 'm1' : 'x9';
      agents.push({ frame: await ds.readAgentFrame(ref, id, { lidar: type === 'm1' ? 64 : 32, images: false }), type });
    }
    const partner = await pipeline.runFrame(agents, ref.agentIds[0], { mode: 'intermediate' });
    expect(partner.used.map((u) => u.type)).toContain('x9');
    expect(partner.times['encode.x9']).toBeGreaterThan(0);
    expect(partner.times['adapt.x9']).toBeGreaterThan(0);

    const egoFirst = agents.map((a, i) => ({ ...a, type: i === 0 ? 'x9' : 'm1' }));
    egoFirst[0] = { ...egoFirst[0], frame: await ds.readAgentFrame(ref, ref.agentIds[0], { lidar: 32, images: false }) };
    const ego = await pipeline.runFrame(egoFirst, ref.agentIds[0], { mode: 'intermediate' });
    expect(ego.times['revert+own head']).toBeGreaterThan(0);
    const alone = await pipeline.runFrame(egoFirst, ref.agentIds[0], { mode: 'none' });
    expect(alone.times['own head']).toBeGreaterThan(0);
    expect(alone.times['warp+fuse+head']).toBeUndefined();

    // A changed encoder no longer fits its adapter, and is refused by name.
    const tampered = Buffer.from(encoderBytes);
    tampered[tampered.length - 1] ^= 1;
    const copy = path.join(dir, 'tampered');
    await fs.cp(path.join(dir, 'out'), copy, { recursive: true });
    const decl = JSON.parse(await fs.readFile(path.join(copy, 'types', 'x9.json'), 'utf8'));
    decl.profiles.small.encoder.model = path.join(copy, 'x9.encoder.onnx');
    await fs.writeFile(decl.profiles.small.encoder.model, tampered);
    await fs.writeFile(path.join(copy, 'types', 'x9.json'), JSON.stringify(decl));
    const bad = await CollabPipeline.create({
      space: SMALL_SPACE,
      registry: await loadRegistry([path.join(copy, 'types')]),
      device: 'cpu',
      weightsFile: shippedWeightsPath('small'),
    });
    await expect(bad.runFrame(agents, ref.agentIds[0], { mode: 'intermediate' })).rejects.toThrow(/sha256.*is not the encoder/);
  });
});

describe('heal train --single: a type alone, as its maker trains it', () => {
  it('trains m5 (PillarFPN) with its own head on its single-agent frames, and exports an encoder that outputs its BEV map', async () => {
    const out = path.join(dir, 'single');
    const losses: number[] = [];
    const r = await train({
      models: stageOneModels(SMALL_SPACE),
      data: await testWorld(),
      out,
      steps: 2,
      valEvery: 0,
      single: { type: 'm5' },
      log: () => {},
      onStep: (s) => losses.push(s.loss),
    });
    expect(losses).toHaveLength(2);
    expect(losses.every(Number.isFinite)).toBe(true);
    const network = builtinAgentConfig('m5', 'small');
    const files = await exportSingle(r.checkpoint, network, SMALL_SPACE, out);
    const ds = await openDataset(await testSplit('test'));
    const ref = ds.frames()[0];
    const frame = await ds.readAgentFrame(ref, ref.agentIds[0], { lidar: 16, images: false });
    const enc = (await createSession(await fs.readFile(files.encoder), { device: 'cpu' })).session;
    const bev = (await runSession(enc, agentInputs(network, SMALL_SPACE, frame))).bev;
    expect(bev.shape).toEqual([1, 24, 64, 64]);
    const head = (await createSession(await fs.readFile(files.head), { device: 'cpu' })).session;
    expect((await runSession(head, { features: bev })).cls.shape).toEqual([1, 2, 64, 64]);
  }, 120_000);
});

describe('heal adapt: learning-rate schedule', () => {
  it('cosine falls from lr at the first step towards 0 at the last; constant stays', () => {
    expect(scheduledLr(0.01, 'cosine', 1, 100)).toBe(0.01);
    expect(scheduledLr(0.01, 'cosine', 51, 100)).toBeCloseTo(0.005, 10);
    expect(scheduledLr(0.01, 'cosine', 100, 100)).toBeLessThan(0.00001);
    expect(scheduledLr(0.01, 'constant', 100, 100)).toBe(0.01);
  });
});

import { describe, it, expect } from 'vitest';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { exportModels } from '../../train/export.ts';
import { initWeights, saveWeights, type Weights } from '../../models/weights.ts';
import { agentNetwork } from '../../perception/encoders/agent.ts';
import { loadRegistry } from '../../perception/registry.ts';
import { SMALL_SPACE } from '../../perception/space.ts';
import { egoNetworkFor } from '../../fusion/pipeline.ts';

describe('heal export', () => {
  it('writes per-type and ego ONNX files that onnxruntime loads, and a manifest with the records', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'heal-export-'));
    try {
      const registry = await loadRegistry();
      const weights: Weights = new Map(initWeights(egoNetworkFor(SMALL_SPACE), 1));
      for (const t of ['m1', 'm3']) for (const [k, v] of initWeights(agentNetwork(registry.profile(t, 'small').network, SMALL_SPACE), 2)) weights.set(k, v);
      weights.set('trust.m3', { shape: [1], data: Float32Array.of(0.5) });
      const wfile = path.join(dir, 'w.bin');
      await saveWeights(wfile, weights, { step: 7 });
      const record = path.join(dir, 'train.json');
      // The dataset seed comes from the world.seed that heal generate writes in data_protocol.yaml.
      const data = path.join(dir, 'data');
      await mkdir(path.join(data, 'train', 's0'), { recursive: true });
      await writeFile(path.join(data, 'train', 's0', 'data_protocol.yaml'), 'synthetic:\n  generator: heal generate\nworld:\n  seed: 11\n');
      await writeFile(record, JSON.stringify({ command: 'heal train --steps 7', seed: 3, steps: 7, wallSeconds: 1.5, data }));
      const out = path.join(dir, 'out');
      const r = await exportModels({ weightsFiles: [wfile], out, space: SMALL_SPACE, registry, types: ['m1', 'm3'], records: [record] });
      expect(r.files.map((f) => f.file).sort()).toEqual(['ego.onnx', 'm1.onnx', 'm3.onnx', 'weights.bin']);
      const manifest = JSON.parse(await readFile(r.manifest, 'utf8'));
      expect(manifest.types.map((t: { name: string; fusionTrust: number }) => [t.name, t.fusionTrust])).toEqual([
        ['m1', 1],
        ['m3', 0.5],
      ]);
      expect(manifest.space.name).toBe('small');
      expect(manifest.training[0]).toMatchObject({ command: 'heal train --steps 7', seed: 3, steps: 7, record: 'train.json', datasetSeed: 11 });
      expect(manifest.weights.meta.step).toBe(7);
      for (const f of ['m1.onnx', 'm3.onnx', 'ego.onnx']) {
        const s = await ort.InferenceSession.create(path.join(out, f));
        expect(s.outputNames.length).toBeGreaterThan(0);
      }
      // A type whose weights are not in the file is an error naming the file and the parameter.
      await expect(exportModels({ weightsFiles: [wfile], out, space: SMALL_SPACE, registry, types: ['m2'], records: [] })).rejects.toThrow(
        /w\.bin.*encoder\.m2\./s,
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('merges alignments run in parallel from one base, and refuses files whose shared parameters differ', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'heal-export-merge-'));
    try {
      const registry = await loadRegistry();
      const base: Weights = new Map(initWeights(egoNetworkFor(SMALL_SPACE), 1));
      for (const [k, v] of initWeights(agentNetwork(registry.profile('m1', 'small').network, SMALL_SPACE), 2)) base.set(k, v);
      const withType = (t: string, seed: number): Weights => {
        const w: Weights = new Map(base);
        for (const [k, v] of initWeights(agentNetwork(registry.profile(t, 'small').network, SMALL_SPACE), seed)) w.set(k, v);
        return w;
      };
      const a = path.join(dir, 'align-m2.bin');
      const b = path.join(dir, 'align-m3.bin');
      await saveWeights(a, withType('m2', 3), { step: 5 });
      await saveWeights(b, withType('m3', 4), { step: 6 });
      const out = path.join(dir, 'out');
      const r = await exportModels({ weightsFiles: [a, b], out, space: SMALL_SPACE, registry, types: ['m1', 'm2', 'm3'], records: [] });
      expect(r.files.map((f) => f.file).sort()).toEqual(['ego.onnx', 'm1.onnx', 'm2.onnx', 'm3.onnx', 'weights.bin']);
      const manifest = JSON.parse(await readFile(r.manifest, 'utf8'));
      expect(manifest.weights.meta.mergedFrom).toEqual([a, b]);

      const drifted = withType('m3', 4);
      const [name, w] = [...drifted].find(([k]) => k.startsWith('fusion') || k.startsWith('head'))!;
      drifted.set(name, { shape: w.shape, data: w.data.map((v) => v + 1) });
      const c = path.join(dir, 'drifted.bin');
      await saveWeights(c, drifted);
      await expect(exportModels({ weightsFiles: [a, c], out, space: SMALL_SPACE, registry, types: ['m1'], records: [] })).rejects.toThrow(
        /drifted\.bin.*differs/s,
      );
      // Two alignments of the same type clash: the error names the file the first one came from.
      const again = path.join(dir, 'align-m3-again.bin');
      await saveWeights(again, withType('m3', 5));
      await expect(exportModels({ weightsFiles: [a, b, again], out, space: SMALL_SPACE, registry, types: ['m1'], records: [] })).rejects.toThrow(
        /align-m3-again\.bin.*encoder\.m3\..*differs.*align-m3\.bin/s,
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

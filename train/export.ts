// `heal export`: trained weights → what onnxruntime-node runs elsewhere. One ONNX file per agent
// type (its encoder and aligner, usable as the `model` of a type declaration), one for the ego's
// pyramid fusion and head, the weight file itself, and a manifest saying how all of it was made.

import * as path from 'node:path';
import YAML from 'yaml';
import { promises as fs } from 'node:fs';
import { exportOnnx } from '../models/onnx.ts';
import { encodeWeights, pickWeights, type Weights } from '../models/weights.ts';
import { codecGraphs, learnedCodecs } from '../fusion/codec.ts';
import { agentNetwork } from '../perception/encoders/agent.ts';
import type { GraphDesc } from '../models/graph.ts';
import { DataError, readFileChecked, sha256Hex, writeFileAtomic } from '../datasets/io.ts';
import type { Registry } from '../perception/registry.ts';
import type { SharedSpace } from '../perception/space.ts';
import { egoNetworkFor, readWeightFiles } from '../fusion/pipeline.ts';
import { trustFromWeights } from '../fusion/trust.ts';

export interface ExportOptions {
  /** One checkpoint (heal's or HEAL's .pth), or several (parallel alignments from one base) merged by mergeWeightFiles. */
  weightsFiles: string[];
  out: string;
  space: SharedSpace;
  registry: Registry;
  types: string[];
  /** train.json / align.json records of the runs that made the weights. */
  records: string[];
  /** report.json of a `heal eval` run on held-out data, for the manifest's metrics. */
  evalReport?: string;
}

export interface ExportResult {
  manifest: string;
  files: { file: string; bytes: number }[];
}

function paramCount(desc: GraphDesc): number {
  return desc.params.reduce((s, p) => s + p.shape.reduce((a, b) => a * b, 1), 0);
}

async function readJson(file: string, what: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    throw new DataError(file, undefined, `cannot read ${what}: ${(err as Error).message}`);
  }
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch (err) {
    throw new DataError(file, undefined, `${what} is not JSON: ${(err as Error).message}`);
  }
}

/**
 * The seed a dataset of heal generate was made with (world.seed of every scenario's
 * data_protocol.yaml; in OPV2V that field is CARLA's, so only heal's own worlds count), from the
 * data path recorded in a training record; undefined otherwise.
 */
async function datasetSeed(dataDir: unknown): Promise<unknown> {
  if (typeof dataDir !== 'string') return undefined;
  try {
    for (const split of (await fs.readdir(dataDir)).sort()) {
      for (const scenario of (await fs.readdir(path.join(dataDir, split))).sort()) {
        const doc = YAML.parse(await fs.readFile(path.join(dataDir, split, scenario, 'data_protocol.yaml'), 'utf8')) as {
          synthetic?: { generator?: string };
          world?: { seed?: unknown };
        };
        return doc?.synthetic?.generator === 'heal generate' ? doc.world?.seed : undefined;
      }
    }
  } catch {
    // Not a generated dataset, or not readable from here.
  }
  return undefined;
}

export async function exportModels(opts: ExportOptions): Promise<ExportResult> {
  const { weights, meta } = await readWeightFiles(opts.weightsFiles, opts.space, opts.registry);
  const source = opts.weightsFiles.join(' + ');
  const trust = trustFromWeights(weights, source);
  await fs.mkdir(opts.out, { recursive: true });
  const files: ExportResult['files'] = [];
  const write = async (name: string, bytes: Uint8Array) => {
    await writeFileAtomic(path.join(opts.out, name), bytes);
    files.push({ file: name, bytes: bytes.length });
  };

  const types = [];
  for (const name of opts.types) {
    const t = opts.registry.get(name);
    const profile = opts.registry.profile(name, opts.space.name);
    const network = profile.network;
    if (profile.join === 'adapter') {
      // Its maker's encoder goes out byte for byte as it came, with the adapter heal trained for it.
      const enc = network.encoder as { model: string };
      if (!profile.adapter) throw new DataError(t.file, `profiles.${opts.space.name}.adapter`, `agent type ${name} has no adapter yet (heal adapt trains one)`);
      const copy = async (file: string, as: string) => {
        const bytes = await readFileChecked(file, `ONNX file of agent type ${name}`);
        await write(as, bytes);
        return { onnx: as, sha256: sha256Hex(bytes) };
      };
      const a = profile.adapter;
      types.push({
        name,
        description: t.description,
        modality: t.modality,
        sensor: t.sensor,
        join: 'adapter',
        encoder: await copy(enc.model, `${name}.encoder.onnx`),
        adapter: await copy(a.model, `${name}.adapter.onnx`),
        ...(a.reverter && a.head ? { reverter: await copy(a.reverter, `${name}.reverter.onnx`), head: await copy(a.head, `${name}.head.onnx`) } : {}),
        fusionTrust: trust[name] ?? 1,
        network,
      });
      continue;
    }
    const desc = agentNetwork(network, opts.space);
    const file = `${name}.onnx`;
    await write(file, exportOnnx(desc, pickWeights(desc, weights, source)));
    // The ego scales this type's fusion weight by fusionTrust (fusion/trust.ts; 1 is HEAL's rule).
    types.push({
      name,
      description: t.description,
      modality: t.modality,
      sensor: t.sensor,
      onnx: file,
      parameters: paramCount(desc),
      fusionTrust: trust[name] ?? 1,
      join: profile.join,
      network,
    });
  }
  const egoDesc = egoNetworkFor(opts.space);
  await write('ego.onnx', exportOnnx(egoDesc, pickWeights(egoDesc, weights, source)));
  await write('weights.bin', encodeWeights(weights, meta));
  // Learned message codecs (heal train-codec): each half as its own ONNX file, and their
  // parameters alone in codecs.bin, which heal eval --codec-weights (and the shipped default) reads.
  const codecs = [];
  const codecParams: Weights = new Map();
  for (const lc of learnedCodecs(weights, opts.space.channels).values()) {
    const g = codecGraphs(opts.space.channels, lc.ratio);
    const enc = `codec-r${lc.ratio}-encoder.onnx`;
    const dec = `codec-r${lc.ratio}-decoder.onnx`;
    await write(enc, exportOnnx(g.encoder, pickWeights(g.encoder, weights, source)));
    await write(dec, exportOnnx(g.decoder, pickWeights(g.decoder, weights, source)));
    for (const [k, v] of pickWeights(g.both, weights, source)) codecParams.set(k, v);
    codecs.push({ ratio: lc.ratio, codeChannels: lc.code, encoder: enc, decoder: dec, parameters: paramCount(g.both) });
  }
  if (codecParams.size) await write('codecs.bin', encodeWeights(codecParams, { codecs: codecs.map((c) => c.ratio), source }));

  const training = [];
  for (const r of opts.records) {
    const rec = await readJson(r, 'a training record');
    training.push({ ...rec, datasetSeed: await datasetSeed(rec.data), record: path.basename(r) });
  }
  // The AP table only: PR curves and per-frame detail stay in the eval run's own folder.
  const report = opts.evalReport ? await readJson(opts.evalReport, 'an eval report') : undefined;
  const evaluation = report && {
    report: opts.evalReport,
    run: report.run,
    provider: report.provider,
    rows: ((report.rows as Record<string, unknown>[] | undefined) ?? []).map((r) => ({
      label: r.label,
      combo: r.combo,
      fusion: r.fusion,
      dtype: r.dtype,
      keep: r.keep,
      frames: r.frames,
      ap: r.ap,
      bytes: r.bytes,
    })),
  };
  const manifest = {
    version: 1,
    createdAt: new Date().toISOString(),
    space: opts.space,
    types,
    ego: { onnx: 'ego.onnx', parameters: paramCount(egoDesc), inputs: egoDesc.inputs, outputs: egoDesc.outputs.map((o) => o.name) },
    weights: { file: 'weights.bin', meta: { ...meta, losses: undefined } },
    ...(codecs.length ? { codecs } : {}),
    training,
    evaluation,
    files,
  };
  const manifestFile = path.join(opts.out, 'manifest.json');
  await writeFileAtomic(manifestFile, JSON.stringify(manifest, null, 2) + '\n');
  return { manifest: manifestFile, files };
}

// `heal eval --shard I/N` and `heal eval merge`: one evaluation cut into N shards that run anywhere
// (job arrays on a cluster, one after another on a laptop), then merged into the run a single
// process would have written.
//
// A shard folder holds outcomes.jsonl (each of its frames' outcome: the frames.jsonl lines and
// the exact detections and GT the AP is computed from) and shard.json (written last, so a folder
// without it is a shard that has not finished): which shard it is, and the identity of its
// evaluation: the dataset's frame list, split, profile, options, weights and agent types, by hash.
// The merge refuses shards of different evaluations, a shard given twice and a missing one, naming
// each; it then adds the outcomes up in frame order, exactly as a single run does, so AP is
// computed from the merged frames (never averaged over shards) and equals the single run's.

import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import type { FrameRef } from '../datasets/dataset.ts';
import { DataError, sha256Hex, sha256OfFile, writeFileAtomic } from '../datasets/io.ts';
import type { EvalOptions, EvalReport, FrameFailure, FrameOutcome, PipelineFacts, RunJson, ShardSpec } from './contracts.ts';
import { startRunFolder } from './runfolder.ts';
import { finishRun, prepareEval, runFiles, RunCollector, runFrames, runJsonOf, type EvalSetup } from './evaluate.ts';

export const SHARD_FILE = 'shard.json';
export const OUTCOMES_FILE = 'outcomes.jsonl';

/**
 * The frames (indices into the evaluation's frame list) of shard `index` of `count`. Frames are
 * dealt out one by one, scenario after scenario, continuing round the shards where the previous
 * scenario stopped: every shard gets ⌊n/N⌋ or ⌈n/N⌉ frames of each scenario of n frames, and
 * the shards' totals differ by at most one.
 */
export function shardIndices(frames: Pick<FrameRef, 'split' | 'scenario'>[], spec: ShardSpec): number[] {
  const byScenario = new Map<string, number[]>();
  frames.forEach((f, i) => {
    const key = `${f.split}\u0000${f.scenario}`;
    let list = byScenario.get(key);
    if (!list) byScenario.set(key, (list = []));
    list.push(i);
  });
  const mine: number[] = [];
  let dealt = 0;
  for (const list of byScenario.values()) {
    for (const i of list) if (dealt++ % spec.count === spec.index) mine.push(i);
  }
  return mine.sort((a, b) => a - b);
}

/** What must be equal for shards to be parts of one evaluation (one field per thing that can differ). */
export interface ShardIdentity {
  /** SHA-256 of the evaluation's frame list (split/scenario/timestamp/agent ids): the same data. */
  frames: string;
  frameCount: number;
  split: string;
  profile: string;
  combos: string[][];
  fusion: string[];
  dtypes: string[];
  keep: number[];
  device: string;
  provider: string;
  /** SHA-256 of each weight file, in order; null for seeded random weights. */
  weights: string[] | null;
  mergeWeights: string;
  trust: Record<string, number>;
  /** SHA-256 of the agent types' declarations (and ONNX files) used. */
  types: string;
  poseNoise: [number, number, number] | null;
  latency: number;
  drop: number;
  seed: number;
  scoreThreshold: number;
  limit: number | null;
  /** Signed or not, and with which keys (run.json's messages). */
  messages: string;
  shards: number;
}

export interface ShardJson {
  version: 1;
  kind: 'heal eval shard';
  shard: ShardSpec;
  identity: ShardIdentity;
  /** run.json of the evaluation, as the merged run will have it. */
  run: RunJson;
  facts: PipelineFacts;
  /** This shard's frames: indices into the evaluation's frame list. */
  indices: number[];
  evaluated: number;
  failures: FrameFailure[];
  seconds: number;
  createdAt: string;
}

async function identityOf(setup: EvalSetup, facts: PipelineFacts, count: number): Promise<ShardIdentity> {
  const { o, frames, registry, space } = setup;
  const list = frames.map((f) => `${f.split}/${f.scenario}/${f.timestamp}/${f.agentIds.join(',')}`).join('\n');
  const weights = o.weights === null ? null : await Promise.all([o.weights].flat().map(sha256OfFile));
  const types: string[] = [];
  for (const name of [...new Set(o.combos.flat())].sort()) {
    const t = registry.get(name);
    const profile = registry.profile(name, space.name);
    types.push(JSON.stringify({ name, modality: t.modality, sensor: t.sensor, network: profile.network }));
    if (profile.model) types.push(await sha256OfFile(profile.model));
  }
  return {
    frames: sha256Hex(list),
    frameCount: frames.length,
    split: o.split,
    profile: space.name,
    combos: o.combos,
    fusion: o.fusion,
    dtypes: o.dtypes,
    keep: o.keep,
    device: o.device,
    provider: facts.provider,
    weights,
    mergeWeights: o.mergeWeights ?? 'identical',
    trust: facts.trust,
    types: sha256Hex(types.join('\n')),
    poseNoise: o.poseNoise,
    latency: o.latency,
    drop: o.drop,
    seed: o.seed,
    scoreThreshold: o.scoreThreshold ?? 0.2,
    limit: o.limit ?? null,
    messages: facts.messages,
    shards: count,
  };
}

export interface ShardResult {
  dir: string;
  spec: ShardSpec;
  frames: number;
  evaluated: number;
  failures: FrameFailure[];
  seconds: number;
}

/** Evaluates shard `spec` of the evaluation `o` into the shard folder o.out. */
export async function evaluateShard(o: EvalOptions, spec: ShardSpec): Promise<ShardResult> {
  if (o.mcap) throw new Error('mcap: a shard records no MCAP (run the evaluation unsharded for one)');
  const t0 = performance.now();
  const setup = await prepareEval(o);
  const indices = shardIndices(setup.frames, spec);
  const dir = path.resolve(o.out);
  await fs.mkdir(dir, { recursive: true });
  // A rerun into the same folder: until it finishes, the folder is not a finished shard.
  await fs.rm(path.join(dir, SHARD_FILE), { force: true });
  const lines: string[] = [];
  const failures: FrameFailure[] = [];
  let facts: PipelineFacts | undefined;
  let evaluated = 0;
  let bar: ReturnType<NonNullable<EvalOptions['progress']>> | undefined;
  await runFrames(setup, indices, {
    onFacts: (f) => {
      facts = f;
      bar = o.progress?.(indices.length);
    },
    onArrive: (f) => bar?.tick(1, f.failure ? { failed: failures.length + 1 } : {}),
    onOutcome: (f) => {
      if (f.failure) failures.push(f.failure);
      else evaluated++;
      lines.push(JSON.stringify(f));
    },
  });
  bar?.stop();
  if (!facts) throw new Error(`shard ${spec.index}/${spec.count} has no frames (the evaluation has ${setup.frames.length}, fewer than ${spec.count} shards)`);
  await writeFileAtomic(path.join(dir, OUTCOMES_FILE), lines.length ? lines.join('\n') + '\n' : '');
  const seconds = (performance.now() - t0) / 1000;
  const shard: ShardJson = {
    version: 1,
    kind: 'heal eval shard',
    shard: spec,
    identity: await identityOf(setup, facts, spec.count),
    run: runJsonOf(o, setup.space, facts),
    facts,
    indices,
    evaluated,
    failures,
    seconds,
    createdAt: new Date().toISOString(),
  };
  await writeFileAtomic(path.join(dir, SHARD_FILE), JSON.stringify(shard, null, 1) + '\n');
  return { dir, spec, frames: indices.length, evaluated, failures, seconds };
}

interface LoadedShard {
  dir: string;
  json: ShardJson;
}

/** The shard folders named: each folder given, or the shard folders directly inside it. */
async function expand(dirs: string[]): Promise<string[]> {
  const out: string[] = [];
  for (const given of dirs) {
    const dir = path.resolve(given);
    const stat = await fs.stat(dir).catch(() => undefined);
    if (!stat?.isDirectory()) throw new Error(`${given}: no such shard folder`);
    if (await exists(path.join(dir, SHARD_FILE))) {
      out.push(dir);
      continue;
    }
    const inside = [];
    for (const e of await fs.readdir(dir, { withFileTypes: true })) {
      if (e.isDirectory() && (await exists(path.join(dir, e.name, SHARD_FILE)))) inside.push(path.join(dir, e.name));
    }
    if (!inside.length) {
      const started = await exists(path.join(dir, OUTCOMES_FILE));
      throw new Error(
        `${given}: not a finished shard (no ${SHARD_FILE}${started ? '; its job may still be running, or died before the end' : ''}), and no shard folders inside it`,
      );
    }
    out.push(...inside.sort());
  }
  return out;
}

const exists = (f: string) =>
  fs.stat(f).then(
    () => true,
    () => false,
  );

function parseShardJson(text: string, file: string): ShardJson {
  let j: ShardJson;
  try {
    j = JSON.parse(text);
  } catch (err) {
    throw new DataError(file, undefined, `not valid JSON: ${(err as Error).message}`);
  }
  if (j?.kind !== 'heal eval shard') throw new DataError(file, 'kind', 'is not a heal eval shard', j?.kind);
  if (j.version !== 1) throw new DataError(file, 'version', 'unknown shard format version (this heal reads 1)', j.version);
  const s = j.shard;
  if (!s || !Number.isInteger(s.index) || !Number.isInteger(s.count) || s.index < 0 || s.index >= s.count) {
    throw new DataError(file, 'shard', 'must be {index, count} with 0 ≤ index < count', s);
  }
  if (!j.identity || typeof j.identity !== 'object') throw new DataError(file, 'identity', 'must be an object', j.identity);
  if (!Array.isArray(j.indices) || j.indices.some((i) => !Number.isInteger(i)))
    throw new DataError(file, 'indices', 'must be a list of frame indices', j.indices);
  return j;
}

const shown = (v: unknown) => {
  const t = JSON.stringify(v);
  return t.length > 80 ? `${t.slice(0, 77)}...` : t;
};

/**
 * Checks that the shards are all the parts of one evaluation: the same identity, each index once,
 * none missing, and their frames covering the evaluation's exactly once. Throws one error naming
 * every shard that is wrong and why.
 */
export function checkShards(shards: LoadedShard[]): void {
  const problems: string[] = [];
  // The identity most shards share is the evaluation's; the others are foreign.
  const counts = new Map<string, number>();
  for (const s of shards) counts.set(JSON.stringify(s.json.identity), (counts.get(JSON.stringify(s.json.identity)) ?? 0) + 1);
  const ref = [...counts.entries()].sort((a, b) => b[1] - a[1])[0][0];
  const refIdentity = JSON.parse(ref) as Record<string, unknown>;
  const refShard = shards.find((s) => JSON.stringify(s.json.identity) === ref)!;
  const own: LoadedShard[] = [];
  for (const s of shards) {
    const id = s.json.identity as unknown as Record<string, unknown>;
    const fields = [...new Set([...Object.keys(refIdentity), ...Object.keys(id)])].filter((k) => JSON.stringify(id[k]) !== JSON.stringify(refIdentity[k]));
    if (!fields.length) {
      own.push(s);
      continue;
    }
    const what = fields.map((k) => `${k} ${shown(id[k])} (the others' ${shown(refIdentity[k])})`).join(', ');
    problems.push(`${s.dir}: shard of another evaluation than ${refShard.dir}: ${what}`);
  }
  const count = refIdentity.shards as number;
  const byIndex = new Map<number, LoadedShard[]>();
  for (const s of own) {
    const list = byIndex.get(s.json.shard.index) ?? [];
    list.push(s);
    byIndex.set(s.json.shard.index, list);
  }
  for (const [index, list] of [...byIndex.entries()].sort((a, b) => a[0] - b[0])) {
    if (list.length > 1) problems.push(`shard ${index}/${count} is given ${list.length} times: ${list.map((s) => s.dir).join(', ')}`);
  }
  for (let i = 0; i < count; i++) {
    if (!byIndex.has(i))
      problems.push(
        `shard ${i}/${count} is missing (given: ${
          [...byIndex.keys()]
            .sort((a, b) => a - b)
            .map((k) => `${k}/${count}`)
            .join(', ') || 'none'
        })`,
      );
  }
  if (!problems.length) {
    const seen = new Set<number>();
    for (const s of own) {
      for (const i of s.json.indices) {
        if (seen.has(i)) problems.push(`${s.dir}: frame ${i} is also in another shard`);
        seen.add(i);
      }
    }
    const total = refIdentity.frameCount as number;
    if (!problems.length && seen.size !== total) problems.push(`the shards hold ${seen.size} of the evaluation's ${total} frames`);
  }
  if (problems.length) throw new Error(`cannot merge these shards:\n  ${problems.join('\n  ')}`);
}

async function readOutcomes(s: LoadedShard): Promise<FrameOutcome[]> {
  const file = path.join(s.dir, OUTCOMES_FILE);
  const text = await fs.readFile(file, 'utf8').catch(() => {
    throw new DataError(file, undefined, 'missing: the shard folder is incomplete');
  });
  const out = text
    .split('\n')
    .filter((l) => l.trim())
    .map((l, k) => {
      try {
        return JSON.parse(l) as FrameOutcome;
      } catch (err) {
        throw new DataError(`${file}:${k + 1}`, undefined, `not valid JSON: ${(err as Error).message}`);
      }
    });
  const want = JSON.stringify(s.json.indices);
  const have = JSON.stringify(out.map((f) => f.index));
  if (have !== want) throw new DataError(file, 'index', `holds frames ${shown(out.map((f) => f.index))}, but ${SHARD_FILE} lists ${shown(s.json.indices)}`);
  return out;
}

/** Merges shard folders (or folders holding them) into the run folder `out`, as the single run writes it. */
export async function mergeShards(dirs: string[], out: string): Promise<EvalReport> {
  const shards: LoadedShard[] = [];
  for (const dir of await expand(dirs)) {
    const file = path.join(dir, SHARD_FILE);
    shards.push({ dir, json: parseShardJson(await fs.readFile(file, 'utf8'), file) });
  }
  checkShards(shards);
  const outcomes = (await Promise.all(shards.map(readOutcomes))).flat().sort((a, b) => a.index - b.index);
  const first = shards.sort((a, b) => a.json.shard.index - b.json.shard.index)[0].json;
  const files = runFiles({ out });
  await fs.mkdir(path.dirname(files.run), { recursive: true });
  await startRunFolder(path.dirname(files.run));
  const run: RunJson = { ...first.run, createdAt: new Date().toISOString() };
  await writeFileAtomic(files.run, JSON.stringify(run, null, 2) + '\n');
  const c = new RunCollector(run);
  for (const f of outcomes) c.add(f);
  // The run's time is the shards' time added up: what it cost, not how long anyone waited.
  const seconds = shards.reduce((a, s) => a + s.json.seconds, 0);
  return finishRun(run, first.facts, c, first.identity.frameCount, seconds, files);
}

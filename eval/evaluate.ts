// Dataset evaluation: runs the collaborative pass over every frame of a split for each agent-type
// combination, fusion mode and wire format asked for, scores the detections with HEAL's AP protocol
// against egoGroundTruth, and measures bytes on the wire and per-stage latency. Robustness knobs
// (pose noise, message latency, dropped messages) act on what the ego receives, never on the GT.
//
// Writes a run folder: run.json, frames.jsonl (one line per frame × combination × fusion × dtype),
// report.json and report.html; optionally an MCAP recording of the scenes.

import * as path from 'node:path';
import { openDataset } from '../datasets/open.ts';
import type { Dataset, FrameRef } from '../datasets/dataset.ts';
import type { AgentFrame, GtBox } from '../datasets/frame.ts';
import { DataError, writeFileAtomic } from '../datasets/io.ts';
import { matchDetections } from './metrics.ts';
import type { Box7 } from '../datasets/geometry/boxes.ts';
import type { Mat4 } from '../datasets/geometry/transforms.ts';
import { loadRegistry, type Registry } from '../perception/registry.ts';
import { spaceByName, type SharedSpace } from '../perception/space.ts';
import { ephemeralSecurity, keyFolderSecurity } from '../fusion/identity.ts';
import { CollabPipeline, weightsName, type AgentInput, type FusionMode, type FrameResult } from '../fusion/pipeline.ts';
import { egoGroundTruth } from './groundtruth.ts';
import {
  EVAL_DTYPES,
  EVAL_FUSIONS,
  LINE_IOU,
  rowKey,
  rowLabel,
  variantsOf,
  type EvalFusion,
  type EvalOptions,
  type EvalReport,
  type FrameFailure,
  type FrameLine,
  type FrameOutcome,
  type PipelineFacts,
  type RunJson,
  type Variant,
} from './contracts.ts';
import { noisyPose, rng } from './noise.ts';
import { apOf, RowStats } from './statistics.ts';
import { finishRunFolder, startRunFolder } from './runfolder.ts';
import { parseCodec, type CodecSpec } from '../fusion/codec-spec.ts';
import { EgoGate } from '../fusion/gate.ts';
import { emptyLinkStats, frameChannel, parseLink, scheduleFrame, type LinkConfig, type LinkStats } from './link.ts';
const PIPELINE_MODE: Record<EvalFusion, FusionMode> = { pyramid: 'intermediate', late: 'late', none: 'none' };

// ---------------------------------------------------------------------------------------------

/** Scores one frame's detections at LINE_IOU for frames.jsonl (the AP itself uses ApAccumulator). */
export function markMatches(det: { box: Box7; score: number }[], gt: GtBox[]): { tp: boolean[]; matched: boolean[] } {
  return matchDetections(
    det,
    gt.map((g) => g.box),
    LINE_IOU,
  );
}

function round(v: number, digits = 4): number {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}

export function describeError(err: unknown): { file: string; reason: string } {
  if (err instanceof DataError) return { file: err.file, reason: err.message };
  return { file: '', reason: err instanceof Error ? err.message : String(err) };
}

export function checkEvalOptions(o: EvalOptions, registry: Registry, space: SharedSpace): void {
  if (!o.combos.length || o.combos.some((c) => !c.length)) throw new Error('combos: every combination needs at least one agent type');
  for (const c of o.combos) for (const t of c) registry.profile(t, space.name);
  if (!o.fusion.length) throw new Error(`fusion: give at least one of ${EVAL_FUSIONS.join(', ')}`);
  for (const f of o.fusion) if (!EVAL_FUSIONS.includes(f)) throw new Error(`fusion: unknown mode "${f}" (have ${EVAL_FUSIONS.join(', ')})`);
  if (!o.dtypes.length) throw new Error(`dtypes: give at least one of ${EVAL_DTYPES.join(', ')}`);
  for (const d of o.dtypes) if (!EVAL_DTYPES.includes(d)) throw new Error(`dtypes: unknown dtype "${d}" (have ${EVAL_DTYPES.join(', ')})`);
  for (const k of o.keep) if (!(k > 0 && k <= 1)) throw new Error(`keep: fractions of cells sent must be in (0, 1] (got ${k})`);
  if (o.poseNoise && (o.poseNoise.length !== 3 || o.poseNoise.some((v) => !(v >= 0) || !Number.isFinite(v)))) {
    throw new Error(`poseNoise: needs three finite values ≥ 0 (σx m, σy m, σyaw °), got ${JSON.stringify(o.poseNoise)}`);
  }
  if (!Number.isInteger(o.latency) || o.latency < 0) throw new Error(`latency: must be an integer number of frames ≥ 0 (got ${o.latency})`);
  if (!(o.drop >= 0 && o.drop <= 1)) throw new Error(`drop: must be a probability in [0, 1] (got ${o.drop})`);
  if (o.limit !== undefined && !(Number.isInteger(o.limit) && o.limit >= 1)) throw new Error(`limit: must be a positive integer (got ${o.limit})`);
  for (const c of o.codecs ?? []) parseCodec(c);
  for (const l of o.links ?? []) parseLink(l);
}

/** Messages that missed their frame's deadline, held for the next frame, by row, scenario and sender. */
export type HeldMessages = Map<string, { index: number; bytes: Uint8Array }>;

/**
 * The channel callback of one frame and row: schedules the frame's messages on the link (eval/link.ts),
 * delivers those in time, and under the 'use' policy the sender's message of the previous frame
 * when this one missed its deadline and that one arrived late (it carries the pose it was made at).
 */
export function linkChannel(cfg: LinkConfig, seed: number, frameKey: string, rowKey: string, index: number, held: HeldMessages, stats: LinkStats) {
  return (sent: { id: number; bytes: Uint8Array }[]) => {
    const ch = frameChannel(seed, frameKey, cfg);
    const order = ch.order(sent);
    const outcomes = scheduleFrame(
      order.map((m) => ({ id: m.id, bytes: m.bytes.length })),
      cfg,
      ch.fragmentLost,
    );
    const received: Uint8Array[] = [];
    const skipped: { id: number; reason: string }[] = [];
    stats.frames++;
    outcomes.forEach((out, i) => {
      stats.messages++;
      stats.bytes += out.bytes;
      stats.airMs += out.endMs - out.startMs;
      const key = `${rowKey}\u0000${out.id}`;
      const before = held.get(key);
      held.delete(key);
      if (out.delivery === 'in-time') {
        stats.inTime++;
        received.push(order[i].bytes);
        return;
      }
      if (out.delivery === 'late') {
        stats.late++;
        if (cfg.late === 'use') held.set(key, { index, bytes: order[i].bytes });
      } else if (out.delivery === 'lost') stats.lost++;
      else stats.expired++;
      if (cfg.late === 'use' && before && before.index === index - 1) {
        stats.lateUsed++;
        received.push(before.bytes);
        skipped.push({ id: out.id, reason: `link: this frame's message ${out.delivery}; used the previous frame's late message` });
      } else {
        skipped.push({
          id: out.id,
          reason: `link: message ${out.delivery}${out.delivery === 'lost' ? ` (${out.lostFragments} of ${out.fragments} fragments)` : ` (arrives at ${out.arrivalMs.toFixed(1)} ms)`}`,
        });
      }
    });
    return { received, skipped };
  };
}

export function selectFrames(ds: Dataset, split: string, limit?: number, minAgents = 1): FrameRef[] {
  const all = ds.frames();
  const splits = [...new Set(all.map((f) => f.split))];
  const frames = (split === 'all' ? all : all.filter((f) => f.split === split)).filter((f) => f.agentIds.length >= minAgents);
  if (!frames.length) {
    throw new DataError(
      ds.root,
      'split',
      `no frames in split "${split}"${minAgents > 1 ? ` with ${minAgents} agents or more` : ''} (this dataset has: ${splits.join(', ') || 'none'}; or split "all" for every frame)`,
      split,
    );
  }
  return limit ? frames.slice(0, limit) : frames;
}

/** What every frame's evaluation needs: the checked options, the dataset and the frames to evaluate. */
export interface EvalSetup {
  o: EvalOptions;
  space: SharedSpace;
  registry: Registry;
  ds: Dataset;
  /** The evaluation's frame list (split, then --limit); a frame's index is its position here. */
  frames: FrameRef[];
  /** The most agents of any frame of the evaluation. */
  maxAgents: number;
  source: InputSource;
}

/** Checks the options and opens the dataset: the part of an evaluation every worker repeats. */
export async function prepareEval(o: EvalOptions): Promise<EvalSetup> {
  const space = spaceByName(o.profile);
  const registry = await loadRegistry(o.typesDirs ?? []);
  checkEvalOptions(o, registry, space);
  const ds = await openDataset(o.data);
  const frames = selectFrames(ds, o.split, o.limit, o.minAgents);
  const scenarioTimes = new Map(ds.scenarios().map((s) => [`${s.split}\u0000${s.name}`, s.timestamps]));
  const refsByKey = new Map(ds.frames().map((f) => [`${f.split}\u0000${f.scenario}\u0000${f.timestamp}`, f]));
  const maxAgents = Math.max(1, ...frames.map((f) => f.agentIds.length));
  return { o, space, registry, ds, frames, maxAgents, source: { ds, registry, scenarioTimes, refsByKey, o } };
}

export async function createEvalPipeline(setup: EvalSetup, threads?: number): Promise<CollabPipeline> {
  const { o, space, registry } = setup;
  return CollabPipeline.create({
    space,
    registry,
    device: o.device,
    weightsFile: o.weights ?? undefined,
    mergeRule: o.mergeWeights,
    seed: o.seed,
    trust: o.trust,
    security: o.insecure ? undefined : o.keys ? await keyFolderSecurity(o.keys) : ephemeralSecurity(),
    codecWeightsFile: o.codecWeights,
    reuseEncodings: o.reuseEncodings,
    threads,
    log: o.log,
  });
}

/**
 * What a pipeline carries from frame to frame of an evaluation: the parsed codecs and links, the
 * messages a link held back for the next frame, and one ego gate per configuration on a link (one
 * row's senders' sequence numbers must not make another row's late messages look replayed). Time
 * is the link model's (simulated) there, so the gate's wall-clock age limit, which the evaluation's
 * own pace would trip, is lifted for them.
 */
interface RunState {
  codecs: Map<string, CodecSpec>;
  links: Map<string, LinkConfig>;
  held: HeldMessages;
  gateFor: (key: string) => EgoGate;
}

const runStates = new WeakMap<CollabPipeline, RunState>();

function runStateOf(o: EvalOptions, pipeline: CollabPipeline): RunState {
  let st = runStates.get(pipeline);
  if (st) return st;
  const gates = new Map<string, EgoGate>();
  st = {
    codecs: new Map((o.codecs ?? []).map((c) => [c, parseCodec(c)] as [string, CodecSpec])),
    links: new Map((o.links ?? []).map((l) => [l, parseLink(l)] as [string, LinkConfig])),
    held: new Map(),
    gateFor: (key) => {
      let g = gates.get(key);
      if (!g) gates.set(key, (g = new EgoGate({ ...pipeline.gate.opts, maxAgeMs: Number.POSITIVE_INFINITY })));
      return g;
    },
  };
  runStates.set(pipeline, st);
  return st;
}

export function factsOf(pipeline: CollabPipeline): PipelineFacts {
  return {
    provider: pipeline.provider,
    ...(pipeline.fallbackReason ? { fallbackReason: pipeline.fallbackReason } : {}),
    randomWeights: pipeline.randomWeights,
    trust: pipeline.trust,
    signed: pipeline.gate.signed,
    messages: pipeline.opts.security ? `signed (${pipeline.opts.security.source})` : 'unsigned (insecure)',
  };
}

/**
 * Evaluates frame `index` of the setup under every combination and variant. A frame that cannot be
 * read or run comes back with its failure and no lines, so that every row counts the same frames.
 */
export async function evaluateFrame(setup: EvalSetup, pipeline: CollabPipeline, index: number, withScene = false): Promise<FrameOutcome> {
  const { o, ds, space, frames, source } = setup;
  const state = runStateOf(o, pipeline);
  const ref = frames[index];
  const out: FrameOutcome = { index, lines: [], det: [], gt: [], passes: 0, passMs: 0, signMs: 0, verifyMs: 0, rejected: {} };
  // The viewer keeps the last line it reads for a frame of the first combination and mode, so the
  // run's main variant (first dtype, dense) is written last among its siblings.
  const ordered = [...variantsOf(o)].reverse().sort((a, b) => o.fusion.indexOf(a.fusion) - o.fusion.indexOf(b.fusion));
  // Sequence numbers from the frame's place in the evaluation, one per sender: they grow from frame
  // to frame as in one process, whatever frames this pipeline ran before, and every pass of the
  // frame reuses them (each pass is another version of the frame's one message per sender).
  const sequence = index * setup.maxAgents;
  try {
    for (const [ci, combo] of o.combos.entries()) {
      const { egoId, inputs, agents, notes, rawEgo, truePoses } = await readInputs(source, ref, combo);
      // A pose-noise sweep: the same draws as --pose-noise, scaled by each σ, on the senders' true poses.
      const noisy = new Map(
        (o.poseNoiseSweep ?? []).map((sigma) => [
          sigma,
          inputs.map((inp, k) =>
            k === 0 || sigma === 0
              ? inp
              : {
                  ...inp,
                  frame: {
                    ...inp.frame,
                    lidarPose: noisyPose(truePoses[k], [sigma, sigma, sigma], rng(`${o.seed}|pose|${ref.scenario}|${ref.timestamp}|${inp.frame.agentId}`)),
                  },
                },
          ),
        ]),
      );
      if (ci === 0) {
        out.gt = (await egoGroundTruth(ds, ref, rawEgo, space)).map((g) => ({ id: g.id, box: g.box }));
        if (withScene) {
          const agentsSeen = inputs.map((inp, k) => ({ frame: { ...inp.frame, lidarPose: truePoses[k] }, type: inp.type }));
          out.scene = { ref, egoId, agents: agentsSeen, gt: out.gt.map((g) => g.box), detections: [], space };
        }
      }
      for (const v of ordered) {
        const t = performance.now();
        const key = rowKey(combo, v);
        const linkStats = v.link ? emptyLinkStats(v.link) : undefined;
        const times = source.scenarioTimes.get(`${ref.split}\u0000${ref.scenario}`) ?? [ref.timestamp];
        const channel =
          v.link && linkStats
            ? linkChannel(
                state.links.get(v.link)!,
                o.linkSeed ?? o.seed,
                `${ref.split}|${ref.scenario}|${ref.timestamp}`,
                `${key}\u0000${ref.split}\u0000${ref.scenario}`,
                times.indexOf(ref.timestamp),
                state.held,
                linkStats,
              )
            : undefined;
        const r: FrameResult = await pipeline.runFrame(v.poseNoise !== undefined ? noisy.get(v.poseNoise)! : inputs, egoId, {
          mode: PIPELINE_MODE[v.fusion],
          dtype: v.dtype,
          keep: v.keep,
          scoreThreshold: o.scoreThreshold,
          sequence,
          codec: v.codec ? state.codecs.get(v.codec) : undefined,
          channel,
          gate: v.link ? state.gateFor(key) : undefined,
        });
        const total = performance.now() - t;
        out.passMs += total;
        out.passes++;
        out.signMs += r.times.sign ?? 0;
        out.verifyMs += r.times.verify ?? 0;
        for (const [k, n] of Object.entries(r.rejected)) out.rejected[k] = (out.rejected[k] ?? 0) + n;
        const det = r.detections.map((d) => ({ box: d.box, score: d.score }));
        const line = frameLineOf(ref, egoId, combo, v, agents, notes, r, det, out.gt, total);
        if (linkStats) line.linkStats = linkStats;
        out.lines.push(line);
        out.det.push(det);
        out.scene?.detections.push({ label: rowLabel(combo, v), boxes: line.detections });
      }
    }
  } catch (err) {
    const { file, reason } = describeError(err);
    return { ...out, lines: [], det: [], gt: [], scene: undefined, failure: failureOf(ref, file, reason) };
  }
  return out;
}

export function failureOf(ref: FrameRef, file: string, reason: string): FrameFailure {
  return { scenario: ref.scenario, split: ref.split, timestamp: ref.timestamp, file, reason };
}

/**
 * Adds frame outcomes up into the run's rows, frames.jsonl lines and failures. Outcomes must come
 * in frame order: the lines are written in that order, and the AP's sort by score keeps the order
 * of equal scores, so the same order gives the same AP to the last digit.
 */
export class RunCollector {
  readonly rows = new Map<string, RowStats>();
  readonly lines: string[] = [];
  readonly failures: FrameFailure[] = [];
  evaluated = 0;
  passMs = 0;
  passes = 0;
  signMs = 0;
  verifyMs = 0;
  readonly rejected: Record<string, number> = {};
  private readonly main: string;

  constructor(o: Pick<EvalOptions, 'combos' | 'fusion' | 'dtypes' | 'keep'>) {
    const variants = variantsOf(o);
    for (const combo of o.combos) for (const v of variants) this.rows.set(rowKey(combo, v), new RowStats(combo, v));
    this.main = rowKey(o.combos[0], variants[0]);
  }

  add(f: FrameOutcome): void {
    this.passMs += f.passMs;
    this.passes += f.passes;
    this.signMs += f.signMs;
    this.verifyMs += f.verifyMs;
    for (const [k, n] of Object.entries(f.rejected)) this.rejected[k] = (this.rejected[k] ?? 0) + n;
    if (f.failure) {
      this.failures.push(f.failure);
      return;
    }
    f.lines.forEach((line, k) => {
      this.rows.get(rowKey(line.combo, line))!.add(line, f.det[k], f.gt as GtBox[]);
      this.lines.push(JSON.stringify(line));
    });
    this.evaluated++;
  }

  /** AP@0.5 of the main row so far, for the progress bar. */
  mainAp(): string {
    return apOf(this.rows.get(this.main)!.acc)['0.5'].toFixed(3);
  }

  framesText(): string {
    return this.lines.length ? this.lines.join('\n') + '\n' : '';
  }
}

export function runFiles(o: Pick<EvalOptions, 'out' | 'mcap'>): EvalReport['files'] {
  const outDir = path.resolve(o.out);
  return {
    run: path.join(outDir, 'run.json'),
    frames: path.join(outDir, 'frames.jsonl'),
    report: path.join(outDir, 'report.json'),
    html: path.join(outDir, 'report.html'),
    ...(o.mcap ? { mcap: path.resolve(o.mcap) } : {}),
  };
}

/** Writes frames.jsonl, report.json and report.html of a run whose outcomes are all collected. */
export async function finishRun(
  run: RunJson,
  facts: PipelineFacts,
  c: RunCollector,
  total: number,
  seconds: number,
  files: EvalReport['files'],
): Promise<EvalReport> {
  await writeFileAtomic(files.frames, c.framesText());
  const report: EvalReport = {
    version: 1,
    run,
    provider: facts.provider,
    ...(facts.fallbackReason ? { fallbackReason: facts.fallbackReason } : {}),
    randomWeights: facts.randomWeights,
    rows: [...c.rows.values()].map((r) => r.row()),
    frames: { total, evaluated: c.evaluated, failed: c.failures.length },
    failures: c.failures,
    seconds,
    msPerFrame: c.passes ? c.passMs / c.passes : 0,
    security: {
      signed: facts.signed,
      signMsPerFrame: c.passes ? c.signMs / c.passes : 0,
      verifyMsPerFrame: c.passes ? c.verifyMs / c.passes : 0,
      shareOfFrame: c.passMs ? (c.signMs + c.verifyMs) / c.passMs : 0,
      rejected: c.rejected,
    },
    files,
  };
  await writeFileAtomic(files.report, JSON.stringify(report, null, 1) + '\n');
  const { renderReport } = await import('./report/html.ts');
  await writeFileAtomic(files.html, renderReport(report));
  await finishRunFolder(path.dirname(files.run));
  return report;
}

/**
 * Evaluates the frames at `indices` (ascending) of the setup, in this thread (jobs 1) or spread over
 * workers (eval/pool.ts), and hands each outcome to `onOutcome` in frame order. `onFacts` hears what
 * the networks run on before the first outcome. `onArrive` hears of each frame as it finishes, in
 * whatever order, for progress.
 */
export async function runFrames(
  setup: EvalSetup,
  indices: number[],
  handlers: {
    onFacts: (facts: PipelineFacts) => Promise<void> | void;
    onOutcome: (f: FrameOutcome) => Promise<void> | void;
    onArrive?: (f: FrameOutcome) => void;
    withScene?: boolean;
  },
): Promise<void> {
  const { o } = setup;
  const log = o.log ?? (() => {});
  const jobs = Math.min(o.jobs ?? 1, indices.length);
  const report = (f: FrameOutcome) => {
    if (!f.failure) return;
    const ref = setup.frames[f.index];
    log(`skipped ${ref.split}/${ref.scenario} ${ref.timestamp}: ${f.failure.reason}`);
  };
  if (jobs <= 1) {
    const pipeline = await createEvalPipeline(setup, o.threads);
    await handlers.onFacts(factsOf(pipeline));
    for (const index of indices) {
      const f = await evaluateFrame(setup, pipeline, index, handlers.withScene);
      report(f);
      await handlers.onOutcome(f);
      handlers.onArrive?.(f);
    }
    return;
  }
  const { evaluateInWorkers, workerInit } = await import('./pool.ts');
  // Outcomes arrive in whatever order the workers finish; they are handed on in frame order.
  const pending = new Map<number, FrameOutcome>();
  let next = 0;
  let flushing: Promise<void> = Promise.resolve();
  const flush = async () => {
    while (next < indices.length && pending.has(indices[next])) {
      const f = pending.get(indices[next])!;
      pending.delete(indices[next]);
      next++;
      await handlers.onOutcome(f);
    }
  };
  await evaluateInWorkers({
    init: workerInit(o, handlers.withScene === true),
    indices,
    jobs,
    kind: o.workerKind ?? 'process',
    frameName: (index) => {
      const ref = setup.frames[index];
      return `${ref.split}/${ref.scenario} ${ref.timestamp}`;
    },
    failureOf: (index, reason) => failureOf(setup.frames[index], '', reason),
    log,
    onFacts: handlers.onFacts,
    onOutcome: (f) => {
      report(f);
      pending.set(f.index, f);
      // Heard after the flush, so that what progress shows once the last frame is in is the run's result.
      flushing = flushing.then(flush).then(() => handlers.onArrive?.(f));
      return flushing;
    },
  });
  await flushing;
  if (next !== indices.length) throw new Error(`evaluation workers returned ${next} of ${indices.length} frames`);
}

export async function evaluate(o: EvalOptions): Promise<EvalReport> {
  const t0 = performance.now();
  const setup = await prepareEval(o);
  const { frames } = setup;
  const files = runFiles(o);
  await startRunFolder(path.dirname(files.run));

  const { SceneRecorder } = o.mcap ? await import('./mcap.ts') : { SceneRecorder: undefined };
  const recorder = SceneRecorder && o.mcap ? await SceneRecorder.create(path.resolve(o.mcap)) : undefined;

  const c = new RunCollector(o);
  let run: RunJson | undefined;
  let facts: PipelineFacts | undefined;
  let lastCheckpoint = performance.now();
  let bar: ReturnType<NonNullable<EvalOptions['progress']>> | undefined;

  let failed = 0;
  await runFrames(setup, [...frames.keys()], {
    withScene: !!recorder,
    onFacts: async (f) => {
      facts = f;
      run = runJsonOf(o, setup.space, f);
      await writeFileAtomic(files.run, JSON.stringify(run, null, 2) + '\n');
      bar = o.progress?.(frames.length);
    },
    // Ticks as frames finish, from every worker; the AP shown is that of the frames collected so far.
    onArrive: (f) => {
      if (f.failure) failed++;
      bar?.tick(1, { 'AP@0.5': c.mainAp(), ...(failed ? { failed } : {}) });
    },
    onOutcome: async (f) => {
      c.add(f);
      if (recorder && f.scene) await recorder.addFrame(f.scene);
      // A long run that dies keeps what it scored so far, rewritten whole (atomic) once a minute.
      if (performance.now() - lastCheckpoint > 60_000) {
        await writeFileAtomic(files.frames, c.framesText());
        lastCheckpoint = performance.now();
      }
    },
  });
  bar?.stop();
  if (recorder) await recorder.close();
  return finishRun(run!, facts!, c, frames.length, (performance.now() - t0) / 1000, files);
}

/** Plain aligned text: one row per configuration. */

/** run.json: what was evaluated, with what, and how (eval/contracts.ts). */
export function runJsonOf(o: EvalOptions, space: SharedSpace, facts: PipelineFacts): RunJson {
  return {
    version: 1,
    data: path.resolve(o.data),
    split: o.split,
    profile: space.name,
    types: o.combos[0],
    combos: o.combos,
    fusion: o.fusion,
    dtype: o.dtypes[0],
    dtypes: o.dtypes,
    keep: o.keep,
    ...(o.codecs?.length ? { codecs: o.codecs } : {}),
    ...(o.links?.length ? { links: o.links } : {}),
    ...(o.poseNoiseSweep?.length ? { poseNoiseSweep: o.poseNoiseSweep } : {}),
    device: o.device,
    provider: facts.provider,
    weights: o.weights ? weightsName([o.weights].flat().map((w) => path.resolve(w)))! : null,
    fusionTrust: facts.trust,
    poseNoise: o.poseNoise,
    latency: o.latency,
    drop: o.drop,
    seed: o.seed,
    scoreThreshold: o.scoreThreshold ?? 0.2,
    messages: facts.messages,
    createdAt: new Date().toISOString(),
  };
}

/** Where a frame's agent inputs come from, and the robustness knobs that act on them. */
interface InputSource {
  ds: Dataset;
  registry: Registry;
  scenarioTimes: Map<string, string[]>;
  refsByKey: Map<string, FrameRef>;
  o: Pick<EvalOptions, 'drop' | 'latency' | 'poseNoise' | 'seed'>;
}

/**
 * The agents of one frame for one combination, ego first: what the ego receives after drops,
 * latency and pose noise, and the notes on who was left out and why.
 */
async function readInputs(source: InputSource, ref: FrameRef, combo: string[]) {
  const { ds, registry, scenarioTimes, refsByKey, o } = source;
  const egoId = ref.agentIds[0];
  const order = [egoId, ...ref.agentIds.filter((a) => a !== egoId)];
  const inputs: AgentInput[] = [];
  // The MCAP scene shows where agents really were, not where noisy poses put them.
  const truePoses: Mat4[] = [];
  const agents: FrameLine['agents'] = [];
  const notes: FrameLine['skipped'] = [];
  let rawEgo: AgentFrame | undefined;
  for (const [i, id] of order.entries()) {
    const type = registry.get(combo[i % combo.length]);
    agents.push({ id, type: type.name, used: false });
    const read = { lidar: type.sensor.lidar ?? 64, images: type.modality === 'camera' } as const;
    if (id === egoId) {
      rawEgo = await ds.readAgentFrame(ref, id, read);
      inputs.push({ frame: rawEgo, type: type.name });
      truePoses.push(rawEgo.lidarPose);
      continue;
    }
    const key = `${ref.scenario}|${ref.timestamp}|${id}`;
    if (o.drop > 0 && rng(`${o.seed}|drop|${key}`)() < o.drop) {
      notes.push({ id, reason: 'message dropped (--drop)' });
      continue;
    }
    let src = ref;
    if (o.latency > 0) {
      const times = scenarioTimes.get(`${ref.split}\u0000${ref.scenario}`) ?? [ref.timestamp];
      // The first frames of a scenario have no older frame: they get the oldest one there is.
      const at = Math.max(0, times.indexOf(ref.timestamp) - o.latency);
      const older = refsByKey.get(`${ref.split}\u0000${ref.scenario}\u0000${times[at]}`);
      if (!older?.agentIds.includes(id)) {
        notes.push({ id, reason: `no frame ${o.latency} frame(s) earlier (--latency)` });
        continue;
      }
      src = older;
    }
    let frame = await ds.readAgentFrame(src, id, read);
    truePoses.push(frame.lidarPose);
    if (o.poseNoise) frame = { ...frame, lidarPose: noisyPose(frame.lidarPose, o.poseNoise, rng(`${o.seed}|pose|${key}`)) };
    inputs.push({ frame, type: type.name });
  }
  return { egoId, inputs, agents, notes, rawEgo: rawEgo!, truePoses };
}

/** One frames.jsonl line: a frame's detections scored at LINE_IOU, the GT, bytes and stage times. */
function frameLineOf(
  ref: FrameRef,
  egoId: number,
  combo: string[],
  v: Variant,
  agents: FrameLine['agents'],
  notes: FrameLine['skipped'],
  r: FrameResult,
  det: { box: Box7; score: number }[],
  gt: GtBox[],
  total: number,
): FrameLine {
  const usedIds = new Set(r.used.map((u) => u.id));
  const { tp, matched } = markMatches(det, gt);
  return {
    scenario: ref.scenario,
    split: ref.split,
    timestamp: ref.timestamp,
    egoId,
    combo,
    fusion: v.fusion,
    dtype: v.dtype,
    keep: v.keep,
    ...(v.codec ? { codec: v.codec } : {}),
    ...(v.link ? { link: v.link } : {}),
    ...(v.poseNoise !== undefined ? { poseNoise: v.poseNoise } : {}),
    agents: agents.map((a) => ({ ...a, used: usedIds.has(a.id) })),
    detections: det.map((d, i) => ({ box: d.box.map((x) => round(x)) as Box7, score: round(d.score, 5), tp: tp[i] })),
    gt: gt.map((g, i) => ({ box: g.box.map((x) => round(x)) as Box7, matched: matched[i] })),
    bytes: r.messageBytes.reduce((a, m) => a + m.bytes, 0),
    times: Object.fromEntries([...Object.entries(r.times), ['total', total]].map(([k, ms]) => [k, round(ms as number, 3)])),
    skipped: [...notes, ...r.skipped],
    ...(Object.keys(r.rejected).length ? { rejected: r.rejected } : {}),
  };
}

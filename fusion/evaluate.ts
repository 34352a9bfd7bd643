// Dataset evaluation: runs the collaborative pass over every frame of a split for each agent-type
// combination, fusion mode and wire format asked for, scores the detections with HEAL's AP protocol
// against egoGroundTruth, and measures bytes on the wire and per-stage latency. Robustness knobs
// (pose noise, message latency, dropped messages) act on what the ego receives, never on the GT.
//
// Writes a run folder: run.json, frames.jsonl (one line per frame × combination × fusion × dtype),
// report.json and report.html; optionally an MCAP recording of the scenes.

import * as path from 'node:path';
import { promises as fs } from 'node:fs';
import { openDataset } from '../datasets/open.ts';
import type { Dataset, FrameRef } from '../datasets/dataset.ts';
import type { AgentFrame, GtBox } from '../datasets/frame.ts';
import { DataError, writeFileAtomic } from '../datasets/io.ts';
import { ApAccumulator, matchDetections, DEFAULT_IOU_THRESHOLDS } from '../datasets/metrics.ts';
import { rngFor } from '../datasets/synthetic/rng.ts';
import { bevCorners, type Box7 } from '../datasets/geometry/boxes.ts';
import type { Mat4 } from '../datasets/geometry/transforms.ts';
import { loadRegistry, type Registry } from '../perception/registry.ts';
import { spaceByName, type SharedSpace } from '../perception/space.ts';
import { CollabPipeline, type AgentInput, type FusionMode, type FrameResult } from './collab.ts';
import type { FeatureDType } from './messages.ts';
import { egoGroundTruth } from './groundtruth.ts';
import type { Device, Provider } from '../models/runtime.ts';
import type { Trust } from './trust.ts';

export type EvalFusion = 'pyramid' | 'late' | 'none';
export const EVAL_FUSIONS: readonly EvalFusion[] = ['pyramid', 'late', 'none'];
export const EVAL_DTYPES: readonly FeatureDType[] = ['float32', 'float16', 'int8'];
const PIPELINE_MODE: Record<EvalFusion, FusionMode> = { pyramid: 'intermediate', late: 'late', none: 'none' };

/** The IoU at which frames.jsonl marks detections tp and GT matched (the viewer's colours). */
export const LINE_IOU = 0.5;

export interface EvalOptions {
  data: string;
  /** A split name, or 'all'. */
  split: string;
  /** Each entry: agent types given to the agents in ego-first order, cycled. */
  combos: string[][];
  fusion: EvalFusion[];
  /** Feature dtypes swept in pyramid fusion (late and none run once, with the first). */
  dtypes: FeatureDType[];
  /** Fractions of BEV cells senders transmit in pyramid fusion (1 = dense). */
  keep: number[];
  device: Device;
  profile: string;
  /** Weight file, or null for seeded random weights. */
  weights: string | null;
  /** Fusion trust over the weight file's (fusion/trust.ts); null for HEAL's rule. */
  trust?: Trust | null;
  typesDirs?: string[];
  /** [σx m, σy m, σyaw degrees] of the Gaussian noise on senders' poses, or null. */
  poseNoise: [number, number, number] | null;
  /** Collaborators' messages come from this many frames earlier in the same scenario. */
  latency: number;
  /** Probability that a collaborator's message is lost. */
  drop: number;
  seed: number;
  /** Run folder (created). */
  out: string;
  /** Also write the scenes as MCAP here. */
  mcap?: string;
  /** At most this many frames (the first ones of the split). */
  limit?: number;
  scoreThreshold?: number;
  /** Progress and warnings; default: none. */
  log?: (line: string) => void;
  progress?: (total: number) => { tick(n?: number, info?: Record<string, string | number>): void; stop(): void };
}

export interface RunJson {
  version: 1;
  data: string;
  split: string;
  profile: string;
  types: string[];
  combos: string[][];
  fusion: EvalFusion[];
  dtype: FeatureDType;
  /** Beyond the viewer's contract: the whole sweep. */
  dtypes: FeatureDType[];
  keep: number[];
  device: Device;
  provider: Provider;
  weights: string | null;
  /** The fusion trust of each type that has one (others 1); {} is HEAL's rule. */
  fusionTrust?: Trust;
  poseNoise: [number, number, number] | null;
  latency: number;
  drop: number;
  seed: number;
  /** Detections below this score are dropped before matching (HEAL's protocol: 0.2). */
  scoreThreshold: number;
  createdAt: string;
}

export interface StageLatency {
  median: number;
  p95: number;
  /** Frames the stage ran in. */
  n: number;
}

export interface ApByThreshold {
  '0.3': number;
  '0.5': number;
  '0.7': number;
}

export interface ReportRow {
  key: string;
  label: string;
  combo: string[];
  fusion: EvalFusion;
  dtype: FeatureDType;
  keep: number;
  frames: number;
  detections: number;
  gt: number;
  ap: ApByThreshold;
  /** PR curve per IoU threshold (downsampled). */
  pr: { iou: number; precision: number[]; recall: number[] }[];
  /** Bytes the ego received per frame (sum over collaborators). */
  bytes: { mean: number; log2: number | null; min: number; max: number };
  /** The same configuration split by which agent types were actually used in a frame. */
  byUsedTypes: { types: string; frames: number; ap: ApByThreshold }[];
  latency: Record<string, StageLatency>;
}

export interface FrameFailure {
  scenario: string;
  split: string;
  timestamp: string;
  file: string;
  reason: string;
}

export interface EvalReport {
  version: 1;
  run: RunJson;
  provider: Provider;
  fallbackReason?: string;
  randomWeights: boolean;
  rows: ReportRow[];
  frames: { total: number; evaluated: number; failed: number };
  failures: FrameFailure[];
  seconds: number;
  /** Mean wall time of one frame over every combination, mode and dtype. */
  msPerFrame: number;
  files: { run: string; frames: string; report: string; html: string; mcap?: string };
}

export interface FrameLine {
  scenario: string;
  split: string;
  timestamp: string;
  egoId: number;
  combo: string[];
  fusion: EvalFusion;
  dtype: FeatureDType;
  keep: number;
  agents: { id: number; type: string; used: boolean }[];
  detections: { box: Box7; score: number; tp: boolean }[];
  gt: { box: Box7; matched: boolean }[];
  bytes: number;
  times: Record<string, number>;
  skipped: { id: number; reason: string }[];
}

interface Variant {
  fusion: EvalFusion;
  dtype: FeatureDType;
  keep: number;
}

/** Pyramid fusion sweeps dtype × keep; late and none do not send features, so they run once. */
export function variantsOf(opts: Pick<EvalOptions, 'fusion' | 'dtypes' | 'keep'>): Variant[] {
  const out: Variant[] = [];
  for (const fusion of opts.fusion) {
    if (fusion !== 'pyramid') { out.push({ fusion, dtype: opts.dtypes[0], keep: 1 }); continue; }
    for (const keep of opts.keep) for (const dtype of opts.dtypes) out.push({ fusion, dtype, keep });
  }
  return out;
}

export function rowKey(combo: string[], v: Variant): string {
  return `${combo.join('+')}|${v.fusion}|${v.dtype}|${v.keep}`;
}

export function rowLabel(combo: string[], v: Variant): string {
  const parts = [combo.join('+'), v.fusion];
  if (v.fusion === 'pyramid') parts.push(v.dtype);
  if (v.keep < 1) parts.push(`keep ${Math.round(v.keep * 100)}%`);
  return parts.join(' ');
}

// ---------------------------------------------------------------------------------------------
// Seeded randomness: every draw depends on (seed, what, scenario, timestamp, agent), so pose noise
// and drops are the same for every combination and mode of a run, and do not depend on order.

function rng(key: string): () => number {
  const r = rngFor('heal-eval', key);
  return () => r.next();
}

function gaussian(next: () => number): number {
  const u = Math.max(next(), 1e-12);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * next());
}

/**
 * The pose a sender reports with HEAL-style noise: x and y shifted in the world, yaw turned about
 * the world z axis through the sender's position. The points stay in the sender's own frame, so
 * only where the ego places them moves.
 */
export function noisyPose(pose: Mat4, sigma: [number, number, number], next: () => number): Mat4 {
  const dx = gaussian(next) * sigma[0];
  const dy = gaussian(next) * sigma[1];
  const dyaw = (gaussian(next) * sigma[2] * Math.PI) / 180;
  const c = Math.cos(dyaw), s = Math.sin(dyaw);
  const out = new Float64Array(pose);
  for (let col = 0; col < 3; col++) {
    const a = pose[col], b = pose[4 + col];
    out[col] = c * a - s * b;
    out[4 + col] = s * a + c * b;
  }
  out[3] = pose[3] + dx;
  out[7] = pose[7] + dy;
  return out;
}

// ---------------------------------------------------------------------------------------------
// Statistics

/** Nearest-rank percentile of an unsorted list. */
export function percentile(values: number[], p: number): number {
  if (!values.length) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1];
}

export function median(values: number[]): number {
  if (!values.length) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export function apOf(acc: ApAccumulator): ApByThreshold {
  const r = acc.result({ maxCurvePoints: 2 });
  const at = (t: number) => r.find((x) => Math.abs(x.iouThreshold - t) < 1e-9)?.ap ?? 0;
  return { '0.3': at(0.3), '0.5': at(0.5), '0.7': at(0.7) };
}

class RowStats {
  readonly acc = new ApAccumulator(DEFAULT_IOU_THRESHOLDS);
  readonly byUsed = new Map<string, ApAccumulator>();
  readonly bytes: number[] = [];
  readonly times = new Map<string, number[]>();
  constructor(readonly combo: string[], readonly variant: Variant) {}

  add(line: FrameLine, det: { box: Box7; score: number }[], gt: GtBox[]): void {
    const detFp = det.map((d) => bevCorners(d.box));
    const scores = det.map((d) => d.score);
    const gtFp = gt.map((g) => bevCorners(g.box));
    this.acc.addFrame(detFp, scores, gtFp);
    const used = [...new Set(line.agents.filter((a) => a.used).map((a) => a.type))].sort().join('+');
    let u = this.byUsed.get(used);
    if (!u) this.byUsed.set(used, (u = new ApAccumulator(DEFAULT_IOU_THRESHOLDS)));
    u.addFrame(detFp, scores, gtFp);
    this.bytes.push(line.bytes);
    for (const [k, v] of Object.entries(line.times)) {
      let list = this.times.get(k);
      if (!list) this.times.set(k, (list = []));
      list.push(v);
    }
  }

  row(): ReportRow {
    const results = this.acc.result({ maxCurvePoints: 200 });
    const mean = this.bytes.length ? this.bytes.reduce((a, b) => a + b, 0) / this.bytes.length : 0;
    const latency: Record<string, StageLatency> = {};
    for (const [k, v] of this.times) latency[k] = { median: median(v), p95: percentile(v, 95), n: v.length };
    return {
      key: rowKey(this.combo, this.variant),
      label: rowLabel(this.combo, this.variant),
      combo: this.combo,
      ...this.variant,
      frames: this.acc.frames,
      detections: this.acc.detections,
      gt: this.acc.groundTruth,
      ap: apOf(this.acc),
      pr: results.map((r) => ({ iou: r.iouThreshold, precision: r.precision, recall: r.recall })),
      bytes: {
        mean,
        log2: mean > 0 ? Math.log2(mean) : null,
        min: this.bytes.length ? Math.min(...this.bytes) : 0,
        max: this.bytes.length ? Math.max(...this.bytes) : 0,
      },
      byUsedTypes: [...this.byUsed.entries()]
        .sort((a, b) => a[0].localeCompare(b[0]))
        .map(([types, acc]) => ({ types, frames: acc.frames, ap: apOf(acc) })),
      latency,
    };
  }
}

// ---------------------------------------------------------------------------------------------

/** Scores one frame's detections at LINE_IOU for frames.jsonl (the AP itself uses ApAccumulator). */
export function markMatches(det: { box: Box7; score: number }[], gt: GtBox[]): { tp: boolean[]; matched: boolean[] } {
  return matchDetections(det, gt.map((g) => g.box), LINE_IOU);
}

function round(v: number, digits = 4): number {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}

export function describeError(err: unknown): { file: string; reason: string } {
  if (err instanceof DataError) return { file: err.file, reason: err.message };
  return { file: '', reason: err instanceof Error ? err.message : String(err) };
}

function timestampOf(date: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${date.getFullYear()}${p(date.getMonth() + 1)}${p(date.getDate())}-${p(date.getHours())}${p(date.getMinutes())}${p(date.getSeconds())}`;
}

export function defaultRunDir(date = new Date()): string {
  return path.join('runs', `eval-${timestampOf(date)}`);
}

export function checkEvalOptions(o: EvalOptions, registry: Registry, space: SharedSpace): void {
  if (!o.combos.length || o.combos.some((c) => !c.length)) throw new Error('--types/--combos: every combination needs at least one agent type');
  for (const c of o.combos) for (const t of c) registry.profile(t, space.name);
  if (!o.fusion.length) throw new Error('--fusion: give at least one of pyramid, late, none');
  for (const f of o.fusion) if (!EVAL_FUSIONS.includes(f)) throw new Error(`--fusion: "${f}" is not one of ${EVAL_FUSIONS.join(', ')}`);
  if (!o.dtypes.length) throw new Error('--dtypes: give at least one of float32, float16, int8');
  for (const d of o.dtypes) if (!EVAL_DTYPES.includes(d)) throw new Error(`--dtypes: "${d}" is not one of ${EVAL_DTYPES.join(', ')}`);
  for (const k of o.keep) if (!(k > 0 && k <= 1)) throw new Error(`--sparsity: keep fractions must be in (0, 1] (got ${k})`);
  if (o.poseNoise && (o.poseNoise.length !== 3 || o.poseNoise.some((v) => !(v >= 0) || !Number.isFinite(v)))) {
    throw new Error(`--pose-noise: needs three finite values ≥ 0 (σx m, σy m, σyaw °), got ${JSON.stringify(o.poseNoise)}`);
  }
  if (!Number.isInteger(o.latency) || o.latency < 0) throw new Error(`--latency: must be an integer number of frames ≥ 0 (got ${o.latency})`);
  if (!(o.drop >= 0 && o.drop <= 1)) throw new Error(`--drop: must be a probability in [0, 1] (got ${o.drop})`);
  if (o.limit !== undefined && !(Number.isInteger(o.limit) && o.limit >= 1)) throw new Error(`--limit: must be a positive integer (got ${o.limit})`);
}

export function selectFrames(ds: Dataset, split: string, limit?: number): FrameRef[] {
  const all = ds.frames();
  const splits = [...new Set(all.map((f) => f.split))];
  const frames = split === 'all' ? all : all.filter((f) => f.split === split);
  if (!frames.length) {
    throw new DataError(ds.root, 'split', `no frames in split "${split}" (this dataset has: ${splits.join(', ') || 'none'}; or use --split all)`, split);
  }
  return limit ? frames.slice(0, limit) : frames;
}

interface FrameWork {
  lines: FrameLine[];
  stats: { row: RowStats; line: FrameLine; det: { box: Box7; score: number }[] }[];
  gt: GtBox[];
  scene?: import('../datasets/mcap.ts').SceneFrame;
}

export async function evaluate(o: EvalOptions): Promise<EvalReport> {
  const log = o.log ?? (() => {});
  const t0 = performance.now();
  const space = spaceByName(o.profile);
  const registry = await loadRegistry(o.typesDirs ?? []);
  checkEvalOptions(o, registry, space);
  const ds = await openDataset(o.data);
  const frames = selectFrames(ds, o.split, o.limit);
  const scenarioTimes = new Map(ds.scenarios().map((s) => [`${s.split}\u0000${s.name}`, s.timestamps]));
  const refsByKey = new Map(ds.frames().map((f) => [`${f.split}\u0000${f.scenario}\u0000${f.timestamp}`, f]));

  const pipeline = await CollabPipeline.create({
    space, registry, device: o.device, weightsFile: o.weights ?? undefined, seed: o.seed, trust: o.trust,
  });

  const outDir = path.resolve(o.out);
  await fs.mkdir(outDir, { recursive: true });
  const files = {
    run: path.join(outDir, 'run.json'),
    frames: path.join(outDir, 'frames.jsonl'),
    report: path.join(outDir, 'report.json'),
    html: path.join(outDir, 'report.html'),
    ...(o.mcap ? { mcap: path.resolve(o.mcap) } : {}),
  };
  const run: RunJson = {
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
    device: o.device,
    provider: pipeline.provider,
    weights: o.weights ? path.resolve(o.weights) : null,
    fusionTrust: pipeline.trust,
    poseNoise: o.poseNoise,
    latency: o.latency,
    drop: o.drop,
    seed: o.seed,
    scoreThreshold: o.scoreThreshold ?? 0.2,
    createdAt: new Date().toISOString(),
  };
  await writeFileAtomic(files.run, JSON.stringify(run, null, 2) + '\n');

  // The viewer keeps the last line it reads for a frame of the first combination and mode, so the
  // run's main variant (first dtype, dense) is written last among its siblings.
  const variants = variantsOf(o);
  const ordered = [...variants].reverse().sort((a, b) => o.fusion.indexOf(a.fusion) - o.fusion.indexOf(b.fusion));
  const rows = new Map<string, RowStats>();
  for (const combo of o.combos) for (const v of variants) rows.set(rowKey(combo, v), new RowStats(combo, v));

  const { SceneRecorder } = o.mcap ? await import('../datasets/mcap.ts') : { SceneRecorder: undefined };
  const recorder = SceneRecorder && o.mcap ? await SceneRecorder.create(path.resolve(o.mcap)) : undefined;

  const failures: FrameFailure[] = [];
  const lines: string[] = [];
  let evaluated = 0;
  let passMs = 0, passes = 0;
  let lastCheckpoint = performance.now();
  const bar = o.progress?.(frames.length);

  const readInputs = async (ref: FrameRef, combo: string[]) => {
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
        if (!older || !older.agentIds.includes(id)) {
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
  };

  for (const ref of frames) {
    const work: FrameWork = { lines: [], stats: [], gt: [] };
    try {
      for (const [ci, combo] of o.combos.entries()) {
        const { egoId, inputs, agents, notes, rawEgo, truePoses } = await readInputs(ref, combo);
        if (ci === 0) {
          work.gt = await egoGroundTruth(ds, ref, rawEgo, space);
          if (recorder) {
            const agentsSeen = inputs.map((inp, k) => ({ frame: { ...inp.frame, lidarPose: truePoses[k] }, type: inp.type }));
            work.scene = { ref, egoId, agents: agentsSeen, gt: work.gt.map((g) => g.box), detections: [] };
          }
        }
        for (const v of ordered) {
          const t = performance.now();
          const r: FrameResult = await pipeline.runFrame(inputs, egoId, {
            mode: PIPELINE_MODE[v.fusion], dtype: v.dtype, keep: v.keep, scoreThreshold: o.scoreThreshold,
          });
          const total = performance.now() - t;
          passMs += total;
          passes++;
          const usedIds = new Set(r.used.map((u) => u.id));
          const det = r.detections.map((d) => ({ box: d.box, score: d.score }));
          const { tp, matched } = markMatches(det, work.gt);
          const line: FrameLine = {
            scenario: ref.scenario,
            split: ref.split,
            timestamp: ref.timestamp,
            egoId,
            combo,
            fusion: v.fusion,
            dtype: v.dtype,
            keep: v.keep,
            agents: agents.map((a) => ({ ...a, used: usedIds.has(a.id) })),
            detections: det.map((d, i) => ({ box: d.box.map((x) => round(x)) as Box7, score: round(d.score, 5), tp: tp[i] })),
            gt: work.gt.map((g, i) => ({ box: g.box.map((x) => round(x)) as Box7, matched: matched[i] })),
            bytes: r.messageBytes.reduce((a, m) => a + m.bytes, 0),
            times: Object.fromEntries([...Object.entries(r.times), ['total', total]].map(([k, ms]) => [k, round(ms as number, 3)])),
            skipped: [...notes, ...r.skipped],
          };
          work.lines.push(line);
          work.stats.push({ row: rows.get(rowKey(combo, v))!, line, det });
          work.scene?.detections.push({ label: rowLabel(combo, v), boxes: line.detections });
        }
      }
    } catch (err) {
      // One unreadable or broken frame is reported and skipped; its partial results are dropped
      // so that every row counts the same frames.
      const { file, reason } = describeError(err);
      failures.push({ scenario: ref.scenario, split: ref.split, timestamp: ref.timestamp, file, reason });
      log(`skipped ${ref.split}/${ref.scenario} ${ref.timestamp}: ${reason}`);
      bar?.tick(1, { failed: failures.length });
      continue;
    }
    for (const s of work.stats) s.row.add(s.line, s.det, work.gt);
    for (const l of work.lines) lines.push(JSON.stringify(l));
    if (recorder && work.scene) await recorder.addFrame(work.scene);
    evaluated++;
    const main = rows.get(rowKey(o.combos[0], variants[0]))!;
    bar?.tick(1, { 'AP@0.5': apOf(main.acc)['0.5'].toFixed(3), ...(failures.length ? { failed: failures.length } : {}) });
    // A long run that dies keeps what it scored so far, rewritten whole (atomic) once a minute.
    if (performance.now() - lastCheckpoint > 60_000) {
      await writeFileAtomic(files.frames, lines.join('\n') + '\n');
      lastCheckpoint = performance.now();
    }
  }
  bar?.stop();
  await writeFileAtomic(files.frames, lines.length ? lines.join('\n') + '\n' : '');
  if (recorder) await recorder.close();

  const report: EvalReport = {
    version: 1,
    run,
    provider: pipeline.provider,
    ...(pipeline.fallbackReason ? { fallbackReason: pipeline.fallbackReason } : {}),
    randomWeights: pipeline.randomWeights,
    rows: [...rows.values()].map((r) => r.row()),
    frames: { total: frames.length, evaluated, failed: failures.length },
    failures,
    seconds: (performance.now() - t0) / 1000,
    msPerFrame: passes ? passMs / passes : 0,
    files,
  };
  await writeFileAtomic(files.report, JSON.stringify(report, null, 1) + '\n');
  const { renderReport } = await import('../datasets/report/html.ts');
  await writeFileAtomic(files.html, renderReport(report));
  return report;
}

/** Plain aligned text: one row per configuration. */
export function formatTable(report: EvalReport): string {
  const head = ['combination', 'fusion', 'dtype', 'keep', 'frames', 'AP@0.3', 'AP@0.5', 'AP@0.7', 'bytes/frame', 'log2'];
  const body = report.rows.map((r) => [
    r.combo.join('+'), r.fusion, r.fusion === 'pyramid' ? r.dtype : '-', r.fusion === 'pyramid' ? `${Math.round(r.keep * 100)}%` : '-',
    String(r.frames), r.ap['0.3'].toFixed(3), r.ap['0.5'].toFixed(3), r.ap['0.7'].toFixed(3),
    formatBytes(r.bytes.mean), r.bytes.log2 === null ? '-' : r.bytes.log2.toFixed(2),
  ]);
  return alignTable(head, body, [4, 5, 6, 7, 8, 9]);
}

/** Per-stage latency of one row: median and p95 in ms. */
export function formatLatency(row: ReportRow): string {
  const stages = Object.entries(row.latency).sort((a, b) => (a[0] === 'total' ? 1 : b[0] === 'total' ? -1 : b[1].median - a[1].median));
  return alignTable(['stage', 'median ms', 'p95 ms', 'frames'], stages.map(([k, s]) => [k, s.median.toFixed(1), s.p95.toFixed(1), String(s.n)]), [1, 2, 3]);
}

export function formatBytes(b: number): string {
  if (b <= 0) return '0';
  if (b < 1024) return `${b.toFixed(0)} B`;
  if (b < 1024 * 1024) return `${(b / 1024).toFixed(1)} KiB`;
  return `${(b / 1024 / 1024).toFixed(2)} MiB`;
}

function alignTable(head: string[], body: string[][], right: number[]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((r) => r[i].length)));
  const fmt = (r: string[]) => r.map((c, i) => (right.includes(i) ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join('  ').trimEnd();
  return [fmt(head), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(fmt)].join('\n');
}

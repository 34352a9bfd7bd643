// The on-disk contracts of an evaluation run: options, run.json, frames.jsonl lines and
// report.json rows. The viewer, the report and merges read these, so change them with care.

import * as path from 'node:path';
import type { FeatureDType } from '../fusion/messages.ts';
import type { Device, Provider } from '../models/runtime.ts';
import type { MergeRule } from '../models/weights.ts';
import type { Trust } from '../fusion/trust.ts';
import type { Box7 } from '../datasets/geometry/boxes.ts';
import type { LinkStats } from './link.ts';

export type EvalFusion = 'pyramid' | 'late' | 'none';
export const EVAL_FUSIONS: readonly EvalFusion[] = ['pyramid', 'late', 'none'];
export const EVAL_DTYPES: readonly FeatureDType[] = ['float32', 'float16', 'int8'];

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
  /** Message codecs (fusion/codec-spec.ts names), each one more pyramid row besides dtypes × keep. */
  codecs?: string[];
  /** Weight files with learned codecs (heal train-codec), besides any in the weights. */
  codecWeights?: string[];
  /** Link configurations (eval/link.ts parseLink); every row runs once per link. None: every message arrives at once. */
  links?: string[];
  /** σ values swept on the senders' poses (σx = σy in m, σyaw in degrees, HEAL's protocol); every row runs once per σ. */
  poseNoiseSweep?: number[];
  /** Only frames with at least this many agents (ego included), e.g. 5 for the ego and 4 senders. */
  minAgents?: number;
  /** Encode each agent frame once for every row of a frame (fusion/pipeline.ts reuseEncodings). */
  reuseEncodings?: boolean;
  /** Seed of the link's draws (access order, lost fragments); default `seed`. */
  linkSeed?: number;
  device: Device;
  profile: string;
  /** Weight file (several are merged by mergeWeights), or null for seeded random weights. */
  weights: string | string[] | null;
  /** How several weight files merge (models/weights.ts); default 'identical'. */
  mergeWeights?: MergeRule;
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
  /** Send messages unsigned (fusion/identity.ts); default: signed and verified. */
  insecure?: boolean;
  /** Sign with the keys of this `heal keys` folder instead of an ephemeral authority. */
  keys?: string;
  /** Frames are spread over this many workers, each with its own sessions (eval/pool.ts); 1 (default) runs in this thread. */
  jobs?: number;
  /** Workers as child processes (default) or threads (eval/pool.ts). */
  workerKind?: WorkerKind;
  /** onnxruntime intra-op threads per session; default 1 with jobs > 1, else onnxruntime's choice. */
  threads?: number;
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
  codecs?: string[];
  links?: string[];
  poseNoiseSweep?: number[];
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
  /** How messages travelled: "signed (<where the keys came from>)" or "unsigned (insecure)". */
  messages?: string;
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
  codec?: string;
  link?: string;
  poseNoise?: number;
  /** What the link did to this row's messages (with a link). */
  linkStats?: LinkStats;
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
  /** Signing and verifying: mean ms per frame, their share of a frame's time, and rejections by reason. */
  security?: { signed: boolean; signMsPerFrame: number; verifyMsPerFrame: number; shareOfFrame: number; rejected: Record<string, number> };
  files: { run: string; frames: string; report: string; html: string; mcap?: string };
}

export type WorkerKind = 'thread' | 'process';

/** One shard of an evaluation: index in [0, count). */
export interface ShardSpec {
  index: number;
  count: number;
}

/**
 * One frame's evaluation, everything the run needs from it: the frames.jsonl lines as written and
 * the exact detections and GT the AP is computed from (frames.jsonl rounds them). Workers send
 * these to the main thread; shards store them (outcomes.jsonl) for `heal eval merge`.
 */
export interface FrameOutcome {
  /** The frame's position in the evaluation's frame list. */
  index: number;
  lines: FrameLine[];
  /** Per line, the unrounded detections. */
  det: { box: Box7; score: number }[][];
  gt: { id: number; box: Box7 }[];
  /** Collaborative passes and their summed wall time (ms). */
  passes: number;
  passMs: number;
  /** Time spent signing and verifying messages (ms), and messages the ego rejected, by reason. */
  signMs: number;
  verifyMs: number;
  rejected: Record<string, number>;
  /** Set when the frame could not be evaluated; then it has no lines. */
  failure?: FrameFailure;
  /** The MCAP scene, when one is recorded (never stored in a shard). */
  scene?: import('./mcap.ts').SceneFrame;
}

/** What the networks run on: run.json and report.json record it. */
export interface PipelineFacts {
  provider: Provider;
  fallbackReason?: string;
  randomWeights: boolean;
  trust: Trust;
  /** Whether messages are signed and verified (fusion/identity.ts), and how run.json says it. */
  signed: boolean;
  messages: string;
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
  codec?: string;
  link?: string;
  poseNoise?: number;
  /** This frame's messages on the link: how many, and how they fared (with a link). */
  linkStats?: LinkStats;
  agents: { id: number; type: string; used: boolean }[];
  detections: { box: Box7; score: number; tp: boolean }[];
  gt: { box: Box7; matched: boolean }[];
  bytes: number;
  times: Record<string, number>;
  skipped: { id: number; reason: string }[];
  /** Messages the ego rejected, by reason (absent when none). */
  rejected?: Record<string, number>;
}

export interface Variant {
  fusion: EvalFusion;
  dtype: FeatureDType;
  keep: number;
  /** A message codec's name (pyramid only); dtype is then the codec's. */
  codec?: string;
  /** The link configuration's spec as given. */
  link?: string;
  /** Pose-noise σ of a pose-noise sweep (m and degrees on x, y, yaw). */
  poseNoise?: number;
}

/**
 * Pyramid fusion sweeps dtype × keep, then each codec; late and none do not send features, so they
 * run once. Every variant runs once per link when links are given.
 */
export function variantsOf(opts: Pick<EvalOptions, 'fusion' | 'dtypes' | 'keep' | 'codecs' | 'links' | 'poseNoiseSweep'>): Variant[] {
  const out: Variant[] = [];
  for (const fusion of opts.fusion) {
    if (fusion !== 'pyramid') {
      out.push({ fusion, dtype: opts.dtypes[0], keep: 1 });
      continue;
    }
    for (const keep of opts.keep) for (const dtype of opts.dtypes) out.push({ fusion, dtype, keep });
    for (const codec of opts.codecs ?? []) out.push({ fusion, dtype: codecDtype(codec), keep: 1, codec });
  }
  const linked = opts.links?.length ? opts.links.flatMap((link) => out.map((v) => ({ ...v, link }))) : out;
  if (!opts.poseNoiseSweep?.length) return linked;
  return opts.poseNoiseSweep.flatMap((poseNoise) => linked.map((v) => ({ ...v, poseNoise })));
}

/** The dtype token of a codec name (float32 when it names none). */
function codecDtype(codec: string): FeatureDType {
  return (
    (codec
      .split('+')
      .find((t) => ['float32', 'float16', 'int8', 'int4'].includes(t.trim()))
      ?.trim() as FeatureDType | undefined) ?? 'float32'
  );
}

export function rowKey(combo: string[], v: Variant): string {
  return `${combo.join('+')}|${v.fusion}|${v.codec ?? v.dtype}|${v.keep}${v.link ? `|${v.link}` : ''}${v.poseNoise !== undefined ? `|σ${v.poseNoise}` : ''}`;
}

export function rowLabel(combo: string[], v: Variant): string {
  const parts = [combo.join('+'), v.fusion];
  if (v.fusion === 'pyramid') parts.push(v.codec ?? v.dtype);
  if (v.keep < 1) parts.push(`keep ${Math.round(v.keep * 100)}%`);
  if (v.link) parts.push(`@ ${v.link}`);
  if (v.poseNoise !== undefined) parts.push(`pose σ ${v.poseNoise}`);
  return parts.join(' ');
}

function timestampOf(date: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${date.getFullYear()}${p(date.getMonth() + 1)}${p(date.getDate())}-${p(date.getHours())}${p(date.getMinutes())}${p(date.getSeconds())}`;
}

export function defaultRunDir(date = new Date()): string {
  return path.join('runs', `eval-${timestampOf(date)}`);
}

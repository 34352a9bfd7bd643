// What `heal view` shows for one cooperative frame, built on the server and sent to the page as one
// protobuf message (proto/scene.proto): every agent's points, pose and type in the ground-aligned
// ego frame (the frame the pipeline detects in), GT and predicted boxes with their TP/FP/miss
// status, and the pyramid's per-level foreground maps. The page only draws.

import { fileURLToPath } from 'node:url';
import * as path from 'node:path';
import protobuf from 'protobufjs';
import { openDataset } from '../datasets/open.ts';
import type { Dataset, FrameRef, ScenarioInfo } from '../datasets/dataset.ts';
import type { AgentFrame } from '../datasets/frame.ts';
import { DataError } from '../datasets/io.ts';
import { invert, multiply, transformPoint } from '../datasets/geometry/transforms.ts';
import { boxToCorners, type Box7 } from '../datasets/geometry/boxes.ts';
import { matchDetections } from '../eval/metrics.ts';
import { alignToGround } from '../perception/ground.ts';
import { loadRegistry, type Registry } from '../perception/registry.ts';
import { spaceByName, type SharedSpace } from '../perception/space.ts';
import { CollabPipeline, type AgentInput, type FrameResult } from '../fusion/pipeline.ts';
import { egoGroundTruth } from '../eval/groundtruth.ts';
import type { Device } from '../models/runtime.ts';
import { shippedWeights } from '../models/shipped.ts';
import { isRunDir, readRun, runFrameKey, type Run, type RunFrame } from './run.ts';

export const DEFAULT_TYPES = ['m1', 'm2', 'm3', 'm4'];
/** The IoU at which the viewer calls a prediction a true positive (AP@0.5's). */
export const VIEW_IOU = 0.5;

export interface ViewOptions {
  device?: Device;
  /** Weight file; default: the run's, else the shipped small weights, else seeded random. */
  weights?: string;
  /** Score threshold of the on-demand detections (default: the decoder's). */
  scoreThreshold?: number;
  /** Most points sent per frame, all agents together (default 300 000); more are thinned evenly. */
  maxPoints?: number;
  /** Seed of the random weights when there is no weight file. */
  seed?: number;
  /** Run on seeded random weights even when a run or the shipped weights would give a file. */
  randomWeights?: boolean;
  typesDir?: string[];
  log?: (line: string) => void;
}

export interface IndexScenario {
  key: string;
  split: string;
  name: string;
  agents: { id: number; kind: string }[];
  frames: { ts: string; evaluated: boolean }[];
}

export interface ViewIndex {
  input: string;
  source: 'data' | 'run';
  data: string;
  format: string;
  profile: string;
  types: string[];
  weights: string | null;
  randomWeights: boolean;
  provider: string;
  iouThreshold: number;
  notes: string[];
  scenarios: IndexScenario[];
}

export enum BoxStatus {
  TruePositive = 1,
  FalsePositive = 2,
  Matched = 3,
  Missed = 4,
}

let schema: protobuf.Type | undefined;
export function sceneSchema(): protobuf.Type {
  schema ??= protobuf.loadSync(fileURLToPath(new URL('../proto/scene.proto', import.meta.url))).lookupType('healview.Frame');
  return schema;
}

export const SCENE_PROTO_PATH = fileURLToPath(new URL('../proto/scene.proto', import.meta.url));

/** Greedy matching at VIEW_IOU: a TP flag per detection (given best first) and a matched flag per GT box. */
export function matchBoxes(dets: { box: ArrayLike<number>; score: number }[], gt: ArrayLike<number>[], iou = VIEW_IOU): { tp: boolean[]; matched: boolean[] } {
  return matchDetections(dets, gt, iou);
}

function sigmoidBytes(logits: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array(logits.length);
  for (let i = 0; i < logits.length; i++) out[i] = Math.round(255 / (1 + Math.exp(-logits[i])));
  return out;
}

interface BuiltAgent {
  input?: AgentInput;
  raw?: AgentFrame;
  aligned?: AgentFrame;
  error?: string;
}

/**
 * What a page or an HTTP body may say about an error: a DataError's file and field with its
 * detail, but never its value (a header line, a JSON snippet: bytes of the file); anything else
 * only that it happened. The full message goes to the server's log.
 */
export function publicMessage(err: unknown): string {
  if (err instanceof DataError) {
    // JSON.parse quotes the text it failed on; so does nothing else a reader's detail carries.
    const detail = /not valid JSON/.test(err.detail) ? err.detail.replace(/:.*$/s, '') : err.detail;
    return `${err.file}${err.field ? `: field "${err.field}"` : ''}: ${detail}`;
  }
  return 'internal error (the server log has the details)';
}

export class SceneSource {
  private readonly frameCache = new Map<string, Promise<Uint8Array>>();
  private readonly cameraPaths = new Map<string, string>();
  private queue: Promise<unknown> = Promise.resolve();
  private readonly refs = new Map<string, FrameRef>();
  private readonly infos = new Map<string, ScenarioInfo>();
  private readonly cacheSize = 12;

  private constructor(
    readonly index: ViewIndex,
    private readonly ds: Dataset,
    private readonly run: Run | undefined,
    private readonly pipeline: CollabPipeline,
    private readonly registry: Registry,
    private readonly space: SharedSpace,
    private readonly opts: ViewOptions,
  ) {
    for (const r of ds.frames()) this.refs.set(runFrameKey(r.split, r.scenario, r.timestamp), r);
    for (const s of ds.scenarios()) this.infos.set(`${s.split}/${s.name}`, s);
  }

  static async open(input: string, opts: ViewOptions = {}): Promise<SceneSource> {
    const abs = path.resolve(input);
    const log = opts.log ?? (() => {});
    const run = (await isRunDir(abs)) ? await readRun(abs) : undefined;
    for (const w of run?.warnings ?? []) log(`heal view: ${w}`);
    const ds = await openDataset(run ? run.meta.data : abs);
    const space = spaceByName(run?.meta.profile ?? 'small');
    const registry = await loadRegistry(opts.typesDir ?? []);
    const types = run ? (run.meta.combos[0]?.length ? run.meta.combos[0] : run.meta.types) : DEFAULT_TYPES;
    for (const t of types) registry.profile(t, space.name);
    const weights = opts.randomWeights ? undefined : (opts.weights ?? run?.meta.weights ?? (run ? undefined : shippedWeights(space.name)));
    const pipeline = await CollabPipeline.create({
      space,
      registry,
      device: opts.device ?? 'auto',
      weightsFile: weights ?? undefined,
      seed: opts.seed ?? (typeof run?.meta.seed === 'number' ? run.meta.seed : 0),
    });
    const notes: string[] = [];
    if (pipeline.randomWeights) notes.push('random weights: no weight file, so predictions and foreground maps mean nothing');
    if (run) {
      if (run.incomplete) notes.push('this run did not finish (interrupted, or still running): it may lack frames, and its report may be missing');
      const m = run.meta;
      const noisy = [m.poseNoise, m.latency, m.drop].some((v) => v !== undefined && v !== null && v !== 0 && v !== false);
      if (noisy)
        notes.push(
          `the run had pose noise/latency/drop (${JSON.stringify({ poseNoise: m.poseNoise, latency: m.latency, drop: m.drop })}); points and foreground maps here use true poses`,
        );
      if (!run.frames.size) notes.push('the run has no frames of its first combo and fusion; every frame is computed here');
    }
    const frameRefs = ds.frames();
    const split = run?.meta.split;
    const scenarios: IndexScenario[] = ds
      .scenarios()
      // "all" is heal eval's word for every frame of every split, never a split's name.
      .filter((s) => !split || split === 'all' || s.split === split)
      .map((s) => ({
        key: `${s.split}/${s.name}`,
        split: s.split,
        name: s.name,
        agents: s.agents.map((a) => ({ id: a.id, kind: a.kind })),
        frames: frameRefs
          .filter((f) => f.split === s.split && f.scenario === s.name)
          .map((f) => ({ ts: f.timestamp, evaluated: !!run?.frames.has(runFrameKey(f.split, f.scenario, f.timestamp)) })),
      }))
      .filter((s) => s.frames.length > 0);
    if (!scenarios.length) throw new DataError(ds.root, split ? 'split' : undefined, 'no frames to show', split);
    const index: ViewIndex = {
      input: abs,
      source: run ? 'run' : 'data',
      data: ds.root,
      format: ds.format,
      profile: space.name,
      types,
      weights: weights ?? null,
      randomWeights: pipeline.randomWeights,
      provider: pipeline.provider,
      iouThreshold: VIEW_IOU,
      notes,
      scenarios,
    };
    return new SceneSource(index, ds, run, pipeline, registry, space, opts);
  }

  private ref(scenario: string, timestamp: string): FrameRef {
    const i = scenario.indexOf('/');
    const key = i < 0 ? '' : runFrameKey(scenario.slice(0, i), scenario.slice(i + 1), timestamp);
    const ref = this.refs.get(key);
    if (!ref) throw new DataError(this.ds.root, 'scenario/ts', `no frame ${timestamp} in scenario "${scenario}"`, `${scenario} ${timestamp}`);
    return ref;
  }

  /** The encoded healview.Frame of one frame; cached, and built one at a time (the pipeline is not re-entrant). */
  frame(scenario: string, timestamp: string): Promise<Uint8Array> {
    const ref = this.ref(scenario, timestamp);
    const key = `${scenario}\u0000${timestamp}`;
    const hit = this.frameCache.get(key);
    if (hit) {
      this.frameCache.delete(key);
      this.frameCache.set(key, hit);
      return hit;
    }
    const p = this.queue.then(() => this.build(ref));
    this.queue = p.catch(() => {});
    this.frameCache.set(key, p);
    p.catch(() => this.frameCache.delete(key));
    while (this.frameCache.size > this.cacheSize) this.frameCache.delete(this.frameCache.keys().next().value!);
    return p;
  }

  /** Builds the frame in the background so that playback finds it ready. */
  prefetch(scenario: string, timestamp: string): void {
    try {
      this.frame(scenario, timestamp).catch(() => {});
    } catch {
      // an unknown frame is simply not prefetched
    }
  }

  /** A camera picture as the dataset stores it. */
  async camera(scenario: string, timestamp: string, agentId: number, name: string): Promise<{ file: string; mime: string }> {
    const ref = this.ref(scenario, timestamp);
    const key = `${scenario}\u0000${timestamp}\u0000${agentId}\u0000${name}`;
    let file = this.cameraPaths.get(key);
    if (!file) {
      if (!ref.agentIds.includes(agentId)) throw new DataError(this.ds.root, 'agent', `no agent ${agentId} in ${scenario} ${timestamp}`, agentId);
      const f = await this.ds.readAgentFrame(ref, agentId, { lidar: 64, images: false });
      file = f.cameras.find((c) => c.name === name)?.imagePath;
      if (!file)
        throw new DataError(
          this.ds.root,
          'camera',
          `agent ${agentId} has no camera "${name}" (has: ${f.cameras.map((c) => c.name).join(', ') || 'none'})`,
          name,
        );
    }
    const ext = path.extname(file).toLowerCase();
    return { file, mime: ext === '.png' ? 'image/png' : ext === '.jpg' || ext === '.jpeg' ? 'image/jpeg' : 'application/octet-stream' };
  }

  private egoOf(ref: FrameRef): number {
    const info = this.infos.get(`${ref.split}/${ref.scenario}`);
    const kind = (id: number) => info?.agents.find((a) => a.id === id)?.kind ?? (id < 0 ? 'rsu' : 'vehicle');
    return ref.agentIds.find((id) => kind(id) !== 'rsu') ?? ref.agentIds[0];
  }

  private async build(ref: FrameRef): Promise<Uint8Array> {
    const t0 = performance.now();
    const scenarioKey = `${ref.split}/${ref.scenario}`;
    const runFrame: RunFrame | undefined = this.run?.frames.get(runFrameKey(ref.split, ref.scenario, ref.timestamp));
    const egoId = runFrame && ref.agentIds.includes(runFrame.egoId) ? runFrame.egoId : this.egoOf(ref);
    const order = [egoId, ...ref.agentIds.filter((a) => a !== egoId)];
    const cycle = this.index.types;
    const info = this.infos.get(scenarioKey);
    const notes: string[] = [];

    const agents: BuiltAgent[] = [];
    for (const [i, id] of order.entries()) {
      const typeName = runFrame?.agents.find((a) => a.id === id)?.type ?? cycle[i % cycle.length];
      try {
        const type = this.registry.get(typeName);
        const raw = await this.ds.readAgentFrame(ref, id, { lidar: type.sensor.lidar ?? 64, images: type.modality === 'camera' });
        agents.push({ input: { frame: raw, type: typeName }, raw, aligned: alignToGround(raw, this.space) });
        for (const c of raw.cameras) this.cameraPaths.set(`${scenarioKey}\u0000${ref.timestamp}\u0000${id}\u0000${c.name}`, c.imagePath);
      } catch (err) {
        if (id === egoId) throw err;
        // One unreadable agent is reported on the page; the frame goes on without it.
        agents.push({ error: `${typeName}: ${publicMessage(err)}` });
        notes.push(`agent ${id} left out: ${publicMessage(err)}`);
        this.opts.log?.(`heal view: agent ${id} of ${scenarioKey} ${ref.timestamp} left out: ${(err as Error).message}`);
      }
    }
    const egoRaw = agents[0].raw!;
    const egoAligned = agents[0].aligned!;
    const egoFromWorld = invert(egoAligned.lidarPose);

    const result: FrameResult = await this.pipeline.runFrame(
      agents.filter((a) => a.input).map((a) => a.input!),
      egoId,
      { mode: 'intermediate', scoreThreshold: this.opts.scoreThreshold },
    );

    // Predictions and GT: the run's own when it has this frame, else this pass's, matched here.
    let preds: { box: Box7; score: number; tp: boolean }[];
    let gt: { box: Box7; matched: boolean }[];
    if (runFrame) {
      preds = runFrame.detections;
      gt = runFrame.gt;
    } else {
      const gtBoxes = (await egoGroundTruth(this.ds, ref, egoRaw, this.space)).map((b) => b.box);
      const m = matchBoxes(result.detections, gtBoxes);
      preds = result.detections.map((d, i) => ({ box: d.box, score: d.score, tp: m.tp[i] }));
      gt = gtBoxes.map((box, i) => ({ box, matched: m.matched[i] }));
    }
    const boxMsg = (box: Box7, score: number, status: BoxStatus) => ({ box, corners: Array.from(boxToCorners(box)), score, status });

    // Points: every agent's scan moved into the ground-aligned ego frame, thinned evenly to the budget.
    const total = agents.reduce((n, a) => n + (a.aligned ? a.aligned.points.length / 4 : 0), 0);
    const stride = Math.max(1, Math.ceil(total / (this.opts.maxPoints ?? 300_000)));
    const xyz: number[] = [];
    const agentIndex: number[] = [];
    const agentMsgs = order.map((id, i) => {
      const a = agents[i];
      const kind = info?.agents.find((x) => x.id === id)?.kind ?? (id < 0 ? 'rsu' : 'vehicle');
      // The run's own record of who was fused wins: it may have dropped messages this pass did not.
      const used = runFrame?.agents.find((x) => x.id === id)?.used ?? result.used.some((u) => u.id === id);
      const skipped = a.error ?? result.skipped.find((s) => s.id === id)?.reason ?? '';
      if (!a.aligned) return { id, type: '', kind, ego: id === egoId, used: false, skipped };
      const egoFromAgent = multiply(egoFromWorld, a.aligned.lidarPose);
      const p = a.aligned.points;
      const n = p.length / 4;
      for (let k = 0; k < n; k += stride) {
        const x = p[k * 4],
          y = p[k * 4 + 1],
          z = p[k * 4 + 2];
        if (!Number.isFinite(x) || !Number.isFinite(y) || !Number.isFinite(z)) continue;
        const q = transformPoint(egoFromAgent, x, y, z);
        xyz.push(q[0], q[1], q[2]);
        agentIndex.push(i);
      }
      return {
        id,
        type: a.input!.type,
        kind,
        pose: Array.from(egoFromAgent),
        ego: id === egoId,
        used,
        skipped,
        distance: Math.hypot(egoFromAgent[3], egoFromAgent[7]),
        lidarFile: a.raw!.lidarFile,
        modality: this.registry.get(a.input!.type).modality,
        cameras: a.raw!.cameras.map((c) => ({ name: c.name })),
        pointsTotal: n,
      };
    });
    if (stride > 1) notes.push(`points thinned: every ${stride}th of ${total} shown`);

    const foreground = result.occupancy.map((t, level) => {
      const [A, , h, w] = t.shape;
      return { level, width: w, height: h, data: sigmoidBytes(t.data), agents: result.used.slice(0, A).map((u) => u.id) };
    });

    const message = {
      scenario: scenarioKey,
      timestamp: ref.timestamp,
      egoId,
      agents: agentMsgs,
      points: {
        xyz: new Uint8Array(Float32Array.from(xyz).buffer),
        agent: Uint8Array.from(agentIndex),
        count: agentIndex.length,
      },
      gt: gt.map((g) => boxMsg(g.box, 0, g.matched ? BoxStatus.Matched : BoxStatus.Missed)),
      predictions: preds.map((d) => boxMsg(d.box, d.score, d.tp ? BoxStatus.TruePositive : BoxStatus.FalsePositive)),
      foreground,
      range: [...this.space.range],
      leftHanded: this.ds.format === 'opv2v',
      detectionsFrom: runFrame ? 'run' : 'computed',
      iouThreshold: VIEW_IOU,
      notes,
      provider: result.provider,
      buildMs: performance.now() - t0,
    };
    const type = sceneSchema();
    const err = type.verify(message);
    if (err) throw new Error(`scene message for ${scenarioKey} ${ref.timestamp}: ${err}`);
    return type.encode(type.fromObject(message)).finish();
  }
}

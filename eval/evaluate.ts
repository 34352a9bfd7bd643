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

interface FrameWork {
  lines: FrameLine[];
  stats: { row: RowStats; line: FrameLine; det: { box: Box7; score: number }[] }[];
  gt: GtBox[];
  scene?: import('./mcap.ts').SceneFrame;
}

export async function evaluate(o: EvalOptions): Promise<EvalReport> {
  const log = o.log ?? (() => {});
  const t0 = performance.now();
  const space = spaceByName(o.profile);
  const registry = await loadRegistry(o.typesDirs ?? []);
  checkEvalOptions(o, registry, space);
  const ds = await openDataset(o.data);
  const frames = selectFrames(ds, o.split, o.limit, o.minAgents);
  const scenarioTimes = new Map(ds.scenarios().map((s) => [`${s.split}\u0000${s.name}`, s.timestamps]));
  const refsByKey = new Map(ds.frames().map((f) => [`${f.split}\u0000${f.scenario}\u0000${f.timestamp}`, f]));

  const pipeline = await CollabPipeline.create({
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
    log,
  });
  const codecs = new Map((o.codecs ?? []).map((c) => [c, parseCodec(c)] as [string, CodecSpec]));
  const links = new Map((o.links ?? []).map((l) => [l, parseLink(l)] as [string, LinkConfig]));
  const held: HeldMessages = new Map();
  // Each configuration on a link is its own ego: one row's senders' sequence numbers must not make
  // another row's late messages look replayed. Time is the link model's (simulated) here, so the
  // gate's wall-clock age limit, which the evaluation's own pace would trip, is lifted for them.
  const gates = new Map<string, EgoGate>();
  const gateFor = (key: string) => {
    let g = gates.get(key);
    if (!g) gates.set(key, (g = new EgoGate({ ...pipeline.gate.opts, maxAgeMs: Number.POSITIVE_INFINITY })));
    return g;
  };

  const outDir = path.resolve(o.out);
  await startRunFolder(outDir);
  const files = {
    run: path.join(outDir, 'run.json'),
    frames: path.join(outDir, 'frames.jsonl'),
    report: path.join(outDir, 'report.json'),
    html: path.join(outDir, 'report.html'),
    ...(o.mcap ? { mcap: path.resolve(o.mcap) } : {}),
  };
  const run = runJsonOf(o, space, pipeline);
  await writeFileAtomic(files.run, JSON.stringify(run, null, 2) + '\n');

  // The viewer keeps the last line it reads for a frame of the first combination and mode, so the
  // run's main variant (first dtype, dense) is written last among its siblings.
  const variants = variantsOf(o);
  const ordered = [...variants].reverse().sort((a, b) => o.fusion.indexOf(a.fusion) - o.fusion.indexOf(b.fusion));
  const rows = new Map<string, RowStats>();
  for (const combo of o.combos) for (const v of variants) rows.set(rowKey(combo, v), new RowStats(combo, v));

  const { SceneRecorder } = o.mcap ? await import('./mcap.ts') : { SceneRecorder: undefined };
  const recorder = SceneRecorder && o.mcap ? await SceneRecorder.create(path.resolve(o.mcap)) : undefined;

  const failures: FrameFailure[] = [];
  const lines: string[] = [];
  let evaluated = 0;
  let passMs = 0,
    passes = 0,
    signMs = 0,
    verifyMs = 0;
  const rejected: Record<string, number> = {};
  let lastCheckpoint = performance.now();
  const bar = o.progress?.(frames.length);

  const source: InputSource = { ds, registry, scenarioTimes, refsByKey, o };
  for (const ref of frames) {
    const work: FrameWork = { lines: [], stats: [], gt: [] };
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
          work.gt = await egoGroundTruth(ds, ref, rawEgo, space);
          if (recorder) {
            const agentsSeen = inputs.map((inp, k) => ({ frame: { ...inp.frame, lidarPose: truePoses[k] }, type: inp.type }));
            work.scene = { ref, egoId, agents: agentsSeen, gt: work.gt.map((g) => g.box), detections: [], space };
          }
        }
        for (const v of ordered) {
          const t = performance.now();
          const key = rowKey(combo, v);
          const linkStats = v.link ? emptyLinkStats(v.link) : undefined;
          const times = scenarioTimes.get(`${ref.split}\u0000${ref.scenario}`) ?? [ref.timestamp];
          const channel =
            v.link && linkStats
              ? linkChannel(
                  links.get(v.link)!,
                  o.linkSeed ?? o.seed,
                  `${ref.split}|${ref.scenario}|${ref.timestamp}`,
                  `${key}\u0000${ref.split}\u0000${ref.scenario}`,
                  times.indexOf(ref.timestamp),
                  held,
                  linkStats,
                )
              : undefined;
          const r: FrameResult = await pipeline.runFrame(v.poseNoise !== undefined ? noisy.get(v.poseNoise)! : inputs, egoId, {
            mode: PIPELINE_MODE[v.fusion],
            dtype: v.dtype,
            keep: v.keep,
            scoreThreshold: o.scoreThreshold,
            codec: v.codec ? codecs.get(v.codec) : undefined,
            channel,
            gate: v.link ? gateFor(key) : undefined,
          });
          const total = performance.now() - t;
          passMs += total;
          passes++;
          signMs += r.times.sign ?? 0;
          verifyMs += r.times.verify ?? 0;
          for (const [k, n] of Object.entries(r.rejected)) rejected[k] = (rejected[k] ?? 0) + n;
          const det = r.detections.map((d) => ({ box: d.box, score: d.score }));
          const line = frameLineOf(ref, egoId, combo, v, agents, notes, r, det, work.gt, total);
          if (linkStats) line.linkStats = linkStats;
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
    security: {
      signed: pipeline.gate.signed,
      signMsPerFrame: passes ? signMs / passes : 0,
      verifyMsPerFrame: passes ? verifyMs / passes : 0,
      shareOfFrame: passMs ? (signMs + verifyMs) / passMs : 0,
      rejected,
    },
    files,
  };
  await writeFileAtomic(files.report, JSON.stringify(report, null, 1) + '\n');
  const { renderReport } = await import('./report/html.ts');
  await writeFileAtomic(files.html, renderReport(report));
  await finishRunFolder(outDir);
  return report;
}

/** Plain aligned text: one row per configuration. */

/** run.json: what was evaluated, with what, and how (eval/contracts.ts). */
function runJsonOf(o: EvalOptions, space: SharedSpace, pipeline: CollabPipeline): RunJson {
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
    provider: pipeline.provider,
    weights: o.weights ? weightsName([o.weights].flat().map((w) => path.resolve(w)))! : null,
    fusionTrust: pipeline.trust,
    poseNoise: o.poseNoise,
    latency: o.latency,
    drop: o.drop,
    seed: o.seed,
    scoreThreshold: o.scoreThreshold ?? 0.2,
    messages: pipeline.opts.security ? `signed (${pipeline.opts.security.source})` : 'unsigned (insecure)',
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

// `heal bench inference --profile heal`: HEAL's m1 stage-1 network (the heal profile) on the
// inference grid (±102.4 m, 256×256 features), for 1, 3 and 5 agents of the bench world, every
// agent an m1 (64-beam LiDAR PointPillars), on every execution provider that loads here. Per
// stage: pillarization, each agent's encoder, the messages, the ego network (three per-level
// warps, fusion, head) and the decoding with NMS; the whole frame in wall time and in process
// CPU time (what the frame cost this process when other work shares the cores); the process's
// RSS high-water mark; and the peak of onnxruntime's CPU arena for the ego network, read from
// its profiler (onnxruntime-node has no other way to see it).
//
// WebGPU runs where a hardware adapter is; a software one (lavapipe) only with HEAL_BENCH_SOFTWARE_GPU=1.
//
// Weights: HEAL's checkpoint ../shared/fixtures/heal_reference/m1_stage1.pth when it is there
// (random, but HEAL's layout and magnitudes), else seeded random weights; the figures say which.
//
// Camera rows (m4, HEAL's ResNet-101 Lift-Splat): the bench world's ego with its 4 cameras at
// 800×600 (the size HEAL's camera config expects), alone, CPU provider: preprocess (resize, crop,
// normalise, the frustum geometry and the splat index) and encode (trunk, depth and image heads,
// lift, splat, BEV backbone, aligner), per agent and per camera (the agent's figure over its
// cameras: the trunk runs the 4 pictures as one batch), and the op types that take most of the
// encoder's time, from onnxruntime's profiler. Weights: m4_stage2.pth from
// ../shared/fixtures/heal_reference_cameras when there, else seeded random weights.

import * as os from 'node:os';
import * as path from 'node:path';
import { existsSync, promises as fs } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { openDataset } from '../datasets/open.ts';
import { cachedWorld } from '../datasets/synthetic/cached.ts';
import type { AgentFrame } from '../datasets/frame.ts';
import { loadRegistry } from '../perception/registry.ts';
import { alignToGround } from '../perception/ground.ts';
import { agentInputs, agentNetwork } from '../perception/encoders/agent.ts';
import { featureGrid, HEAL_SPACE } from '../perception/space.ts';
import { CollabPipeline, egoInputsFor, egoNetworkFor, weightsFromFile, type AgentInput } from '../fusion/pipeline.ts';
import { exportOnnx } from '../models/onnx.ts';
import { initWeights, pickWeights } from '../models/weights.ts';
import { cudaMissingReason, webgpuAdapter, webgpuMissingReason, type Device } from '../models/runtime.ts';
import { world, WORLD_OPTIONS } from './inference.ts';
import { median } from './timing.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
export const HEAL_CHECKPOINT = path.join(here, '..', '..', 'shared', 'fixtures', 'heal_reference', 'm1_stage1.pth');
export const HEAL_CAMERA_CHECKPOINT = path.join(here, '..', '..', 'shared', 'fixtures', 'heal_reference_cameras', 'm4_stage2.pth');
const AGENTS = [1, 3, 5];
const REPEATS = 3;
const SEED = 1;

const load = () =>
  os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');
const mb = (bytes: number) => +(bytes / 2 ** 20).toFixed(1);

export async function run(): Promise<Record<string, number | string>> {
  const space = HEAL_SPACE;
  const ds = await openDataset(await world());
  const ref = ds.frames()[0];
  const registry = await loadRegistry();
  const agents: AgentInput[] = [];
  for (const id of ref.agentIds) agents.push({ frame: await ds.readAgentFrame(ref, id, { lidar: 64, images: false }), type: 'm1' });
  const weightsFile = existsSync(HEAL_CHECKPOINT) ? HEAL_CHECKPOINT : undefined;
  const [w, h] = featureGrid(space);
  const out: Record<string, number | string> = {
    profile: space.name,
    grid: `${w}x${h} features, range x [${space.range[0]}, ${space.range[3]}] y [${space.range[1]}, ${space.range[4]}] m`,
    weights: weightsFile
      ? `HEAL's m1 stage-1 checkpoint ${path.relative(process.cwd(), weightsFile)}`
      : `seeded random weights (seed ${SEED}): ${HEAL_CHECKPOINT} is absent`,
    agents_in_scene: agents.length,
    types: agents.map((a) => `${a.frame.agentId}:${a.type}`).join(' '),
    cores: os.cpus().length,
    load_average_start: load(),
  };
  if (agents.length < Math.max(...AGENTS)) out.note_agents = `the bench world has ${agents.length} agents; larger counts are skipped`;

  const devices: Device[] = ['cpu'];
  const gpuMissing = await webgpuMissingReason();
  const adapter = gpuMissing ? undefined : await webgpuAdapter();
  // A 256² pass on a software rasterizer takes minutes and says nothing about a GPU.
  if (gpuMissing) out.webgpu = `skipped: ${gpuMissing}`;
  else if (adapter?.software && !process.env.HEAL_BENCH_SOFTWARE_GPU)
    out.webgpu = `skipped: the adapter is a software rasterizer (${adapter.description}); HEAL_BENCH_SOFTWARE_GPU=1 times it anyway`;
  else devices.push('webgpu');
  const cudaMissing = cudaMissingReason();
  if (!cudaMissing) devices.push('cuda');
  else out.cuda = `skipped: ${cudaMissing}`;

  const rssBefore = process.resourceUsage().maxRSS * 1024;
  out.max_rss_before_mb = mb(rssBefore);
  for (const device of devices) {
    let pipeline: CollabPipeline;
    try {
      pipeline = await CollabPipeline.create({ space, registry, device, weightsFile, seed: SEED });
    } catch (err) {
      out[`${device}.skipped`] = `the ego network did not load: ${(err as Error).message}`;
      continue;
    }
    out[`${device}.provider`] = pipeline.provider;
    for (const n of AGENTS) {
      if (n > agents.length) continue;
      const subset = agents.slice(0, n);
      const egoId = subset[0].frame.agentId;
      const p = `${device}.agents${n}`;
      const first = await pipeline.runFrame(subset, egoId, { mode: 'intermediate' }); // warm-up: sessions, arena
      if (first.used.length !== n) out[`${p}.note`] = `only ${first.used.length} of ${n} agents within communication range`;
      const runs: Record<string, number>[] = [];
      const walls: number[] = [];
      const cpus: number[] = [];
      let detections = 0;
      for (let r = 0; r < REPEATS; r++) {
        const c0 = process.cpuUsage();
        const t0 = performance.now();
        const res = await pipeline.runFrame(subset, egoId, { mode: 'intermediate' });
        walls.push(performance.now() - t0);
        const c = process.cpuUsage(c0);
        cpus.push((c.user + c.system) / 1000);
        runs.push(res.times);
        detections = res.detections.length;
      }
      const stage = (k: string) => median(runs.map((t) => t[k] ?? 0));
      out[`${p}.preprocess_ms`] = stage('preprocess.m1');
      out[`${p}.encode_ms`] = stage('encode.m1');
      out[`${p}.encode_per_agent_ms`] = stage('encode.m1') / first.used.length;
      if (n > 1) {
        out[`${p}.serialize_ms`] = stage('serialize');
        out[`${p}.deserialize_ms`] = stage('deserialize');
      }
      out[`${p}.warp+fuse+head_ms`] = stage('warp+fuse+head');
      out[`${p}.decode+nms_ms`] = stage('decode+nms');
      out[`${p}.total_ms`] = median(walls);
      out[`${p}.total_cpu_ms`] = median(cpus);
      out[`${p}.detections`] = detections;
      out[`${p}.max_rss_mb`] = mb(process.resourceUsage().maxRSS * 1024);
      if (device === 'cpu') out[`${p}.ego_arena_peak_mb`] = await egoArenaPeak(pipeline, subset, weightsFile, registry);
      out[`${p}.load_average`] = load();
    }
  }
  await cameraRows(out, registry);
  out.load_average_end = load();
  out.note =
    'total_ms is the wall time of one frame (median of 3), total_cpu_ms the CPU time this process spent on it (all threads); ' +
    'max_rss_mb is the process high-water mark so far (it never goes down); ego_arena_peak_mb is onnxruntime’s CPU arena held by the ego network, from its profiler; ' +
    'cpu.m4.*: the ego alone as HEAL’s m4 (4 cameras at 800×600), per camera = the agent’s figure over its cameras, encoder_top*_op: node time by op type over 3 profiled runs (share of all node time; Cast and CumSum are mostly the splat’s float64 running sums over every kept frustum point × 128 channels)';
  return out;
}

/** m4's rows (see the header): out['cpu.m4.*']. */
async function cameraRows(out: Record<string, number | string>, registry: Awaited<ReturnType<typeof loadRegistry>>): Promise<void> {
  const space = HEAL_SPACE;
  // The bench world again, its pictures at the size HEAL's m4 config reads.
  const dir = (await cachedWorld({ ...WORLD_OPTIONS, camera: { width: 800, height: 600 } }, { name: 'bench-world-800x600' })).dir;
  const ds = await openDataset(dir);
  const ref = ds.frames()[0];
  const frame = await ds.readAgentFrame(ref, ref.agentIds[0], { images: true });
  const weightsFile = existsSync(HEAL_CAMERA_CHECKPOINT) ? HEAL_CAMERA_CHECKPOINT : undefined;
  const cameras = frame.cameras.length;
  const p = 'cpu.m4';
  out[`${p}.weights`] = weightsFile
    ? `HEAL's m4 stage-2 checkpoint ${path.relative(process.cwd(), weightsFile)}`
    : `seeded random weights (seed ${SEED}): ${HEAL_CAMERA_CHECKPOINT} is absent`;
  out[`${p}.cameras`] = `${cameras} × ${frame.cameras[0]?.image?.width}×${frame.cameras[0]?.image?.height}`;
  const pipeline = await CollabPipeline.create({ space, registry, device: 'cpu', weightsFile, seed: SEED });
  const agents: AgentInput[] = [{ frame, type: 'm4' }];
  await pipeline.runFrame(agents, frame.agentId, { mode: 'intermediate' }); // warm-up: sessions, arena
  const runs: Record<string, number>[] = [];
  for (let r = 0; r < REPEATS; r++) runs.push((await pipeline.runFrame(agents, frame.agentId, { mode: 'intermediate' })).times);
  const stage = (k: string) => median(runs.map((t) => t[k] ?? 0));
  out[`${p}.preprocess_per_agent_ms`] = stage('preprocess.m4');
  out[`${p}.preprocess_per_camera_ms`] = stage('preprocess.m4') / cameras;
  out[`${p}.encode_per_agent_ms`] = stage('encode.m4');
  out[`${p}.encode_per_camera_ms`] = stage('encode.m4') / cameras;
  out[`${p}.frame_total_ms`] = median(runs.map((t) => Object.values(t).reduce((a, b) => a + b, 0)));
  const prof = await encoderProfile(frame, weightsFile, registry);
  prof.top.forEach((t, i) => {
    out[`${p}.encoder_top${i + 1}_op`] = `${t.op}: ${(t.ms / REPEATS).toFixed(0)} ms a run, ${(100 * t.share).toFixed(1)} %`;
  });
  out[`${p}.encoder_profiled_ms_per_run`] = prof.totalMs;
  out[`${p}.encoder_arena_peak_mb`] = prof.arenaPeakMb;
  out[`${p}.max_rss_mb`] = mb(process.resourceUsage().maxRSS * 1024);
  out[`${p}.load_average`] = load();
}

/**
 * The m4 encoder's node time by op type (onnxruntime's profiler, REPEATS runs after a warm-up) and
 * its CPU arena peak: the top three op types with their share of all node time, per run.
 */
async function encoderProfile(
  frame: AgentFrame,
  weightsFile: string | undefined,
  registry: Awaited<ReturnType<typeof loadRegistry>>,
): Promise<{ top: { op: string; ms: number; share: number }[]; totalMs: number; arenaPeakMb: number }> {
  const space = HEAL_SPACE;
  const network = registry.profile('m4', space.name).network;
  const desc = agentNetwork(network, space);
  const weights = weightsFile ? pickWeights(desc, await weightsFromFile(weightsFile, space, registry), weightsFile) : initWeights(desc, SEED);
  const inputs = agentInputs(network, space, alignToGround(frame, space));
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'heal-bench-'));
  try {
    const session = await ort.InferenceSession.create(exportOnnx(desc, weights), {
      executionProviders: ['cpu'],
      graphOptimizationLevel: 'all',
      enableProfiling: true,
      profileFilePrefix: path.join(dir, 'm4'),
    });
    const feeds: Record<string, ort.Tensor> = {};
    for (const name of session.inputNames) {
      const t = inputs[name];
      feeds[name] = new ort.Tensor(t.data instanceof Int32Array ? 'int32' : 'float32', t.data as Float32Array, t.shape);
    }
    // The first run is a warm-up (its profile is mostly allocation); one run's shares swing by
    // ten points with the load, so REPEATS runs are summed.
    for (let r = 0; r <= REPEATS; r++) await session.run(feeds);
    session.endProfiling();
    await session.release();
    const [file] = await fs.readdir(dir);
    if (!file) return { top: [], totalMs: Number.NaN, arenaPeakMb: Number.NaN };
    type Event = { cat?: string; name?: string; dur?: number; args?: { op_name?: string; mem_arena_held?: string } };
    const events = JSON.parse(await fs.readFile(path.join(dir, file), 'utf8')) as Event[];
    // Node events after the warm-up run.
    const first = events.find((e) => e.cat === 'Session' && e.name === 'model_run') as (Event & { ts: number }) | undefined;
    const start = first ? first.ts + (first.dur ?? 0) : 0;
    const byOp = new Map<string, number>();
    for (const e of events as (Event & { ts: number })[]) {
      if (e.cat !== 'Node' || !e.name?.endsWith('_kernel_time') || e.ts < start) continue;
      const op = e.args?.op_name ?? '?';
      byOp.set(op, (byOp.get(op) ?? 0) + (e.dur ?? 0));
    }
    const total = [...byOp.values()].reduce((a, b) => a + b, 0);
    const top = [...byOp]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 3)
      .map(([op, us]) => ({ op, ms: us / 1000, share: us / total }));
    return { top, totalMs: +(total / 1000 / REPEATS).toFixed(1), arenaPeakMb: mb(Math.max(0, ...events.map((e) => Number(e.args?.mem_arena_held ?? 0)))) };
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

/**
 * The most the ego network's CPU arena held during one frame, in MB: a session like the
 * pipeline's, with onnxruntime's profiler on, whose node events carry the arena's size.
 */
async function egoArenaPeak(
  pipeline: CollabPipeline,
  agents: AgentInput[],
  weightsFile: string | undefined,
  registry: Awaited<ReturnType<typeof loadRegistry>>,
): Promise<number> {
  const space = HEAL_SPACE;
  const desc = egoNetworkFor(space);
  const weights = weightsFile ? pickWeights(desc, await weightsFromFile(weightsFile, space, registry), weightsFile) : initWeights(desc, SEED);
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'heal-bench-'));
  try {
    const session = await ort.InferenceSession.create(exportOnnx(desc, weights), {
      executionProviders: ['cpu'],
      graphOptimizationLevel: 'all',
      enableProfiling: true,
      profileFilePrefix: path.join(dir, 'ego'),
    });
    const { features, poses } = await pipeline.encodeScene(agents, agents[0].frame.agentId);
    const [W, H] = featureGrid(space);
    const stacked = new Float32Array(features.length * space.channels * H * W);
    features.forEach((f, i) => stacked.set(f, i * f.length));
    const inputs = egoInputsFor(space, stacked, poses, new Float32Array(features.length * H * W).fill(1), []);
    const feeds: Record<string, ort.Tensor> = {};
    for (const name of session.inputNames) feeds[name] = new ort.Tensor('float32', inputs[name].data as Float32Array, inputs[name].shape);
    await session.run(feeds);
    // Writes <prefix>_<date>.json; the name is not returned, so the file is found in the folder.
    session.endProfiling();
    await session.release();
    const [file] = await fs.readdir(dir);
    if (!file) return Number.NaN;
    const events = JSON.parse(await fs.readFile(path.join(dir, file), 'utf8')) as { args?: { mem_arena_held?: string } }[];
    return mb(Math.max(0, ...events.map((e) => Number(e.args?.mem_arena_held ?? 0))));
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

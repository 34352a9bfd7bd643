// Writes a synthetic dataset in the OPV2V-H layout (formats.md §1.1):
//   <out>/<split>/<scenario>/data_protocol.yaml
//   <out>/<split>/<scenario>/<agent id>/<ts>.yaml, <ts>.pcd, <ts>_32.pcd, <ts>_16.pcd,
//                                       <ts>_camera0..3.png, <ts>_depth0..3.png
// Frames are rendered in worker threads (one task per scenario frame, all agents of it), and
// every file is written atomically with the frame YAML last, so an interrupted run leaves no
// half-written frame visible to readers. The bytes depend only on the options, never on the
// number of workers or the order they finish in.

import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { writeFileAtomic } from '../io.ts';
import type { PcdDataFormat } from '../pcd.ts';
import { Scene } from './raycast.ts';
import { type RenderSettings, renderAgentFrame } from './render.ts';
import { buildScenario, frameSolids } from './scenario.ts';
import { LIDAR_CONFIGS } from './lidar.ts';
import { VEHICLE_CAMERAS, HORIZONTAL_FOV_DEG } from './camera.ts';
import { toYaml } from './writer.ts';
import type { ScenarioWorld } from './world.ts';

export const SPLITS = ['train', 'validate', 'test'] as const;
export type Split = (typeof SPLITS)[number];
/** Bump when the generator's output changes for the same options. */
export const GENERATOR_VERSION = 1;

export interface GenerateOptions {
  out: string;
  /** Total number of scenarios, shared out by splitCounts(). */
  scenarios: number;
  frames: number;
  seed: number;
  /** Picture size, or null for LiDAR-only data. */
  camera: { width: number; height: number } | null;
  /** Which splits to write (the others are skipped, not renumbered). */
  splits: Split[];
  /** Worker threads; 1 renders in this thread. */
  jobs: number;
  pcdFormat: PcdDataFormat;
  shadows: boolean;
  /**
   * Write only shard `index` of `count`: the scenarios whose place in the whole world (train, then
   * validate, then test) is index modulo count. Each scenario's files are the unsharded run's.
   */
  shard?: { index: number; count: number };
}

export interface GenerateSummary {
  scenarios: { split: Split; name: string; agents: number[]; frames: number }[];
  agentFrames: number;
  points64: number;
  visibleBoxes: number;
  seconds: number;
}

export interface ProgressEvent {
  split: string;
  scenario: string;
  agent: number;
  timestamp: string;
}

/**
 * How N scenarios are shared out: validate and test get 20 % each (at least one once N ≥ 3 and
 * N ≥ 2 respectively), train the rest. 1 → 1/0/0, 3 → 1/1/1, 5 → 3/1/1, 10 → 6/2/2.
 * Scenario k of a split is the same whatever N is, so growing N only appends scenarios.
 */
export function splitCounts(total: number): Record<Split, number> {
  const fifth = Math.round(total * 0.2);
  const test = total >= 2 ? Math.max(1, fifth) : 0;
  const validate = total >= 3 ? Math.max(1, fifth) : 0;
  return { train: total - test - validate, validate, test };
}

interface FrameTask {
  split: Split;
  index: number;
  frame: number;
  dir: string;
  timestamp: string;
}

/** The YAML beside the agent folders: the simulation and sensor setup of the scenario. */
export function dataProtocolYaml(world: ScenarioWorld, opts: Pick<GenerateOptions, 'camera' | 'frames' | 'seed' | 'pcdFormat'>): string {
  const lidar = LIDAR_CONFIGS[64];
  const rsu = world.agents.find((a) => a.kind === 'rsu')!;
  const sunEl = Math.asin(world.town.sun[2]) * (180 / Math.PI);
  const sunAz = Math.atan2(world.town.sun[1], world.town.sun[0]) * (180 / Math.PI);
  const r3 = (v: number) => Math.round(v * 1000) / 1000;
  return toYaml(
    {
      description: 'heal synthetic scenario: procedural town and traffic written in the OPV2V-H layout',
      world: {
        sync_mode: true,
        fixed_delta_seconds: 0.05,
        seed: opts.seed,
        weather: { sun_altitude_angle: r3(sunEl), sun_azimuth_angle: r3(sunAz), cloudiness: 0, precipitation: 0, fog_density: 0 },
      },
      vehicle_base: {
        sensing: {
          perception: {
            camera: {
              num: 4,
              fov: HORIZONTAL_FOV_DEG,
              image_size_x: opts.camera?.width ?? 0,
              image_size_y: opts.camera?.height ?? 0,
              positions: VEHICLE_CAMERAS.map((m) => [m.x, m.y, m.z, m.yaw]),
            },
            lidar: {
              channels: lidar.channels,
              range: lidar.range,
              upper_fov: lidar.upperFov,
              lower_fov: lidar.lowerFov,
              rotation_frequency: 20,
              points_per_second: lidar.channels * lidar.azimuthSteps * 20,
              noise_stddev: lidar.noiseStd,
              dropoff_general_rate: lidar.dropout,
              dropoff_intensity_limit: 1,
              dropoff_zero_intensity: 0,
              position: [-0.5, 0, 1.9],
            },
          },
        },
      },
      synthetic: {
        generator: 'heal generate',
        version: GENERATOR_VERSION,
        split: world.split,
        index: world.index,
        frames: opts.frames,
        agents: world.agents.map((a) => a.id),
        rsu_mast_height: rsu.mastHeight!,
        lidar_files: { '<ts>.pcd': 64, '<ts>_32.pcd': 32, '<ts>_16.pcd': 16 },
        lidar_azimuth_steps: lidar.azimuthSteps,
        pcd_format: opts.pcdFormat,
        cameras: opts.camera !== null,
        roads_x: world.town.xs,
        roads_y: world.town.ys,
        vehicles: world.vehicles.length,
      },
    },
    { ints: true },
  );
}

/** Renders and writes every agent of one scenario frame; calls onAgent after each agent. */
export async function writeFrame(
  world: ScenarioWorld,
  frame: number,
  dir: string,
  settings: RenderSettings & { pcdFormat: PcdDataFormat },
  onAgent: (agent: number, stats: { points64: number; visible: number }) => void,
): Promise<void> {
  const scene = new Scene(frameSolids(world, frame));
  for (let a = 0; a < world.agents.length; a++) {
    const out = renderAgentFrame(world, scene, a, frame, settings);
    const agentDir = path.join(dir, String(world.agents[a].id));
    await Promise.all(out.files.map((f) => writeFileAtomic(path.join(agentDir, f.name), f.data)));
    await writeFileAtomic(path.join(agentDir, out.yamlName), out.yaml);
    onAgent(world.agents[a].id, out.stats);
  }
}

/** Caches the scenario a worker (or the main thread) is rendering frames of. */
export class ScenarioCache {
  private key = '';
  private world: ScenarioWorld | undefined;
  constructor(
    private readonly seed: number,
    private readonly frames: number,
  ) {}
  get(split: string, index: number): ScenarioWorld {
    const key = `${split}/${index}`;
    if (key !== this.key || !this.world) {
      this.world = buildScenario({ seed: this.seed, split, index, frames: this.frames });
      this.key = key;
    }
    return this.world;
  }
}

export async function generateDataset(opts: GenerateOptions, onProgress?: (done: number, total: number, ev: ProgressEvent) => void): Promise<GenerateSummary> {
  validateOptions(opts);
  const t0 = performance.now();
  const counts = splitCounts(opts.scenarios);
  const summary: GenerateSummary = { scenarios: [], agentFrames: 0, points64: 0, visibleBoxes: 0, seconds: 0 };
  const tasks: FrameTask[] = [];
  const cache = new ScenarioCache(opts.seed, opts.frames);
  let total = 0;
  let place = 0;
  for (const split of SPLITS) {
    if (!opts.splits.includes(split)) continue;
    for (let index = 0; index < counts[split]; index++) {
      if (opts.shard && place++ % opts.shard.count !== opts.shard.index) continue;
      const world = cache.get(split, index);
      const dir = path.join(opts.out, split, world.name);
      await writeFileAtomic(path.join(dir, 'data_protocol.yaml'), dataProtocolYaml(world, opts));
      summary.scenarios.push({ split, name: world.name, agents: world.agents.map((a) => a.id), frames: opts.frames });
      for (let frame = 0; frame < opts.frames; frame++) tasks.push({ split, index, frame, dir, timestamp: world.timestamps[frame] });
      total += world.agents.length * opts.frames;
    }
  }
  let done = 0;
  const settings = { camera: opts.camera, shadows: opts.shadows, pcdFormat: opts.pcdFormat };
  const report = (task: FrameTask, agent: number, stats: { points64: number; visible: number }) => {
    done++;
    summary.agentFrames++;
    summary.points64 += stats.points64;
    summary.visibleBoxes += stats.visible;
    onProgress?.(done, total, { split: task.split, scenario: path.basename(task.dir), agent, timestamp: task.timestamp });
  };
  const jobs = Math.max(1, Math.min(opts.jobs, tasks.length));
  if (jobs <= 1) {
    for (const task of tasks) {
      await writeFrame(cache.get(task.split, task.index), task.frame, task.dir, settings, (agent, stats) => report(task, agent, stats));
    }
  } else {
    await runWorkers(jobs, tasks, opts, (task, agent, stats) => report(task, agent, stats));
  }
  summary.seconds = (performance.now() - t0) / 1000;
  return summary;
}

function validateOptions(o: GenerateOptions): void {
  const positiveInt = (v: number, name: string, min: number) => {
    if (!Number.isInteger(v) || v < min) throw new Error(`${name} must be an integer ≥ ${min} (got ${v})`);
  };
  positiveInt(o.scenarios, 'scenarios', 1);
  positiveInt(o.frames, 'frames', 1);
  positiveInt(o.jobs, 'jobs', 1);
  if (!Number.isSafeInteger(o.seed)) throw new Error(`seed must be an integer (got ${o.seed})`);
  if (o.camera) {
    positiveInt(o.camera.width, 'camera width', 16);
    positiveInt(o.camera.height, 'camera height', 16);
  }
  if (o.splits.length === 0) throw new Error('no splits selected');
}

/** URL of tsx's ESM register API (the `import` condition of its `./esm/api` export). */
function tsxEsmApi(): string {
  const resolve = (import.meta as { resolve?: (s: string) => string }).resolve;
  if (typeof resolve === 'function') {
    try {
      return resolve('tsx/esm/api');
    } catch {
      // fall through: some test runners do not provide import.meta.resolve
    }
  }
  const pkg = createRequire(import.meta.url).resolve('tsx/package.json');
  return pathToFileURL(path.join(path.dirname(pkg), 'dist', 'esm', 'api', 'index.mjs')).href;
}

/**
 * A worker entry that registers tsx's loader in the worker's own thread before importing the
 * TypeScript worker module (hooks registered in the main thread do not reach workers).
 */
function workerEntry(): URL {
  const api = tsxEsmApi();
  const target = new URL('./worker.ts', import.meta.url).href;
  const code = `import { register } from ${JSON.stringify(api)}; register(); await import(${JSON.stringify(target)});`;
  return new URL(`data:text/javascript,${encodeURIComponent(code)}`);
}

async function runWorkers(
  jobs: number,
  tasks: FrameTask[],
  opts: GenerateOptions,
  report: (task: FrameTask, agent: number, stats: { points64: number; visible: number }) => void,
): Promise<void> {
  const queue = [...tasks];
  const entry = workerEntry();
  const workers: Worker[] = [];
  const current = new Map<Worker, FrameTask>();
  let finished = false;
  try {
    await new Promise<void>((resolve, reject) => {
      let running = 0;
      let failed = false;
      const fail = (err: Error) => {
        if (failed) return;
        failed = true;
        reject(err);
      };
      const feed = (w: Worker) => {
        const task = queue.shift();
        if (!task || failed) {
          running--;
          if (running === 0 && !failed) resolve();
          return;
        }
        current.set(w, task);
        w.postMessage({ type: 'frame', task });
      };
      for (let k = 0; k < jobs; k++) {
        const w = new Worker(entry, {
          workerData: { seed: opts.seed, frames: opts.frames, settings: { camera: opts.camera, shadows: opts.shadows, pcdFormat: opts.pcdFormat } },
        });
        workers.push(w);
        running++;
        w.on('message', (msg: { type: string; agent?: number; stats?: { points64: number; visible: number }; message?: string }) => {
          const task = current.get(w)!;
          if (msg.type === 'agent') report(task, msg.agent!, msg.stats!);
          else if (msg.type === 'done') feed(w);
          else if (msg.type === 'error') fail(new Error(msg.message));
        });
        w.on('error', (err) => fail(err));
        w.on('exit', (code) => {
          if (code !== 0 && !finished) fail(new Error(`render worker exited with code ${code}`));
        });
        feed(w);
      }
    });
  } finally {
    finished = true;
    await Promise.all(workers.map((w) => w.terminate()));
  }
}

/** Default worker count: the machine's cores, at most 8. */
export function defaultJobs(): number {
  const n = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
  return Math.max(1, Math.min(8, n));
}

/** True when `dir` exists and has entries. */
export async function nonEmptyDir(dir: string): Promise<boolean> {
  try {
    return (await fs.readdir(dir)).length > 0;
  } catch {
    return false;
  }
}

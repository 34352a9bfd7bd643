// The collaborative pass, stage by stage, for 1–5 agents, on every execution provider that
// loads here (CPU always; WebGPU when an adapter exists; CUDA when its provider is installed),
// side by side. Also message sizes per feature dtype against the raw point cloud.

import { cachedWorld, type WorldOptions } from '../datasets/synthetic/cached.ts';
import { openDataset } from '../datasets/open.ts';
import { loadRegistry } from '../perception/registry.ts';
import { SMALL_SPACE } from '../perception/space.ts';
import { CollabPipeline, type AgentInput } from '../fusion/pipeline.ts';
import { encodeMessage, gridForSpace, type FeatureDType } from '../fusion/messages.ts';
import { cudaMissingReason, webgpuMissingReason, type Device } from '../models/runtime.ts';
import { encodePcd } from '../datasets/pcd.ts';
import { median } from './timing.ts';

// Seed 2's first test scenario (3 scenarios → one per split, only test is written): five agents.
const SEED = 2;
const REPEATS = 3;
const TYPES = ['m1', 'm2', 'm3', 'm4'];

export const WORLD_OPTIONS: WorldOptions = {
  scenarios: 3,
  frames: 1,
  seed: SEED,
  camera: { width: 400, height: 300 },
  splits: ['test'],
  pcdFormat: 'ascii',
  shadows: true,
};

export async function world(): Promise<string> {
  return (await cachedWorld(WORLD_OPTIONS, { name: 'bench-world' })).dir;
}

export async function run(): Promise<Record<string, number | string>> {
  const ds = await openDataset(await world());
  const ref = ds.frames()[0];
  const registry = await loadRegistry();
  const agents: AgentInput[] = [];
  for (const [i, id] of ref.agentIds.entries()) {
    const type = registry.get(TYPES[i % TYPES.length]);
    agents.push({ frame: await ds.readAgentFrame(ref, id, { lidar: type.sensor.lidar ?? 64, images: type.modality === 'camera' }), type: type.name });
  }
  const out: Record<string, number | string> = {
    agents_in_scene: agents.length,
    profile: SMALL_SPACE.name,
    types: agents.map((a) => `${a.frame.agentId}:${a.type}`).join(' '),
  };

  const devices: Device[] = ['cpu'];
  const gpuMissing = await webgpuMissingReason();
  if (!gpuMissing) devices.push('webgpu');
  else out.webgpu = `skipped: ${gpuMissing}`;
  if (!cudaMissingReason()) devices.push('cuda');
  else out.cuda = 'skipped: CUDA provider not installed';

  for (const device of devices) {
    const pipeline = await CollabPipeline.create({ space: SMALL_SPACE, registry, device, seed: 1 });
    out[`${device}.provider`] = pipeline.provider;
    for (let n = 1; n <= agents.length; n++) {
      const subset = agents.slice(0, n);
      const egoId = subset[0].frame.agentId;
      await pipeline.runFrame(subset, egoId, { mode: 'intermediate' }); // warm-up: sessions, shaders, splat indices
      const runs: Record<string, number>[] = [];
      const totals: number[] = [];
      for (let r = 0; r < REPEATS; r++) {
        const t0 = performance.now();
        const res = await pipeline.runFrame(subset, egoId, { mode: 'intermediate' });
        totals.push(performance.now() - t0);
        runs.push(res.times);
      }
      for (const stage of Object.keys(runs[0]).sort()) out[`${device}.agents${n}.${stage}_ms`] = median(runs.map((t) => t[stage] ?? 0));
      out[`${device}.agents${n}.total_ms`] = median(totals);
    }
  }

  // Message sizes: one agent's [C, H', W'] features per dtype, dense and sparse, against its raw LiDAR.
  const pipeline = await CollabPipeline.create({ space: SMALL_SPACE, registry, device: 'cpu', seed: 1 });
  const sender = agents[1] ?? agents[0];
  const features = await pipeline.encode(sender);
  const base = {
    agentId: String(sender.frame.agentId),
    agentType: sender.type,
    timestamp: sender.frame.timestamp,
    sequence: 0,
    pose: sender.frame.lidarPose,
    grid: gridForSpace(SMALL_SPACE),
    features,
  };
  for (const dtype of ['float32', 'float16', 'int8'] as FeatureDType[]) {
    out[`message.${dtype}_bytes`] = encodeMessage(base, { dtype }).length;
    // Half the cells: the threshold at the median cell magnitude, as a stand-in for a foreground mask.
    out[`message.${dtype}_sparse50_bytes`] = encodeMessage(base, { dtype, sparseThreshold: medianCellMax(features) }).length;
  }
  const lidar = agents.find((a) => a.type === 'm1')!.frame;
  out['raw_lidar.points'] = lidar.points.length / 4;
  out['raw_lidar.float32_bytes'] = lidar.points.byteLength;
  out['raw_lidar.pcd_binary_compressed_bytes'] = encodePcd(lidar.points, 'binary_compressed').length;
  out['raw_lidar.pcd_ascii_bytes'] = encodePcd(lidar.points, 'ascii').length;
  out.note = 'features are from seeded random weights; sparse sizes depend on trained features';
  return out;
}

function medianCellMax(f: Float32Array): number {
  const [W, H] = [64, 64];
  const C = f.length / (W * H);
  const m = new Float32Array(W * H);
  for (let c = 0; c < C; c++) for (let i = 0; i < W * H; i++) m[i] = Math.max(m[i], Math.abs(f[c * W * H + i]));
  return median(Array.from(m));
}

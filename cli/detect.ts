// `heal detect DIR`: the collaborative pass on dataset frames. Every agent encodes its own sensors
// with its agent type, sends a protobuf message, and the ego fuses what it receives and detects.

import { parseArgs } from 'node:util';
import * as path from 'node:path';
import { openDataset } from '../datasets/open.ts';
import type { FrameRef } from '../datasets/dataset.ts';
import { writeFileAtomic } from '../datasets/io.ts';
import { loadRegistry } from '../perception/registry.ts';
import { spaceByName } from '../perception/space.ts';
import { CollabPipeline, type AgentInput, type FusionMode, type FrameResult } from '../fusion/pipeline.ts';
import type { FeatureDType } from '../fusion/messages.ts';
import { DEVICES, type Device } from '../models/runtime.ts';
import { formatTrust } from '../fusion/trust.ts';
import { progress } from './progress.ts';
import { shippedWeights } from '../models/shipped.ts';

const USAGE = `usage: heal detect DIR [options]

Runs heterogeneous collaborative perception on dataset frames: each agent encodes its sensors
with its agent type into the shared BEV space and sends a protobuf message; the ego warps,
fuses (pyramid fusion), detects and decodes boxes in its own LiDAR frame.

options:
  --scenario NAME     scenario (NAME or SPLIT/NAME; default: the first)
  --frame TS          timestamp (default: the scenario's first); --limit N runs N frames from it
  --limit N           number of frames to run (default 1)
  --ego ID            ego agent (default: the frame's default ego, never a roadside unit)
  --types LIST        agent types given to the agents in ego order, cycled (default m1,m2,m3,m4)
  --fusion MODE       intermediate (default) | late | none
  --dtype T           feature dtype on the wire: float32 (default) | float16 | int8
  --device D          auto (default) | cuda | webgpu | cpu
  --profile P         shared-space profile: small (default) | heal
  --weights FILE      weight file (default: the shipped weights of --profile, else seeded random
                      weights, and then the boxes mean nothing)
  --types-dir DIR     extra agent-type declarations (*.json)
  --json FILE         write every frame's result as JSON
  -h, --help          this text`;

export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      scenario: { type: 'string' },
      frame: { type: 'string' },
      limit: { type: 'string' },
      ego: { type: 'string' },
      types: { type: 'string' },
      fusion: { type: 'string' },
      dtype: { type: 'string' },
      device: { type: 'string' },
      profile: { type: 'string' },
      weights: { type: 'string' },
      'types-dir': { type: 'string', multiple: true },
      json: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (positionals.length !== 1) {
    console.error(USAGE);
    return 2;
  }
  const mode = (values.fusion ?? 'intermediate') as FusionMode;
  if (!['intermediate', 'late', 'none'].includes(mode)) throw new Error(`--fusion must be intermediate, late or none (got "${values.fusion}")`);
  const dtype = (values.dtype ?? 'float32') as FeatureDType;
  if (!['float32', 'float16', 'int8'].includes(dtype)) throw new Error(`--dtype must be float32, float16 or int8 (got "${values.dtype}")`);
  const device = (values.device ?? 'auto') as Device;
  if (!DEVICES.includes(device)) throw new Error(`--device must be one of ${DEVICES.join(', ')} (got "${values.device}")`);
  const limit = values.limit ? Number(values.limit) : 1;
  if (!Number.isInteger(limit) || limit < 1) throw new Error(`--limit must be a positive integer (got "${values.limit}")`);

  const space = spaceByName(values.profile ?? 'small');
  const registry = await loadRegistry(values['types-dir'] ?? []);
  const typeCycle = (values.types ?? 'm1,m2,m3,m4')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const t of typeCycle) registry.profile(t, space.name);

  const ds = await openDataset(positionals[0]);
  const frames = pickFrames(ds.frames(), values.scenario, values.frame, limit);
  const pipeline = await CollabPipeline.create({ space, registry, device, weightsFile: values.weights ?? shippedWeights(space.name) });
  console.log(`execution provider: ${pipeline.provider}${pipeline.fallbackReason ? ` (${pipeline.fallbackReason})` : ''}`);
  if (pipeline.randomWeights) console.log('weights: seeded random (no --weights): the whole path runs, but the boxes mean nothing');
  else console.log(`fusion trust: ${formatTrust(pipeline.trust)}`);

  const results: (FrameResult & { scenario: string; timestamp: string })[] = [];
  const bar = frames.length > 1 ? progress('detect', frames.length) : undefined;
  for (const ref of frames) {
    const egoId = values.ego !== undefined ? Number(values.ego) : ref.agentIds[0];
    if (!ref.agentIds.includes(egoId))
      throw new Error(`--ego ${values.ego}: no such agent in ${ref.scenario} ${ref.timestamp} (agents: ${ref.agentIds.join(', ')})`);
    const order = [egoId, ...ref.agentIds.filter((a) => a !== egoId)];
    const inputs: AgentInput[] = [];
    for (const [i, id] of order.entries()) {
      const type = registry.get(typeCycle[i % typeCycle.length]);
      const frame = await ds.readAgentFrame(ref, id, { lidar: type.sensor.lidar ?? 64, images: type.modality === 'camera' });
      inputs.push({ frame, type: type.name });
    }
    const r = await pipeline.runFrame(inputs, egoId, { mode, dtype });
    results.push({ ...r, scenario: ref.scenario, timestamp: ref.timestamp });
    bar?.tick(1, { boxes: r.detections.length });
    if (!bar) printResult(r, ref);
  }
  bar?.stop();
  if (values.json) {
    const out = path.resolve(values.json);
    await writeFileAtomic(out, JSON.stringify(results, (_k, v) => (ArrayBuffer.isView(v) ? undefined : v), 2) + '\n');
    console.log(`wrote ${out}`);
  }
  return 0;
}

function pickFrames(all: FrameRef[], scenario: string | undefined, frame: string | undefined, limit: number): FrameRef[] {
  let list = all;
  if (scenario) {
    list = list.filter((f) => f.scenario === scenario || `${f.split}/${f.scenario}` === scenario);
    if (!list.length) throw new Error(`no scenario "${scenario}" (have: ${[...new Set(all.map((f) => `${f.split}/${f.scenario}`))].join(', ')})`);
  } else if (list.length) {
    const first = list[0];
    list = list.filter((f) => f.split === first.split && f.scenario === first.scenario);
  }
  if (frame) {
    const i = list.findIndex((f) => f.timestamp === frame);
    if (i < 0) throw new Error(`no frame "${frame}" in ${list[0]?.scenario ?? 'the dataset'}`);
    list = list.slice(i);
  }
  if (!list.length) throw new Error('the dataset has no frames');
  return list.slice(0, limit);
}

function printResult(r: FrameResult, ref: FrameRef): void {
  console.log(`\n${ref.split}/${ref.scenario} ${ref.timestamp}: ego ${r.egoId}, ${r.mode} fusion`);
  for (const u of r.used) {
    const sent = r.messageBytes.find((m) => m.id === u.id);
    console.log(
      `  agent ${String(u.id).padStart(6)}  type ${u.type}${u.id === r.egoId ? '  (ego)' : `  sent ${sent ? `${(sent.bytes / 1024).toFixed(1)} KiB` : '-'}`}`,
    );
  }
  for (const s of r.skipped) console.log(`  agent ${String(s.id).padStart(6)}  skipped: ${s.reason}`);
  console.log(`  ${r.detections.length} detections in the ego frame${r.detections.length ? ':' : ''}`);
  for (const d of r.detections.slice(0, 10)) {
    console.log(`    score ${d.score.toFixed(3)}  [${d.box.map((v) => v.toFixed(2)).join(', ')}]`);
  }
  if (r.detections.length > 10) console.log(`    ... ${r.detections.length - 10} more`);
  const stages = Object.entries(r.times)
    .map(([k, v]) => `${k} ${v.toFixed(1)} ms`)
    .join(', ');
  console.log(`  times: ${stages}`);
}

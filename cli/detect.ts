// `heal detect DIR`: the collaborative pass on dataset frames. Every agent encodes its own sensors
// with its agent type, sends a protobuf message, and the ego fuses what it receives and detects.

import * as path from 'node:path';
import { openDataset } from '../datasets/open.ts';
import type { FrameRef } from '../datasets/dataset.ts';
import { writeFileAtomic } from '../datasets/io.ts';
import { loadRegistry } from '../perception/registry.ts';
import { SPACES, spaceByName } from '../perception/space.ts';
import { CollabPipeline, type AgentInput, type FusionMode, type FrameResult } from '../fusion/pipeline.ts';
import { EVAL_DTYPES } from '../eval/contracts.ts';
import { DEVICES } from '../models/runtime.ts';
import { formatTrust } from '../fusion/trust.ts';
import type { Detection } from '../fusion/detect.ts';
import { boxToCorners } from '../datasets/geometry/boxes.ts';
import { progress } from './progress.ts';
import { shippedWeights } from '../models/shipped.ts';
import { securityOf, SIGNING_OPTIONS } from './keys.ts';
import { choice, command, dirs, int, list, outFile, runCommand, string } from './args.ts';

const FUSION_MODES: readonly FusionMode[] = ['intermediate', 'late', 'none'];

export const DETECT = command({
  name: 'detect',
  usage: 'DIR [options]',
  about: `Runs heterogeneous collaborative perception on dataset frames: each agent encodes its sensors
with its agent type into the shared BEV space and sends a protobuf message; the ego warps,
fuses (pyramid fusion), detects and decodes boxes in its own LiDAR frame.`,
  positionals: { name: 'DIR', min: 1, max: 1 },
  options: {
    scenario: string({ arg: 'NAME', defaultText: 'the first', help: 'scenario (NAME or SPLIT/NAME)' }),
    frame: string({ arg: 'TS', defaultText: "the scenario's first", help: 'timestamp; --limit N runs N frames from it' }),
    limit: int({ min: 1, default: 1, help: 'number of frames to run' }),
    ego: int({ arg: 'ID', defaultText: "the frame's default ego, never a roadside unit", help: 'ego agent' }),
    types: list({ default: ['m1', 'm2', 'm3', 'm4'], help: 'agent types given to the agents in ego order, cycled' }),
    fusion: choice(FUSION_MODES, { arg: 'MODE', default: 'intermediate', help: 'fusion mode' }),
    dtype: choice(EVAL_DTYPES, { arg: 'T', default: 'float32', help: 'feature dtype on the wire' }),
    device: choice(DEVICES, { arg: 'D', default: 'auto', help: 'where the networks run' }),
    profile: choice(Object.keys(SPACES), { arg: 'P', default: 'small', help: 'shared-space profile' }),
    weights: string({
      arg: 'FILE',
      defaultText: 'the shipped weights of --profile, else seeded random weights, and then the boxes mean nothing',
      help: "weight file: heal's (weights.bin) or a HEAL checkpoint (.pth, with --profile heal)",
    }),
    'types-dir': dirs({ help: 'extra agent-type declarations (*.json)' }),
    json: outFile({ help: "write every frame's result as JSON" }),
    ...SIGNING_OPTIONS,
  },
  exclusive: [['insecure', 'keys']],
});

export function run(args: string[]): Promise<number> {
  return runCommand(DETECT, args, async ({ values, positionals }) => {
    const space = spaceByName(values.profile);
    const registry = await loadRegistry(values['types-dir']);
    const typeCycle = values.types;
    for (const t of typeCycle) registry.profile(t, space.name);

    const ds = await openDataset(positionals[0]);
    const frames = pickFrames(ds.frames(), values.scenario, values.frame, values.limit);
    const security = await securityOf(values);
    const pipeline = await CollabPipeline.create({
      space,
      registry,
      device: values.device,
      weightsFile: values.weights ?? shippedWeights(space.name),
      security,
    });
    console.log(`messages: ${security ? `signed (${security.source})` : 'unsigned (--insecure)'}`);
    console.log(`execution provider: ${pipeline.provider}${pipeline.fallbackReason ? ` (${pipeline.fallbackReason})` : ''}`);
    if (pipeline.randomWeights) console.log('weights: seeded random (no --weights): the whole path runs, but the boxes mean nothing');
    else console.log(`fusion trust: ${formatTrust(pipeline.trust)}`);

    const results: (FrameResult & { scenario: string; timestamp: string })[] = [];
    const bar = frames.length > 1 ? progress('detect', frames.length) : undefined;
    for (const ref of frames) {
      const egoId = values.ego ?? ref.agentIds[0];
      if (!ref.agentIds.includes(egoId))
        throw new Error(`--ego ${values.ego}: no such agent in ${ref.scenario} ${ref.timestamp} (agents: ${ref.agentIds.join(', ')})`);
      const order = [egoId, ...ref.agentIds.filter((a) => a !== egoId)];
      const inputs: AgentInput[] = [];
      for (const [i, id] of order.entries()) {
        const type = registry.get(typeCycle[i % typeCycle.length]);
        const frame = await ds.readAgentFrame(ref, id, { lidar: type.sensor.lidar ?? 64, images: type.modality === 'camera' });
        inputs.push({ frame, type: type.name });
      }
      const r = await pipeline.runFrame(inputs, egoId, { mode: values.fusion, dtype: values.dtype });
      results.push({ ...r, scenario: ref.scenario, timestamp: ref.timestamp });
      bar?.tick(1, { boxes: r.detections.length });
      if (!bar) printResult(r, ref);
    }
    bar?.stop();
    if (values.json) {
      const out = path.resolve(values.json);
      const json = results.map((r) => ({ ...r, detections: r.detections.map(detectionJson) }));
      await writeFileAtomic(out, JSON.stringify(json, (_k, v) => (ArrayBuffer.isView(v) ? undefined : v), 2) + '\n');
      console.log(`wrote ${out}`);
    }
    return 0;
  });
}

/**
 * One box as --json writes it: box7 [x, y, z, h, w, l, yaw] in the ego's LiDAR frame, its 8
 * corners (OpenCOOD's order: 0-3 the bottom face), the score, and the anchor it was decoded from
 * ((row·W + col)·anchors + a, HEAL's flat order) with the direction classifier's bin.
 */
function detectionJson(d: Detection) {
  const c = boxToCorners(d.box);
  const corners = Array.from({ length: 8 }, (_, i) => [c[i * 3], c[i * 3 + 1], c[i * 3 + 2]]);
  return { box7: d.box, corners, score: d.score, anchor: d.anchor, dirLabel: d.dirLabel };
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
  const rejected = Object.entries(r.rejected);
  if (rejected.length) console.log(`  rejected messages: ${rejected.map(([k, n]) => `${k} ${n}`).join(', ')}`);
  if (r.times.sign !== undefined || r.times.verify !== undefined) {
    console.log(`  sign ${(r.times.sign ?? 0).toFixed(2)} ms, verify ${(r.times.verify ?? 0).toFixed(2)} ms`);
  }
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

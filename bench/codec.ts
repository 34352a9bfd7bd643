// Message codecs (issue 14): encode + decode milliseconds per codec and message, and bytes per
// message against the float32 dense map, on the bench world's m1 agents. Small profile with the
// shipped weights (and the shipped learned codecs); heal profile on seeded random weights (no
// trained heal-profile weights ship), whose learned codecs are randomly initialised too: its
// sizes show the codecs' arithmetic at HEAL's grid, not what trained features would compress to.
//
// The sender's occupancy map (the cell selection's scores) is timed apart: every sender runs its
// own perception anyway, and the selection reuses that pass.

import { openDataset } from '../datasets/open.ts';
import { loadRegistry } from '../perception/registry.ts';
import { HEAL_SPACE, SMALL_SPACE, type SharedSpace } from '../perception/space.ts';
import { CollabPipeline, type AgentInput } from '../fusion/pipeline.ts';
import { decodeMessage, encodeMessage, gridForSpace } from '../fusion/messages.ts';
import { encodeOptionsFor, parseCodec } from '../fusion/codec-spec.ts';
import { codecGraphs, learnedCodecs } from '../fusion/codec.ts';
import { initWeights, type Weights } from '../models/weights.ts';
import { shippedCodecs, shippedWeights } from '../models/shipped.ts';
import { groundAlignedPose } from '../perception/ground.ts';
import { median } from './timing.ts';
import { world } from './inference.ts';

/** The small profile's codecs: the README's table. */
export const SMALL_CODECS = [
  'float32',
  'float16',
  'int8',
  'int8+deflate',
  'int8+brotli',
  'int4',
  'int4+deflate',
  'int4+brotli',
  'int4+keep0.25+brotli',
  'int4+keep0.2+brotli',
  'int4+top512+deflate',
  'int4+top256+deflate',
  'int4+top128+deflate',
  'int4+top128+brotli',
  'int4+fg0.2+deflate',
  'learned16+int8+deflate',
  'learned16+int4+deflate',
  'learned16+int4+brotli',
  'learned16+int4+top256+deflate',
  'int4+top1024+deflate',
  'int4+top128+fill+deflate',
  'int4+top512+fill+deflate',
  'int4+top1024+fill+deflate',
  'fit6500',
  'fit1398',
];

const HEAL_CODECS = ['float32', 'float16', 'int8', 'int4+brotli', 'int4+top4096+brotli', 'learned16+int4+brotli', 'learned64+int4+top4096+brotli'];

const REPEATS = 5;

async function profileFigures(space: SharedSpace, agents: AgentInput[], codecs: string[], weights: string | undefined, codecWeights: string[] | undefined) {
  const registry = await loadRegistry();
  const pipeline = await CollabPipeline.create({ space, registry, device: 'cpu', seed: 1, weightsFile: weights, codecWeightsFile: codecWeights });
  // The heal profile has no trained codecs: randomly initialised ones, so its learned rows run.
  if (!pipeline.codecs.size) {
    const w: Weights = new Map();
    for (const r of [16, 32, 64]) if (space.channels % r === 0) for (const [k, v] of initWeights(codecGraphs(space.channels, r).both, 1)) w.set(k, v);
    for (const [k, v] of learnedCodecs(w, space.channels)) pipeline.codecs.set(k, v);
  }
  const out: Record<string, number | string> = {};
  const senders: { base: Parameters<typeof encodeMessage>[0]; occupancy: Float32Array }[] = [];
  const occMs: number[] = [];
  for (const a of agents) {
    const features = await pipeline.encode(a);
    const pose = groundAlignedPose(a.frame, space);
    const t0 = performance.now();
    const occupancy = await pipeline.occupancyOf(features, pose);
    occMs.push(performance.now() - t0);
    senders.push({
      base: { agentId: String(a.frame.agentId), agentType: a.type, timestamp: a.frame.timestamp, sequence: 0, pose, grid: gridForSpace(space), features },
      occupancy,
    });
  }
  out['sender_occupancy_ms (not in the codec times)'] = median(occMs);
  const dense = encodeMessage(senders[0].base, { dtype: 'float32' }).length;
  out.float32_dense_bytes = dense;
  for (const name of codecs) {
    const spec = parseCodec(name);
    const learned = spec.learnedRatio ? pipeline.codecs.get(space.channels / spec.learnedRatio) : undefined;
    if (spec.learnedRatio && !learned) {
      out[`${name}.skipped`] = `no learned codec of ratio ${spec.learnedRatio}`;
      continue;
    }
    const enc: number[] = [];
    const dec: number[] = [];
    const bytes: number[] = [];
    for (const s of senders) {
      const opts = encodeOptionsFor(spec, { features: s.base.features!, grid: s.base.grid, occupancy: s.occupancy, learned });
      let msg = encodeMessage(s.base, opts);
      decodeMessage(msg, {}, pipeline.codecs); // warm-up
      for (let r = 0; r < REPEATS; r++) {
        let t = performance.now();
        msg = encodeMessage(s.base, opts);
        enc.push(performance.now() - t);
        t = performance.now();
        decodeMessage(msg, {}, pipeline.codecs);
        dec.push(performance.now() - t);
      }
      bytes.push(msg.length);
    }
    const mean = bytes.reduce((a, b) => a + b, 0) / bytes.length;
    out[`${name}.bytes`] = Math.round(mean);
    out[`${name}.ratio`] = +(dense / mean).toFixed(1);
    out[`${name}.encode_ms`] = median(enc);
    out[`${name}.decode_ms`] = median(dec);
  }
  return out;
}

export async function run(): Promise<Record<string, number | string>> {
  const ds = await openDataset(await world());
  const ref = ds.frames()[0];
  const agents: AgentInput[] = [];
  for (const id of ref.agentIds) agents.push({ frame: await ds.readAgentFrame(ref, id, { lidar: 64, images: false }), type: 'm1' });
  const load = (await import('node:os')).loadavg();
  const out: Record<string, number | string> = { agents: agents.length, load_at_start: load.map((l) => l.toFixed(2)).join(' ') };
  const small = await profileFigures(SMALL_SPACE, agents, SMALL_CODECS, shippedWeights('small'), shippedCodecs('small'));
  for (const [k, v] of Object.entries(small)) out[`small.${k}`] = v;
  out['small.weights'] = shippedWeights('small') ? 'shipped' : 'seeded random';
  const heal = await profileFigures(HEAL_SPACE, agents.slice(0, 2), HEAL_CODECS, undefined, undefined);
  for (const [k, v] of Object.entries(heal)) out[`heal.${k}`] = v;
  out['heal.weights'] = 'seeded random (no trained heal-profile weights ship); learned codecs randomly initialised';
  out.load_at_end = (await import('node:os'))
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');
  return out;
}

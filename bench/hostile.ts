// AP with one hostile sender among honest ones (`heal bench hostile`), on the synthetic test split
// of the training world's seed (LiDAR only; every agent m1, the shipped weights), under three
// defences: none (heal before issue 15: no gate, no feature bounds), unsigned with the ego's
// content checks (--insecure), and signed (the default). Each frame's honest partners send as in
// heal eval; the attacker's message arrives last.
//
// Attacks, and who makes them:
// - huge values: a certified insider sends float32 1e38 in every cell, posed at the ego.
// - random features: a certified insider sends uniform noise up to the ego map's largest value.
// - spoofed pose: a certified insider resends an honest partner's features under a pose 8 m
//   and 20° off.
// - replayed old features: an outsider replays the bytes a partner sent in the previous frame.
// - forged late boxes (late fusion): an agent without a certificate of this deployment sends ten
//   boxes with score 0.99 inside the ego's range.

import { ApAccumulator } from '../eval/metrics.ts';
import { apOf } from '../eval/statistics.ts';
import { egoGroundTruth } from '../eval/groundtruth.ts';
import { openDataset } from '../datasets/open.ts';
import { cachedWorld, type WorldOptions } from '../datasets/synthetic/cached.ts';
import { bevFromCorners, boxToCorners } from '../datasets/geometry/boxes.ts';
import { Rng } from '../datasets/rng.ts';
import { createAuthority, ephemeralSecurity, issueIdentity, type Security, signMessage } from '../fusion/identity.ts';
import { encodeMessage, gridForSpace } from '../fusion/messages.ts';
import { CollabPipeline, type AgentInput, type FusionMode } from '../fusion/pipeline.ts';
import { shippedWeights } from '../models/shipped.ts';
import { groundAlignedPose } from '../perception/ground.ts';
import { loadRegistry } from '../perception/registry.ts';
import { SMALL_SPACE } from '../perception/space.ts';

/** The 8 test scenarios × 5 frames of `heal generate --scenarios 40 --frames 5 --seed 11` (README's training world), LiDAR only. */
export const HOSTILE_WORLD: WorldOptions = {
  scenarios: 40,
  frames: 5,
  seed: 11,
  camera: null,
  splits: ['test'],
  pcdFormat: 'binary_compressed',
  shadows: false,
};

const ATTACKS = ['none', 'huge values', 'random features', 'spoofed pose', 'replayed old features', 'forged late boxes'] as const;
type Attack = (typeof ATTACKS)[number];
const DEFENCES = ['no checks', 'insecure', 'signed'] as const;
type Defence = (typeof DEFENCES)[number];
const ATTACKER = 9999;

interface Config {
  attack: Attack;
  defence: Defence;
  mode: FusionMode;
  pipeline: CollabPipeline;
  security?: Security;
  acc: ApAccumulator;
  /** What the ego received from honest partners in the previous frame of the scenario. */
  previous: Uint8Array[];
  rejected: number;
}

/** `frames` limits the run to the first frames (a quick look; the figures quoted come from all 40). */
export async function run(opts: { frames?: number } = {}): Promise<Record<string, number | string>> {
  const { dir } = await cachedWorld(HOSTILE_WORLD, { name: 'hostile-world' });
  const ds = await openDataset(`${dir}/test`);
  const registry = await loadRegistry();
  const space = SMALL_SPACE;
  const weightsFile = shippedWeights(space.name);
  const configs: Config[] = [];
  for (const attack of ATTACKS) {
    for (const defence of DEFENCES) {
      for (const mode of attack === 'forged late boxes'
        ? (['late'] as const)
        : attack === 'none'
          ? (['intermediate', 'late'] as const)
          : (['intermediate'] as const)) {
        const security = defence === 'signed' ? ephemeralSecurity() : undefined;
        const pipeline = await CollabPipeline.create({ space, registry, device: 'cpu', weightsFile, security, gate: { checks: defence !== 'no checks' } });
        configs.push({ attack, defence, mode, pipeline, security, acc: new ApAccumulator(), previous: [], rejected: 0 });
      }
    }
  }
  // An agent outside the deployment: its own authority.
  const outsider = issueIdentity(createAuthority(), String(ATTACKER), 'm1', Date.now() - 60_000, Date.now() + 24 * 3600_000);
  const frames = ds.frames().slice(0, opts.frames);
  let lastScenario = '';
  const t0 = performance.now();
  for (const [fi, ref] of frames.entries()) {
    const newScenario = ref.scenario !== lastScenario;
    lastScenario = ref.scenario;
    const inputs: AgentInput[] = [];
    for (const id of ref.agentIds) inputs.push({ frame: await ds.readAgentFrame(ref, id, { lidar: 64, images: false }), type: 'm1' });
    const ego = inputs[0];
    const gt = await egoGroundTruth(ds, ref, ego.frame, space);
    const gtFoot = gt.map((g) => bevFromCorners(boxToCorners(g.box)));
    const egoPose = groundAlignedPose(ego.frame, space);
    const partners = inputs
      .slice(1)
      .filter((a) => Math.hypot(a.frame.lidarPose[3] - ego.frame.lidarPose[3], a.frame.lidarPose[7] - ego.frame.lidarPose[7]) <= space.commRange);
    for (const c of configs) {
      // The ego's frame begins before its partners send, as in runFrame (the time window counts from it).
      const startMs = Date.now();
      const honest: Uint8Array[] = [];
      for (const a of partners) honest.push(await c.pipeline.send(a, c.mode, 'float32', {}, undefined, 0.2));
      // The same draws for every defence, so that the columns differ only by the defence.
      const rng = new Rng(fi + 1);
      const extra = await attackBytes(c, { ego, egoPose, partners, honest, outsider, rng, ref: ref.timestamp, newScenario });
      const r = await c.pipeline.egoPass(
        ego,
        [...honest, ...extra],
        { mode: c.mode, scoreThreshold: 0.2 },
        { times: {}, skipped: [], messageBytes: [], startMs },
      );
      c.rejected += Object.values(r.rejected).reduce((a, b) => a + b, 0);
      c.acc.addFrame(
        r.detections.map((d) => bevFromCorners(boxToCorners(d.box))),
        r.detections.map((d) => d.score),
        gtFoot,
      );
      c.previous = honest;
    }
    process.stderr.write(`  hostile: frame ${fi + 1}/${frames.length} (${((performance.now() - t0) / 1000).toFixed(0)} s)\n`);
  }
  const out: Record<string, number | string> = {
    frames: frames.length,
    world: `seed ${HOSTILE_WORLD.seed} test split, LiDAR, every agent m1, shipped weights`,
  };
  for (const c of configs) {
    const ap = apOf(c.acc);
    const key = `${c.attack} | ${c.mode} | ${c.defence}`;
    out[`${key} | AP@0.5`] = ap['0.5'];
    out[`${key} | AP@0.7`] = ap['0.7'];
    out[`${key} | rejected`] = c.rejected;
  }
  out.table = table(configs);
  out.seconds = (performance.now() - t0) / 1000;
  return out;
}

function table(configs: Config[]): string {
  const rows = ['| attack | fusion | ' + DEFENCES.join(' | ') + ' |', '|---|---|' + DEFENCES.map(() => '---|').join('')];
  const seen = new Set<string>();
  for (const c of configs) {
    const k = `${c.attack}|${c.mode}`;
    if (seen.has(k)) continue;
    seen.add(k);
    const cells = DEFENCES.map((d) => {
      const x = configs.find((y) => y.attack === c.attack && y.mode === c.mode && y.defence === d)!;
      return `${apOf(x.acc)['0.5'].toFixed(3)}${x.rejected ? ` (${x.rejected} rejected)` : ''}`;
    });
    rows.push(`| ${c.attack} | ${c.mode === 'intermediate' ? 'pyramid' : c.mode} | ${cells.join(' | ')} |`);
  }
  return rows.join('\n');
}

async function attackBytes(
  c: Config,
  f: {
    ego: AgentInput;
    egoPose: Float64Array;
    partners: AgentInput[];
    honest: Uint8Array[];
    outsider: ReturnType<typeof issueIdentity>;
    rng: Rng;
    ref: string;
    newScenario: boolean;
  },
): Promise<Uint8Array[]> {
  const space = SMALL_SPACE;
  const grid = gridForSpace(space);
  const insider = (payload: Uint8Array) => {
    if (!c.security) return payload;
    const id = c.security.identity(String(ATTACKER), 'm1')!;
    return signMessage(id, payload, Date.now());
  };
  const sequence = Date.now(); // the attacker's own sequence numbers only grow
  const base = { agentId: String(ATTACKER), agentType: 'm1', timestamp: f.ref, sequence, grid };
  switch (c.attack) {
    case 'none':
      return [];
    case 'huge values':
      return [
        insider(
          encodeMessage({ ...base, pose: f.egoPose, features: new Float32Array(grid.channels * grid.width * grid.height).fill(1e38) }, { dtype: 'float32' }),
        ),
      ];
    case 'random features': {
      const egoMap = await c.pipeline.encode(f.ego);
      let max = 0;
      for (const v of egoMap) max = Math.max(max, Math.abs(v));
      const features = Float32Array.from({ length: egoMap.length }, () => f.rng.next() * max);
      return [insider(encodeMessage({ ...base, pose: f.egoPose, features }, { dtype: 'float32' }))];
    }
    case 'spoofed pose': {
      const victim = f.partners[0] ?? f.ego;
      const features = await c.pipeline.encode(victim);
      const p = groundAlignedPose(victim.frame, space);
      const a = (20 * Math.PI) / 180;
      const [ca, sa] = [Math.cos(a), Math.sin(a)];
      // Rotated 20° about z and moved 8 m sideways: what the victim saw, put where it was not.
      const pose = Float64Array.from(p);
      for (let r = 0; r < 3; r++) {
        const [x, y] = [p[r * 4], p[r * 4 + 1]];
        pose[r * 4] = ca * x + sa * y;
        pose[r * 4 + 1] = -sa * x + ca * y;
      }
      pose[3] += 8 * p[1];
      pose[7] += 8 * p[5];
      return [insider(encodeMessage({ ...base, pose, features }, { dtype: 'float32' }))];
    }
    case 'replayed old features':
      return f.newScenario ? [] : c.previous.slice(0, 1);
    case 'forged late boxes': {
      const [x0, y0, , x1, y1] = space.range;
      const boxes: number[] = [];
      for (let i = 0; i < 10; i++)
        boxes.push(x0 + 5 + f.rng.next() * (x1 - x0 - 10), y0 + 5 + f.rng.next() * (y1 - y0 - 10), -1, 1.5, 1.8, 4.5, f.rng.next() * Math.PI);
      const payload = encodeMessage(
        { ...base, pose: f.egoPose, detections: { boxes: Float32Array.from(boxes), scores: new Float32Array(10).fill(0.99) } },
        { dtype: 'float32' },
      );
      return [c.security ? signMessage(f.outsider, payload, Date.now()) : payload];
    }
  }
}

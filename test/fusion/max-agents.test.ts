// HEAL's max_cav: a frame's agent list is cut to the profile's agent cap (the ego counted, the
// others in the frame's order) before the communication-range test; the rest are skipped, named.

import { describe, expect, it, beforeAll, afterAll } from 'vitest';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { generateDataset } from '../../datasets/synthetic/generate.ts';
import { openDataset } from '../../datasets/open.ts';
import { loadRegistry } from '../../perception/registry.ts';
import { HEAL_SPACE, SMALL_SPACE } from '../../perception/space.ts';
import { CollabPipeline, type AgentInput } from '../../fusion/pipeline.ts';

let dir = '';
const agents: AgentInput[] = [];

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'heal-max-agents-'));
  // Seed 2's first scenario has three connected vehicles and a roadside unit.
  await generateDataset({
    out: dir,
    scenarios: 1,
    frames: 1,
    seed: 2,
    camera: null,
    splits: ['train'],
    jobs: 1,
    pcdFormat: 'binary_compressed',
    shadows: false,
  });
  const ds = await openDataset(dir);
  const ref = ds.frames()[0];
  for (const id of ref.agentIds) agents.push({ frame: await ds.readAgentFrame(ref, id, { lidar: 64 }), type: 'm1' });
}, 300_000);

afterAll(async () => {
  if (dir) await fs.rm(dir, { recursive: true, force: true });
});

describe('agents per frame (max_cav)', () => {
  it('the heal profile keeps 5, as HEAL; small has no cap', () => {
    expect(HEAL_SPACE.maxAgents).toBe(5);
    expect(SMALL_SPACE.maxAgents).toBeUndefined();
  });

  it('keeps the ego and the first others up to the cap, in order, before the range test', async () => {
    expect(agents.length).toBeGreaterThanOrEqual(3);
    const space = { ...SMALL_SPACE, maxAgents: 2, commRange: 1e6 };
    const pipeline = await CollabPipeline.create({ space, registry: await loadRegistry(), device: 'cpu', seed: 1 });
    const ids = agents.map((a) => a.frame.agentId);
    // The ego need not be the first of the list: it always counts, the others follow in order.
    const ego = ids[1];
    const r = await pipeline.runFrame(agents, ego, { mode: 'intermediate' });
    expect(r.used.map((u) => u.id)).toEqual([ego, ids[0]]);
    expect(r.skipped.map((s) => s.id)).toEqual(ids.slice(2));
    expect(r.skipped[0].reason).toBe('beyond the first 2 agents of the frame (max_cav)');
    const scene = await pipeline.encodeScene(agents, ego);
    expect(scene.features.length).toBe(2);
    const all = await CollabPipeline.create({ space: { ...space, maxAgents: undefined }, registry: await loadRegistry(), device: 'cpu', seed: 1 });
    expect((await all.runFrame(agents, ego, { mode: 'intermediate' })).used.length).toBe(ids.length);
  }, 120_000);
});

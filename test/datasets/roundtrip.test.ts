// A generated dataset reads back, through the same reader users run, with the world's own poses and boxes.

import { describe, it, expect, beforeAll } from 'vitest';
import { TEST_WORLD, WORLD_TIMEOUT_MS, testSplit } from '../helpers/world.ts';
import { buildScenario, agentLidarPose } from '../../datasets/synthetic/scenario.ts';
import { openDataset } from '../../datasets/open.ts';
import { poseToMatrix, invert, multiply, transformPoint } from '../../datasets/geometry/transforms.ts';

const FRAMES = TEST_WORLD.frames;
const SEED = TEST_WORLD.seed;
let dir = '';

beforeAll(async () => {
  dir = await testSplit('train');
}, WORLD_TIMEOUT_MS);

const wrap = (a: number) => Math.atan2(Math.sin(a), Math.cos(a));

describe('generate → read back', () => {
  it('poses, boxes and cooperative GT agree with the world that was generated', async () => {
    const ds = await openDataset(dir);
    const world = buildScenario({ seed: SEED, split: 'train', index: 0, frames: FRAMES });
    const frames = ds.frames();
    expect(frames.length).toBe(FRAMES);
    expect(new Set(frames[0].agentIds)).toEqual(new Set(world.agents.map((a) => a.id)));
    // The roadside unit is never the default ego.
    expect(frames[0].agentIds[0]).toBeGreaterThan(0);
    let checkedBoxes = 0;
    let otherAgentsSeen = 0;
    for (const [f, ref] of frames.entries()) {
      for (const agent of world.agents) {
        const frame = await ds.readAgentFrame(ref, agent.id);
        expect(frame.kind).toBe(agent.kind);
        const truthPose = poseToMatrix(agentLidarPose(world, agent, f));
        for (let k = 0; k < 16; k++) expect(frame.lidarPose[k]).toBeCloseTo(truthPose[k], 5);
        expect(frame.points.length / 4).toBeGreaterThan(10_000);
        const lidarFromWorld = invert(truthPose);
        const agentYaw = Math.atan2(truthPose[4], truthPose[0]);
        expect(frame.boxes.length).toBeGreaterThan(0);
        for (const { id, box } of frame.boxes) {
          const vi = world.vehicles.findIndex((v) => v.id === id);
          expect(vi, `box id ${id} is a vehicle of the world`).toBeGreaterThanOrEqual(0);
          expect(id).not.toBe(agent.id);
          const spec = world.vehicles[vi];
          const pose = world.poses[f][vi];
          const c = transformPoint(lidarFromWorld, pose.x, pose.y, pose.z + spec.height / 2);
          expect(box[0]).toBeCloseTo(c[0], 3);
          expect(box[1]).toBeCloseTo(c[1], 3);
          expect(box[2]).toBeCloseTo(c[2], 3);
          expect(box[3]).toBeCloseTo(spec.height, 3);
          expect(box[4]).toBeCloseTo(spec.width, 3);
          expect(box[5]).toBeCloseTo(spec.length, 3);
          expect(Math.abs(wrap(box[6] - wrap((pose.yaw * Math.PI) / 180 - agentYaw)))).toBeLessThan(1e-4);
          checkedBoxes++;
        }
      }
      // Cooperative GT: the union of what the agents in range see, in the ego frame, without the ego.
      const ego = ref.agentIds[0];
      const coop = await ds.cooperativeBoxes(ref, ego);
      const egoFrame = await ds.readAgentFrame(ref, ego);
      expect(coop.length).toBeGreaterThanOrEqual(egoFrame.boxes.length);
      expect(new Set(coop.map((b) => b.id)).size).toBe(coop.length);
      expect(coop.some((b) => b.id === ego)).toBe(false);
      const egoInv = invert(egoFrame.lidarPose);
      for (const { id, box } of coop) {
        const vi = world.vehicles.findIndex((v) => v.id === id);
        const pose = world.poses[f][vi];
        const c = transformPoint(egoInv, pose.x, pose.y, pose.z + world.vehicles[vi].height / 2);
        expect(Math.hypot(box[0] - c[0], box[1] - c[1])).toBeLessThan(1e-3);
      }
      // Everything the ego sees is in the cooperative GT; other connected vehicles appear as objects.
      const coopIds = new Set(coop.map((b) => b.id));
      for (const b of egoFrame.boxes) expect(coopIds.has(b.id)).toBe(true);
      if (world.agents.some((a) => a.kind === 'vehicle' && a.id !== ego && coopIds.has(a.id))) otherAgentsSeen++;
    }
    expect(checkedBoxes).toBeGreaterThan(50);
    expect(otherAgentsSeen).toBeGreaterThan(0);
    // Relative pose of two agents, as fusion will use it.
    const [a, b] = world.agents;
    const fa = await ds.readAgentFrame(frames[0], a.id);
    const fb = await ds.readAgentFrame(frames[0], b.id);
    const rel = multiply(invert(fa.lidarPose), fb.lidarPose);
    const truth = multiply(invert(poseToMatrix(agentLidarPose(world, a, 0))), poseToMatrix(agentLidarPose(world, b, 0)));
    for (let k = 0; k < 16; k++) expect(rel[k]).toBeCloseTo(truth[k], 4);
  });
});

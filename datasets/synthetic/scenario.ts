// One scenario: a town, its traffic over the recorded frames, the connected vehicles and the
// roadside unit. Everything derives from (seed, split, index), so a scenario is the same whatever
// else is generated beside it.

import { type Pose6, multiply, matrixToPose, poseToMatrix } from '../geometry/transforms.ts';
import { rngFor } from '../rng.ts';
import { ROAD_HALF_WIDTH, buildTown } from './town.ts';
import { buildLaneGraph } from './lanes.ts';
import { simulateTraffic } from './traffic.ts';
import { VEHICLE_LIDAR_MOUNT } from './lidar.ts';
import { vehicleSolids } from './shapes.ts';
import type { Agent, ScenarioWorld, Solid } from './world.ts';

export interface ScenarioSpec {
  seed: number;
  split: string;
  index: number;
  frames: number;
}

/** Id of the roadside unit (V2XSet marks infrastructure with negative ids). */
export const RSU_ID = -1;
/** Plan waypoints: every 5 frames (0.5 s) for 2.5 s. */
const PLAN_STEP = 5;
const PLAN_POINTS = 5;

const SPLIT_EPOCH: Record<string, number> = {
  train: Date.UTC(2021, 7, 16, 9, 0, 0),
  validate: Date.UTC(2021, 8, 1, 9, 0, 0),
  test: Date.UTC(2021, 8, 10, 9, 0, 0),
};

/**
 * A collection-time folder name like OPV2V's (2021_08_22_21_41_24): four-hour slots per index,
 * so names within a split never collide, with the minute and second drawn from the seed.
 */
export function scenarioName(seed: number, split: string, index: number): string {
  const epoch = SPLIT_EPOCH[split] ?? Date.UTC(2021, 9, 1, 9, 0, 0);
  const rng = rngFor(seed, split, index, 'name');
  const t = new Date(epoch + index * 4 * 3600_000 + rng.int(0, 4 * 3600 - 1) * 1000);
  const p = (v: number) => String(v).padStart(2, '0');
  return `${t.getUTCFullYear()}_${p(t.getUTCMonth() + 1)}_${p(t.getUTCDate())}_${p(t.getUTCHours())}_${p(t.getUTCMinutes())}_${p(t.getUTCSeconds())}`;
}

export function buildScenario(spec: ScenarioSpec): ScenarioWorld {
  if (!Number.isInteger(spec.frames) || spec.frames < 1) throw new Error(`frames must be a positive integer (got ${spec.frames})`);
  const { seed, split, index } = spec;
  const plan = buildTown(rngFor(seed, split, index, 'town'));
  const town = plan.town;
  const graph = buildLaneGraph(town);
  const rng = rngFor(seed, split, index, 'agents');

  // The roadside unit watches an inner four-way intersection, from a mast on one corner.
  const inner = graph.nodes.map((n, i) => ({ n, i })).filter(({ n }) => n.degree === 4);
  const home = rng.pick(inner);
  const sx = rng.pick([-1, 1]),
    sy = rng.pick([-1, 1]);
  // The unit takes the place of the signal mast on that corner (town.ts trafficLights).
  const corner = ROAD_HALF_WIDTH + 0.6;
  const rsuX = home.n.x + sx * corner,
    rsuY = home.n.y + sy * corner;
  town.solids = town.solids.filter((s) => !(s.material.kind === 'metal' && s.shape !== 'sphere' && s.z1 > 4 && Math.hypot(s.cx - rsuX, s.cy - rsuY) < 5));
  const rsuYaw = (Math.atan2(-sy, -sx) * 180) / Math.PI;
  const mastHeight = Math.round(rng.uniform(4.5, 6) * 100) / 100;
  const mast: Solid = {
    shape: 'cylinder',
    cx: rsuX,
    cy: rsuY,
    z0: 0,
    z1: mastHeight - 0.15,
    r: 0.16,
    material: { kind: 'metal', color: [0.55, 0.57, 0.58], reflectivity: 0.55 },
    owner: RSU_ID,
  };
  town.solids.push(mast);

  // CARLA-like actor ids: increasing with spawn order, small gaps, always four digits.
  const actorIds = (count: number): number[] => {
    const step = Math.max(1, Math.min(8, Math.floor(8000 / Math.max(1, count))));
    let id = rng.int(1000, Math.max(1000, 9999 - count * step));
    return Array.from({ length: count }, () => (id += rng.int(1, step)));
  };
  const startStep = 60 + 2 * rng.int(2, 30);
  const cavs = rng.int(2, 4);
  const traffic = simulateTraffic(graph, rngFor(seed, split, index, 'traffic'), {
    homeNode: home.i,
    rsu: [rsuX, rsuY],
    cavs,
    warmupSteps: startStep,
    recordedFrames: spec.frames,
    recordEvery: 2,
    tailSteps: PLAN_STEP * PLAN_POINTS * 2,
    actorIds,
    lotSpots: plan.lotSpots,
    noParking: plan.noParking,
  });

  const cavIds = [...traffic.cavIds].sort((a, b) => a - b);
  const agents: Agent[] = cavIds.map((cid) => ({ id: cid, kind: 'vehicle' }));
  agents.push({ id: RSU_ID, kind: 'rsu', basePose: [rsuX, rsuY, 0, 0, rsuYaw, 0], mastHeight });

  const timestamps: string[] = [];
  for (let f = 0; f < spec.frames; f++) timestamps.push(String(startStep + 2 * f).padStart(6, '0'));

  const vIndex = new Map(traffic.vehicles.map((v, i) => [v.id, i]));
  const plans: number[][][][] = [];
  for (let f = 0; f < spec.frames; f++) {
    plans.push(
      agents.map((a) => {
        if (a.kind !== 'vehicle') return [];
        const vi = vIndex.get(a.id)!;
        const out: number[][] = [];
        for (let k = 1; k <= PLAN_POINTS; k++) {
          const p = traffic.poses[f + k * PLAN_STEP][vi];
          out.push([p.x, p.y, Math.round(traffic.targetSpeed[vi] * 3.6 * 10) / 10]);
        }
        return out;
      }),
    );
  }

  return {
    name: scenarioName(seed, split, index),
    split,
    index,
    seed,
    town,
    timestamps,
    vehicles: traffic.vehicles,
    poses: traffic.poses.slice(0, spec.frames),
    plans,
    agents,
  };
}

/** Every solid at one frame: the town plus each vehicle's body parts. */
export function frameSolids(world: ScenarioWorld, frame: number): Solid[] {
  const out = world.town.solids.slice();
  const poses = world.poses[frame];
  world.vehicles.forEach((v, i) => {
    for (const s of vehicleSolids(v, poses[i])) out.push(s);
  });
  return out;
}

// `+ 0` turns −0 into 0, so the YAML never shows -0.0.
const round6 = (v: number) => Math.round(v * 1e6) / 1e6 + 0;

export function roundPose(p: ArrayLike<number>): Pose6 {
  return [round6(p[0]), round6(p[1]), round6(p[2]), round6(p[3]), round6(p[4]), round6(p[5])];
}

/** The agent's actor pose (`true_ego_pos`): a vehicle at ground level, or the RSU mast base. */
export function agentBasePose(world: ScenarioWorld, agent: Agent, frame: number): Pose6 {
  if (agent.kind === 'rsu') return roundPose(agent.basePose!);
  const vi = world.vehicles.findIndex((v) => v.id === agent.id);
  const p = world.poses[frame][vi];
  return [p.x, p.y, p.z, 0, p.yaw, 0];
}

/** The LiDAR's world pose (`lidar_pose`): the vehicle mount (−0.5, 0, 1.9) or the mast top. */
export function agentLidarPose(world: ScenarioWorld, agent: Agent, frame: number): Pose6 {
  const base = agentBasePose(world, agent, frame);
  const mount = agent.kind === 'rsu' ? [0, 0, agent.mastHeight!, 0, 0, 0] : [...VEHICLE_LIDAR_MOUNT, 0, 0, 0];
  return roundPose(matrixToPose(multiply(poseToMatrix(base), poseToMatrix(mount))));
}

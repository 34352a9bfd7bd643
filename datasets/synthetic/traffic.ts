// Traffic: a 20 Hz simulation of the moving vehicles over the lane graph (lanes.ts).
//
// Vehicles follow their lane with the Intelligent Driver Model (keep a time gap to the car
// ahead, slow for turns), and at each intersection go straight or turn. Intersections have
// two-phase traffic lights, and a vehicle only enters when no vehicle already inside is on a
// crossing path and its exit lane has room, so bodies never overlap. Parked vehicles stand in the
// parking strips and lot stalls. The simulation is one state object (TrafficState) that each
// step changes in place, vehicle by vehicle.

import type { Rng } from '../rng.ts';
import { type LaneGraph, type Path, laneDirection, laneIds, pathAfter, pointAt, routePoint } from './lanes.ts';
import { CURB_HEIGHT, LANE_WIDTH, type LotSpot, type NoParkingZone, PARKING_WIDTH, ROAD_HALF_WIDTH } from './town.ts';
import type { VehiclePose, VehicleSpec, VehicleType } from './world.ts';

export const SIM_DT = 0.05;

interface TypeInfo {
  length: [number, number];
  width: [number, number];
  height: [number, number];
  /** Desired speed range, m/s. */
  speed: [number, number];
  accel: number;
}

export const VEHICLE_TYPES: Record<VehicleType, TypeInfo> = {
  compact: { length: [3.6, 4.1], width: [1.66, 1.8], height: [1.42, 1.56], speed: [8, 12.5], accel: 1.6 },
  sedan: { length: [4.5, 4.95], width: [1.78, 1.9], height: [1.42, 1.5], speed: [8.5, 13], accel: 1.7 },
  suv: { length: [4.6, 5.05], width: [1.86, 2.0], height: [1.66, 1.86], speed: [8.5, 12.5], accel: 1.5 },
  van: { length: [5.0, 5.6], width: [1.96, 2.1], height: [1.95, 2.5], speed: [8, 11.5], accel: 1.3 },
  truck: { length: [6.5, 9.0], width: [2.3, 2.55], height: [2.9, 3.6], speed: [7, 10], accel: 1.0 },
  bus: { length: [10.5, 12.4], width: [2.5, 2.55], height: [3.0, 3.3], speed: [7, 10], accel: 0.9 },
};
const TYPE_NAMES = Object.keys(VEHICLE_TYPES) as VehicleType[];
const MOVING_MIX = [0.2, 0.34, 0.22, 0.1, 0.08, 0.06];
const PARKED_MIX = [0.26, 0.36, 0.24, 0.1, 0.04, 0];
const CAR_MIX = [0.25, 0.45, 0.3, 0, 0, 0];

const PAINTS: [number, number, number][] = [
  [0.9, 0.9, 0.9],
  [0.06, 0.06, 0.07],
  [0.62, 0.63, 0.65],
  [0.35, 0.36, 0.38],
  [0.6, 0.07, 0.06],
  [0.1, 0.2, 0.5],
  [0.06, 0.1, 0.22],
  [0.12, 0.3, 0.18],
  [0.85, 0.68, 0.12],
  [0.38, 0.26, 0.18],
  [0.78, 0.78, 0.74],
  [0.5, 0.12, 0.12],
];

// ---------------------------------------------------------------------------------------------
// Vehicles

export function sampleVehicle(rng: Rng, id: number, mix: readonly number[], parked: boolean): VehicleSpec {
  const type = TYPE_NAMES[rng.weighted(mix)];
  const t = VEHICLE_TYPES[type];
  let color = rng.pick(PAINTS);
  if (type === 'bus')
    color = rng.pick([
      [0.85, 0.65, 0.1],
      [0.7, 0.1, 0.08],
      [0.88, 0.88, 0.86],
    ] as [number, number, number][]);
  if (type === 'truck' && rng.chance(0.6)) color = [0.88, 0.88, 0.86];
  const r2 = (v: number) => Math.round(v * 100) / 100;
  return {
    id,
    type,
    length: r2(rng.uniform(t.length[0], t.length[1])),
    width: r2(rng.uniform(t.width[0], t.width[1])),
    height: r2(rng.uniform(t.height[0], t.height[1])),
    color,
    parked,
    connected: false,
  };
}

interface SimVehicle {
  spec: VehicleSpec;
  path: number;
  s: number;
  v: number;
  v0: number;
  accel: number;
  /** Connector chosen for the end of the current lane (−1 on a connector). */
  plan: number;
  /** Node whose intersection this vehicle has been cleared to cross, −1 when none. */
  committed: number;
  /** The path driven before this one (−1 right after spawning), for placing the rear of the body. */
  prev: number;
  /** Candidates for connected vehicles keep circling the home intersection. */
  homing: boolean;
}

interface ParkedVehicle {
  spec: VehicleSpec;
  pose: VehiclePose;
}

export interface TrafficOptions {
  /** Index of the node the roadside unit watches; connected vehicles drive around it. */
  homeNode: number;
  rsu: [number, number];
  /** Number of connected vehicles to pick. */
  cavs: number;
  /** Simulation steps to run before the first recorded one. */
  warmupSteps: number;
  /** Steps recorded (every `recordEvery`-th step from warmupSteps on). */
  recordedFrames: number;
  recordEvery: number;
  /** Extra steps after the last recorded frame, so plans can look ahead. */
  tailSteps: number;
  /** `count` distinct actor ids, in spawn order. */
  actorIds: (count: number) => number[];
  lotSpots: LotSpot[];
  noParking: NoParkingZone[];
}

export interface TrafficResult {
  vehicles: VehicleSpec[];
  /** poses[frame][vehicle] for frames 0..recordedFrames+tail/recordEvery. */
  poses: VehiclePose[][];
  /** Ids of the connected vehicles, in the order they were picked. */
  cavIds: number[];
  /** Desired speed per vehicle (m/s), for the planner's target speed. */
  targetSpeed: number[];
}

const round4 = (v: number) => Math.round(v * 1e4) / 1e4;

/**
 * Places the vehicles, runs the simulation and records the poses. The draws from `rng` happen in
 * a fixed order (moving vehicles, parked ones, lights, then route choices step by step), which is
 * what keeps a scenario byte-identical from run to run.
 */
export function simulateTraffic(graph: LaneGraph, rng: Rng, opts: TrafficOptions): TrafficResult {
  const vehicles = spawnMoving(graph, rng, opts);
  const parked = [...parkAlongKerbs(graph, rng, opts.noParking), ...parkInLots(rng, opts.lotSpots)];
  const state = startTraffic(graph, rng, vehicles, opts.homeNode);
  const poses: VehiclePose[][] = [];
  const totalSteps = opts.warmupSteps + (opts.recordedFrames - 1) * opts.recordEvery + opts.tailSteps;
  for (let step = 0; step <= totalSteps; step++) {
    if (step >= opts.warmupSteps && (step - opts.warmupSteps) % opts.recordEvery === 0) {
      const frame: VehiclePose[] = vehicles.map((v) => bodyPose(graph, v));
      for (const pk of parked) frame.push(pk.pose);
      poses.push(frame);
    }
    stepTraffic(state);
  }
  return trafficResult(vehicles, parked, poses, opts);
}

// ---------------------------------------------------------------------------------------------
// Placing the vehicles

/** Puts a vehicle at a random free spot of `lane` (8 tries); false when none was found. */
function spawn(graph: LaneGraph, rng: Rng, vehicles: SimVehicle[], lane: number, spec: VehicleSpec, homing: boolean): boolean {
  const p = graph.paths[lane];
  const lo = spec.length / 2 + 1,
    hi = p.length - spec.length / 2 - 2;
  if (hi <= lo) return false;
  for (let attempt = 0; attempt < 8; attempt++) {
    const s = rng.uniform(lo, hi);
    if (vehicles.some((o) => o.path === lane && Math.abs(o.s - s) < (o.spec.length + spec.length) / 2 + 6)) continue;
    const t = VEHICLE_TYPES[spec.type];
    const v0 = rng.uniform(t.speed[0], t.speed[1]);
    vehicles.push({ spec, path: lane, s, v: v0 * rng.uniform(0.3, 0.9), v0, accel: t.accel, plan: -1, committed: -1, prev: -1, homing });
    return true;
  }
  return false;
}

/** The moving vehicles: the connected-vehicle candidates first, then the background traffic. */
function spawnMoving(graph: LaneGraph, rng: Rng, opts: TrafficOptions): SimVehicle[] {
  const { paths } = graph;
  const lanes = laneIds(graph);
  const vehicles: SimVehicle[] = [];
  // Candidates for the connected vehicles: cars on the lanes into and out of the home
  // intersection that keep circling the blocks around it. The agents are picked among them
  // after the simulation, as the ones that stay closest together while recording.
  const homeLanes = lanes.filter((l) => paths[l].to === opts.homeNode || paths[l].from === opts.homeNode);
  const poolSize = opts.cavs + 5;
  let pooled = 0;
  for (let tries = 0; pooled < poolSize && tries < poolSize * 10; tries++) {
    const lane = rng.pick(homeLanes);
    if (spawn(graph, rng, vehicles, lane, sampleVehicle(rng, 0, CAR_MIX, false), true)) pooled++;
  }
  if (pooled < opts.cavs) throw new Error('synthetic traffic: could not place the connected vehicles');

  // Background traffic: about one vehicle per 55–85 m of lane, light enough to flow.
  const spacing = rng.uniform(55, 85);
  for (const l of lanes) {
    const n = Math.round(paths[l].length / spacing + rng.uniform(-0.5, 0.5));
    for (let k = 0; k < n; k++) spawn(graph, rng, vehicles, l, sampleVehicle(rng, 0, MOVING_MIX, false), false);
  }
  return vehicles;
}

/** Parked vehicles in a share of the parking strips, clear of the no-parking zones. */
function parkAlongKerbs(graph: LaneGraph, rng: Rng, noParking: NoParkingZone[]): ParkedVehicle[] {
  const parked: ParkedVehicle[] = [];
  for (const l of laneIds(graph)) {
    if (!rng.chance(0.6)) continue;
    const p = graph.paths[l];
    const occupancy = rng.uniform(0.2, 0.65);
    const [dx, dy] = laneDirection(p);
    // The parking strip centre, measured from the lane centre line towards the kerb.
    const side = ROAD_HALF_WIDTH - PARKING_WIDTH / 2 - LANE_WIDTH / 2;
    const kerbX = -dy * side,
      kerbY = dx * side;
    // Lanes start and end at the stop lines; keep the kerb clear near the crossings.
    let cursor = 3 + rng.uniform(0, 6);
    while (true) {
      const spec = sampleVehicle(rng, 0, PARKED_MIX, true);
      const end = cursor + spec.length;
      if (end > p.length - 3) break;
      const s = cursor + spec.length / 2;
      const [lx, ly] = pointAt(p, s);
      const x = lx + kerbX,
        y = ly + kerbY;
      const blocked = noParking.some((z) => Math.hypot(z.x - x, z.y - y) < z.r + spec.length / 2);
      if (!blocked && rng.chance(occupancy)) {
        const yaw = (Math.atan2(dy, dx) * 180) / Math.PI + rng.uniform(-1.5, 1.5);
        parked.push({ spec, pose: { x: round4(x), y: round4(y), z: 0, yaw: round4(yaw), speed: 0 } });
      }
      cursor = end + rng.uniform(0.8, 2.5);
    }
  }
  return parked;
}

/** Parked vehicles in a share of the lot stalls, some backed in. */
function parkInLots(rng: Rng, lotSpots: LotSpot[]): ParkedVehicle[] {
  const parked: ParkedVehicle[] = [];
  const lotFill = rng.uniform(0.3, 0.7);
  for (const spot of lotSpots) {
    if (!rng.chance(lotFill)) continue;
    const spec = sampleVehicle(rng, 0, [0.3, 0.4, 0.25, 0.05, 0, 0], true);
    const jitter = rng.uniform(-0.15, 0.15);
    const yaw = spot.yaw + rng.uniform(-3, 3) + (rng.chance(0.3) ? 180 : 0);
    parked.push({ spec, pose: { x: round4(spot.x + jitter), y: round4(spot.y), z: CURB_HEIGHT, yaw: round4(yaw), speed: 0 } });
  }
  return parked;
}

// ---------------------------------------------------------------------------------------------
// Simulation state

/** A junction's traffic lights: green for lanes along x, all red, green along y, all red. */
interface Junction {
  signals: boolean;
  /** Seconds into the cycle at t = 0. */
  offset: number;
  /** Length of each green phase, s. */
  green: number;
}

const ALL_RED = 2;

/** Everything one simulation step reads and changes. */
interface TrafficState {
  graph: LaneGraph;
  /** Route choices at the end of each lane draw from it. */
  rng: Rng;
  vehicles: SimVehicle[];
  /** Per node. */
  junctions: Junction[];
  /** Per node: the vehicles cleared to cross it, with their connector. */
  committedAt: Map<SimVehicle, number>[];
  /** Per node: the vehicles waiting at the line for their turn, with the time they started asking. */
  waitingAt: Map<SimVehicle, number>[];
  /** The intersection the homing vehicles circle. */
  home: { x: number; y: number };
  /** Steps taken; the simulated time is step · SIM_DT. */
  step: number;
}

function startTraffic(graph: LaneGraph, rng: Rng, vehicles: SimVehicle[], homeNode: number): TrafficState {
  const { nodes } = graph;
  // About half the junctions have traffic lights (always the one the roadside unit watches);
  // at the others, drivers slow down and go when the way is clear.
  const junctions = nodes.map((n, i) => ({
    offset: rng.uniform(0, 40),
    green: rng.uniform(9, 14),
    signals: n.degree >= 3 && (i === homeNode || rng.chance(0.5)),
  }));
  const state: TrafficState = {
    graph,
    rng,
    vehicles,
    junctions,
    committedAt: nodes.map(() => new Map<SimVehicle, number>()),
    waitingAt: nodes.map(() => new Map<SimVehicle, number>()),
    home: nodes[homeNode],
    step: 0,
  };
  for (const v of vehicles) choosePlan(state, v);
  return state;
}

/** True when a vehicle on a lane along `axis` sees green at this junction at time t. */
function green(j: Junction, axis: number, t: number): boolean {
  if (!j.signals) return true;
  const cycle = 2 * (j.green + ALL_RED);
  const u = (((t + j.offset) % cycle) + cycle) % cycle;
  return axis === 0 ? u < j.green : u >= j.green + ALL_RED && u < 2 * j.green + ALL_RED;
}

/** Picks the connector v takes at the end of its lane. */
function choosePlan(state: TrafficState, v: SimVehicle): void {
  const { paths, nodes } = state.graph;
  const { rng, home } = state;
  const options = paths[v.path].next;
  if (v.homing && rng.chance(0.9)) {
    // Head for the exit whose far end is nearest the home intersection: the car circles the
    // blocks around it instead of wandering off across town.
    let best = options[0],
      bestD = Infinity;
    for (const c of options) {
      const end = nodes[paths[paths[c].outLane].to];
      const d = Math.hypot(end.x - home.x, end.y - home.y) + rng.uniform(0, 30);
      if (d < bestD) {
        bestD = d;
        best = c;
      }
    }
    v.plan = best;
    return;
  }
  const w = options.map((c) => (paths[c].turn === 'straight' ? 0.5 : 0.25));
  v.plan = options[rng.weighted(w)];
}

const turnSpeed = (c: Path) => (c.turn === 'right' ? 4.5 : c.turn === 'left' ? 6.5 : Infinity);

const long = (v: SimVehicle) => v.spec.length > 6.2;

/** Room at the start of a lane: distance from its start to the rearmost body on it, minus bodies headed there. */
function roomOn(state: TrafficState, lane: number, node: number, self: SimVehicle): number {
  const { paths } = state.graph;
  let room = paths[lane].length;
  for (const o of state.vehicles) if (o.path === lane) room = Math.min(room, o.s - o.spec.length / 2);
  for (const [o, oc] of state.committedAt[node]) {
    if (o !== self && o.path !== lane && paths[oc].outLane === lane) room -= o.spec.length + 2.5;
  }
  return room;
}

/** Would v on connector c clash with o on connector oc (o being ahead in the same approach counts as following)? */
function clash(state: TrafficState, v: SimVehicle, c: number, o: SimVehicle, oc: number): boolean {
  const { paths, conflicts } = state.graph;
  if (paths[oc].inLane === paths[c].inLane) {
    // Same approach: following on the same connector is the driver model's job; on another
    // connector, wait until the one ahead has pulled well into its own path.
    if (oc === c || o.path === paths[oc].outLane) return false;
    return !(o.path === oc && o.s - o.spec.length / 2 > 7);
  }
  // A long vehicle cuts deep into the inside of a turn: it turns with the intersection to itself.
  const turning = (x: SimVehicle, xc: number) => long(x) && paths[xc].turn !== 'straight';
  return turning(v, c) || turning(o, oc) || conflicts.get(c)!.has(oc);
}

/**
 * May v (on a lane, heading into connector v.plan) enter the intersection now? Not while a
 * vehicle inside is on a crossing path, nor ahead of a crossing vehicle that has been waiting
 * longer (first come, first served), nor when its exit lane has no room.
 */
function canEnter(state: TrafficState, v: SimVehicle): boolean {
  const { paths } = state.graph;
  const c = v.plan;
  const node = paths[c].from;
  for (const [o, oc] of state.committedAt[node]) if (o !== v && clash(state, v, c, o, oc)) return false;
  const waiting = state.waitingAt[node];
  const since = waiting.get(v) ?? Infinity;
  for (const [o, t] of waiting) {
    if (o !== v && t < since && paths[o.plan].inLane !== paths[c].inLane && clash(state, v, c, o, o.plan)) return false;
  }
  return roomOn(state, paths[c].outLane, node, v) >= v.spec.length + 2.5;
}

/** Nearest body ahead along v's route: [distance between centres, its length, its speed]. */
function leader(state: TrafficState, v: SimVehicle): [number, number, number] | undefined {
  const { graph } = state;
  // `base` is where the searched path starts, measured from v's centre along the route.
  let base = -v.s;
  let path = v.path;
  for (let hop = 0; hop < 3; hop++) {
    let best: SimVehicle | undefined;
    for (const o of state.vehicles) {
      if (o === v || o.path !== path || base + o.s <= 0) continue;
      if (!best || o.s < best.s) best = o;
    }
    if (best) return [base + best.s, best.spec.length, best.v];
    base += graph.paths[path].length;
    if (base > 90) return undefined;
    // Only the current lane's connector is chosen; past the lane after it the route is open.
    const next = pathAfter(graph, path, hop === 0 ? v.plan : -1);
    if (next < 0) return undefined;
    path = next;
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// One step

/** Advances every vehicle by SIM_DT, in spawn order (each sees the ones before it already moved). */
function stepTraffic(state: TrafficState): void {
  const t = state.step * SIM_DT;
  for (const v of state.vehicles) stepVehicle(state, v, t);
  state.step++;
}

/** What holds a vehicle back this step. */
interface Limits {
  /** Speed it would settle at on an open road. */
  vmax: number;
  /** Bumper gap to what it must not hit, and how much faster it is going than that. */
  gap: number;
  dv: number;
  /** Largest allowed s on the current path. */
  hardStop: number;
}

function stepVehicle(state: TrafficState, v: SimVehicle, t: number): void {
  const p = state.graph.paths[v.path];
  const ahead = leader(state, v);
  const limits: Limits = { vmax: v.v0, gap: Infinity, dv: 0, hardStop: Infinity };
  if (ahead) {
    limits.gap = ahead[0] - (ahead[1] + v.spec.length) / 2;
    limits.dv = v.v - ahead[2];
  }
  if (p.kind === 'connector') limits.vmax = Math.min(limits.vmax, turnSpeed(p));
  else approachIntersection(state, v, t, limits);
  move(v, idmAcceleration(v, limits), ahead, limits.hardStop);
  advance(state, v);
}

/**
 * On a lane: slow down for the turn at its end, and near the line ask to enter the intersection;
 * until cleared, the stop line acts like a stopped car (`limits` is updated in place).
 */
function approachIntersection(state: TrafficState, v: SimVehicle, t: number, limits: Limits): void {
  const { paths } = state.graph;
  const p = paths[v.path];
  const c = paths[v.plan];
  const toLine = p.length - v.s - v.spec.length / 2;
  const atLine = state.junctions[c.from].signals ? Math.min(turnSpeed(c), 99) : Math.min(turnSpeed(c), 4);
  limits.vmax = Math.min(limits.vmax, Math.sqrt(atLine ** 2 + 2 * 1.5 * Math.max(0, toLine)));
  if (!(v.committed < 0 && toLine < 60)) return;
  const node = c.from;
  const junction = state.junctions[node];
  const waiting = state.waitingAt[node];
  const lightOk = green(junction, p.axis, t);
  // A vehicle that cannot stop comfortably on amber goes on, if the way is clear.
  const mustGo = !lightOk && v.v * v.v > 2 * 5 * Math.max(0.1, toLine) && green(junction, p.axis, t - ALL_RED);
  // Ask for the intersection once within comfortable braking distance of the line.
  const close = toLine < 3 + v.v * 0.3 + (v.v * v.v) / 8;
  const asking = (lightOk || mustGo) && close;
  if (asking && !waiting.has(v)) waiting.set(v, t);
  if (!asking) waiting.delete(v);
  if (asking && canEnter(state, v)) {
    v.committed = node;
    state.committedAt[node].set(v, v.plan);
    waiting.delete(v);
  } else if (!lightOk || close) {
    const g = toLine - 0.5;
    if (g < limits.gap) {
      limits.gap = g;
      limits.dv = v.v;
    }
    limits.hardStop = p.length - v.spec.length / 2;
  }
}

/** Intelligent Driver Model: accelerate towards vmax, brake to keep a time gap to what is ahead. */
function idmAcceleration(v: SimVehicle, { vmax, gap, dv }: Limits): number {
  const a = v.accel,
    b = 2.2,
    s0 = 2.0,
    T = 1.2;
  const sStar = s0 + Math.max(0, v.v * T + (v.v * dv) / (2 * Math.sqrt(a * b)));
  let acc = a * (1 - (v.v / Math.max(0.1, vmax)) ** 4);
  if (Number.isFinite(gap)) acc -= a * (sStar / Math.max(0.1, gap)) ** 2;
  return Math.max(-8, acc);
}

/** Integrates one step: never closer than half a meter to the body ahead, never past an uncleared stop line. */
function move(v: SimVehicle, acc: number, ahead: [number, number, number] | undefined, hardStop: number): void {
  let nv = Math.max(0, v.v + acc * SIM_DT);
  let ns = v.s + nv * SIM_DT;
  if (ahead) {
    const maxS = v.s + ahead[0] - (ahead[1] + v.spec.length) / 2 - 0.5;
    if (ns > maxS) {
      ns = Math.max(v.s, maxS);
      nv = Math.min(nv, ahead[2]);
    }
  }
  if (v.committed < 0 && ns > hardStop) {
    ns = Math.max(v.s, hardStop);
    nv = 0;
  }
  v.v = nv;
  v.s = ns;
}

/** Moves v on to the next path when it ran past the end of its own, and releases its intersection once clear. */
function advance(state: TrafficState, v: SimVehicle): void {
  const { paths } = state.graph;
  while (v.s > paths[v.path].length) {
    const cur = paths[v.path];
    v.s -= cur.length;
    v.prev = v.path;
    if (cur.kind === 'lane') {
      v.path = v.plan;
      v.plan = -1;
    } else {
      v.path = cur.outLane;
      choosePlan(state, v);
    }
  }
  // Release the intersection once the rear is out on the exit lane.
  if (v.committed >= 0 && paths[v.path].kind === 'lane' && paths[v.path].from === v.committed && v.s - v.spec.length / 2 > 0.3) {
    state.committedAt[v.committed].delete(v);
    v.committed = -1;
  }
}

// ---------------------------------------------------------------------------------------------
// Recording

/**
 * The body's pose: front and rear ends both on the route, like a vehicle whose wheels track
 * the lane. Its middle cuts the inside of a turn a little, and its ends never swing out into
 * the lanes of waiting traffic, as they would if the centre followed the curve.
 */
function bodyPose(graph: LaneGraph, v: SimVehicle): VehiclePose {
  const half = v.spec.length / 2;
  const f = routePoint(graph, v, half),
    r = routePoint(graph, v, -half);
  return {
    x: round4((f[0] + r[0]) / 2),
    y: round4((f[1] + r[1]) / 2),
    z: 0,
    yaw: round4((Math.atan2(f[1] - r[1], f[0] - r[0]) * 180) / Math.PI),
    speed: Math.round(v.v * 1000) / 1000,
  };
}

/** Specs with their actor ids and connected flags, in spawn order (moving vehicles, then parked). */
function trafficResult(vehicles: SimVehicle[], parked: ParkedVehicle[], poses: VehiclePose[][], opts: TrafficOptions): TrafficResult {
  const cavIds = pickAgents(
    vehicles.map((v, i) => (v.homing ? i : -1)).filter((i) => i >= 0),
    poses.slice(0, opts.recordedFrames),
    opts.rsu,
    opts.cavs,
  ).map((i) => vehicles[i].spec);
  // Ids in spawn order, 4-digit like CARLA's actor ids; connected vehicles are flagged.
  const specs: VehicleSpec[] = [...vehicles.map((v) => v.spec), ...parked.map((p) => p.spec)];
  const ids = opts.actorIds(specs.length);
  specs.forEach((spec, i) => {
    spec.id = ids[i];
  });
  for (const spec of cavIds) spec.connected = true;
  return {
    vehicles: specs,
    poses,
    cavIds: cavIds.map((spec) => spec.id),
    targetSpeed: [...vehicles.map((v) => v.v0), ...parked.map(() => 0)],
  };
}

/** Agents within this distance can talk (OpenCOOD/HEAL comm_range for OPV2V). */
const COMM_RANGE = 70;

/**
 * Greedily picks `count` candidates (indices into the frame pose arrays) that spend the most
 * recorded frames within comm range of the roadside unit and of the agents already picked, with
 * a bonus for frames spent moving (agents parked at a red light all along make dull data).
 */
function pickAgents(candidates: number[], frames: VehiclePose[][], rsu: [number, number], count: number): number[] {
  const chosen: number[] = [];
  const near = (a: VehiclePose, x: number, y: number) => Math.hypot(a.x - x, a.y - y) <= COMM_RANGE;
  while (chosen.length < count) {
    let best = -1,
      bestScore = -Infinity;
    for (const c of candidates) {
      if (chosen.includes(c)) continue;
      let score = 0;
      for (const f of frames) {
        const p = f[c];
        if (near(p, rsu[0], rsu[1])) score++;
        for (const o of chosen) if (near(p, f[o].x, f[o].y)) score++;
        if (p.speed > 1) score += 0.75;
        // Ties go to the one closer to the roadside unit.
        score -= Math.hypot(p.x - rsu[0], p.y - rsu[1]) * 1e-6;
      }
      if (score > bestScore) {
        bestScore = score;
        best = c;
      }
    }
    if (best < 0) throw new Error('synthetic traffic: not enough candidates for the connected vehicles');
    chosen.push(best);
  }
  return chosen;
}

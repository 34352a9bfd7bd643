// Traffic: a lane graph over the road grid and a 20 Hz simulation of the moving vehicles.
//
// Vehicles follow their lane with the Intelligent Driver Model (keep a time gap to the car
// ahead, slow for turns), and at each intersection go straight or turn. Right-hand traffic: in
// UE4's left-handed axes the right of heading (cos ψ, sin ψ) is (−sin ψ, cos ψ). Intersections
// have two-phase traffic lights, and a vehicle only enters when no vehicle already inside is on a
// crossing path and its exit lane has room, so bodies never overlap. Parked vehicles stand in the
// parking strips and lot stalls.

import type { Rng } from '../rng.ts';
import { CURB_HEIGHT, LANE_WIDTH, type LotSpot, type NoParkingZone, PARKING_WIDTH, ROAD_HALF_WIDTH, STOP_LINE } from './town.ts';
import type { Town, VehiclePose, VehicleSpec, VehicleType } from './world.ts';

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
// Lane graph

export interface Path {
  kind: 'lane' | 'connector';
  /** Polyline x0,y0,x1,y1,... and cumulative arc length at each vertex. */
  pts: Float64Array;
  cum: Float64Array;
  length: number;
  /** lane: start and end node; connector: the node it crosses (from = to). */
  from: number;
  to: number;
  /** Lanes: the connectors that continue it. Connectors: [exit lane]. */
  next: number[];
  /** Connectors only. */
  inLane: number;
  outLane: number;
  turn: 'straight' | 'left' | 'right' | '';
  /** Lanes: 0 runs along x, 1 along y (which light phase it waits for). */
  axis: number;
}

export interface LaneGraph {
  nodes: { x: number; y: number; degree: number }[];
  paths: Path[];
  /** conflicts[c] = connector ids whose swept corridors cross connector c. */
  conflicts: Map<number, Set<number>>;
}

function polyline(points: [number, number][]): { pts: Float64Array; cum: Float64Array; length: number } {
  const pts = new Float64Array(points.length * 2);
  const cum = new Float64Array(points.length);
  points.forEach(([x, y], i) => {
    pts[i * 2] = x;
    pts[i * 2 + 1] = y;
    if (i > 0) cum[i] = cum[i - 1] + Math.hypot(x - points[i - 1][0], y - points[i - 1][1]);
  });
  return { pts, cum, length: cum[points.length - 1] };
}

/** Point at arc length s (clamped to the path). */
export function pointAt(p: Path, s: number): [number, number] {
  const cum = p.cum;
  const n = cum.length;
  if (s <= 0) return [p.pts[0], p.pts[1]];
  if (s >= p.length) return [p.pts[(n - 1) * 2], p.pts[(n - 1) * 2 + 1]];
  let lo = 0,
    hi = n - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (cum[mid] <= s) lo = mid;
    else hi = mid;
  }
  const t = (s - cum[lo]) / (cum[hi] - cum[lo] || 1);
  return [p.pts[lo * 2] + t * (p.pts[hi * 2] - p.pts[lo * 2]), p.pts[lo * 2 + 1] + t * (p.pts[hi * 2 + 1] - p.pts[lo * 2 + 1])];
}

export function buildLaneGraph(town: Town): LaneGraph {
  const { xs, ys } = town;
  const nY = ys.length;
  const node = (i: number, j: number) => i * nY + j;
  const nodes: LaneGraph['nodes'] = [];
  for (let i = 0; i < xs.length; i++) {
    for (let j = 0; j < nY; j++) {
      const deg = (i > 0 ? 1 : 0) + (i < xs.length - 1 ? 1 : 0) + (j > 0 ? 1 : 0) + (j < nY - 1 ? 1 : 0);
      nodes.push({ x: xs[i], y: ys[j], degree: deg });
    }
  }
  const paths: Path[] = [];
  const off = LANE_WIDTH / 2;
  const addLane = (a: number, b: number) => {
    const A = nodes[a],
      B = nodes[b];
    const len = Math.hypot(B.x - A.x, B.y - A.y);
    const dx = (B.x - A.x) / len,
      dy = (B.y - A.y) / len;
    const rx = -dy * off,
      ry = dx * off;
    const line = polyline([
      [A.x + dx * STOP_LINE + rx, A.y + dy * STOP_LINE + ry],
      [B.x - dx * STOP_LINE + rx, B.y - dy * STOP_LINE + ry],
    ]);
    paths.push({ kind: 'lane', ...line, from: a, to: b, next: [], inLane: -1, outLane: -1, turn: '', axis: Math.abs(dx) > 0.5 ? 0 : 1 });
  };
  for (let i = 0; i < xs.length; i++) {
    for (let j = 0; j < nY; j++) {
      if (i < xs.length - 1) {
        addLane(node(i, j), node(i + 1, j));
        addLane(node(i + 1, j), node(i, j));
      }
      if (j < nY - 1) {
        addLane(node(i, j), node(i, j + 1));
        addLane(node(i, j + 1), node(i, j));
      }
    }
  }
  const laneCount = paths.length;
  const byNode = new Map<number, number[]>();
  for (let l = 0; l < laneCount; l++) {
    const to = paths[l].to;
    if (!byNode.has(to)) byNode.set(to, []);
    byNode.get(to)!.push(l);
  }
  const conflicts = new Map<number, Set<number>>();
  for (const [n, incoming] of byNode) {
    const outgoing = [];
    for (let l = 0; l < laneCount; l++) if (paths[l].from === n) outgoing.push(l);
    const here: number[] = [];
    for (const inL of incoming) {
      for (const outL of outgoing) {
        if (paths[outL].to === paths[inL].from) continue; // no U-turns
        const c = connector(paths[inL], paths[outL], inL, outL, n);
        paths.push(c);
        paths[inL].next.push(paths.length - 1);
        here.push(paths.length - 1);
      }
    }
    for (const a of here) conflicts.set(a, new Set());
    for (const a of here) {
      for (const b of here) {
        if (a >= b) continue;
        const pa = paths[a],
          pb = paths[b];
        if (pa.inLane === pb.inLane) continue; // handled by following: see canEnter
        if (pa.outLane === pb.outLane || minDistance(pa, pb) < 3.0) {
          conflicts.get(a)!.add(b);
          conflicts.get(b)!.add(a);
        }
      }
    }
  }
  return { nodes, paths, conflicts };
}

function connector(inP: Path, outP: Path, inL: number, outL: number, n: number): Path {
  const m = inP.pts.length;
  const p0: [number, number] = [inP.pts[m - 2], inP.pts[m - 1]];
  const p1: [number, number] = [outP.pts[0], outP.pts[1]];
  const d0 = [(inP.pts[m - 2] - inP.pts[0]) / inP.length, (inP.pts[m - 1] - inP.pts[1]) / inP.length];
  const d1 = [(outP.pts[2] - outP.pts[0]) / outP.length, (outP.pts[3] - outP.pts[1]) / outP.length];
  const cross = d0[0] * d1[1] - d0[1] * d1[0];
  let points: [number, number][];
  let turn: Path['turn'];
  if (Math.abs(cross) < 1e-6) {
    points = [p0, p1];
    turn = 'straight';
  } else {
    // Quadratic Bézier with its control point where the two lane lines meet.
    const t = ((p1[0] - p0[0]) * d1[1] - (p1[1] - p0[1]) * d1[0]) / cross;
    const c = [p0[0] + d0[0] * t, p0[1] + d0[1] * t];
    points = [];
    const k = 20;
    for (let i = 0; i <= k; i++) {
      const u = i / k;
      const a = (1 - u) * (1 - u),
        b = 2 * u * (1 - u),
        e = u * u;
      points.push([a * p0[0] + b * c[0] + e * p1[0], a * p0[1] + b * c[1] + e * p1[1]]);
    }
    // Positive yaw turns x towards y, which is to the right in UE4 axes.
    turn = cross > 0 ? 'right' : 'left';
  }
  return { kind: 'connector', ...polyline(points), from: n, to: n, next: [outL], inLane: inL, outLane: outL, turn, axis: inP.axis };
}

function minDistance(a: Path, b: Path): number {
  let best = Infinity;
  for (let s = 0; s <= a.length; s += 0.5) {
    const p = pointAt(a, s);
    for (let t = 0; t <= b.length; t += 0.5) {
      const q = pointAt(b, t);
      best = Math.min(best, Math.hypot(p[0] - q[0], p[1] - q[1]));
    }
  }
  return best;
}

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

export function simulateTraffic(graph: LaneGraph, rng: Rng, opts: TrafficOptions): TrafficResult {
  const { paths, nodes } = graph;
  const lanes = paths.map((_, i) => i).filter((i) => paths[i].kind === 'lane');
  const vehicles: SimVehicle[] = [];
  const parked: { spec: VehicleSpec; pose: VehiclePose }[] = [];

  const occupied = (lane: number, s: number, len: number) => vehicles.some((o) => o.path === lane && Math.abs(o.s - s) < (o.spec.length + len) / 2 + 6);
  const spawn = (lane: number, spec: VehicleSpec, homing: boolean): boolean => {
    const p = paths[lane];
    const lo = spec.length / 2 + 1,
      hi = p.length - spec.length / 2 - 2;
    if (hi <= lo) return false;
    for (let attempt = 0; attempt < 8; attempt++) {
      const s = rng.uniform(lo, hi);
      if (occupied(lane, s, spec.length)) continue;
      const t = VEHICLE_TYPES[spec.type];
      const v0 = rng.uniform(t.speed[0], t.speed[1]);
      vehicles.push({ spec, path: lane, s, v: v0 * rng.uniform(0.3, 0.9), v0, accel: t.accel, plan: -1, committed: -1, prev: -1, homing });
      return true;
    }
    return false;
  };

  // Candidates for the connected vehicles: cars on the lanes into and out of the home
  // intersection that keep circling the blocks around it. The agents are picked among them
  // after the simulation, as the ones that stay closest together while recording.
  const homeLanes = lanes.filter((l) => paths[l].to === opts.homeNode || paths[l].from === opts.homeNode);
  const poolSize = opts.cavs + 5;
  let pooled = 0;
  for (let tries = 0; pooled < poolSize && tries < poolSize * 10; tries++) {
    if (spawn(rng.pick(homeLanes), sampleVehicle(rng, 0, CAR_MIX, false), true)) pooled++;
  }
  if (pooled < opts.cavs) throw new Error('synthetic traffic: could not place the connected vehicles');

  // Background traffic: about one vehicle per 55–85 m of lane, light enough to flow.
  const spacing = rng.uniform(55, 85);
  for (const l of lanes) {
    const n = Math.round(paths[l].length / spacing + rng.uniform(-0.5, 0.5));
    for (let k = 0; k < n; k++) spawn(l, sampleVehicle(rng, 0, MOVING_MIX, false), false);
  }

  // Parked: a share of the parking strips, and lot stalls.
  for (const l of lanes) {
    if (!rng.chance(0.6)) continue;
    const p = paths[l];
    const occupancy = rng.uniform(0.2, 0.65);
    const dx = (p.pts[2] - p.pts[0]) / p.length,
      dy = (p.pts[3] - p.pts[1]) / p.length;
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
      const blocked = opts.noParking.some((z) => Math.hypot(z.x - x, z.y - y) < z.r + spec.length / 2);
      if (!blocked && rng.chance(occupancy)) {
        const yaw = (Math.atan2(dy, dx) * 180) / Math.PI + rng.uniform(-1.5, 1.5);
        parked.push({ spec, pose: { x: round4(x), y: round4(y), z: 0, yaw: round4(yaw), speed: 0 } });
      }
      cursor = end + rng.uniform(0.8, 2.5);
    }
  }
  const lotFill = rng.uniform(0.3, 0.7);
  for (const spot of opts.lotSpots) {
    if (!rng.chance(lotFill)) continue;
    const spec = sampleVehicle(rng, 0, [0.3, 0.4, 0.25, 0.05, 0, 0], true);
    const jitter = rng.uniform(-0.15, 0.15);
    const yaw = spot.yaw + rng.uniform(-3, 3) + (rng.chance(0.3) ? 180 : 0);
    parked.push({ spec, pose: { x: round4(spot.x + jitter), y: round4(spot.y), z: CURB_HEIGHT, yaw: round4(yaw), speed: 0 } });
  }

  // ------------------------------------------------------------------------------------------
  // Simulation

  // About half the junctions have traffic lights (always the one the roadside unit watches);
  // at the others, drivers slow down and go when the way is clear.
  const phase = nodes.map((n, i) => ({
    offset: rng.uniform(0, 40),
    green: rng.uniform(9, 14),
    signals: n.degree >= 3 && (i === opts.homeNode || rng.chance(0.5)),
  }));
  const ALL_RED = 2;
  /** True when a vehicle on a lane along `axis` sees green at node n at time t. */
  const green = (n: number, axis: number, t: number): boolean => {
    if (!phase[n].signals) return true;
    const ph = phase[n];
    const cycle = 2 * (ph.green + ALL_RED);
    const u = (((t + ph.offset) % cycle) + cycle) % cycle;
    return axis === 0 ? u < ph.green : u >= ph.green + ALL_RED && u < 2 * ph.green + ALL_RED;
  };

  // Per intersection: the vehicles cleared to cross it (with their connector), and the ones
  // waiting at the line for their turn (with the time they started asking).
  const committedAt = nodes.map(() => new Map<SimVehicle, number>());
  const waitingAt = nodes.map(() => new Map<SimVehicle, number>());

  const home = nodes[opts.homeNode];
  const choosePlan = (v: SimVehicle) => {
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
  };
  for (const v of vehicles) choosePlan(v);

  const turnSpeed = (c: Path) => (c.turn === 'right' ? 4.5 : c.turn === 'left' ? 6.5 : Infinity);

  /** Room at the start of a lane: distance from its start to the rearmost body on it, minus bodies headed there. */
  const roomOn = (lane: number, node: number, self: SimVehicle): number => {
    let room = paths[lane].length;
    for (const o of vehicles) if (o.path === lane) room = Math.min(room, o.s - o.spec.length / 2);
    for (const [o, oc] of committedAt[node]) {
      if (o !== self && o.path !== lane && paths[oc].outLane === lane) room -= o.spec.length + 2.5;
    }
    return room;
  };

  const long = (v: SimVehicle) => v.spec.length > 6.2;

  /** Would v on connector c clash with o on connector oc (o being ahead in the same approach counts as following)? */
  const clash = (v: SimVehicle, c: number, o: SimVehicle, oc: number): boolean => {
    if (paths[oc].inLane === paths[c].inLane) {
      // Same approach: following on the same connector is the driver model's job; on another
      // connector, wait until the one ahead has pulled well into its own path.
      if (oc === c || o.path === paths[oc].outLane) return false;
      return !(o.path === oc && o.s - o.spec.length / 2 > 7);
    }
    // A long vehicle cuts deep into the inside of a turn: it turns with the intersection to itself.
    const turning = (x: SimVehicle, xc: number) => long(x) && paths[xc].turn !== 'straight';
    return turning(v, c) || turning(o, oc) || graph.conflicts.get(c)!.has(oc);
  };

  /**
   * May v (on a lane, heading into connector v.plan) enter the intersection now? Not while a
   * vehicle inside is on a crossing path, nor ahead of a crossing vehicle that has been waiting
   * longer (first come, first served), nor when its exit lane has no room.
   */
  const canEnter = (v: SimVehicle): boolean => {
    const c = v.plan;
    const node = paths[c].from;
    for (const [o, oc] of committedAt[node]) if (o !== v && clash(v, c, o, oc)) return false;
    const since = waitingAt[node].get(v) ?? Infinity;
    for (const [o, t] of waitingAt[node]) {
      if (o !== v && t < since && paths[o.plan].inLane !== paths[c].inLane && clash(v, c, o, o.plan)) return false;
    }
    return roomOn(paths[c].outLane, node, v) >= v.spec.length + 2.5;
  };

  /** Nearest body ahead along v's route: [distance between centres, its length, its speed]. */
  const leader = (v: SimVehicle): [number, number, number] | undefined => {
    // `base` is where the searched path starts, measured from v's centre along the route.
    let base = -v.s;
    let path = v.path;
    for (let hop = 0; hop < 3; hop++) {
      let best: SimVehicle | undefined;
      for (const o of vehicles) {
        if (o === v || o.path !== path || base + o.s <= 0) continue;
        if (!best || o.s < best.s) best = o;
      }
      if (best) return [base + best.s, best.spec.length, best.v];
      const p = paths[path];
      base += p.length;
      if (base > 90) return undefined;
      const next = p.kind === 'lane' ? (hop === 0 ? v.plan : -1) : p.outLane;
      if (next < 0) return undefined;
      path = next;
    }
    return undefined;
  };

  const stepAll = (t: number) => {
    for (const v of vehicles) {
      const p = paths[v.path];
      let vmax = v.v0;
      let gap = Infinity;
      let dv = 0;
      let hardStop = Infinity; // largest allowed s on the current path
      const ahead = leader(v);
      if (ahead) {
        gap = ahead[0] - (ahead[1] + v.spec.length) / 2;
        dv = v.v - ahead[2];
      }
      if (p.kind === 'connector') {
        vmax = Math.min(vmax, turnSpeed(p));
      } else {
        const c = paths[v.plan];
        const toLine = p.length - v.s - v.spec.length / 2;
        const atLine = phase[c.from].signals ? Math.min(turnSpeed(c), 99) : Math.min(turnSpeed(c), 4);
        vmax = Math.min(vmax, Math.sqrt(atLine ** 2 + 2 * 1.5 * Math.max(0, toLine)));
        if (v.committed < 0 && toLine < 60) {
          const node = c.from;
          const lightOk = green(node, p.axis, t);
          // A vehicle that cannot stop comfortably on amber goes on, if the way is clear.
          const mustGo = !lightOk && v.v * v.v > 2 * 5 * Math.max(0.1, toLine) && green(node, p.axis, t - ALL_RED);
          // Ask for the intersection once within comfortable braking distance of the line.
          const close = toLine < 3 + v.v * 0.3 + (v.v * v.v) / 8;
          const asking = (lightOk || mustGo) && close;
          if (asking && !waitingAt[node].has(v)) waitingAt[node].set(v, t);
          if (!asking) waitingAt[node].delete(v);
          if (asking && canEnter(v)) {
            v.committed = node;
            committedAt[node].set(v, v.plan);
            waitingAt[node].delete(v);
          } else if (!lightOk || close) {
            // Stop line ahead: behave as if a stopped car stood there.
            const g = toLine - 0.5;
            if (g < gap) {
              gap = g;
              dv = v.v;
            }
            hardStop = p.length - v.spec.length / 2;
          }
        }
      }
      // Intelligent Driver Model.
      const a = v.accel,
        b = 2.2,
        s0 = 2.0,
        T = 1.2;
      const sStar = s0 + Math.max(0, v.v * T + (v.v * dv) / (2 * Math.sqrt(a * b)));
      let acc = a * (1 - (v.v / Math.max(0.1, vmax)) ** 4);
      if (Number.isFinite(gap)) acc -= a * (sStar / Math.max(0.1, gap)) ** 2;
      acc = Math.max(-8, acc);
      let nv = Math.max(0, v.v + acc * SIM_DT);
      let ns = v.s + nv * SIM_DT;
      // Never closer than half a meter to the body ahead, never past an uncleared stop line.
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
      // Move on to the next path.
      while (v.s > paths[v.path].length) {
        const cur = paths[v.path];
        v.s -= cur.length;
        v.prev = v.path;
        if (cur.kind === 'lane') {
          v.path = v.plan;
          v.plan = -1;
        } else {
          v.path = cur.outLane;
          choosePlan(v);
        }
      }
      // Release the intersection once the rear is out on the exit lane.
      if (v.committed >= 0 && paths[v.path].kind === 'lane' && paths[v.path].from === v.committed && v.s - v.spec.length / 2 > 0.3) {
        committedAt[v.committed].delete(v);
        v.committed = -1;
      }
    }
  };

  /**
   * Point at `offset` meters along v's route from its centre, reaching into the previous or next
   * path (lanes are straight, so a spawned vehicle with no previous path extends its lane).
   */
  const routePoint = (v: SimVehicle, offset: number): [number, number] => {
    let path = v.path,
      s = v.s + offset;
    const p = paths[path];
    if (s < 0) {
      const prev = p.kind === 'connector' ? p.inLane : v.prev;
      if (prev < 0) {
        const dx = (p.pts[2] - p.pts[0]) / p.length,
          dy = (p.pts[3] - p.pts[1]) / p.length;
        return [p.pts[0] + dx * s, p.pts[1] + dy * s];
      }
      path = prev;
      s += paths[prev].length;
    } else if (s > p.length) {
      path = p.kind === 'lane' ? v.plan : p.outLane;
      s -= p.length;
    }
    return pointAt(paths[path], s);
  };

  /**
   * The body's pose: front and rear ends both on the route, like a vehicle whose wheels track
   * the lane. Its middle cuts the inside of a turn a little, and its ends never swing out into
   * the lanes of waiting traffic, as they would if the centre followed the curve.
   */
  const bodyPose = (v: SimVehicle): VehiclePose => {
    const half = v.spec.length / 2;
    const f = routePoint(v, half),
      r = routePoint(v, -half);
    return {
      x: round4((f[0] + r[0]) / 2),
      y: round4((f[1] + r[1]) / 2),
      z: 0,
      yaw: round4((Math.atan2(f[1] - r[1], f[0] - r[0]) * 180) / Math.PI),
      speed: Math.round(v.v * 1000) / 1000,
    };
  };

  const poses: VehiclePose[][] = [];
  const totalSteps = opts.warmupSteps + (opts.recordedFrames - 1) * opts.recordEvery + opts.tailSteps;
  for (let step = 0; step <= totalSteps; step++) {
    if (step >= opts.warmupSteps && (step - opts.warmupSteps) % opts.recordEvery === 0) {
      const frame: VehiclePose[] = vehicles.map(bodyPose);
      for (const pk of parked) frame.push(pk.pose);
      poses.push(frame);
    }
    stepAll(step * SIM_DT);
  }

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

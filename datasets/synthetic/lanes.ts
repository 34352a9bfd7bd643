// The lane graph over the town's road grid: one lane per direction of every road segment, running
// between the stop lines, and one connector per way through each intersection (no U-turns).
// Right-hand traffic: in UE4's left-handed axes the right of heading (cos ψ, sin ψ) is
// (−sin ψ, cos ψ). Connectors whose swept corridors cross are recorded as conflicts, which is
// what the traffic simulation (traffic.ts) consults before letting a vehicle into an intersection.

import { LANE_WIDTH, STOP_LINE } from './town.ts';
import type { Town } from './world.ts';

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
  /** Lanes first, then connectors, grouped by intersection. */
  paths: Path[];
  /** conflicts[c] = connector ids whose swept corridors cross connector c. */
  conflicts: Map<number, Set<number>>;
}

/**
 * Where something is on the graph: arc length `s` along path `path`, the path it came from
 * (−1 when unknown) and, on a lane, the connector it will take at the lane's end.
 */
export interface RoutePosition {
  path: number;
  s: number;
  prev: number;
  plan: number;
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

/** Unit direction of a lane's first segment (lanes are straight, so of the whole lane). */
export function laneDirection(p: Path): [number, number] {
  return [(p.pts[2] - p.pts[0]) / p.length, (p.pts[3] - p.pts[1]) / p.length];
}

/** Ids of the lanes (not connectors), in graph order. */
export function laneIds(graph: LaneGraph): number[] {
  return graph.paths.map((_, i) => i).filter((i) => graph.paths[i].kind === 'lane');
}

/**
 * The path after `path` on a route: a connector leads to its exit lane, a lane to `plan` (the
 * connector chosen for its end; −1 when none is chosen yet).
 */
export function pathAfter(graph: LaneGraph, path: number, plan: number): number {
  const p = graph.paths[path];
  return p.kind === 'lane' ? plan : p.outLane;
}

/**
 * Point `offset` meters along a route from `at`, reaching one path into the previous or next
 * one. With no previous path (right after spawning), the start of the lane is extended
 * backwards, which is exact since lanes are straight.
 */
export function routePoint(graph: LaneGraph, at: RoutePosition, offset: number): [number, number] {
  const { paths } = graph;
  let path = at.path,
    s = at.s + offset;
  const p = paths[path];
  if (s < 0) {
    const prev = p.kind === 'connector' ? p.inLane : at.prev;
    if (prev < 0) {
      const [dx, dy] = laneDirection(p);
      return [p.pts[0] + dx * s, p.pts[1] + dy * s];
    }
    path = prev;
    s += paths[prev].length;
  } else if (s > p.length) {
    path = pathAfter(graph, path, at.plan);
    s -= p.length;
  }
  return pointAt(paths[path], s);
}

export function buildLaneGraph(town: Town): LaneGraph {
  const nodes = gridNodes(town);
  const paths = gridLanes(town, nodes);
  const conflicts = new Map<number, Set<number>>();
  for (const [n, incoming] of lanesByEnd(paths)) {
    const here = addConnectors(paths, n, incoming);
    addConflicts(paths, here, conflicts);
  }
  return { nodes, paths, conflicts };
}

/** One node per road crossing, index i·ys.length + j; degree counts the roads that meet there. */
function gridNodes(town: Town): LaneGraph['nodes'] {
  const { xs, ys } = town;
  const nodes: LaneGraph['nodes'] = [];
  for (let i = 0; i < xs.length; i++) {
    for (let j = 0; j < ys.length; j++) {
      const deg = (i > 0 ? 1 : 0) + (i < xs.length - 1 ? 1 : 0) + (j > 0 ? 1 : 0) + (j < ys.length - 1 ? 1 : 0);
      nodes.push({ x: xs[i], y: ys[j], degree: deg });
    }
  }
  return nodes;
}

/** Both lanes of every road segment, half a lane right of the centre line, stop line to stop line. */
function gridLanes(town: Town, nodes: LaneGraph['nodes']): Path[] {
  const { xs, ys } = town;
  const node = (i: number, j: number) => i * ys.length + j;
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
    for (let j = 0; j < ys.length; j++) {
      if (i < xs.length - 1) {
        addLane(node(i, j), node(i + 1, j));
        addLane(node(i + 1, j), node(i, j));
      }
      if (j < ys.length - 1) {
        addLane(node(i, j), node(i, j + 1));
        addLane(node(i, j + 1), node(i, j));
      }
    }
  }
  return paths;
}

/** Lanes by the node they end at, nodes in order of their first incoming lane. */
function lanesByEnd(lanes: Path[]): Map<number, number[]> {
  const byNode = new Map<number, number[]>();
  for (let l = 0; l < lanes.length; l++) {
    const to = lanes[l].to;
    if (!byNode.has(to)) byNode.set(to, []);
    byNode.get(to)!.push(l);
  }
  return byNode;
}

/** Appends node n's connectors (every incoming lane to every outgoing one but its reverse); returns their ids. */
function addConnectors(paths: Path[], n: number, incoming: number[]): number[] {
  // Only lanes leave a node; connectors, appended after the lanes, start and end at one.
  const outgoing = [];
  for (let l = 0; l < paths.length; l++) if (paths[l].kind === 'lane' && paths[l].from === n) outgoing.push(l);
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
  return here;
}

/** Records which of one intersection's connectors cross: a shared exit lane or corridors within 3 m. */
function addConflicts(paths: Path[], here: number[], conflicts: Map<number, Set<number>>): void {
  for (const a of here) conflicts.set(a, new Set());
  for (const a of here) {
    for (const b of here) {
      if (a >= b) continue;
      const pa = paths[a],
        pb = paths[b];
      if (pa.inLane === pb.inLane) continue; // handled by following: see canEnter in traffic.ts
      if (pa.outLane === pb.outLane || minDistance(pa, pb) < 3.0) {
        conflicts.get(a)!.add(b);
        conflicts.get(b)!.add(a);
      }
    }
  }
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

// A procedural town: a grid of two-lane roads with parking strips, raised blocks ringed by
// sidewalks, and what stands on them (buildings along the block edges, parks, parking lots,
// plazas, street trees, lamps, traffic lights, bus stops). Buildings on the block corners hide the
// cross streets from a vehicle until it reaches the intersection, which is what makes a second
// viewpoint worth having.

import type { Rng } from '../rng.ts';
import type { Block, BlockKind, BoxSolid, Material, MaterialKind, Solid, Town } from './world.ts';

export const LANE_WIDTH = 3.5;
export const PARKING_WIDTH = 2.3;
export const ROAD_HALF_WIDTH = LANE_WIDTH + PARKING_WIDTH;
export const SIDEWALK_WIDTH = 3.5;
export const CURB_HEIGHT = 0.15;
/** Depth of the built-up ring outside the outermost roads. */
const OUTER_DEPTH = 40;
/** Crosswalk band, measured from the intersection centre along the road. */
export const CROSSWALK_FROM = ROAD_HALF_WIDTH + 0.6;
export const CROSSWALK_TO = ROAD_HALF_WIDTH + 3.6;
/** Vehicles stop with their front here (distance from the intersection centre). */
export const STOP_LINE = ROAD_HALF_WIDTH + 4.2;
/** Parking-lot stalls. */
export const STALL_WIDTH = 2.7;
export const STALL_DEPTH = 5.6;
const LOT_AISLE = 6.5;

/** A free parking-lot stall (traffic.ts decides which are taken). Yaw in degrees. */
export interface LotSpot {
  x: number;
  y: number;
  yaw: number;
}

/** No on-street parking within `r` meters of this point (bus stops, hydrants). */
export interface NoParkingZone {
  x: number;
  y: number;
  r: number;
}

export interface TownPlan {
  town: Town;
  lotSpots: LotSpot[];
  noParking: NoParkingZone[];
}

// Ground surface codes returned by surfaceAt (the camera colours them).
export const SURF_ASPHALT = 0;
export const SURF_LINE = 1;
export const SURF_CROSSWALK = 2;
export const SURF_SIDEWALK = 3;
export const SURF_GRASS = 4;
export const SURF_LOT = 5;
export const SURF_PLAZA = 6;
export const SURF_YARD = 7;
export const SURF_DIRT = 8;
export const SURF_CURB = 9;

const FACADES: [number, number, number][] = [
  [0.78, 0.72, 0.62],
  [0.62, 0.33, 0.26],
  [0.56, 0.56, 0.58],
  [0.86, 0.85, 0.81],
  [0.47, 0.38, 0.31],
  [0.44, 0.51, 0.58],
  [0.72, 0.62, 0.47],
  [0.36, 0.38, 0.41],
  [0.66, 0.5, 0.4],
  [0.8, 0.77, 0.7],
];

function mat(kind: MaterialKind, color: [number, number, number], reflectivity: number, pattern?: number): Material {
  const m: Material = { kind, color, reflectivity };
  if (pattern !== undefined) m.pattern = pattern;
  return m;
}

const SLAB = mat('block', [0.6, 0.6, 0.58], 0.35);
const TRUNK = mat('trunk', [0.3, 0.22, 0.15], 0.3);
const POLE = mat('metal', [0.35, 0.37, 0.38], 0.55);
const DARK_METAL = mat('metal', [0.12, 0.13, 0.13], 0.4);
const HEDGE = mat('hedge', [0.2, 0.36, 0.14], 0.25);
const SHELTER = mat('shelter', [0.55, 0.62, 0.66], 0.5);
const ROOF_UNIT = mat('metal', [0.6, 0.6, 0.6], 0.5);
const BENCH = mat('wall', [0.45, 0.32, 0.2], 0.35);
const STONE = mat('wall', [0.68, 0.66, 0.62], 0.45);

function foliage(rng: Rng): Material {
  const g = rng.uniform(0.28, 0.42);
  return mat('foliage', [g * rng.uniform(0.45, 0.7), g, g * rng.uniform(0.25, 0.4)], 0.2);
}

function box(cx: number, cy: number, z0: number, z1: number, hx: number, hy: number, yaw: number, material: Material): BoxSolid {
  return { shape: 'box', cx, cy, z0, z1, hx, hy, yaw, material, owner: 0 };
}

/** Road centre positions: 4–5 roads each way, 70–120 m apart, the town centred near the origin. */
function roadLines(rng: Rng): number[] {
  const n = rng.int(4, 5);
  const out = [0];
  for (let i = 1; i < n; i++) out.push(out[i - 1] + Math.round(rng.uniform(70, 120)));
  const shift = Math.round(-out[n - 1] / 2 + rng.uniform(-40, 40));
  return out.map((v) => v + shift);
}

export function buildTown(rng: Rng): TownPlan {
  const xs = roadLines(rng);
  const ys = roadLines(rng);
  const hw = ROAD_HALF_WIDTH;
  const solids: Solid[] = [];
  const lotSpots: LotSpot[] = [];
  const noParking: NoParkingZone[] = [];
  const blocks: Block[] = [];
  const nX = xs.length,
    nY = ys.length;

  // Blocks in the order blockIndex() expects: i over road gaps (−1 = outside the first road).
  for (let i = -1; i < nX; i++) {
    for (let j = -1; j < nY; j++) {
      const x0 = i < 0 ? xs[0] - hw - OUTER_DEPTH : xs[i] + hw;
      const x1 = i === nX - 1 ? xs[nX - 1] + hw + OUTER_DEPTH : xs[i + 1] - hw;
      const y0 = j < 0 ? ys[0] - hw - OUTER_DEPTH : ys[j] + hw;
      const y1 = j === nY - 1 ? ys[nY - 1] + hw + OUTER_DEPTH : ys[j + 1] - hw;
      const outer = i < 0 || j < 0 || i === nX - 1 || j === nY - 1;
      const kinds: BlockKind[] = ['buildings', 'park', 'parking', 'plaza'];
      const kind: BlockKind = outer ? 'buildings' : kinds[rng.weighted([0.62, 0.13, 0.15, 0.1])];
      const block: Block = { x0, y0, x1, y1, kind };
      blocks.push(block);
      solids.push(box((x0 + x1) / 2, (y0 + y1) / 2, 0, CURB_HEIGHT, (x1 - x0) / 2, (y1 - y0) / 2, 0, SLAB));
      // Which sides face a road: [south (y0), north (y1), west (x0), east (x1)].
      const faces = [j >= 0, j < nY - 1, i >= 0, i < nX - 1];
      const ctx: BlockContext = { rng, block, faces, solids, lotSpots, noParking };
      if (kind === 'buildings') fillBuildings(ctx, outer);
      else if (kind === 'park') fillPark(ctx);
      else if (kind === 'parking') fillParking(ctx);
      else fillPlaza(ctx);
      if (!outer || faces.some((f) => f)) streetFurniture(ctx, outer);
    }
  }
  for (const x of xs) for (const y of ys) trafficLights(solids, x, y);

  const sunAz = rng.uniform(0, 2 * Math.PI);
  const sunEl = rng.uniform(35, 65) * (Math.PI / 180);
  const m = 10;
  return {
    town: {
      xs,
      ys,
      roadHalfWidth: hw,
      laneWidth: LANE_WIDTH,
      sidewalkWidth: SIDEWALK_WIDTH,
      curbHeight: CURB_HEIGHT,
      blocks,
      solids,
      sun: [Math.cos(sunEl) * Math.cos(sunAz), Math.cos(sunEl) * Math.sin(sunAz), Math.sin(sunEl)],
      bounds: [xs[0] - hw - OUTER_DEPTH - m, ys[0] - hw - OUTER_DEPTH - m, xs[nX - 1] + hw + OUTER_DEPTH + m, ys[nY - 1] + hw + OUTER_DEPTH + m],
    },
    lotSpots,
    noParking,
  };
}

interface BlockContext {
  rng: Rng;
  block: Block;
  faces: boolean[];
  solids: Solid[];
  lotSpots: LotSpot[];
  noParking: NoParkingZone[];
}

/** One side of a block: start corner, unit direction along it, inward normal, length. */
interface Side {
  ox: number;
  oy: number;
  ax: number;
  ay: number;
  nx: number;
  ny: number;
  length: number;
}

function blockSides(b: Block): Side[] {
  return [
    { ox: b.x0, oy: b.y0, ax: 1, ay: 0, nx: 0, ny: 1, length: b.x1 - b.x0 }, // south (y0)
    { ox: b.x0, oy: b.y1, ax: 1, ay: 0, nx: 0, ny: -1, length: b.x1 - b.x0 }, // north (y1)
    { ox: b.x0, oy: b.y0, ax: 0, ay: 1, nx: 1, ny: 0, length: b.y1 - b.y0 }, // west (x0)
    { ox: b.x1, oy: b.y0, ax: 0, ay: 1, nx: -1, ny: 0, length: b.y1 - b.y0 }, // east (x1)
  ];
}

function buildingMaterial(rng: Rng): Material {
  const base = rng.pick(FACADES);
  const k = rng.uniform(0.9, 1.1);
  const color: [number, number, number] = [base[0] * k, base[1] * k, base[2] * k].map((c) => Math.min(1, c)) as [number, number, number];
  return mat('building', color, rng.uniform(0.3, 0.6), rng.weighted([0.5, 0.2, 0.15, 0.15]));
}

/** Rows of buildings along each road-facing side; the x-sides own the corners. */
function fillBuildings(ctx: BlockContext, outer: boolean): void {
  const { rng, block: b, faces, solids } = ctx;
  const sw = SIDEWALK_WIDTH;
  const innerW = b.x1 - b.x0 - 2 * sw;
  const innerH = b.y1 - b.y0 - 2 * sw;
  if (!faces.some((f) => f)) {
    // Outer corner: one big building closes the view down the ring road.
    const mtl = buildingMaterial(rng);
    solids.push(box((b.x0 + b.x1) / 2, (b.y0 + b.y1) / 2, CURB_HEIGHT, rng.uniform(12, 30), innerW / 2, innerH / 2, 0, mtl));
    return;
  }
  const depth = Math.min(rng.uniform(12, 20), innerH / 2 - 1, innerW / 2 - 1);
  const tall = rng.chance(outer ? 0.5 : 0.3);
  const sides = blockSides(b);
  for (let s = 0; s < 4; s++) {
    if (!faces[s]) continue;
    const side = sides[s];
    // Sides along x run corner to corner; sides along y stop short of the x-side rows.
    const xSide = s < 2;
    let from = sw,
      to = side.length - sw;
    if (!xSide) {
      if (faces[0]) from = sw + depth + 1;
      if (faces[1]) to = side.length - sw - depth - 1;
    }
    let cursor = from;
    while (to - cursor > 6) {
      if (rng.chance(0.2)) cursor += rng.uniform(2, 6); // an alley or driveway
      let w = rng.uniform(10, 28);
      if (to - cursor - w < 8) w = to - cursor;
      if (w < 6) break;
      const d = depth * rng.uniform(0.75, 1);
      const setback = rng.chance(0.5) ? rng.uniform(0, 1.5) : 0;
      const floors = tall && rng.chance(0.5) ? rng.int(7, 14) : rng.int(2, 5);
      const height = CURB_HEIGHT + floors * 3.3 + rng.uniform(0.3, 1.5);
      const along = cursor + w / 2;
      const inward = sw + setback + d / 2;
      const cx = side.ox + side.ax * along + side.nx * inward;
      const cy = side.oy + side.ay * along + side.ny * inward;
      const yaw = Math.atan2(side.ay, side.ax);
      const mtl = buildingMaterial(rng);
      solids.push(box(cx, cy, CURB_HEIGHT, height, w / 2, d / 2, yaw, mtl));
      if (rng.chance(0.35)) {
        // Rooftop plant room or a set-back upper storey.
        const f = rng.uniform(0.3, 0.6);
        const up = rng.chance(0.5) ? rng.uniform(2, 3.5) : rng.uniform(3.3, 10);
        solids.push(box(cx, cy, height, height + up, (w / 2) * f, (d / 2) * f, yaw, up < 3.6 ? ROOF_UNIT : mtl));
      }
      cursor += w;
    }
  }
  // Courtyard trees where the block is deep enough to have one.
  if (!outer && innerW > 2 * depth + 12 && innerH > 2 * depth + 12) {
    const n = rng.int(0, 4);
    for (let k = 0; k < n; k++) {
      const x = rng.uniform(b.x0 + sw + depth + 4, b.x1 - sw - depth - 4);
      const y = rng.uniform(b.y0 + sw + depth + 4, b.y1 - sw - depth - 4);
      tree(solids, rng, x, y, rng.uniform(1.8, 3));
    }
  }
}

function fillPark(ctx: BlockContext): void {
  const { rng, block: b, solids } = ctx;
  const inset = SIDEWALK_WIDTH + 0.6;
  const hedgeH = rng.uniform(0.9, 1.5);
  const useWall = rng.chance(0.4);
  perimeter(solids, b, inset, 0.4, CURB_HEIGHT + (useWall ? 0.8 : hedgeH), useWall ? STONE : HEDGE, 6);
  const area = (b.x1 - b.x0 - 2 * inset) * (b.y1 - b.y0 - 2 * inset);
  const n = Math.round(area / rng.uniform(180, 320));
  for (let k = 0; k < n; k++) {
    const x = rng.uniform(b.x0 + inset + 4, b.x1 - inset - 4);
    const y = rng.uniform(b.y0 + inset + 4, b.y1 - inset - 4);
    tree(solids, rng, x, y, rng.uniform(1.6, 3.4));
  }
  const benches = rng.int(2, 6);
  for (let k = 0; k < benches; k++) {
    const x = rng.uniform(b.x0 + inset + 3, b.x1 - inset - 3);
    const y = rng.uniform(b.y0 + inset + 3, b.y1 - inset - 3);
    solids.push(box(x, y, CURB_HEIGHT, CURB_HEIGHT + 0.85, 0.9, 0.3, rng.pick([0, Math.PI / 2]), BENCH));
  }
}

/** Stall rows of a parking-lot block, shared by the stall spawner and the ground painter. */
export function lotRows(b: Block): { x0: number; x1: number; rows: { y0: number; y1: number; facing: number }[] } {
  const inset = SIDEWALK_WIDTH + 2.5;
  const x0 = b.x0 + inset,
    x1 = b.x1 - inset;
  const rows: { y0: number; y1: number; facing: number }[] = [];
  let y = b.y0 + inset + LOT_AISLE;
  const yEnd = b.y1 - inset - LOT_AISLE;
  // Back-to-back stall rows between aisles: aisle, row, row, aisle, row, row, ...
  while (y + 2 * STALL_DEPTH <= yEnd) {
    rows.push({ y0: y, y1: y + STALL_DEPTH, facing: -1 });
    rows.push({ y0: y + STALL_DEPTH, y1: y + 2 * STALL_DEPTH, facing: 1 });
    y += 2 * STALL_DEPTH + LOT_AISLE;
  }
  return { x0, x1, rows };
}

function fillParking(ctx: BlockContext): void {
  const { rng, block: b, solids, lotSpots } = ctx;
  perimeter(solids, b, SIDEWALK_WIDTH + 0.8, 0.3, CURB_HEIGHT + 0.7, STONE, 7);
  const lot = lotRows(b);
  const nStalls = Math.floor((lot.x1 - lot.x0) / STALL_WIDTH);
  for (const row of lot.rows) {
    for (let k = 0; k < nStalls; k++) {
      // Nose into the double row: facing −1 rows point their fronts to +y.
      lotSpots.push({
        x: lot.x0 + (k + 0.5) * STALL_WIDTH,
        y: (row.y0 + row.y1) / 2,
        yaw: row.facing < 0 ? 90 : -90,
      });
    }
  }
  // Lamps at both ends of each double row, clear of the stalls.
  for (const row of lot.rows) {
    if (row.facing > 0 || !rng.chance(0.8)) continue;
    lamp(solids, lot.x0 - 1.2, row.y1, 0, 0, false);
    lamp(solids, lot.x1 + 1.2, row.y1, 0, 0, false);
  }
}

function fillPlaza(ctx: BlockContext): void {
  const { rng, block: b, solids } = ctx;
  const cx = (b.x0 + b.x1) / 2,
    cy = (b.y0 + b.y1) / 2;
  if (rng.chance(0.6)) {
    solids.push({ shape: 'cylinder', cx, cy, z0: CURB_HEIGHT, z1: CURB_HEIGHT + 0.6, r: rng.uniform(3, 5), material: STONE, owner: 0 });
    solids.push({ shape: 'cylinder', cx, cy, z0: CURB_HEIGHT, z1: CURB_HEIGHT + rng.uniform(1.8, 3), r: 0.6, material: STONE, owner: 0 });
  } else {
    // A monument or kiosk.
    solids.push(box(cx, cy, CURB_HEIGHT, CURB_HEIGHT + rng.uniform(3, 6), rng.uniform(1.5, 3), rng.uniform(1.5, 3), rng.uniform(0, Math.PI), STONE));
  }
  const step = rng.uniform(10, 14);
  const inset = SIDEWALK_WIDTH + 5;
  for (let x = b.x0 + inset; x <= b.x1 - inset; x += step) {
    for (let y = b.y0 + inset; y <= b.y1 - inset; y += step) {
      if (Math.hypot(x - cx, y - cy) < 9) continue;
      if (rng.chance(0.7)) tree(solids, rng, x, y, rng.uniform(1.5, 2.4));
      else if (rng.chance(0.5)) solids.push(box(x, y, CURB_HEIGHT, CURB_HEIGHT + 0.85, 0.9, 0.3, 0, BENCH));
    }
  }
  // Part of the plaza is often a low office pavilion.
  if (rng.chance(0.5)) {
    const w = (b.x1 - b.x0) * 0.2,
      d = (b.y1 - b.y0) * 0.15;
    solids.push(
      box(
        b.x0 + SIDEWALK_WIDTH + 2 + w / 2,
        b.y1 - SIDEWALK_WIDTH - 2 - d / 2,
        CURB_HEIGHT,
        CURB_HEIGHT + rng.uniform(4, 8),
        w / 2,
        d / 2,
        0,
        buildingMaterial(rng),
      ),
    );
  }
}

/** A fence line around a block interior with a gate gap in the middle of each side. */
function perimeter(solids: Solid[], b: Block, inset: number, thick: number, top: number, material: Material, gate: number): void {
  const x0 = b.x0 + inset,
    x1 = b.x1 - inset,
    y0 = b.y0 + inset,
    y1 = b.y1 - inset;
  const xm = (x0 + x1) / 2,
    ym = (y0 + y1) / 2;
  const t = thick / 2;
  const seg = (ax: number, ay: number, bx: number, by: number) => {
    const len = Math.hypot(bx - ax, by - ay);
    if (len < 0.5) return;
    solids.push(box((ax + bx) / 2, (ay + by) / 2, CURB_HEIGHT, top, len / 2, t, Math.atan2(by - ay, bx - ax), material));
  };
  const g = gate / 2;
  seg(x0, y0, xm - g, y0);
  seg(xm + g, y0, x1, y0);
  seg(x0, y1, xm - g, y1);
  seg(xm + g, y1, x1, y1);
  seg(x0, y0 + t, x0, ym - g);
  seg(x0, ym + g, x0, y1 - t);
  seg(x1, y0 + t, x1, ym - g);
  seg(x1, ym + g, x1, y1 - t);
}

/** Trunk plus a round crown, the crown kept above 4.2 m so trucks pass under street trees. */
function tree(solids: Solid[], rng: Rng, x: number, y: number, r: number): void {
  const cz = CURB_HEIGHT + 4.2 + r * rng.uniform(1.0, 1.3);
  solids.push({ shape: 'cylinder', cx: x, cy: y, z0: CURB_HEIGHT, z1: cz - 0.4 * r, r: rng.uniform(0.14, 0.24), material: TRUNK, owner: 0 });
  solids.push({ shape: 'sphere', cx: x, cy: y, cz, r, material: foliage(rng), owner: 0 });
}

/** Street lamp; (ax, ay) is the unit direction of its arm (0, 0 for a lot lamp with no arm). */
function lamp(solids: Solid[], x: number, y: number, ax: number, ay: number, tall: boolean): void {
  const h = CURB_HEIGHT + (tall ? 8 : 6.5);
  solids.push({ shape: 'cylinder', cx: x, cy: y, z0: CURB_HEIGHT, z1: h, r: 0.09, material: POLE, owner: 0 });
  if (ax !== 0 || ay !== 0) {
    solids.push(box(x + ax * 0.9, y + ay * 0.9, h - 0.15, h, 0.9, 0.06, Math.atan2(ay, ax), POLE));
    solids.push(box(x + ax * 1.7, y + ay * 1.7, h - 0.3, h - 0.05, 0.35, 0.18, Math.atan2(ay, ax), DARK_METAL));
  }
}

function streetFurniture(ctx: BlockContext, outer: boolean): void {
  const { rng, block: b, faces, solids, noParking } = ctx;
  const sides = blockSides(b);
  for (let s = 0; s < 4; s++) {
    if (!faces[s]) continue;
    const side = sides[s];
    const treeLined = rng.chance(outer ? 0.4 : 0.6);
    const curbOff = 0.8;
    const at = (along: number, inward: number): [number, number] => [
      side.ox + side.ax * along + side.nx * inward,
      side.oy + side.ay * along + side.ny * inward,
    ];
    // Arms reach out over the road, i.e. against the inward normal.
    const ax = -side.nx,
      ay = -side.ny;
    let busStop = -1;
    if (!outer && side.length > 50 && rng.chance(0.25)) {
      busStop = side.length * rng.uniform(0.35, 0.65);
      const [x, y] = at(busStop, 2.2);
      const yaw = Math.atan2(side.ay, side.ax);
      const [bx, by] = at(busStop, 2.9);
      solids.push(box(x, y, CURB_HEIGHT + 2.4, CURB_HEIGHT + 2.55, 2.1, 0.9, yaw, SHELTER));
      solids.push(box(bx, by, CURB_HEIGHT + 0.1, CURB_HEIGHT + 2.4, 2.0, 0.04, yaw, SHELTER));
      for (const e of [-1.95, 1.95]) {
        const [px, py] = at(busStop + e, 2.2);
        solids.push(box(px, py, CURB_HEIGHT, CURB_HEIGHT + 2.4, 0.04, 0.7, yaw, SHELTER));
      }
      const [zx, zy] = at(busStop, -(ROAD_HALF_WIDTH - PARKING_WIDTH / 2));
      noParking.push({ x: zx, y: zy, r: 9 });
    }
    const clear = (along: number, r: number) => busStop < 0 || Math.abs(along - busStop) > r;
    if (treeLined) {
      for (let a = 8 + rng.uniform(0, 4); a < side.length - 8; a += rng.uniform(9, 14)) {
        if (!clear(a, 4)) continue;
        const [x, y] = at(a, curbOff + 0.3);
        tree(solids, rng, x, y, rng.uniform(1.5, 2.5));
      }
    }
    for (let a = 12 + rng.uniform(0, 10); a < side.length - 10; a += rng.uniform(24, 34)) {
      if (!clear(a, 4)) continue;
      const [x, y] = at(a + (treeLined ? 4 : 0), curbOff - 0.3);
      lamp(solids, x, y, ax, ay, true);
    }
    for (let a = 15; a < side.length - 15; a += rng.uniform(20, 45)) {
      if (!clear(a, 4) || !rng.chance(0.5)) continue;
      const [x, y] = at(a, curbOff);
      if (rng.chance(0.5)) {
        solids.push({ shape: 'cylinder', cx: x, cy: y, z0: CURB_HEIGHT, z1: CURB_HEIGHT + 0.95, r: 0.3, material: DARK_METAL, owner: 0 });
      } else {
        solids.push({
          shape: 'cylinder',
          cx: x,
          cy: y,
          z0: CURB_HEIGHT,
          z1: CURB_HEIGHT + 0.7,
          r: 0.15,
          material: mat('metal', [0.7, 0.12, 0.1], 0.5),
          owner: 0,
        });
        const [zx, zy] = at(a, -(ROAD_HALF_WIDTH - PARKING_WIDTH / 2));
        noParking.push({ x: zx, y: zy, r: 4 });
      }
    }
  }
}

/** A signal mast at each corner with an arm over one of the roads. */
function trafficLights(solids: Solid[], X: number, Y: number): void {
  const a = ROAD_HALF_WIDTH + 0.6;
  for (const [sx, sy] of [
    [1, 1],
    [-1, 1],
    [-1, -1],
    [1, -1],
  ]) {
    const px = X + sx * a,
      py = Y + sy * a;
    const top = CURB_HEIGHT + 5.6;
    solids.push({ shape: 'cylinder', cx: px, cy: py, z0: CURB_HEIGHT, z1: top, r: 0.12, material: POLE, owner: 0 });
    // Alternate corners reach over the x road and the y road.
    const ax = sx === sy ? -sx : 0,
      ay = sx === sy ? 0 : -sy;
    const len = 4.5;
    solids.push(box(px + (ax * len) / 2, py + (ay * len) / 2, top - 0.2, top, len / 2, 0.07, Math.atan2(ay, ax), POLE));
    solids.push(box(px + ax * (len - 0.3), py + ay * (len - 0.3), top - 1.2, top - 0.2, 0.2, 0.2, 0, DARK_METAL));
  }
}

/** Index into town.blocks of the block containing (x, y), or −1 outside every block. */
export function blockIndex(town: Town, x: number, y: number): number {
  const { xs, ys } = town;
  let i = -1;
  while (i + 1 < xs.length && x >= xs[i + 1]) i++;
  let j = -1;
  while (j + 1 < ys.length && y >= ys[j + 1]) j++;
  const idx = (i + 1) * (ys.length + 1) + (j + 1);
  const b = town.blocks[idx];
  if (!b || x < b.x0 || x > b.x1 || y < b.y0 || y > b.y1) return -1;
  return idx;
}

function nearest(lines: number[], v: number): number {
  let best = lines[0];
  for (let k = 1; k < lines.length; k++) if (Math.abs(v - lines[k]) < Math.abs(v - best)) best = lines[k];
  return best;
}

/**
 * What the ground looks like at (x, y): asphalt with lane lines, crosswalks and stop lines on the
 * roads; sidewalk, grass, lot or paving on the blocks. Called per camera pixel, so no allocation.
 */
export function surfaceAt(town: Town, x: number, y: number): number {
  const hw = town.roadHalfWidth;
  const X = nearest(town.xs, x),
    Y = nearest(town.ys, y);
  const dx = x - X,
    dy = y - Y;
  const ax = Math.abs(dx),
    ay = Math.abs(dy);
  const xs = town.xs,
    ys = town.ys;
  const inYRange = y > ys[0] - hw && y < ys[ys.length - 1] + hw;
  const inXRange = x > xs[0] - hw && x < xs[xs.length - 1] + hw;
  const onRoadAlongY = ax < hw && inYRange; // road running along y at x = X
  const onRoadAlongX = ay < hw && inXRange;
  if (onRoadAlongY && onRoadAlongX) return SURF_ASPHALT; // inside the intersection
  if (onRoadAlongY || onRoadAlongX) {
    // across: signed offset from the road centre line; along: distance from the intersection.
    const across = onRoadAlongY ? dx : dy;
    const aAcross = onRoadAlongY ? ax : ay;
    const along = onRoadAlongY ? ay : ax;
    const signAlong = onRoadAlongY ? Math.sign(dy) : Math.sign(dx);
    const alongCoord = onRoadAlongY ? y : x;
    if (along > CROSSWALK_FROM && along < CROSSWALK_TO && aAcross < hw - 0.4) {
      return Math.floor((across + hw) / 0.6) % 2 === 0 ? SURF_CROSSWALK : SURF_ASPHALT;
    }
    if (along >= CROSSWALK_TO + 0.3 && along < CROSSWALK_TO + 0.75 && aAcross < LANE_WIDTH) {
      // Stop line across the incoming lane only (right-hand traffic, see traffic.ts).
      const incoming = onRoadAlongY ? Math.sign(across) === signAlong : Math.sign(across) === -signAlong;
      if (incoming) return SURF_LINE;
    }
    if (along > CROSSWALK_TO + 0.3) {
      if (aAcross < 0.08 && ((alongCoord % 9) + 9) % 9 < 4) return SURF_LINE;
      if (Math.abs(aAcross - LANE_WIDTH) < 0.07) return SURF_LINE;
    }
    return SURF_ASPHALT;
  }
  const bi = blockIndex(town, x, y);
  if (bi < 0) return SURF_DIRT;
  const edge = Math.min(ax, ay) - hw;
  if (edge < 0.25) return SURF_CURB;
  if (edge < town.sidewalkWidth) return SURF_SIDEWALK;
  const b = town.blocks[bi];
  switch (b.kind) {
    case 'park':
      return SURF_GRASS;
    case 'plaza':
      return SURF_PLAZA;
    case 'parking':
      return SURF_LOT;
    default:
      return SURF_YARD;
  }
}

/** True on a painted stall line of a parking-lot block (the camera draws them on SURF_LOT). */
const lotCache = new WeakMap<Block, ReturnType<typeof lotRows>>();

export function onLotLine(b: Block, x: number, y: number): boolean {
  let lot = lotCache.get(b);
  if (!lot) lotCache.set(b, (lot = lotRows(b)));
  if (x < lot.x0 - 0.05 || x > lot.x1 + 0.05) return false;
  for (const row of lot.rows) {
    if (y < row.y0 || y > row.y1) continue;
    const u = (x - lot.x0) / STALL_WIDTH;
    return Math.abs(u - Math.round(u)) * STALL_WIDTH < 0.06;
  }
  return false;
}

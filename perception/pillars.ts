// PointPillars preprocessing: LiDAR points → pillars with decorated point features, on typed
// arrays (no per-point objects, no Map), in O(points + pillars × maxPoints).
//
// Conventions (formats.md §1.6, §4.4):
// - Which points are kept, and in which cell, follows `binning`:
//   'spconv' (HEAL): the cell index is floor((p − min)/voxel) computed in float32, as spconv's
//   voxel generator does on a float32 cloud, and a point is kept iff 0 ≤ index < grid on x, y
//   and z; there is no other range test (HEAL's heterogeneous datasets apply none). A point a
//   hair below a cell boundary in float64 can land in the next cell in float32, so float64 would
//   not reproduce HEAL's pillars.
//   'strict-range': a point is kept when it lies strictly inside (xmin, xmax) × (ymin, ymax) ×
//   (zmin, zmax) (OpenCOOD mask_points_by_range), binned in float64. The small profile's shipped
//   weights were trained with it; it goes when they are retrained.
//   With maskEgo, points on the vehicle's own body (x ∈ [−1.95, 2.95] and y ∈ [−1.1, 1.1],
//   inclusive, OpenCOOD mask_ego_points) are dropped too.
// - Grid: W = round((xmax − xmin)/vx) columns along x, H = round((ymax − ymin)/vy) rows along y.
//   Column = floor((x − xmin)/vx), row = floor((y − ymin)/vy); BEV cell index = row·W + column,
//   so BEV row = y index with y increasing with the row, the anchors' (H', W') layout. A point
//   whose index falls outside the grid at an edge is dropped, as spconv's voxel generator does.
// - Pillars are numbered in order of their first point (spconv's voxel order). Once maxPillars
//   exist, points falling in new pillars are dropped. Each pillar keeps its first
//   maxPointsPerPillar points in input order. Output is fully determined by the input order.
// - Point features (10): x, y, z, intensity, x−x̄, y−ȳ, z−z̄ (mean over the pillar's kept
//   points), x−xc, y−yc, z−zc (pillar centre: xc = xmin + (col + ½)·vx, yc likewise,
//   zc = zmin + vz/2). Padded slots are all zero, and mask is 0 there.
// - cellToPillar[row·W + col] is the pillar index of that cell, or P (numPillars) when it is
//   empty: the network appends one zero row to its [P, C] pillar features and gathers with this
//   index to scatter pillars onto the [C, H, W] BEV map.

import { DataError } from '../datasets/io.ts';
import { pillarGrid, type PointBinning, type SharedSpace } from './space.ts';

export const POINT_FEATURES = 10;

/** OpenCOOD mask_ego_points: the vehicle body around its LiDAR, inclusive bounds. */
export const EGO_BODY = { xMin: -1.95, xMax: 2.95, yMin: -1.1, yMax: 1.1 } as const;

export interface PillarConfig {
  /** [xmin, ymin, zmin, xmax, ymax, zmax] in the LiDAR frame, meters. */
  range: readonly [number, number, number, number, number, number];
  /** [vx, vy, vz]; vz normally spans the whole z range. */
  voxel: readonly [number, number, number];
  /** Points kept per pillar (OpenCOOD max_points_per_voxel, 32). */
  maxPointsPerPillar: number;
  /** Pillars kept (OpenCOOD max_voxel_train 32000 / max_voxel_test 70000). */
  maxPillars: number;
  /** Drop points on the vehicle's own body (default false). */
  maskEgo?: boolean;
  /** How points are kept and binned (see the file comment); default 'strict-range'. */
  binning?: PointBinning;
}

export interface Pillars {
  /** [P, maxPoints, 10] decorated point features, zero in padded slots. */
  features: Float32Array;
  /** [P, maxPoints], 1 for a real point, 0 for padding. */
  mask: Float32Array;
  /** [P, 2] (row = y index, col = x index). */
  coords: Int32Array;
  /** [H·W] pillar index of each BEV cell, numPillars where empty. */
  cellToPillar: Int32Array;
  /** Points per pillar before the maxPoints cap (≥ 1). */
  pointCounts: Int32Array;
  numPillars: number;
  maxPoints: number;
  width: number;
  height: number;
  /** Points inside the range (and off the ego body). */
  pointsInRange: number;
  /** Points that made it into a pillar slot. */
  pointsKept: number;
  /** Points dropped because their pillar was full or would have exceeded maxPillars. */
  pointsDropped: number;
}

/** Pillar configuration of a shared-space profile. */
export function pillarConfigForSpace(space: SharedSpace, opts: { maxPointsPerPillar?: number; maxPillars?: number; maskEgo?: boolean } = {}): PillarConfig {
  const [w, h] = pillarGrid(space);
  return {
    range: space.range,
    voxel: space.voxel,
    maxPointsPerPillar: opts.maxPointsPerPillar ?? 32,
    maxPillars: opts.maxPillars ?? Math.min(w * h, 70_000),
    maskEgo: opts.maskEgo ?? false,
    binning: space.points.binning,
  };
}

function checkConfig(cfg: PillarConfig): { W: number; H: number } {
  const bad = (field: string, detail: string, value: unknown): never => {
    throw new DataError('pillar config', field, detail, value);
  };
  if (cfg.range.length !== 6 || cfg.range.some((v) => !Number.isFinite(v))) bad('range', 'must be 6 finite numbers', cfg.range);
  if (cfg.voxel.length !== 3 || cfg.voxel.some((v) => !(v > 0) || !Number.isFinite(v))) bad('voxel', 'must be 3 positive numbers', cfg.voxel);
  const [xmin, ymin, zmin, xmax, ymax, zmax] = cfg.range;
  if (!(xmax > xmin && ymax > ymin && zmax > zmin)) bad('range', 'each max must exceed its min', cfg.range);
  const W = Math.round((xmax - xmin) / cfg.voxel[0]);
  const H = Math.round((ymax - ymin) / cfg.voxel[1]);
  if (W < 1 || H < 1 || W * H > 1 << 26) bad('voxel', `gives a ${W}×${H} grid`, cfg.voxel);
  if (!Number.isInteger(cfg.maxPointsPerPillar) || cfg.maxPointsPerPillar < 1) bad('maxPointsPerPillar', 'must be a positive integer', cfg.maxPointsPerPillar);
  if (!Number.isInteger(cfg.maxPillars) || cfg.maxPillars < 1) bad('maxPillars', 'must be a positive integer', cfg.maxPillars);
  if (cfg.binning !== undefined && cfg.binning !== 'spconv' && cfg.binning !== 'strict-range')
    bad('binning', 'must be "spconv" or "strict-range"', cfg.binning);
  return { W, H };
}

/**
 * Groups points (N × stride floats: x, y, z, intensity, ...) into pillars. See the file comment
 * for every convention.
 */
export function pillarize(points: Float32Array, cfg: PillarConfig, stride = 4): Pillars {
  const { W, H } = checkConfig(cfg);
  if (!Number.isInteger(stride) || stride < 4) throw new DataError('points', 'stride', 'must be an integer ≥ 4 (x, y, z, intensity, ...)', stride);
  if (points.length % stride !== 0) throw new DataError('points', 'length', `is not a multiple of the stride ${stride}`, points.length);
  const n = points.length / stride;
  const [xmin, ymin, zmin] = cfg.range;
  const [vx, vy, vz] = cfg.voxel;
  // Bounds are compared in float32, like NumPy comparing a float32 cloud with Python floats:
  // a point at float32(2.95) is on the ego body, one at float32(xmax) is out of range.
  const [rx0, ry0, rz0, rx1, ry1, rz1] = cfg.range.map(Math.fround);
  const ex0 = Math.fround(EGO_BODY.xMin),
    ex1 = Math.fround(EGO_BODY.xMax);
  const ey0 = Math.fround(EGO_BODY.yMin),
    ey1 = Math.fround(EGO_BODY.yMax);
  const maskEgo = cfg.maskEgo ?? false;
  const spconv = cfg.binning === 'spconv';
  const [fvx, fvy, fvz] = cfg.voxel.map(Math.fround);
  const D = Math.round((cfg.range[5] - zmin) / vz);
  const maxP = cfg.maxPointsPerPillar;
  const pillarCap = Math.min(cfg.maxPillars, W * H);

  // Pass 1: each point's pillar (−1: dropped), pillars numbered by first appearance.
  const cellToPillar = new Int32Array(W * H).fill(-1);
  const pillarCell = new Int32Array(pillarCap);
  const pointPillar = new Int32Array(n);
  let numPillars = 0;
  let pointsInRange = 0;
  for (let i = 0; i < n; i++) {
    const o = i * stride;
    const x = points[o],
      y = points[o + 1],
      z = points[o + 2];
    pointPillar[i] = -1;
    if (maskEgo && x >= ex0 && x <= ex1 && y >= ey0 && y <= ey1) continue;
    let col: number, row: number;
    if (spconv) {
      col = Math.floor(Math.fround(Math.fround(x - rx0) / fvx));
      row = Math.floor(Math.fround(Math.fround(y - ry0) / fvy));
      const layer = Math.floor(Math.fround(Math.fround(z - rz0) / fvz));
      // Written so that NaN fails every test and is dropped.
      if (!(layer >= 0 && layer < D)) continue;
    } else {
      if (!(x > rx0 && x < rx1 && y > ry0 && y < ry1 && z > rz0 && z < rz1)) continue;
      col = Math.floor((x - xmin) / vx);
      row = Math.floor((y - ymin) / vy);
    }
    if (!(col >= 0 && col < W && row >= 0 && row < H)) continue;
    pointsInRange++;
    const cell = row * W + col;
    let p = cellToPillar[cell];
    if (p === -1) {
      if (numPillars === pillarCap) continue;
      p = numPillars++;
      cellToPillar[cell] = p;
      pillarCell[p] = cell;
    }
    pointPillar[i] = p;
  }

  // Pass 2: the first maxP points of each pillar into its slots, summing xyz for the means.
  const P = numPillars;
  const features = new Float32Array(P * maxP * POINT_FEATURES);
  const mask = new Float32Array(P * maxP);
  const pointCounts = new Int32Array(P);
  const sums = new Float64Array(P * 3);
  let pointsKept = 0;
  for (let i = 0; i < n; i++) {
    const p = pointPillar[i];
    if (p < 0) continue;
    const slot = pointCounts[p]++;
    if (slot >= maxP) continue;
    pointsKept++;
    const o = i * stride;
    const f = (p * maxP + slot) * POINT_FEATURES;
    const x = points[o],
      y = points[o + 1],
      z = points[o + 2];
    features[f] = x;
    features[f + 1] = y;
    features[f + 2] = z;
    features[f + 3] = points[o + 3];
    mask[p * maxP + slot] = 1;
    sums[p * 3] += x;
    sums[p * 3 + 1] += y;
    sums[p * 3 + 2] += z;
  }

  // Pass 3: offsets from the pillar mean and centre; the grid index of each pillar.
  const coords = new Int32Array(P * 2);
  const zc = zmin + vz / 2;
  for (let p = 0; p < P; p++) {
    const cell = pillarCell[p];
    const row = Math.floor(cell / W);
    const col = cell - row * W;
    coords[p * 2] = row;
    coords[p * 2 + 1] = col;
    const k = Math.min(pointCounts[p], maxP);
    const mx = sums[p * 3] / k,
      my = sums[p * 3 + 1] / k,
      mz = sums[p * 3 + 2] / k;
    const xc = xmin + (col + 0.5) * vx;
    const yc = ymin + (row + 0.5) * vy;
    for (let s = 0; s < k; s++) {
      const f = (p * maxP + s) * POINT_FEATURES;
      const x = features[f],
        y = features[f + 1],
        z = features[f + 2];
      features[f + 4] = x - mx;
      features[f + 5] = y - my;
      features[f + 6] = z - mz;
      features[f + 7] = x - xc;
      features[f + 8] = y - yc;
      features[f + 9] = z - zc;
    }
  }
  for (let c = 0; c < cellToPillar.length; c++) if (cellToPillar[c] < 0) cellToPillar[c] = P;

  return {
    features,
    mask,
    coords,
    cellToPillar,
    pointCounts,
    numPillars: P,
    maxPoints: maxP,
    width: W,
    height: H,
    pointsInRange,
    pointsKept,
    pointsDropped: pointsInRange - pointsKept,
  };
}

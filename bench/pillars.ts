// Pillarization benchmark: 100k points of a LiDAR-like scan (64 beams over a ground plane and
// walls) through perception/pillars.ts at the small and HEAL profiles, beside a plain Map-based
// grouping as a reference for what the typed-array passes save, and 100k points spread evenly
// (the most pillars). Figures are medians of runs.

import { pillarConfigForSpace, pillarize } from '../perception/pillars.ts';
import { HEAL_SPACE, SMALL_SPACE, type SharedSpace } from '../perception/space.ts';
import { timeIt } from './timing.ts';

/** A deterministic 64-beam sweep: ground at z = −1.8 m, walls 20–80 m away, range noise. */
function syntheticScan(numPoints: number, seed = 1): Float32Array {
  let s = seed >>> 0;
  const rand = () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 4294967296;
  const beams = 64;
  const steps = Math.ceil(numPoints / beams);
  const out = new Float32Array(numPoints * 4);
  let k = 0;
  for (let a = 0; a < steps && k < numPoints; a++) {
    const az = (2 * Math.PI * a) / steps;
    const wall = 20 + 60 * Math.abs(Math.sin(3 * az));
    for (let b = 0; b < beams && k < numPoints; b++, k++) {
      const el = ((-25 + (27 * b) / (beams - 1)) * Math.PI) / 180;
      const ground = el < 0 ? 1.8 / Math.tan(-el) : Infinity;
      const r = Math.min(ground, wall / Math.cos(el), 120) + (rand() - 0.5) * 0.04;
      out[k * 4] = r * Math.cos(el) * Math.cos(az);
      out[k * 4 + 1] = r * Math.cos(el) * Math.sin(az);
      out[k * 4 + 2] = r * Math.sin(el);
      out[k * 4 + 3] = Math.exp(-0.004 * r);
    }
  }
  return out;
}

/** The obvious version: a Map from cell to point indices, arrays per pillar. Reference only. */
function pillarizeWithMap(points: Float32Array, space: SharedSpace, maxPoints: number): number {
  const [xmin, ymin, zmin, xmax, ymax, zmax] = space.range;
  const [vx, vy] = space.voxel;
  const W = Math.round((xmax - xmin) / vx);
  const cells = new Map<number, number[]>();
  for (let i = 0; i < points.length / 4; i++) {
    const x = points[i * 4],
      y = points[i * 4 + 1],
      z = points[i * 4 + 2];
    if (!(x > xmin && x < xmax && y > ymin && y < ymax && z > zmin && z < zmax)) continue;
    const cell = Math.floor((y - ymin) / vy) * W + Math.floor((x - xmin) / vx);
    let list = cells.get(cell);
    if (!list) cells.set(cell, (list = []));
    if (list.length < maxPoints) list.push(i);
  }
  const features = new Float32Array(cells.size * maxPoints * 10);
  let p = 0;
  for (const [cell, list] of cells) {
    const mean = [0, 0, 0];
    for (const i of list) for (let d = 0; d < 3; d++) mean[d] += points[i * 4 + d] / list.length;
    const xc = xmin + ((cell % W) + 0.5) * vx,
      yc = ymin + (Math.floor(cell / W) + 0.5) * vy;
    list.forEach((i, s) => {
      const pt = Array.from(points.subarray(i * 4, i * 4 + 4));
      const row = [...pt, pt[0] - mean[0], pt[1] - mean[1], pt[2] - mean[2], pt[0] - xc, pt[1] - yc, pt[2] - (zmin + space.voxel[2] / 2)];
      features.set(row, (p * maxPoints + s) * 10);
    });
    p++;
  }
  return p;
}

export async function run(): Promise<Record<string, number | string>> {
  const out: Record<string, number | string> = {};
  const points = syntheticScan(100_000);
  out.points = points.length / 4;
  for (const space of [SMALL_SPACE, HEAL_SPACE]) {
    const cfg = pillarConfigForSpace(space, { maskEgo: true });
    const result = pillarize(points, cfg);
    const key = `${space.name}_${(space.range[3] - space.range[0]) / 2}m_${space.voxel[0]}m`;
    out[`${key}_grid`] = `${result.width}x${result.height}`;
    out[`${key}_pillars`] = result.numPillars;
    out[`${key}_points_in_range`] = result.pointsInRange;
    out[`${key}_points_kept`] = result.pointsKept;
    out[`${key}_ms`] = timeIt(15, () => pillarize(points, cfg), 10);
    out[`${key}_map_reference_ms`] = timeIt(5, () => pillarizeWithMap(points, space, cfg.maxPointsPerPillar), 10);
  }
  // Worst case for the output size: points spread evenly, nearly one pillar per point, so the
  // [P, 32, 10] feature array itself (tens of MB) dominates.
  const uniform = new Float32Array(100_000 * 4);
  let s = 7;
  const rand = () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 4294967296;
  for (let i = 0; i < 100_000; i++) uniform.set([(rand() - 0.5) * 200, (rand() - 0.5) * 200, -1, 0.5], i * 4);
  const healCfg = pillarConfigForSpace(HEAL_SPACE, { maskEgo: true });
  out.heal_uniform_pillars = pillarize(uniform, healCfg).numPillars;
  out.heal_uniform_ms = timeIt(5, () => pillarize(uniform, healCfg), 10);
  return out;
}

import { describe, expect, it } from 'vitest';
import { DataError } from '../../datasets/io.ts';
import { POINT_FEATURES, type PillarConfig, pillarConfigForSpace, pillarize } from '../../perception/pillars.ts';
import { HEAL_SPACE, SMALL_SPACE, pillarGrid } from '../../perception/space.ts';

// A 4 × 3 grid of 1 m cells: x ∈ (0, 4), y ∈ (−1, 2), z ∈ (−2, 2).
const SMALL: PillarConfig = { range: [0, -1, -2, 4, 2, 2], voxel: [1, 1, 4], maxPointsPerPillar: 3, maxPillars: 100 };

function pts(rows: number[][]): Float32Array {
  return Float32Array.from(rows.flat());
}

function feature(p: ReturnType<typeof pillarize>, pillar: number, slot: number): number[] {
  const f = (pillar * p.maxPoints + slot) * POINT_FEATURES;
  return Array.from(p.features.subarray(f, f + POINT_FEATURES));
}

function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('pillarize', () => {
  it('hand-computed small case', () => {
    const points = pts([
      [0.5, 0.5, 0, 0.1], // cell row 1 (y ∈ [0,1)), col 0 → pillar 0
      [2.25, -0.5, 1, 0.2], // row 0, col 2 → pillar 1
      [0.25, 0.75, 1, 0.3], // pillar 0 again
      [3.5, 1.5, -1, 0.4], // row 2, col 3 → pillar 2
    ]);
    const p = pillarize(points, SMALL);
    expect(p.width).toBe(4);
    expect(p.height).toBe(3);
    expect(p.numPillars).toBe(3);
    expect(Array.from(p.coords)).toEqual([1, 0, 0, 2, 2, 3]);
    expect(Array.from(p.pointCounts)).toEqual([2, 1, 1]);
    expect(Array.from(p.mask)).toEqual([1, 1, 0, 1, 0, 0, 1, 0, 0]);
    // Pillar 0: mean (0.375, 0.625, 0.5); centre (0.5, 0.5, 0).
    const close = (a: number[], b: number[]) => a.forEach((v, i) => expect(v).toBeCloseTo(b[i], 6));
    close(feature(p, 0, 0), [0.5, 0.5, 0, 0.1, 0.125, -0.125, -0.5, 0, 0, 0]);
    close(feature(p, 0, 1), [0.25, 0.75, 1, 0.3, -0.125, 0.125, 0.5, -0.25, 0.25, 1]);
    expect(feature(p, 0, 2)).toEqual(new Array(10).fill(0));
    // Pillar 1: a single point is its own mean; centre (2.5, −0.5, 0).
    close(feature(p, 1, 0), [2.25, -0.5, 1, 0.2, 0, 0, 0, -0.25, 0, 1]);
    close(feature(p, 2, 0), [3.5, 1.5, -1, 0.4, 0, 0, 0, 0, 0, -1]);
    const expected = new Array(12).fill(3);
    expected[1 * 4 + 0] = 0;
    expected[0 * 4 + 2] = 1;
    expected[2 * 4 + 3] = 2;
    expect(Array.from(p.cellToPillar)).toEqual(expected);
    expect(p.pointsInRange).toBe(4);
    expect(p.pointsKept).toBe(4);
    expect(p.pointsDropped).toBe(0);
  });

  it('range masking is strict, NaN points are dropped', () => {
    const points = pts([
      [0, 0.5, 0, 1], // x = xmin: out
      [4, 0.5, 0, 1], // x = xmax: out
      [1.5, -1, 0, 1], // y = ymin: out
      [1.5, 2, 0, 1], // y = ymax: out
      [1.5, 0.5, -2, 1], // z = zmin: out
      [1.5, 0.5, 2, 1], // z = zmax: out
      [NaN, 0.5, 0, 1],
      [1e-6, -1 + 1e-6, -2 + 1e-6, 1], // just inside: row 0, col 0
      [4 - 1e-6, 2 - 1e-6, 2 - 1e-6, 1], // just inside: row 2, col 3
    ]);
    const p = pillarize(points, SMALL);
    expect(p.pointsInRange).toBe(2);
    expect(Array.from(p.coords)).toEqual([0, 0, 2, 3]);
  });

  it('ego body masking (inclusive bounds, only when asked)', () => {
    const cfg: PillarConfig = { range: [-10, -10, -3, 10, 10, 1], voxel: [0.5, 0.5, 4], maxPointsPerPillar: 4, maxPillars: 1000 };
    const points = pts([
      [0, 0, -1, 1], // on the body
      [2.95, 1.1, -1, 1], // on the corner: inclusive
      [-1.95, -1.1, -1, 1],
      [2.96, 0, -1, 1], // just off the front
      [0, -1.11, -1, 1], // just off the side
    ]);
    expect(pillarize(points, cfg).pointsInRange).toBe(5);
    const masked = pillarize(points, { ...cfg, maskEgo: true });
    expect(masked.pointsInRange).toBe(2);
    expect(masked.features[0]).toBeCloseTo(2.96, 5);
  });

  it('keeps the first points of a pillar in input order and drops the rest', () => {
    const points = pts([0, 1, 2, 3, 4].map((k) => [1.1 + 0.1 * k, 0.5, 0, k]));
    const p = pillarize(points, SMALL); // maxPointsPerPillar 3
    expect(p.numPillars).toBe(1);
    expect(p.pointCounts[0]).toBe(5);
    expect([0, 1, 2].map((s) => feature(p, 0, s)[3])).toEqual([0, 1, 2]);
    // The mean is over the kept points only (x = 1.1, 1.2, 1.3).
    expect(feature(p, 0, 0)[4]).toBeCloseTo(1.1 - 1.2, 6);
    expect(p.pointsKept).toBe(3);
    expect(p.pointsDropped).toBe(2);
  });

  it('numbers pillars by first appearance and caps them', () => {
    const points = pts([
      [3.5, 1.5, 0, 0], // pillar 0 at row 2, col 3
      [0.5, -0.5, 0, 1], // pillar 1 at row 0, col 0
      [1.5, 0.5, 0, 2], // would be pillar 2: over the cap of 2
      [0.6, -0.4, 0, 3], // pillar 1 again
    ]);
    const p = pillarize(points, { ...SMALL, maxPillars: 2 });
    expect(p.numPillars).toBe(2);
    expect(Array.from(p.coords)).toEqual([2, 3, 0, 0]);
    expect(p.cellToPillar[1 * 4 + 1]).toBe(2); // the capped cell reads the zero row
    expect(Array.from(p.pointCounts)).toEqual([1, 2]);
    expect(p.pointsDropped).toBe(1);
  });

  it('is deterministic, and consistent on a large random cloud', () => {
    const r = rng(3);
    const n = 20_000;
    const points = new Float32Array(n * 4);
    for (let i = 0; i < n; i++) {
      // 100 tight clusters, so that many pillars overflow their 32 slots; some points out of range.
      const k = Math.floor(r() * 100);
      const cx = ((k * 37) % 120) - 60,
        cy = ((k * 53) % 110) - 55;
      points.set([cx + (r() - 0.5) * 0.3, cy + (r() - 0.5) * 0.3, r() * 5 - 3.5, r()], i * 4);
    }
    const cfg = pillarConfigForSpace(SMALL_SPACE, { maskEgo: true });
    const a = pillarize(points, cfg);
    const b = pillarize(Float32Array.from(points), cfg);
    expect(b.features).toEqual(a.features);
    expect(b.coords).toEqual(a.coords);
    expect(b.cellToPillar).toEqual(a.cellToPillar);

    const [W, H] = pillarGrid(SMALL_SPACE);
    expect([a.width, a.height]).toEqual([W, H]);
    expect(a.pointsInRange).toBeLessThan(n);
    expect(a.pointsDropped).toBeGreaterThan(0);
    const P = a.numPillars;
    let occupied = 0;
    const problems: string[] = [];
    for (let c = 0; c < W * H; c++) {
      const p = a.cellToPillar[c];
      if (p < 0 || p > P) problems.push(`cell ${c} → ${p}`);
      if (p < P) {
        occupied++;
        if (a.coords[p * 2] * W + a.coords[p * 2 + 1] !== c) problems.push(`cell ${c} → pillar ${p} at other coords`);
      }
    }
    expect(occupied).toBe(P);
    const [xmin, ymin, zmin] = SMALL_SPACE.range;
    const [vx, vy, vz] = SMALL_SPACE.voxel;
    const near = (a: number, b: number) => Math.abs(a - b) < 1e-4;
    let kept = 0;
    for (let p = 0; p < P; p++) {
      const k = Math.min(a.pointCounts[p], a.maxPoints);
      kept += k;
      const [row, col] = [a.coords[p * 2], a.coords[p * 2 + 1]];
      const mean = [0, 0, 0];
      for (let s = 0; s < k; s++) for (let d = 0; d < 3; d++) mean[d] += feature(a, p, s)[d] / k;
      for (let s = 0; s < a.maxPoints; s++) {
        const f = feature(a, p, s);
        if (a.mask[p * a.maxPoints + s] !== (s < k ? 1 : 0)) problems.push(`mask ${p}/${s}`);
        if (s >= k) {
          if (!f.every((v) => v === 0)) problems.push(`padding ${p}/${s} not zero`);
          continue;
        }
        // Every point lies in its pillar's cell; the offsets agree with the mean and the coords.
        if (Math.floor((f[0] - xmin) / vx) !== col || Math.floor((f[1] - ymin) / vy) !== row) problems.push(`point ${p}/${s} outside its cell`);
        if (!near(f[4], f[0] - mean[0]) || !near(f[5], f[1] - mean[1]) || !near(f[6], f[2] - mean[2])) problems.push(`cluster offset ${p}/${s}`);
        if (!near(f[7], f[0] - (xmin + (col + 0.5) * vx)) || !near(f[8], f[1] - (ymin + (row + 0.5) * vy)) || !near(f[9], f[2] - (zmin + vz / 2))) {
          problems.push(`centre offset ${p}/${s}`);
        }
      }
    }
    expect(problems.slice(0, 5)).toEqual([]);
    expect(kept).toBe(a.pointsKept);
  });

  it('HEAL profile grid', () => {
    const p = pillarize(pts([[0, 0, 0, 1]]), pillarConfigForSpace(HEAL_SPACE));
    expect([p.width, p.height]).toEqual([512, 512]);
    // (0, 0) is the corner of cells 255/256: floor(102.4 / 0.4) = 256.
    expect(Array.from(p.coords)).toEqual([256, 256]);
  });

  it('rejects bad configuration and input with a DataError', () => {
    expect(() => pillarize(new Float32Array(7), SMALL)).toThrow(DataError);
    expect(() => pillarize(new Float32Array(8), { ...SMALL, voxel: [0, 1, 4] })).toThrow(/voxel/);
    expect(() => pillarize(new Float32Array(8), { ...SMALL, range: [4, -1, -2, 0, 2, 2] })).toThrow(/range/);
    expect(() => pillarize(new Float32Array(8), { ...SMALL, maxPointsPerPillar: 0 })).toThrow(/maxPointsPerPillar/);
    expect(() => pillarize(new Float32Array(8), { ...SMALL, maxPillars: 1.5 })).toThrow(/maxPillars/);
  });

  it('handles an empty cloud', () => {
    const p = pillarize(new Float32Array(0), SMALL);
    expect(p.numPillars).toBe(0);
    expect(p.features.length).toBe(0);
    expect(p.cellToPillar.every((v) => v === 0)).toBe(true);
  });
});

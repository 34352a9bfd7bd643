import { describe, expect, it } from 'vitest';
import { identity4, invert, matrixToPose, mat4FromRows, multiply, poseToMatrix, x1ToX2 } from '../../datasets/geometry/transforms.ts';
import {
  bevCorners,
  bevFromCorners,
  boxToCorners,
  cornersToBox,
  worldObjectCorners,
  worldObjectToBox,
  type WorldObject,
} from '../../datasets/geometry/boxes.ts';
import { bevIoU, bevIoUMatrix, clipConvex, polygonArea, signedArea } from '../../datasets/geometry/polygon.ts';
import { nmsRotated } from '../../datasets/geometry/nms.ts';

// ---------------------------------------------------------------------------------------------
// Real V2XSet inputs (formats.md §1.9). Numbers copied from two per-frame YAML files of the public
// repository ucla-mobility/OpenCDA, scenario 2021_08_21_17_30_41, timestamp 000069:
//   opencood/dummy_v2xset/validate/2021_08_21_17_30_41/4279/000069.yaml (blob read at commit 928a37cf)
//   opencood/dummy_v2xset/validate/2021_08_21_17_30_41/4288/000069.yaml (blob read at commit daa9cc42)
// Only the fields these tests need are kept.
// ---------------------------------------------------------------------------------------------

/** 4279's `lidar_pose` [x, y, z, roll, yaw, pitch]. */
const LIDAR_4279 = [-275.6085205078125, -19.80833625793457, 1.9313920736312866, -0.002929678885266185, 89.70753479003906, 0.13549046218395233];
/** 4279's `true_ego_pos` (vehicle origin, at ground level). */
const EGO_4279 = [-275.6060485839844, -19.303850173950195, 0.032579708844423294, -0.002929678885266185, 89.70753479003906, 0.13549046218395233];
/** 4288's `lidar_pose`. */
const LIDAR_4288 = [-265.6400146484375, 26.09000015258789, 1.9333010911941528, 0.0, -89.99999237060547, 0.0];
/** 4279's `camera0.cords` and `camera0.extrinsic`. */
const CAM0_CORDS_4279 = [-275.59326171875, -16.806255340576172, 1.038488745689392, -0.002929678885266185, 89.70753479003906, 0.13549046218395233];
const CAM0_EXTRINSIC_4279 = [
  [1.0, -3.7703554064657044e-19, 0.0, -2.999999805238005],
  [4.902997275622314e-19, 1.0, -1.3552527156068805e-20, -1.9388473219805746e-5],
  [0.0, -6.776263578034403e-21, 0.9999999999999999, 0.9000001034760048],
  [0.0, 0.0, 0.0, 1.0],
];

/** `vehicles[4313]` in 4279's file. */
const VEH_4313: WorldObject = {
  location: [-275.7803649902344, -7.030708312988281, 0.010121135041117668],
  center: [0.0002168700739275664, 0.001031204010359943, 0.93227618932724],
  angle: [-0.004974365700036287, 91.0938491821289, 0.02288796193897724],
  extent: [1.9331103563308716, 0.9525982737541199, 0.9389679431915283],
};
/** `vehicles[4311]` in 4279's file (pitched 1.1°). */
const VEH_4311: WorldObject = {
  location: [-265.1381530761719, -20.035594940185547, 0.006624393165111542],
  center: [-0.05737581476569176, 0.00016345499898307025, 0.9351239800453186],
  angle: [0.0002554861130192876, -89.58415985107422, 1.1074399948120117],
  extent: [2.3022549152374268, 0.9657965898513794, 0.9274230599403381],
};
/** `vehicles[4279]` in 4288's file: the other CAV, as 4288 sees it. */
const VEH_4279_SEEN_BY_4288: WorldObject = {
  location: [-275.6060485839844, -19.303850173950195, 0.032579708844423294],
  center: [0.0040429686196148396, 5.9604643443123e-10, 0.7188605070114136],
  angle: [-0.002929678885266185, 89.70753479003906, 0.13549046218395233],
  extent: [2.4508416652679443, 1.0641621351242065, 0.7553732395172119],
};

// Golden values from formats.md §1.9 (an independent numpy transcription of the formulas).
const GOLDEN_T_4279_FROM_4288 = [
  [-0.999984, 0.005105, 0.002365, 45.948498],
  [-0.005104, -0.999987, 0.000051, -9.734095],
  [0.002365, 0.000039, 0.999997, -0.10625],
  [0, 0, 0, 1],
];
const GOLDEN_BOX_4313 = [12.775242, 0.236801, -1.01922, 1.877932, 1.905197, 3.866213, 0.024196];
const GOLDEN_BOX_4311 = [-0.176279, -10.414066, -0.988697, 1.85441, 1.931593, 4.603426, -3.129231];
const GOLDEN_BOX_4279 = [0.501721, -0.004, -1.181141, 1.510746, 2.128324, 4.901683, 0.0];
const GOLDEN_BEV_4313 = [14.729, -0.6687, 14.6829, 1.2359, 10.8178, 1.1424, 10.8639, -0.7622];
const GOLDEN_CAM0_TO_LIDAR_4279 = [
  [0, 0, 1, 3.0],
  [1, 0, 0, 1.9e-5],
  [0, -1, 0, -0.9],
  [0, 0, 0, 1],
];

/** OpenCV camera axes (x right, y down, z forward) to UE4 camera axes (formats.md §1.5). */
const CV_TO_UE = mat4FromRows([
  [0, 0, 1, 0],
  [1, 0, 0, 0],
  [0, -1, 0, 0],
  [0, 0, 0, 1],
]);

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** Difference of two angles in radians, wrapped into [0, π]. */
function angleDiff(a: number, b: number): number {
  const d = Math.abs(a - b) % (2 * Math.PI);
  return Math.min(d, 2 * Math.PI - d);
}

function expectBoxClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, yawTol: number): void {
  expect(maxAbsDiff(Array.from(actual).slice(0, 6), Array.from(expected).slice(0, 6))).toBeLessThanOrEqual(tol);
  expect(angleDiff(actual[6], expected[6])).toBeLessThanOrEqual(yawTol);
}

// Small deterministic PRNG so that failures reproduce.
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('transforms and boxes on real V2XSet frames (formats.md §1.9)', () => {
  const worldFromLidar4279 = poseToMatrix(LIDAR_4279);

  it('x1ToX2(4288 lidar, 4279 lidar) matches the golden T_{4279←4288}', () => {
    const t = x1ToX2(LIDAR_4288, LIDAR_4279);
    expect(maxAbsDiff(t, GOLDEN_T_4279_FROM_4288.flat())).toBeLessThanOrEqual(1e-5);
  });

  it('4279 LiDAR sits at (-0.5, 0, 1.9) m in its own vehicle frame (formats.md §1.2)', () => {
    const vehicleFromLidar = x1ToX2(LIDAR_4279, EGO_4279);
    expect(maxAbsDiff([vehicleFromLidar[3], vehicleFromLidar[7], vehicleFromLidar[11]], [-0.5, 0, 1.9])).toBeLessThan(1e-4);
  });

  it('worldObjectToBox reproduces the golden boxes of 4313, 4311 and 4279', () => {
    expectBoxClose(worldObjectToBox(VEH_4313, worldFromLidar4279), GOLDEN_BOX_4313, 1e-4, 1e-4);
    expectBoxClose(worldObjectToBox(VEH_4311, worldFromLidar4279), GOLDEN_BOX_4311, 1e-4, 1e-4);
    expectBoxClose(worldObjectToBox(VEH_4279_SEEN_BY_4288, worldFromLidar4279), GOLDEN_BOX_4279, 1e-4, 1e-4);
  });

  it('BEV corners 0..3 of 4313 match, from the projected corners and from the refit box', () => {
    const corners = worldObjectCorners(VEH_4313, worldFromLidar4279);
    expect(maxAbsDiff(bevFromCorners(corners), GOLDEN_BEV_4313)).toBeLessThanOrEqual(1e-4);
    // The yaw-only refit drops the 0.11° relative pitch between 4313 and 4279's LiDAR, which moves
    // the bottom corners by about half-height × sin(pitch) = 0.94 m × 0.0019 ≈ 1.8 mm.
    expect(maxAbsDiff(bevCorners(cornersToBox(corners)), GOLDEN_BEV_4313)).toBeLessThanOrEqual(2.5e-3);
  });

  it('the pitched 4311 refit differs from its true corners by a few centimetres (formats.md §1.9)', () => {
    const corners = worldObjectCorners(VEH_4311, worldFromLidar4279);
    const err = maxAbsDiff(boxToCorners(cornersToBox(corners)), corners);
    expect(err).toBeGreaterThan(0.02);
    expect(err).toBeLessThan(0.06);
  });

  it('HEAL camera_to_lidar of camera0 matches the golden, and the YAML extrinsic is its UE4 inverse', () => {
    const camUeToLidar = x1ToX2(CAM0_CORDS_4279, LIDAR_4279);
    expect(maxAbsDiff(multiply(camUeToLidar, CV_TO_UE), GOLDEN_CAM0_TO_LIDAR_4279.flat())).toBeLessThanOrEqual(1e-4);
    // The writer computed extrinsic = T_{cam←lidar} with CARLA's own matrices (formats.md §1.5).
    expect(maxAbsDiff(invert(camUeToLidar), CAM0_EXTRINSIC_4279.flat())).toBeLessThan(1e-9);
  });
});

describe('transforms and boxes: consistency on synthetic inputs', () => {
  const rand = rng(12345);
  const uniform = (lo: number, hi: number) => lo + (hi - lo) * rand();
  const randomPose = () => [uniform(-300, 300), uniform(-300, 300), uniform(-5, 5), uniform(-179, 179), uniform(-179.9, 179.9), uniform(-85, 85)];

  it('matrixToPose inverts poseToMatrix', () => {
    for (let k = 0; k < 200; k++) {
      const p = randomPose();
      const q = matrixToPose(poseToMatrix(p));
      expect(maxAbsDiff(q.slice(0, 3), p.slice(0, 3))).toBeLessThan(1e-9);
      for (let a = 3; a < 6; a++) expect(angleDiff((q[a] * Math.PI) / 180, (p[a] * Math.PI) / 180)).toBeLessThan(1e-9);
    }
  });

  it('poseToMatrix gives a proper rotation; invert and x1ToX2 compose to identity', () => {
    for (let k = 0; k < 100; k++) {
      const a = randomPose(),
        b = randomPose();
      const m = poseToMatrix(a);
      const r = [m[0], m[1], m[2], m[4], m[5], m[6], m[8], m[9], m[10]];
      const det = r[0] * (r[4] * r[8] - r[5] * r[7]) - r[1] * (r[3] * r[8] - r[5] * r[6]) + r[2] * (r[3] * r[7] - r[4] * r[6]);
      expect(det).toBeCloseTo(1, 12);
      expect(maxAbsDiff(multiply(m, invert(m)), identity4())).toBeLessThan(1e-12);
      expect(maxAbsDiff(multiply(x1ToX2(a, b), x1ToX2(b, a)), identity4())).toBeLessThan(1e-10);
      expect(maxAbsDiff(x1ToX2(a, a), identity4())).toBeLessThan(1e-12);
    }
  });

  it('cornersToBox inverts boxToCorners for random boxes', () => {
    for (let k = 0; k < 200; k++) {
      const box = [uniform(-100, 100), uniform(-100, 100), uniform(-3, 1), uniform(0.5, 4), uniform(0.5, 3), uniform(1, 12), uniform(-Math.PI, Math.PI)];
      expectBoxClose(cornersToBox(boxToCorners(box)), box, 1e-9, 1e-12);
    }
  });

  it('cornersToBox yaw is wrap-safe next to ±π (circular mean)', () => {
    for (const yaw of [Math.PI, -Math.PI, Math.PI - 1e-12, -Math.PI + 1e-12, Math.PI - 1e-7, -Math.PI + 1e-7]) {
      const box = [3, -2, -1, 1.5, 1.8, 4.5, yaw];
      const fit = cornersToBox(boxToCorners(box));
      expect(angleDiff(fit[6], yaw)).toBeLessThan(1e-9);
      expect(Math.abs(fit[6])).toBeGreaterThan(3); // not the +π/2 an arithmetic mean can produce
    }
  });

  it('worldObjectToBox of a level object matches the box written directly in the reference frame', () => {
    const ref = [10, 20, 1.9, 0, 30, 0];
    const obj: WorldObject = { location: [15, 25, 0], center: [0, 0, 0.8], angle: [0, 75, 0], extent: [2, 1, 0.8] };
    const box = worldObjectToBox(obj, poseToMatrix(ref));
    // Rotate the world offset (5, 5) by -30° into the reference frame.
    const c = Math.cos((-30 * Math.PI) / 180),
      s = Math.sin((-30 * Math.PI) / 180);
    expectBoxClose(box, [5 * c - 5 * s, 5 * s + 5 * c, 0.8 - 1.9, 1.6, 2, 4, (45 * Math.PI) / 180], 1e-12, 1e-12);
  });

  it('invert throws on a singular matrix', () => {
    expect(() => invert(new Float64Array(16))).toThrow(/singular/);
  });
});

// ---------------------------------------------------------------------------------------------
// Rotated BEV IoU
// ---------------------------------------------------------------------------------------------

/** Footprint of a flat box centred at (cx, cy) with length l along x, width w along y, yaw in radians. */
const footprint = (cx: number, cy: number, l: number, w: number, yaw = 0) => bevCorners([cx, cy, 0, 1, w, l, yaw]);
/** Axis-aligned footprint from [x0, y0, x1, y1]. */
const aa = (x0: number, y0: number, x1: number, y1: number) => footprint((x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0);
const reversed = (p: Float64Array) => {
  const out = new Float64Array(p.length);
  for (let i = 0; i < p.length / 2; i++) {
    out[i * 2] = p[p.length - 2 - i * 2];
    out[i * 2 + 1] = p[p.length - 1 - i * 2];
  }
  return out;
};

/** Independent estimate: fraction of grid points in both / in either, with point-in-convex-polygon tests. */
function gridIoU(a: Float64Array, b: Float64Array, steps = 400): number {
  const inside = (p: Float64Array, x: number, y: number) => {
    const n = p.length / 2,
      sign = Math.sign(signedArea(p));
    for (let i = 0; i < n; i++) {
      const j = (i + 1) % n;
      if (sign * ((p[j * 2] - p[i * 2]) * (y - p[i * 2 + 1]) - (p[j * 2 + 1] - p[i * 2 + 1]) * (x - p[i * 2])) < 0) return false;
    }
    return true;
  };
  let x0 = Infinity,
    y0 = Infinity,
    x1 = -Infinity,
    y1 = -Infinity;
  for (const p of [a, b])
    for (let i = 0; i < p.length; i += 2) {
      x0 = Math.min(x0, p[i]);
      x1 = Math.max(x1, p[i]);
      y0 = Math.min(y0, p[i + 1]);
      y1 = Math.max(y1, p[i + 1]);
    }
  let both = 0,
    either = 0;
  for (let i = 0; i < steps; i++)
    for (let j = 0; j < steps; j++) {
      const x = x0 + ((i + 0.5) * (x1 - x0)) / steps,
        y = y0 + ((j + 0.5) * (y1 - y0)) / steps;
      const ia = inside(a, x, y),
        ib = inside(b, x, y);
      if (ia && ib) both++;
      if (ia || ib) either++;
    }
  return either ? both / either : 0;
}

describe('polygon area and convex clipping', () => {
  it('area of a footprint is l·w in either winding', () => {
    const f = footprint(3, 4, 4.5, 1.8, 0.7);
    expect(polygonArea(f)).toBeCloseTo(4.5 * 1.8, 12);
    expect(polygonArea(reversed(f))).toBeCloseTo(4.5 * 1.8, 12);
    expect(signedArea(reversed(f))).toBeCloseTo(-signedArea(f), 12);
  });

  it('clipping gives the overlap area for any combination of windings', () => {
    const a = aa(0, 0, 4, 2),
      b = aa(1, 1, 5, 3);
    for (const p of [a, reversed(a)])
      for (const q of [b, reversed(b)]) {
        expect(polygonArea(clipConvex(p, q))).toBeCloseTo(3, 12);
      }
  });

  it('disjoint polygons clip to nothing; degenerate clip polygons give zero area', () => {
    expect(clipConvex(aa(0, 0, 1, 1), aa(2, 2, 3, 3)).length).toBe(0);
    const segment = Float64Array.of(0, 0, 1, 1, 2, 2, 0, 0);
    expect(polygonArea(clipConvex(aa(0, 0, 3, 3), segment))).toBe(0);
    expect(polygonArea(clipConvex(segment, aa(0, 0, 3, 3)))).toBe(0);
  });
});

describe('bevIoU', () => {
  it('identical boxes give 1, also with reversed winding', () => {
    const f = footprint(12.7, -3.1, 4.6, 1.9, -3.129);
    expect(bevIoU(f, f)).toBeCloseTo(1, 12);
    expect(bevIoU(f, reversed(f))).toBeCloseTo(1, 12);
  });

  it('disjoint and edge-touching boxes give 0', () => {
    expect(bevIoU(aa(0, 0, 4, 2), aa(10, 0, 14, 2))).toBe(0);
    expect(bevIoU(aa(0, 0, 4, 2), aa(4, 0, 8, 2))).toBe(0);
    expect(bevIoU(aa(0, 0, 4, 2), aa(4, 2, 8, 4))).toBe(0); // corner touch
    // Rotated boxes whose bounding boxes overlap but whose footprints do not.
    expect(bevIoU(footprint(0, 0, 4, 0.5, Math.PI / 4), footprint(1.5, -1.5, 4, 0.5, Math.PI / 4))).toBe(0);
  });

  it('known overlaps of axis-aligned boxes', () => {
    expect(bevIoU(aa(0, 0, 4, 2), aa(1, 0, 5, 2))).toBeCloseTo(6 / 10, 12);
    expect(bevIoU(aa(0, 0, 4, 2), aa(2, 1, 6, 3))).toBeCloseTo(2 / 14, 12);
    expect(bevIoU(aa(0, 0, 4, 2), aa(1, 0.5, 2, 1.5))).toBeCloseTo(1 / 8, 12); // containment
  });

  it('a square against itself rotated 45° gives 1/√2 (regular-octagon overlap)', () => {
    for (const side of [1, 4.2]) {
      expect(bevIoU(footprint(5, -7, side, side), footprint(5, -7, side, side, Math.PI / 4))).toBeCloseTo(Math.SQRT1_2, 12);
    }
  });

  it('a rectangle against itself rotated 90° gives w / (2l − w)', () => {
    const l = 4.5,
      w = 1.8;
    expect(bevIoU(footprint(1, 2, l, w, 0.3), footprint(1, 2, l, w, 0.3 + Math.PI / 2))).toBeCloseTo(w / (2 * l - w), 12);
  });

  it('zero-area footprints give 0, not NaN', () => {
    expect(bevIoU(footprint(0, 0, 4, 0), footprint(0, 0, 4, 2))).toBe(0);
    expect(bevIoU(footprint(0, 0, 0, 0), footprint(0, 0, 0, 0))).toBe(0);
  });

  it('random pairs: symmetric, in [0, 1], and agree with a grid estimate', () => {
    const rand = rng(7);
    const u = (lo: number, hi: number) => lo + (hi - lo) * rand();
    for (let k = 0; k < 300; k++) {
      const a = footprint(u(-3, 3), u(-3, 3), u(0.5, 6), u(0.5, 3), u(-4, 4));
      const b = footprint(u(-3, 3), u(-3, 3), u(0.5, 6), u(0.5, 3), u(-4, 4));
      const iou = bevIoU(a, b);
      expect(iou).toBeGreaterThanOrEqual(0);
      expect(iou).toBeLessThanOrEqual(1);
      expect(Math.abs(iou - bevIoU(b, a))).toBeLessThan(1e-12);
      if (k < 20) expect(Math.abs(iou - gridIoU(a, b))).toBeLessThan(0.01);
    }
  });

  it('bevIoUMatrix equals pairwise bevIoU', () => {
    const rand = rng(99);
    const u = (lo: number, hi: number) => lo + (hi - lo) * rand();
    const a = Array.from({ length: 15 }, () => footprint(u(-10, 10), u(-10, 10), u(1, 6), u(1, 3), u(-4, 4)));
    const b = Array.from({ length: 9 }, () => footprint(u(-10, 10), u(-10, 10), u(1, 6), u(1, 3), u(-4, 4)));
    const m = bevIoUMatrix(a, b);
    expect(m.length).toBe(15 * 9);
    let nonZero = 0;
    for (let i = 0; i < a.length; i++)
      for (let j = 0; j < b.length; j++) {
        expect(m[i * b.length + j]).toBe(bevIoU(a[i], b[j]));
        if (m[i * b.length + j] > 0) nonZero++;
      }
    expect(nonZero).toBeGreaterThan(0); // the pre-check must not hide real overlaps
    const self = bevIoUMatrix(a, a);
    for (let i = 0; i < a.length; i++) expect(self[i * a.length + i]).toBeCloseTo(1, 12);
  });
});

// ---------------------------------------------------------------------------------------------
// Rotated NMS
// ---------------------------------------------------------------------------------------------

describe('nmsRotated', () => {
  it('drops a box overlapping a better one and keeps disjoint boxes, best first', () => {
    const boxes = [aa(1, 0, 5, 2), aa(20, 0, 24, 2), aa(0, 0, 4, 2)]; // IoU(0, 2) = 0.6
    expect(nmsRotated(boxes, [0.8, 0.7, 0.9], 0.15)).toEqual([2, 1]);
    expect(nmsRotated(boxes, [0.8, 0.7, 0.9], 0.6)).toEqual([2, 0, 1]); // 0.6 is not > 0.6
  });

  it('suppresses only when IoU is strictly above the threshold', () => {
    const boxes = [aa(0, 0, 4, 2), aa(0, 0, 2, 2)]; // IoU exactly 0.5
    expect(nmsRotated(boxes, [0.9, 0.8], 0.5)).toEqual([0, 1]);
    expect(nmsRotated(boxes, [0.9, 0.8], 0.49)).toEqual([0]);
  });

  it('only kept boxes suppress (chain A–B–C keeps A and C)', () => {
    const boxes = [aa(0, 0, 4, 2), aa(2.5, 0, 6.5, 2), aa(5, 0, 9, 2)];
    expect(nmsRotated(boxes, [0.9, 0.8, 0.7], 0.1)).toEqual([0, 2]);
  });

  it('breaks score ties by index', () => {
    const boxes = [aa(0, 0, 4, 2), aa(0.5, 0, 4.5, 2), aa(30, 0, 34, 2)];
    expect(nmsRotated(boxes, [0.5, 0.5, 0.5], 0.3)).toEqual([0, 2]);
    expect(nmsRotated([boxes[1], boxes[0]], [0.5, 0.5], 0.3)).toEqual([0]);
  });

  it('considers only the top K scores and works on rotated boxes', () => {
    const boxes = [footprint(0, 0, 4, 2, 0.4), footprint(10, 0, 4, 2, 1), footprint(20, 0, 4, 2, -2), footprint(0.2, 0.1, 4, 2, 0.5)];
    expect(nmsRotated(boxes, [0.3, 0.9, 0.6, 0.5], 0.15)).toEqual([1, 2, 3]);
    expect(nmsRotated(boxes, [0.3, 0.9, 0.6, 0.5], 0.15, 2)).toEqual([1, 2]);
  });

  it('handles empty input and rejects mismatched or NaN scores', () => {
    expect(nmsRotated([], [], 0.15)).toEqual([]);
    expect(() => nmsRotated([aa(0, 0, 1, 1)], [], 0.15)).toThrow(/1 footprints but 0 scores/);
    expect(() => nmsRotated([aa(0, 0, 1, 1)], [NaN], 0.15)).toThrow(/NaN/);
  });
});

// HEAL's camera inputs (LSS camera agents): augmentation, torch's linspace and 3×3 inverse, the
// calibration, frustum and geometry, and on HEAL's own m4 reference frame everything bit for bit.
import { describe, expect, it } from 'vitest';
import * as path from 'node:path';
import { readFile } from 'node:fs/promises';
import {
  HEAL_LSS_GRID,
  HEAL_M4_CAMERA,
  type HealCameraConfig,
  healAugmentation,
  healCalibration,
  healCameraInputs,
  healFrustum,
  healGeometry,
  healVoxelCells,
  torchInverse3,
  torchLinspace,
} from '../../perception/camera.ts';
import { openDataset } from '../../datasets/open.ts';
import { readDepthPng } from '../../datasets/png.ts';
import { DataError } from '../../datasets/io.ts';
import { identity4, poseToMatrix } from '../../datasets/geometry/transforms.ts';
import type { CameraRecord } from '../../datasets/frame.ts';
import { readSafetensors } from '../../models/safetensors.ts';
import { healFixture } from '../helpers/heal-fixtures.ts';

const f = Math.fround;

describe('healAugmentation (HEAL sample_augmentation at test time)', () => {
  it('m4: 800×600 → 448×336 at r = 0.56, crop rows −9..327, post_rots diag(r, r, 1), post_trans (0, 9, 0)', () => {
    const a = healAugmentation(HEAL_M4_CAMERA);
    expect(a.resize).toBe(0.56);
    expect(a.resizeSize).toEqual([448, 336]);
    // int((1 − 0.025)·336) − 336 = 327 − 336
    expect(a.crop).toEqual([0, -9, 448, 327]);
    expect(Array.from(a.postRot)).toEqual([f(0.56), 0, 0, 0, f(0.56), 0, 0, 0, 1]);
    expect(Array.from(a.postTrans)).toEqual([0, 9, 0]);
  });

  it('m2: 512×384 at r = 0.64, crop_h = int(0.975·384) − 384 = −10; a wider picture is cropped at its centre', () => {
    const m2: HealCameraConfig = { ...HEAL_M4_CAMERA, inputSize: [512, 384] };
    expect(healAugmentation(m2).crop).toEqual([0, -10, 512, 374]);
    const wide: HealCameraConfig = { ...HEAL_M4_CAMERA, inputSize: [400, 450] }; // r = 0.75 → 600×450
    expect(healAugmentation(wide).resizeSize).toEqual([600, 450]);
    expect(healAugmentation(wide).crop).toEqual([100, 438 - 450, 500, 438]);
  });
});

describe('torchLinspace (torch.linspace, float32, CPU)', () => {
  it('hits both ends exactly, is increasing, and is within an ulp-sized error of start + i·step', () => {
    for (const [a, b, n] of [
      [0, 447, 56],
      [0, 335, 42],
      [0, 511, 64],
      [-3.7, 12.9, 101],
      [5, 5, 7],
    ]) {
      const v = torchLinspace(a, b, n);
      expect(v.length).toBe(n);
      expect(v[0]).toBe(f(a));
      expect(v[n - 1]).toBe(f(b));
      for (let i = 1; i < n; i++) {
        expect(v[i]).toBeGreaterThanOrEqual(v[i - 1]);
        expect(Math.abs(v[i] - (a + ((b - a) * i) / (n - 1)))).toBeLessThan(1e-5 * Math.max(1, Math.abs(b)));
      }
    }
    expect(Array.from(torchLinspace(2, 9, 1))).toEqual([2]);
    expect(Array.from(torchLinspace(2, 9, 2))).toEqual([2, 9]);
    expect(() => torchLinspace(0, 1, 0)).toThrow(/positive integer/);
  });

  it('fills blocks of 8 from a block start plus k·step, not start + i·step for every i', () => {
    const v = torchLinspace(0, 447, 56);
    const step = f(447 / 55);
    // Index 11 is the 4th element of the block starting at 8.
    expect(v[11]).toBe(f(f(8 * step) + f(3 * step)));
    expect(v[11]).not.toBe(f(11 * step));
    // Index 30, past the middle (28), still belongs to the block that starts at 24, counted from the start.
    expect(v[30]).toBe(f(f(24 * step) + f(6 * step)));
    expect(v[30]).not.toBe(f(447 - f(25 * step)));
    // The last 8 (48..55) fall outside the pairs of blocks and count down from the end one by one.
    for (let i = 48; i < 56; i++) expect(v[i]).toBe(f(447 - f((55 - i) * step)));
  });
});

describe('torchInverse3 (torch.inverse of a float32 3×3)', () => {
  it('inverts to float32 accuracy, diagonal matrices to the reciprocals', () => {
    const mats = [
      [2, 0, 0, 0, 4, 0, 0, 0, 1],
      [335.64, 0, 400, 0, 335.64, 300, 0, 0, 1],
      [0.2, -1.3, 0.5, 2.1, 0.4, -0.7, 0.3, 0.9, 1.7],
      [0, 0, 1, 1, 0, 0, 0, -1, 0],
    ];
    for (const m of mats) {
      const inv = torchInverse3(m);
      for (let i = 0; i < 3; i++) {
        for (let j = 0; j < 3; j++) {
          let s = 0,
            scale = 0;
          for (let k = 0; k < 3; k++) {
            s += f(m[i * 3 + k]) * inv[k * 3 + j];
            scale += Math.abs(f(m[i * 3 + k]) * inv[k * 3 + j]);
          }
          expect(Math.abs(s - (i === j ? 1 : 0))).toBeLessThan(1e-6 * Math.max(1, scale));
        }
      }
    }
    expect(Array.from(torchInverse3([0.56, 0, 0, 0, 0.56, 0, 0, 0, 1]))).toEqual([f(1 / f(0.56)), 0, 0, 0, f(1 / f(0.56)), 0, 0, 0, 1]);
    expect(() => torchInverse3([1, 2, 3, 2, 4, 6, 0, 0, 1])).toThrow(/singular/);
  });
});

describe('healCalibration (HEAL get_ext_int)', () => {
  it('maps OpenCV camera axes into the LiDAR frame: the optical axis (z) of a forward camera is LiDAR x', () => {
    const lidar = poseToMatrix([10, 20, 1.9, 0, 30, 0]);
    const cam = healCalibration(
      [10 + 2.5 * Math.cos(Math.PI / 6), 20 + 2.5 * Math.sin(Math.PI / 6), 1.0, 0, 30, 0],
      lidar,
      [300, 0, 400, 0, 300, 300, 0, 0, 1],
    );
    // rots columns are the camera's x (right), y (down), z (forward) in LiDAR axes (left-handed UE4: y right).
    const col = (c: number) => [cam.rots[c], cam.rots[3 + c], cam.rots[6 + c]];
    expect(col(2)[0]).toBeCloseTo(1, 6);
    expect(col(0)[1]).toBeCloseTo(1, 6);
    expect(col(1)[2]).toBeCloseTo(-1, 6);
    expect(cam.trans[0]).toBeCloseTo(2.5, 5);
    expect(cam.trans[1]).toBeCloseTo(0, 5);
    expect(cam.trans[2]).toBeCloseTo(-0.9, 5);
    expect(Array.from(cam.intrins)).toEqual([300, 0, 400, 0, 300, 300, 0, 0, 1]);
    expect(() => healCalibration([1, 2, 3], identity4(), [1, 0, 0, 0, 1, 0, 0, 0, 1])).toThrow(DataError);
  });

  it('casts the camera pose to float32 first, as HEAL does: at world coordinates near 23 m the translation moves by ~1e-6', () => {
    const lidar = poseToMatrix([-23.6306, -23.25, 1.9, 0, 0, 0]);
    const cam = healCalibration([-23.1306, -22.95, 1.8, 0, 100, 0], lidar, [1, 0, 0, 0, 1, 0, 0, 0, 1]);
    expect(cam.trans[1]).toBe(f(f(-22.95) + 23.25)); // 0.29999924
    expect(cam.trans[1]).not.toBe(f(0.3));
  });
});

describe('healFrustum', () => {
  it('is [D, fH, fW, 3] of (u, v, depth) with u, v spread over the whole input and depth at the bin starts', () => {
    const { frustum, shape } = healFrustum(HEAL_M4_CAMERA);
    expect(shape).toEqual([48, 42, 56]);
    expect(frustum.length).toBe(48 * 42 * 56 * 3);
    const at = (d: number, v: number, u: number) => Array.from(frustum.subarray(((d * 42 + v) * 56 + u) * 3, ((d * 42 + v) * 56 + u) * 3 + 3));
    expect(at(0, 0, 0)).toEqual([0, 0, 2]);
    // LID: 2 + δ·k(k+1)/2 with δ = 2·48/(48·49), so the last bin starts at 2 + 46.04 m, not at 50.
    expect(at(47, 41, 55)).toEqual([447, 335, f(2 + ((2 * 48) / (48 * 49)) * 1128)]);
    expect(at(3, 5, 7)).toEqual([torchLinspace(0, 447, 56)[7], torchLinspace(0, 335, 42)[5], f(2 + ((2 * 48) / (48 * 49)) * 6)]);
  });
});

describe('healGeometry and healVoxelCells', () => {
  it('puts a frustum point at depth d along the ray of its pixel, undoing the resize and crop', () => {
    const calib = healCalibration([0, 0, 0, 0, 0, 0], identity4(), [100, 0, 50, 0, 100, 40, 0, 0, 1]);
    // Input pixel (u, v) = r·(source pixel) − crop; source pixel (50, 40) is the principal point.
    const r = 0.5;
    const frustum = Float32Array.of(25, 20 + 3, 10, 25 + 50 * r, 23, 4);
    const g = healGeometry(frustum, calib, [r, 0, 0, 0, r, 0, 0, 0, 1], [0, 3, 0]);
    const near = (got: Float32Array, want: number[]) => want.forEach((w, k) => expect(got[k]).toBeCloseTo(w, 5));
    near(g.subarray(0, 3), [10, 0, 0]);
    // 50 source pixels right of the centre at fx = 100: half a metre per metre of depth, to the right (LiDAR +y).
    near(g.subarray(3, 6), [4, 2, 0]);
  });

  it('truncates toward zero: up to one cell below the low edge still lands in cell 0', () => {
    const pts = Float32Array.of(-51.3, 0, 0, -51.7, 0, 0, 51.1, 51.1, -25, 0, 0, 10, 0, 0, -31);
    const { cells, size } = healVoxelCells(pts, HEAL_LSS_GRID);
    expect(size).toEqual([256, 256, 1]);
    expect(Array.from(cells)).toEqual([128 * 256 + 0, -1, 255 * 256 + 255, -1, -1]);
  });
});

const fixtures = healFixture('heal_reference_cameras');

describe.skipIf(!fixtures)("HEAL's m4 camera inputs on its reference frame (case_cam)", () => {
  it('gives the pictures, calibration, frustum and geometry of the fixture exactly, and the same pooled cells', async () => {
    const dir = path.join(fixtures!, 'case_cam');
    const { tensors } = await readSafetensors(path.join(dir, 'expected_m4.safetensors'));
    const want = (name: string) => tensors.get(name)!.data;
    const expected = JSON.parse(await readFile(path.join(dir, 'expected_m4.json'), 'utf8'));
    const ds = await openDataset(dir);
    const ref = ds.frames()[0];
    const frame = await ds.readAgentFrame(ref, 2300, { images: true });
    expect(frame.cameras.map((c) => c.name)).toEqual(['camera0', 'camera1', 'camera2', 'camera3']);
    const depth = await Promise.all(frame.cameras.map((c) => readDepthPng(c.depthPath!)));

    healCameraInputs(frame, HEAL_M4_CAMERA, { depth }); // compile
    const t0 = performance.now();
    const got = healCameraInputs(frame, HEAL_M4_CAMERA, { depth });
    console.log(`healCameraInputs (4 cameras, pictures + depth + geometry): ${(performance.now() - t0).toFixed(1)} ms`);

    const exactDiffs = (a: ArrayLike<number>, b: ArrayLike<number>) => {
      expect(a.length).toBe(b.length);
      let n = 0;
      for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) n++;
      return n;
    };
    expect(exactDiffs(got.rgbU8, want('imgs.rgb_u8') as Uint8Array)).toBe(0);
    expect(exactDiffs(got.depthU8!, want('imgs.depth_u8') as Uint8Array)).toBe(0);
    for (const [mine, name] of [
      [got.rots, 'rots'],
      [got.trans, 'trans'],
      [got.intrins, 'intrins'],
      [got.postRots, 'post_rots'],
      [got.postTrans, 'post_trans'],
      [got.extrinsics, 'extrinsics'],
      [got.frustum, 'frustum'],
    ] as const) {
      expect(exactDiffs(mine, want(name) as Float32Array), name).toBe(0);
    }

    // The fed tensor [1, 4, 4, H, W]: its 32×32 centre window exactly, its channel sums to float64 rounding.
    const [W, H] = got.size;
    const plane = W * H;
    const S = 32,
      r0 = (H - S) / 2,
      c0 = (W - S) / 2;
    const crop = want('imgs.crop') as Float32Array;
    const sums = want('imgs.channel_sum') as Float64Array;
    let cropDiffs = 0;
    for (let n = 0; n < 4; n++) {
      for (let c = 0; c < 4; c++) {
        const src = c < 3 ? got.imgs.subarray((n * 3 + c) * plane, (n * 3 + c + 1) * plane) : got.depth!.subarray(n * plane, (n + 1) * plane);
        for (let y = 0; y < S; y++) for (let x = 0; x < S; x++) if (src[(r0 + y) * W + c0 + x] !== crop[((n * 4 + c) * S + y) * S + x]) cropDiffs++;
        let sum = 0;
        for (let i = 0; i < plane; i++) sum += src[i];
        expect(Math.abs(sum - sums[n * 4 + c])).toBeLessThan(1e-6 * Math.max(1, Math.abs(sums[n * 4 + c])));
      }
    }
    expect(cropDiffs).toBe(0);

    // Geometry: depth bins 0 and D−1 exactly; the sums over all bins to float64 rounding.
    const [D, fH, fW] = got.frustumShape;
    expect([D, fH, fW]).toEqual([48, 42, 56]);
    const HW = fH * fW,
      P = D * HW;
    const firstLast = want('geom.depth_bins_first_last') as Float32Array;
    let geomDiffs = 0,
      geomMax = 0;
    for (let n = 0; n < 4; n++) {
      for (const [slot, d] of [
        [0, 0],
        [1, D - 1],
      ]) {
        for (let i = 0; i < HW * 3; i++) {
          const a = got.geometry[(n * P + d * HW) * 3 + i],
            b = firstLast[(n * 2 + slot) * HW * 3 + i];
          if (a !== b) geomDiffs++;
          geomMax = Math.max(geomMax, Math.abs(a - b));
        }
      }
    }
    const geomSums = want('geom.channel_sum') as Float64Array;
    let sumErr = 0;
    for (let n = 0; n < 4; n++) {
      const s = [0, 0, 0];
      for (let i = 0; i < P; i++) for (let k = 0; k < 3; k++) s[k] += got.geometry[(n * P + i) * 3 + k];
      for (let k = 0; k < 3; k++) sumErr = Math.max(sumErr, Math.abs(s[k] - geomSums[n * 3 + k]));
    }
    console.log(
      `geometry: ${geomDiffs} of ${firstLast.length} first/last-bin values differ (max ${geomMax} m); channel sums within ${sumErr.toExponential(1)}`,
    );
    expect(geomDiffs).toBe(0);
    expect(sumErr).toBeLessThan(1e-3);

    // Voxel pooling cells: per-cell point counts equal HEAL's, so no point changed cell.
    const { cells } = healVoxelCells(got.geometry, HEAL_LSS_GRID);
    const counts = new Int32Array(256 * 256);
    let kept = 0;
    for (const c of cells) {
      if (c < 0) continue;
      counts[c]++;
      kept++;
    }
    const wantCounts = want('bev_lss.points_per_cell') as Int32Array;
    let moved = 0;
    for (let c = 0; c < counts.length; c++) moved += Math.abs(counts[c] - wantCounts[c]);
    expect(kept).toBe(expected.counts.frustum_points_in_bev);
    expect(moved).toBe(0);

    // For scale: the same formula in float64 (a textbook inverse, no float32 rounding) moves points across cells.
    const aug = healAugmentation(HEAL_M4_CAMERA);
    let flips = 0;
    for (let n = 0; n < 4; n++) {
      const R = got.rots.subarray(n * 9, n * 9 + 9),
        t = got.trans.subarray(n * 3, n * 3 + 3),
        K = got.intrins.subarray(n * 9, n * 9 + 9);
      const xyz = new Float32Array(P * 3);
      for (let i = 0; i < P; i++) {
        const d = got.frustum[i * 3 + 2];
        const u = (got.frustum[i * 3] - aug.postTrans[0]) / aug.resize,
          v = (got.frustum[i * 3 + 1] - aug.postTrans[1]) / aug.resize;
        const cx = ((u - K[2]) / K[0]) * d,
          cy = ((v - K[5]) / K[4]) * d;
        for (let k = 0; k < 3; k++) xyz[i * 3 + k] = R[k * 3] * cx + R[k * 3 + 1] * cy + R[k * 3 + 2] * d + t[k];
      }
      const plain = healVoxelCells(xyz, HEAL_LSS_GRID).cells;
      for (let i = 0; i < P; i++) if (plain[i] !== cells[n * P + i]) flips++;
    }
    console.log(`a float64 geometry puts ${flips} of ${cells.length} frustum points in another cell than HEAL's float32 one`);
    expect(flips).toBeGreaterThan(0);
  });

  it('refuses cameras without a loaded picture, without cords, or of another size', async () => {
    const dir = path.join(fixtures!, 'case_cam');
    const ds = await openDataset(dir);
    const frame = await ds.readAgentFrame(ds.frames()[0], 2300, { images: true });
    const cam = frame.cameras[0];
    const withCam = (c: CameraRecord) => ({ lidarPose: frame.lidarPose, cameras: [c] });
    expect(() => healCameraInputs(withCam({ ...cam, image: undefined }))).toThrow(/not loaded/);
    expect(() => healCameraInputs(withCam({ ...cam, cords: undefined }))).toThrow(/cords/);
    const small = { width: 400, height: 300, data: new Uint8Array(400 * 300 * 3) };
    expect(() => healCameraInputs(withCam({ ...cam, image: small }))).toThrow(DataError);
    expect(() => healCameraInputs(withCam(cam), HEAL_M4_CAMERA, { depth: [] })).toThrow(/depth pictures/);
  });
});

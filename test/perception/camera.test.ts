import { describe, expect, it } from 'vitest';
import {
  CV_TO_UE4,
  adjustIntrinsics,
  bevCell,
  depthBinIndex,
  depthBins,
  depthTargets,
  DEPTH_NO_HIT,
  frustumPoints,
  frustumToBev,
  preprocessImage,
  splatByCumsum,
  splatCamera,
  splatReference,
  type SplatCamera,
  type SplatIndex,
} from '../../perception/camera.ts';
import { HEAL_SPACE, SMALL_SPACE, featureGrid } from '../../perception/space.ts';
import { invert, multiply, poseToMatrix, x1ToX2, matrixToPose, transformPoint } from '../../datasets/geometry/transforms.ts';
import type { CameraRecord } from '../../datasets/frame.ts';
import { DataError } from '../../datasets/io.ts';

// OPV2V camera: 800×600, 100° horizontal FOV (formats.md §1.5).
const K800 = Float64Array.from([335.6399, 0, 400, 0, 335.6399, 300, 0, 0, 1]);

// An OPV2V-style vehicle somewhere in the world, its LiDAR at (−0.5, 0, 1.9) and the four camera
// mounts of formats.md §1.5, extrinsics built as the OPV2V writer does: inv(x1_to_x2(cords, lidar)).
const BASE = [120.3, -45.7, 0.2, 0, 37, 0];
const MOUNTS = [
  [2.5, 0, 1.0, 0, 0, 0],
  [0, 0.3, 1.8, 0, 100, 0],
  [0, -0.3, 1.8, 0, -100, 0],
  [-2.0, 0, 1.5, 0, 180, 0],
];
const onVehicle = (m: number[]) => matrixToPose(multiply(poseToMatrix(BASE), poseToMatrix(m)));
const LIDAR_POSE = onVehicle([-0.5, 0, 1.9, 0, 0, 0]);
const EXTRINSICS = MOUNTS.map((m) => invert(x1ToX2(onVehicle(m), LIDAR_POSE)));

function vehicleCameras(K: Float64Array): SplatCamera[] {
  return EXTRINSICS.map((extrinsic, i) => ({ intrinsic: K, extrinsic, axes: 'ue4' as const, name: `camera${i}` }));
}

describe('depth bins', () => {
  it('LID matches the closed form, is increasing with growing widths, and spans [dmin, dmax]', () => {
    const n = 48,
      dmin = 2,
      dmax = 50;
    const c = depthBins('LID', dmin, dmax, n);
    const s = depthBins('LID', dmin, dmax, n, 'start');
    const delta = (2 * (dmax - dmin)) / (n * (n + 1));
    expect(s[0]).toBe(2);
    expect(s[1]).toBeCloseTo(2 + delta, 6);
    // Last edge = dmax: the last start plus the last width n·δ.
    expect(s[n - 1] + n * delta).toBeCloseTo(dmax, 4);
    for (let i = 0; i < n; i++) {
      expect(c[i]).toBeCloseTo(dmin + (delta * (i + 1) ** 2) / 2, 4);
      const end = i + 1 < n ? s[i + 1] : dmax;
      expect(c[i]).toBeCloseTo((s[i] + end) / 2, 4);
      expect(depthBinIndex('LID', dmin, dmax, n, c[i])).toBe(i);
      expect(depthBinIndex('LID', dmin, dmax, n, s[i] + 1e-4)).toBe(i);
    }
    for (let i = 1; i < n; i++) {
      expect(c[i]).toBeGreaterThan(c[i - 1]);
      if (i > 1) expect(c[i] - c[i - 1]).toBeGreaterThan(c[i - 1] - c[i - 2]); // widths grow
    }
    expect(depthBinIndex('LID', dmin, dmax, n, 1.99)).toBe(-1);
    expect(depthBinIndex('LID', dmin, dmax, n, 50)).toBe(-1);
  });

  it('UD is uniform', () => {
    const c = depthBins('UD', 2, 50, 48);
    for (let i = 0; i < 48; i++) {
      expect(c[i]).toBeCloseTo(2.5 + i, 5);
      expect(depthBinIndex('UD', 2, 50, 48, c[i])).toBe(i);
    }
  });

  it('depthTargets: each feature pixel takes the bin of the nearest depth in its patch; sky, too near or too far is −1', () => {
    // An 8×4 depth map onto a 4×2 feature map: 2×2 patches.
    const S = DEPTH_NO_HIT;
    const rows = [
      [10, S, 1, 30, S, S, 60, 70],
      [30, 12, 30, 40, S, S, 80, 49],
      [5, 5, 20, 20, 2, S, 49, 49],
      [5, 5, 20, 3, S, S, 49, 49],
    ];
    const data = Uint8Array.from(rows.flat());
    const t = depthTargets({ width: 8, height: 4, data }, [4, 2], 'LID', 2, 50, 24);
    const bin = (d: number) => depthBinIndex('LID', 2, 50, 24, d);
    expect([...t]).toEqual([bin(10), -1, -1, bin(49), bin(5), bin(3), bin(2), bin(49)]);
    expect(bin(10)).toBeGreaterThan(bin(5));
    // Patch (1, 0) is [1, 30, 30, 40]: its nearest surface (1 m) is inside dmin, so it is not labelled
    // with 30 m; patch (2, 0) is all sky; patch (3, 0)'s nearest is 49 m.
    expect(() => depthTargets({ width: 8, height: 4, data: data.subarray(1) }, [4, 2], 'LID', 2, 50, 24)).toThrow(/32 bytes/);
    expect(() => depthTargets({ width: 2, height: 2, data: new Uint8Array(4) }, [4, 2], 'LID', 2, 50, 24)).toThrow(/smaller/);
  });

  it('rejects bad arguments', () => {
    expect(() => depthBins('LID', 5, 2, 10)).toThrow(/dmin < dmax/);
    expect(() => depthBins('SID' as 'LID', 2, 50, 10)).toThrow(/unknown mode/);
    expect(() => depthBins('UD', 2, 50, 0)).toThrow(/positive integer/);
  });
});

describe('preprocessImage and adjustIntrinsics', () => {
  // A bright disc drawn where K projects a 3D point; after resizing, its intensity centroid must
  // sit where the adjusted K projects the same point. A half-pixel convention mismatch between
  // resampling and K would move it by ~0.3 px.
  function discImage(w: number, h: number, cx: number, cy: number, r: number) {
    const data = new Uint8Array(w * h * 3);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        // 4×4 supersampled coverage so the disc's centroid is at (cx, cy) to ~0.01 px.
        let cov = 0;
        for (let a = 0; a < 4; a++)
          for (let b = 0; b < 4; b++) {
            const dx = x + (a + 0.5) / 4 - cx,
              dy = y + (b + 0.5) / 4 - cy;
            if (dx * dx + dy * dy <= r * r) cov++;
          }
        data.fill(Math.round((255 * cov) / 16), (y * w + x) * 3, (y * w + x) * 3 + 3);
      }
    }
    return { width: w, height: h, data };
  }
  const project = (K: Float64Array, p: number[]) => {
    const z = K[6] * p[0] + K[7] * p[1] + K[8] * p[2];
    return [(K[0] * p[0] + K[1] * p[1] + K[2] * p[2]) / z, (K[3] * p[0] + K[4] * p[1] + K[5] * p[2]) / z];
  };
  function centroid(tensor: Float32Array, w: number, h: number) {
    // Undo the normalisation of the red channel back to [0, 1] intensities.
    let sx = 0,
      sy = 0,
      s = 0;
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++) {
        const v = tensor[y * w + x] * 0.229 + 0.485;
        if (v < 0.02) continue;
        sx += v * (x + 0.5);
        sy += v * (y + 0.5);
        s += v;
      }
    return [sx / s, sy / s];
  }

  it.each([
    ['resize 800×600 → 256×192', undefined, [256, 192]],
    ['crop then resize (anisotropic)', { x: 48, y: 100, width: 640, height: 400 }, [352, 128]],
    ['upsample a crop', { x: 400, y: 260, width: 100, height: 80 }, [250, 240]],
  ] as const)('%s keeps K consistent with the pixels', (_label, crop, size) => {
    const p = [1.3, 0.4, 9.0]; // OpenCV camera frame, in view of every crop above
    const [u, v] = project(K800, p);
    const img = discImage(800, 600, u, v, 6);
    const pre = preprocessImage(img, [size[0], size[1]], crop);
    expect(pre.tensor.length).toBe(3 * size[0] * size[1]);
    const K2 = adjustIntrinsics(K800, pre.scale, pre.crop);
    const [u2, v2] = project(K2, p);
    // Same map as the image coordinates: (u − crop.x)·sx.
    expect(u2).toBeCloseTo((u - pre.crop.x) * pre.scale[0], 9);
    expect(v2).toBeCloseTo((v - pre.crop.y) * pre.scale[1], 9);
    const [cu, cv] = centroid(pre.tensor, size[0], size[1]);
    expect(Math.abs(cu - u2)).toBeLessThan(0.05);
    expect(Math.abs(cv - v2)).toBeLessThan(0.05);
  });

  it('normalises with ImageNet mean/std in CHW order and keeps flat colours flat', () => {
    const w = 40,
      h = 30;
    const data = new Uint8Array(w * h * 3);
    for (let i = 0; i < w * h; i++) data.set([255, 128, 0], i * 3);
    const pre = preprocessImage({ width: w, height: h, data }, [16, 12]);
    const plane = 16 * 12;
    for (let q = 0; q < plane; q++) {
      expect(pre.tensor[q]).toBeCloseTo((1 - 0.485) / 0.229, 4);
      expect(pre.tensor[plane + q]).toBeCloseTo((128 / 255 - 0.456) / 0.224, 4);
      expect(pre.tensor[2 * plane + q]).toBeCloseTo((0 - 0.406) / 0.225, 4);
    }
    expect(pre.scale).toEqual([16 / 40, 12 / 30]);
  });

  it('rejects a wrong-sized buffer and a crop outside the image', () => {
    expect(() => preprocessImage({ width: 10, height: 10, data: new Uint8Array(299) }, [4, 4])).toThrow(DataError);
    const img = { width: 10, height: 10, data: new Uint8Array(300) };
    expect(() => preprocessImage(img, [4, 4], { x: 5, y: 0, width: 6, height: 4 })).toThrow(/inside the 10×10 image/);
  });
});

describe('frustum geometry', () => {
  // 272×208 with stride 16 gives odd feature counts (17×13), so the centre feature pixel
  // (8, 6) sits exactly on the principal point.
  const size: [number, number] = [272, 208];
  const K = adjustIntrinsics(K800, [272 / 800, 208 / 600]);
  const depth = Float32Array.from([5, 10, 20]);
  const opts = { imageSize: size, downsample: 16, depth };
  const fW = 17,
    fH = 13,
    D = depth.length;
  const at = (xyz: Float64Array, n: number, d: number, v: number, u: number) => {
    const i = ((n * D + d) * fH + v) * fW + u;
    return [xyz[3 * i], xyz[3 * i + 1], xyz[3 * i + 2]];
  };

  it('camera0 looks along +x: image centre at depth d lands at (3.0 + d, 0, −0.9) in the LiDAR frame', () => {
    const xyz = frustumPoints(vehicleCameras(K), opts);
    expect(xyz.length).toBe(4 * D * fH * fW * 3);
    depth.forEach((d, k) => {
      const [x, y, z] = at(xyz, 0, k, 6, 8);
      expect(x).toBeCloseTo(3.0 + d, 3);
      expect(y).toBeCloseTo(0, 3);
      expect(z).toBeCloseTo(-0.9, 3);
    });
    // Right of centre in the image is +y (right) in the left-handed LiDAR frame; lower is −z.
    expect(at(xyz, 0, 1, 6, 16)[1]).toBeGreaterThan(1);
    expect(at(xyz, 0, 1, 12, 8)[2]).toBeLessThan(-1);
  });

  it('camera1 (yaw +100°) looks to +y, slightly backwards', () => {
    const xyz = frustumPoints(vehicleCameras(K), opts);
    const yaw = (100 * Math.PI) / 180;
    depth.forEach((d, k) => {
      const [x, y, z] = at(xyz, 1, k, 6, 8);
      // cam1 in the LiDAR frame: (0 − (−0.5), 0.3, 1.8 − 1.9).
      expect(x).toBeCloseTo(0.5 + d * Math.cos(yaw), 3);
      expect(y).toBeCloseTo(0.3 + d * Math.sin(yaw), 3);
      expect(z).toBeCloseTo(-0.1, 3);
      expect(y).toBeGreaterThan(0.9 * d);
    });
    // camera3 looks backwards.
    expect(at(xyz, 3, 2, 6, 8)[0]).toBeCloseTo(-1.5 - 20, 3);
  });

  it('projects back: each frustum point reprojects to its feature pixel at its depth', () => {
    const cams = vehicleCameras(K);
    const xyz = frustumPoints(cams, opts);
    for (const [n, d, v, u] of [
      [0, 0, 0, 0],
      [1, 2, 12, 16],
      [2, 1, 3, 9],
      [3, 0, 7, 2],
    ]) {
      const p = at(xyz, n, d, v, u);
      const ue = transformPoint(EXTRINSICS[n], p[0], p[1], p[2]);
      const cv = [ue[1], -ue[2], ue[0]]; // formats.md §1.5
      expect(cv[2]).toBeCloseTo(depth[d], 6);
      expect((K[0] * cv[0]) / cv[2] + K[2]).toBeCloseTo((u + 0.5) * 16, 6);
      expect((K[4] * cv[1]) / cv[2] + K[5]).toBeCloseTo((v + 0.5) * 16, 6);
    }
  });

  it("gives the same points for an 'opencv' extrinsic of the same camera", () => {
    const ue = vehicleCameras(K);
    const cv = ue.map((c) => ({ ...c, axes: 'opencv' as const, extrinsic: multiply(invert(CV_TO_UE4), c.extrinsic) }));
    const a = frustumPoints(ue, opts),
      b = frustumPoints(cv, opts);
    let worst = 0;
    for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
    expect(worst).toBeLessThan(1e-9);
  });

  it('splatCamera adjusts a dataset record to the preprocessed image', () => {
    const rec: CameraRecord = { name: 'camera0', imagePath: 'x.png', intrinsic: K800, extrinsic: EXTRINSICS[0], extrinsicAxes: 'ue4' };
    const cam = splatCamera(rec, { scale: [272 / 800, 208 / 600], crop: { x: 0, y: 0, width: 800, height: 600 } });
    expect(Array.from(cam.intrinsic)).toEqual(Array.from(K));
    expect(cam.axes).toBe('ue4');
  });

  it('rejects bad calibration and sizes with clear errors', () => {
    const cams = vehicleCameras(K);
    const bad = [{ ...cams[0], extrinsic: new Float64Array(16) }];
    expect(() => frustumPoints(bad, opts)).toThrow(/camera0: field "extrinsic": is singular/);
    const nan = [{ ...cams[0], intrinsic: Float64Array.from([NaN, 0, 0, 0, 1, 0, 0, 0, 1]) }];
    expect(() => frustumPoints(nan, opts)).toThrow(DataError);
    expect(() => frustumPoints(cams, { ...opts, imageSize: [270, 208] })).toThrow(/divisible by downsample 16/);
  });
});

describe('frustumToBev splat index', () => {
  const size: [number, number] = [256, 192];
  const K = adjustIntrinsics(K800, [256 / 800, 192 / 600]);
  const depth = depthBins('LID', 2, 50, 48);

  for (const space of [SMALL_SPACE, HEAL_SPACE]) {
    describe(`${space.name} space`, () => {
      const cams = vehicleCameras(K);
      const opts = { imageSize: size, downsample: 16, depth, space };
      const index = frustumToBev(cams, opts);
      const [W, H] = featureGrid(space);

      it('is well formed', () => {
        expect(index.count).toBe(4 * 48 * 12 * 16);
        expect(index.featureSize).toEqual([16, 12]);
        expect(index.gridSize).toEqual([W, H]);
        const kept = index.keptIndex.length;
        expect(kept).toBeGreaterThan(index.count / 4); // most rays of 4 cameras stay low and near
        expect(kept).toBeLessThan(index.count);
        for (let k = 1; k < kept; k++) {
          expect(index.cellOfKept[k]).toBeGreaterThanOrEqual(index.cellOfKept[k - 1]);
          if (index.cellOfKept[k] === index.cellOfKept[k - 1]) expect(index.keptIndex[k]).toBeGreaterThan(index.keptIndex[k - 1]);
        }
        const S = index.occupiedCells.length;
        expect(index.segmentStarts[0]).toBe(0);
        expect(index.segmentEnds[S - 1]).toBe(kept - 1);
        for (let s = 0; s < S; s++) {
          const a = index.segmentStarts[s],
            b = index.segmentEnds[s];
          if (s > 0) expect(a).toBe(index.segmentEnds[s - 1] + 1);
          expect(index.cellOfKept[a]).toBe(index.occupiedCells[s]);
          expect(index.cellOfKept[b]).toBe(index.occupiedCells[s]);
          expect(index.cellToSegment[index.occupiedCells[s]]).toBe(s);
        }
        let empty = 0;
        for (let c = 0; c < W * H; c++) if (index.cellToSegment[c] === S) empty++;
        expect(empty).toBe(W * H - S);
      });

      it('keeps exactly the points whose own cell is in range', () => {
        const xyz = frustumPoints(cams, opts);
        const expectedCell = new Int32Array(index.count);
        for (let i = 0; i < index.count; i++) expectedCell[i] = bevCell(space, xyz[3 * i], xyz[3 * i + 1], xyz[3 * i + 2]);
        const seen = new Int32Array(index.count).fill(-1);
        index.keptIndex.forEach((i, k) => {
          seen[i] = index.cellOfKept[k];
        });
        expect(Array.from(seen)).toEqual(Array.from(expectedCell));
      });

      it('splatReference equals a naive per-point loop, and the cumsum trick equals splatReference', () => {
        const C = 3;
        const feats = new Float32Array(index.count * C);
        for (let i = 0; i < feats.length; i++) feats[i] = ((i * 2654435761) % 1000) / 1000 - 0.3;
        const ref = splatReference(feats, index, C);
        // Naive loop from the geometry, independent of the sort.
        const xyz = frustumPoints(cams, opts);
        const naive = new Float64Array(C * W * H);
        for (let i = 0; i < index.count; i++) {
          const cell = bevCell(space, xyz[3 * i], xyz[3 * i + 1], xyz[3 * i + 2]);
          if (cell < 0) continue;
          for (let c = 0; c < C; c++) naive[c * W * H + cell] += feats[i * C + c];
        }
        let worst = 0;
        for (let j = 0; j < ref.length; j++) worst = Math.max(worst, Math.abs(ref[j] - naive[j]));
        expect(worst).toBeLessThan(1e-4);
        expect(ref.some((v) => v !== 0)).toBe(true);

        // The graph's arithmetic in float64 on the index: gather, cumsum, take ends, subtract, gather.
        const cum = cumsumPath(feats, index, C);
        worst = 0;
        for (let j = 0; j < ref.length; j++) worst = Math.max(worst, Math.abs(ref[j] - cum[j]));
        expect(worst).toBeLessThan(1e-4);
      });

      it('splatByCumsum (float32) is exact on small integers and close on reals', () => {
        const C = 2;
        const ints = new Float32Array(index.count * C);
        for (let i = 0; i < ints.length; i++) ints[i] = (i % 7) - 3;
        expect(Array.from(splatByCumsum(ints, index, C))).toEqual(Array.from(splatReference(ints, index, C)));
        const reals = new Float32Array(index.count * C);
        for (let i = 0; i < reals.length; i++) reals[i] = ((i * 40503) % 997) / 997;
        const a = splatByCumsum(reals, index, C),
          b = splatReference(reals, index, C);
        let worst = 0;
        for (let j = 0; j < a.length; j++) worst = Math.max(worst, Math.abs(a[j] - b[j]));
        expect(worst).toBeLessThan(0.05); // float32 running sums reach ~2e4 here
      });
    });
  }

  it('rejects features of the wrong size', () => {
    const index = frustumToBev(vehicleCameras(K), { imageSize: size, downsample: 16, depth, space: SMALL_SPACE });
    expect(() => splatReference(new Float32Array(10), index, 4)).toThrow(/features must be/);
  });
});

/** Plain-JS model of the graph: S = cumsum(F[keptIndex]); seg_s = S[end_s] − S[end_{s−1}]; bev = [seg; 0][cellToSegment]. */
function cumsumPath(F: Float32Array, index: SplatIndex, C: number): Float64Array {
  const K = index.keptIndex.length;
  const S = new Float64Array(K * C);
  for (let k = 0; k < K; k++)
    for (let c = 0; c < C; c++) {
      S[k * C + c] = (k > 0 ? S[(k - 1) * C + c] : 0) + F[index.keptIndex[k] * C + c];
    }
  const nSeg = index.segmentEnds.length;
  const seg = new Float64Array((nSeg + 1) * C);
  for (let s = 0; s < nSeg; s++)
    for (let c = 0; c < C; c++) {
      seg[s * C + c] = S[index.segmentEnds[s] * C + c] - (s > 0 ? S[index.segmentEnds[s - 1] * C + c] : 0);
    }
  const [W, H] = index.gridSize;
  const out = new Float64Array(C * W * H);
  for (let cell = 0; cell < W * H; cell++) for (let c = 0; c < C; c++) out[c * W * H + cell] = seg[index.cellToSegment[cell] * C + c];
  return out;
}

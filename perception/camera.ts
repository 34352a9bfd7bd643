// Camera side of the Lift-Splat-Shoot (LSS) encoder, outside the network: image preprocessing
// and the fixed frustum→BEV geometry. The network predicts, for every feature pixel of every
// camera, a depth distribution over D bins and a context vector; their outer product is one
// feature per frustum point (camera n, depth bin d, feature row v, feature column u). This module
// says where each frustum point lands on the shared BEV grid, as integer indices the graph uses
// to sum the frustum features into cells (the "cumsum trick"), so the graph itself needs no
// geometry. The index depends only on calibration, input size, stride, bins and space: compute it
// once per calibration and reuse it across frames.
//
// Conventions
// - Pixel coordinates are continuous with pixel centres at k + 0.5: the image spans [0, W] and
//   OPV2V's K (cx = W/2) puts the principal point at its middle. The synthetic renderer casts the
//   ray of pixel (u, v) through (u + 0.5, v + 0.5), the same convention. Resizing by s then maps
//   x → s·x exactly, so K scales without half-pixel fix-ups.
// - Depth is planar (z of the OpenCV camera frame), as in LSS and CARLA's depth camera.
// - OpenCV camera axes: x right, y down, z forward. UE4 camera axes: x forward, y right, z up;
//   UE.x = cv.z, UE.y = cv.x, UE.z = −cv.y (formats.md §1.5).
// - Frustum points are flattened in the order (n, d, v, u):
//     point = ((n·D + d)·fH + v)·fW + u,   fH = H / downsample, fW = W / downsample.
//   That is the image encoder's [N, D, fH, fW, C] feature tensor read as [points, C] rows.
// - BEV cell = row·W' + col with col along x and row along y (fusion/anchors.ts). A point is kept
//   when xmin ≤ x < xmax, ymin ≤ y < ymax and zmin ≤ z < zmax (half-open, as LSS's floor-and-test).

import type { CameraRecord, RgbImage } from '../datasets/frame.ts';
import { type Mat4, invert, isFiniteMatrix, poseToMatrix, relative } from '../datasets/geometry/transforms.ts';
import { DataError } from '../datasets/io.ts';
import type { GrayImage } from '../datasets/png.ts';
import { cropImage, resizeImage } from '../datasets/resize.ts';
import { type SharedSpace, featureCellSize, featureGrid } from './space.ts';

export const IMAGENET_MEAN = [0.485, 0.456, 0.406] as const;
export const IMAGENET_STD = [0.229, 0.224, 0.225] as const;

/** A rectangle of the source image in whole pixels. */
export interface CropBox {
  x: number;
  y: number;
  width: number;
  height: number;
}

export interface Preprocessed {
  /** [3, H, W] RGB in CHW order, (value/255 − mean) / std with ImageNet statistics. */
  tensor: Float32Array;
  /** Network-input pixels per source pixel: [W / crop.width, H / crop.height]. */
  scale: [number, number];
  /** The part of the source image that was resized (the whole image when no crop was given). */
  crop: CropBox;
}

/**
 * Crops (optionally) and resizes an RGB image to the network input size [W, H].
 *
 * Resampling is bilinear, antialiased when shrinking: a triangle filter whose support widens by
 * the shrink factor, like PIL's BILINEAR and torch's `interpolate(..., antialias=True)`. Plain
 * 2-tap bilinear would alias badly at the ~3× shrink from 800×600 to network sizes. Taps outside
 * the crop are dropped and the weights renormalised, so the crop is resampled on its own.
 * crop-then-resize is the same map of coordinates as HEAL's resize-then-crop, and
 * `adjustIntrinsics(K, scale, crop)` follows it. HEAL's own pixels (PIL's default BICUBIC, in
 * fixed point) come from healCameraInputs.
 */
export function preprocessImage(image: RgbImage, inputSize: [number, number], crop?: CropBox): Preprocessed {
  const [outW, outH] = inputSize;
  if (!(Number.isInteger(outW) && Number.isInteger(outH) && outW > 0 && outH > 0)) {
    throw new Error(`preprocessImage: inputSize must be two positive integers, got [${outW}, ${outH}]`);
  }
  const { width, height, data } = image;
  if (data.length !== width * height * 3) {
    throw new DataError('camera image', 'data', `expected ${width}×${height}×3 = ${width * height * 3} bytes`, data.length);
  }
  const box = crop ?? { x: 0, y: 0, width, height };
  if (
    !(Number.isInteger(box.x) && Number.isInteger(box.y) && Number.isInteger(box.width) && Number.isInteger(box.height)) ||
    box.x < 0 ||
    box.y < 0 ||
    box.width < 1 ||
    box.height < 1 ||
    box.x + box.width > width ||
    box.y + box.height > height
  ) {
    throw new Error(`preprocessImage: crop ${JSON.stringify(box)} is not a whole-pixel box inside the ${width}×${height} image`);
  }
  const sx = outW / box.width,
    sy = outH / box.height;
  const tx = filterTaps(box.x, box.width, outW);
  const ty = filterTaps(box.y, box.height, outH);

  // Horizontal pass over the crop's rows into [cropH, outW, 3] floats, then vertical pass.
  const rowsBuf = new Float32Array(box.height * outW * 3);
  for (let r = 0; r < box.height; r++) {
    const src = (box.y + r) * width * 3;
    const dst = r * outW * 3;
    for (let o = 0; o < outW; o++) {
      let a = 0,
        b = 0,
        c = 0;
      const first = tx.first[o],
        n = tx.count[o],
        w0 = o * tx.maxTaps;
      for (let k = 0; k < n; k++) {
        const w = tx.weight[w0 + k],
          p = src + (first + k) * 3;
        a += w * data[p];
        b += w * data[p + 1];
        c += w * data[p + 2];
      }
      const q = dst + o * 3;
      rowsBuf[q] = a;
      rowsBuf[q + 1] = b;
      rowsBuf[q + 2] = c;
    }
  }
  const plane = outW * outH;
  const tensor = new Float32Array(3 * plane);
  const gain = [0, 1, 2].map((ch) => 1 / (255 * IMAGENET_STD[ch]));
  const bias = [0, 1, 2].map((ch) => -IMAGENET_MEAN[ch] / IMAGENET_STD[ch]);
  for (let o = 0; o < outH; o++) {
    const first = ty.first[o] - box.y,
      n = ty.count[o],
      w0 = o * ty.maxTaps;
    for (let col = 0; col < outW; col++) {
      let a = 0,
        b = 0,
        c = 0;
      for (let k = 0; k < n; k++) {
        const w = ty.weight[w0 + k],
          p = ((first + k) * outW + col) * 3;
        a += w * rowsBuf[p];
        b += w * rowsBuf[p + 1];
        c += w * rowsBuf[p + 2];
      }
      const q = o * outW + col;
      tensor[q] = a * gain[0] + bias[0];
      tensor[plane + q] = b * gain[1] + bias[1];
      tensor[2 * plane + q] = c * gain[2] + bias[2];
    }
  }
  return { tensor, scale: [sx, sy], crop: { ...box } };
}

/** Triangle-filter taps for resampling source pixels [start, start+len) onto `out` samples. */
function filterTaps(start: number, len: number, out: number) {
  const scale = out / len;
  const support = Math.max(1, 1 / scale); // filter half-width in source pixels
  const maxTaps = Math.ceil(support) * 2 + 1;
  const first = new Int32Array(out),
    count = new Int32Array(out),
    weight = new Float32Array(out * maxTaps);
  for (let o = 0; o < out; o++) {
    const centre = start + (o + 0.5) / scale; // continuous source coordinate of the sample
    const lo = Math.max(start, Math.floor(centre - support - 0.5));
    const hi = Math.min(start + len - 1, Math.ceil(centre + support - 0.5));
    let sum = 0,
      n = 0;
    for (let i = lo; i <= hi && n < maxTaps; i++) {
      const w = Math.max(0, 1 - Math.abs(i + 0.5 - centre) / support);
      if (n === 0 && w === 0) continue; // skip leading zero taps so `first` is the first useful one
      if (n === 0) first[o] = i;
      weight[o * maxTaps + n++] = w;
      sum += w;
    }
    for (let k = 0; k < n; k++) weight[o * maxTaps + k] /= sum;
    count[o] = n;
  }
  return { first, count, weight, maxTaps };
}

/**
 * K for the preprocessed image: a source pixel x maps to (x − crop.x)·sx, so
 * K' = diag(sx, sy, 1) · [[1, 0, −crop.x], [0, 1, −crop.y], [0, 0, 1]] · K.
 */
export function adjustIntrinsics(K: Float64Array, scale: [number, number], crop?: { x: number; y: number }): Float64Array {
  if (K.length !== 9) throw new Error(`adjustIntrinsics: K must be 3×3 row-major (9 values), got ${K.length}`);
  const [sx, sy] = scale;
  const x0 = crop?.x ?? 0,
    y0 = crop?.y ?? 0;
  const out = new Float64Array(9);
  for (let c = 0; c < 3; c++) {
    out[c] = sx * (K[c] - x0 * K[6 + c]);
    out[3 + c] = sy * (K[3 + c] - y0 * K[6 + c]);
    out[6 + c] = K[6 + c];
  }
  return out;
}

export type DepthMode = 'LID' | 'UD';

function checkBins(mode: DepthMode, dmin: number, dmax: number, n: number): void {
  if (mode !== 'LID' && mode !== 'UD') throw new Error(`depth bins: unknown mode "${mode}" (have: LID, UD)`);
  if (!(Number.isFinite(dmin) && Number.isFinite(dmax) && dmin >= 0 && dmax > dmin)) {
    throw new Error(`depth bins: need 0 ≤ dmin < dmax, got [${dmin}, ${dmax}]`);
  }
  if (!(Number.isInteger(n) && n > 0)) throw new Error(`depth bins: bin count must be a positive integer, got ${n}`);
}

/**
 * Depth of each of the n bins covering [dmin, dmax], in meters.
 *
 * UD: equal widths w = (dmax − dmin)/n; edge_i = dmin + i·w.
 * LID (linear-increasing, CaDDN; HEAL `depth_discretization`): bin i is (i+1)·δ wide with
 *   δ = 2(dmax − dmin) / (n(n+1)), so edge_i = dmin + δ·i(i+1)/2 and edge_n = dmax.
 * `at: 'centre'` (default) gives (edge_i + edge_{i+1})/2, i.e. dmin + δ(i+1)²/2 for LID and
 * dmin + (i + ½)·w for UD. `at: 'start'` gives edge_i, which is what HEAL's frustum uses
 * (its first bin sits at exactly dmin and its last at edge_{n−1}, short of dmax).
 */
export function depthBins(mode: DepthMode, dmin: number, dmax: number, n: number, at: 'centre' | 'start' = 'centre'): Float32Array {
  checkBins(mode, dmin, dmax, n);
  const out = new Float32Array(n);
  const span = dmax - dmin;
  for (let i = 0; i < n; i++) {
    if (mode === 'UD') out[i] = dmin + (i + (at === 'centre' ? 0.5 : 0)) * (span / n);
    else {
      const delta = (2 * span) / (n * (n + 1));
      out[i] = at === 'centre' ? dmin + (delta * (i + 1) * (i + 1)) / 2 : dmin + (delta * i * (i + 1)) / 2;
    }
  }
  return out;
}

/**
 * Which bin of depthBins(mode, dmin, dmax, n) a depth falls in (for depth supervision from
 * OPV2V-H depth maps), or −1 outside [dmin, dmax). LID inverts edge_i: i = ⌊(√(1 + 8(z − dmin)/δ) − 1)/2⌋.
 * HEAL clamps out-of-range depths into the end bins instead; callers that want that can clamp −1.
 */
export function depthBinIndex(mode: DepthMode, dmin: number, dmax: number, n: number, depth: number): number {
  checkBins(mode, dmin, dmax, n);
  if (!(depth >= dmin && depth < dmax)) return -1;
  const span = dmax - dmin;
  const t = mode === 'UD' ? ((depth - dmin) / span) * n : (Math.sqrt(1 + (8 * (depth - dmin)) / ((2 * span) / (n * (n + 1)))) - 1) / 2;
  return Math.min(n - 1, Math.floor(t));
}

/** Depth-map value for "no surface within 255 m" (sky): OPV2V-H clamps depth to 8 bits. */
export const DEPTH_NO_HIT = 255;

/**
 * Depth-bin targets for supervising an LSS depth distribution: one bin per feature pixel, row-major
 * [fH·fW], from an OPV2V-H depth map (one byte per pixel, planar depth in meters) of the whole,
 * uncropped camera image. Feature pixel (u, v) sees source pixels [u·W/fW, (u+1)·W/fW) ×
 * [v·H/fH, (v+1)·H/fH); its target is the nearest depth there, as BEVDepth takes it, because the
 * nearest surface is what the pixel's feature shows. −1 (ignored) where that depth is outside
 * [dmin, dmax) or the whole patch is sky.
 */
export function depthTargets(
  depth: { width: number; height: number; data: Uint8Array },
  featureSize: [number, number],
  mode: DepthMode,
  dmin: number,
  dmax: number,
  n: number,
): Int32Array {
  const [fW, fH] = featureSize;
  const { width: W, height: H, data } = depth;
  if (data.length !== W * H) throw new Error(`depthTargets: a ${W}×${H} depth map needs ${W * H} bytes, got ${data.length}`);
  if (W < fW || H < fH) throw new Error(`depthTargets: the ${W}×${H} depth map is smaller than the ${fW}×${fH} feature map`);
  const out = new Int32Array(fW * fH);
  for (let v = 0; v < fH; v++) {
    const y0 = Math.floor((v * H) / fH),
      y1 = Math.floor(((v + 1) * H) / fH);
    for (let u = 0; u < fW; u++) {
      const x0 = Math.floor((u * W) / fW),
        x1 = Math.floor(((u + 1) * W) / fW);
      let nearest = DEPTH_NO_HIT;
      for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) nearest = Math.min(nearest, data[y * W + x]);
      out[v * fW + u] = nearest === DEPTH_NO_HIT ? -1 : depthBinIndex(mode, dmin, dmax, n, nearest);
    }
  }
  return out;
}

/** One camera as the splat needs it: K of the network input and T_{cam←lidar}. */
export interface SplatCamera {
  /** 3×3 row-major K of the preprocessed (network-input) image. */
  intrinsic: Float64Array;
  /** 4×4 row-major T_{cam←lidar}. */
  extrinsic: Float64Array;
  /** Axes of the camera frame the extrinsic maps into. */
  axes: 'ue4' | 'opencv';
  /** For error messages. */
  name?: string;
}

/** A dataset camera record with its K adjusted to the preprocessed image. */
export function splatCamera(record: CameraRecord, pre: Pick<Preprocessed, 'scale' | 'crop'>): SplatCamera {
  return {
    intrinsic: adjustIntrinsics(record.intrinsic, pre.scale, pre.crop),
    extrinsic: record.extrinsic,
    axes: record.extrinsicAxes,
    name: record.name,
  };
}

export interface FrustumOptions {
  /** Network input size [W, H] in pixels, after preprocessing. */
  imageSize: [number, number];
  /** Stride of the image backbone's feature map (e.g. 16 or 8); must divide W and H. */
  downsample: number;
  /** Depth of each bin in meters (depthBins). */
  depth: Float32Array;
}

export interface SplatOptions extends FrustumOptions {
  space: SharedSpace;
}

/** Maps OpenCV camera axes to UE4 camera axes: p_ue = CV_TO_UE4 · p_cv (formats.md §1.5). */
export const CV_TO_UE4: Mat4 = Float64Array.from([0, 0, 1, 0, 1, 0, 0, 0, 0, -1, 0, 0, 0, 0, 0, 1]);

function frustumShape(cameraCount: number, opts: FrustumOptions) {
  const [W, H] = opts.imageSize;
  const s = opts.downsample;
  if (!(Number.isInteger(s) && s > 0)) throw new Error(`frustum: downsample must be a positive integer, got ${s}`);
  if (!(Number.isInteger(W) && Number.isInteger(H) && W > 0 && H > 0 && W % s === 0 && H % s === 0)) {
    // A backbone rounds odd sizes one way or the other; refusing keeps index and features aligned.
    throw new Error(`frustum: imageSize [${W}, ${H}] must be positive integers divisible by downsample ${s}`);
  }
  if (opts.depth.length === 0) throw new Error('frustum: no depth bins');
  for (const d of opts.depth) if (!(d > 0 && Number.isFinite(d))) throw new Error(`frustum: depth bins must be positive, got ${d}`);
  const fW = W / s,
    fH = H / s,
    D = opts.depth.length;
  return { fW, fH, D, count: cameraCount * D * fH * fW };
}

/** T_{lidar←cv}·K⁻¹ as a 3×3 `ray` plus the camera origin `t`: point = depth·ray·[u, v, 1] + t. */
function cameraRays(cam: SplatCamera, n: number): { ray: Float64Array; t: Float64Array } {
  const label = cam.name ?? `camera ${n}`;
  const K = cam.intrinsic,
    E = cam.extrinsic;
  if (K.length !== 9 || !isFiniteMatrix(K)) throw new DataError(label, 'intrinsic', 'must be 9 finite numbers (3×3 row-major)', Array.from(K));
  if (E.length !== 16 || !isFiniteMatrix(E)) throw new DataError(label, 'extrinsic', 'must be 16 finite numbers (4×4 row-major)', Array.from(E));
  if (cam.axes !== 'ue4' && cam.axes !== 'opencv') throw new DataError(label, 'axes', 'must be "ue4" or "opencv"', cam.axes);
  let lidarFromCam: Mat4;
  try {
    lidarFromCam = invert(E);
  } catch {
    throw new DataError(label, 'extrinsic', 'is singular', Array.from(E));
  }
  // Fold the axis change into the rotation so the per-point loop works in OpenCV axes only.
  const M = cam.axes === 'ue4' ? mul4(lidarFromCam, CV_TO_UE4) : lidarFromCam;
  const Kinv = invert3(K, label);
  const ray = new Float64Array(9);
  for (let r = 0; r < 3; r++) {
    for (let c = 0; c < 3; c++) ray[r * 3 + c] = M[r * 4] * Kinv[c] + M[r * 4 + 1] * Kinv[3 + c] + M[r * 4 + 2] * Kinv[6 + c];
  }
  return { ray, t: Float64Array.of(M[3], M[7], M[11]) };
}

function mul4(a: Mat4, b: Mat4): Mat4 {
  const out = new Float64Array(16);
  for (let r = 0; r < 4; r++) {
    for (let c = 0; c < 4; c++) out[r * 4 + c] = a[r * 4] * b[c] + a[r * 4 + 1] * b[4 + c] + a[r * 4 + 2] * b[8 + c] + a[r * 4 + 3] * b[12 + c];
  }
  return out;
}

function invert3(m: Float64Array, label: string): Float64Array {
  const [a, b, c, d, e, f, g, h, i] = m;
  const A = e * i - f * h,
    B = -(d * i - f * g),
    C = d * h - e * g;
  const det = a * A + b * B + c * C;
  if (!(Math.abs(det) > 1e-12)) throw new DataError(label, 'intrinsic', 'is singular', Array.from(m));
  const k = 1 / det;
  return Float64Array.of(
    A * k,
    -(b * i - c * h) * k,
    (b * f - c * e) * k,
    B * k,
    (a * i - c * g) * k,
    -(a * f - c * d) * k,
    C * k,
    -(a * h - b * g) * k,
    (a * e - b * d) * k,
  );
}

/**
 * LiDAR-frame xyz of every frustum point, [count, 3] in (n, d, v, u) order. Feature pixel (u, v)
 * sits at its centre in input pixels, ((u + ½)·downsample, (v + ½)·downsample). (HEAL spreads
 * them with linspace(0, W−1, fW) instead, which is off by up to half a feature pixel at the edges.)
 */
export function frustumPoints(cameras: SplatCamera[], opts: FrustumOptions): Float64Array {
  const { fW, fH, D, count } = frustumShape(cameras.length, opts);
  const s = opts.downsample;
  const xyz = new Float64Array(count * 3);
  let p = 0;
  cameras.forEach((cam, n) => {
    const { ray: R, t } = cameraRays(cam, n);
    for (let d = 0; d < D; d++) {
      const z = opts.depth[d];
      for (let v = 0; v < fH; v++) {
        const py = (v + 0.5) * s;
        for (let u = 0; u < fW; u++) {
          const px = (u + 0.5) * s;
          xyz[p++] = z * (R[0] * px + R[1] * py + R[2]) + t[0];
          xyz[p++] = z * (R[3] * px + R[4] * py + R[5]) + t[1];
          xyz[p++] = z * (R[6] * px + R[7] * py + R[8]) + t[2];
        }
      }
    }
  });
  return xyz;
}

/** BEV cell of a LiDAR-frame point (row·W' + col), or −1 outside the space's range. */
export function bevCell(space: SharedSpace, x: number, y: number, z: number): number {
  const [xmin, ymin, zmin, , , zmax] = space.range;
  const [W, H] = featureGrid(space);
  const [cw, ch] = featureCellSize(space);
  if (!(z >= zmin && z < zmax)) return -1;
  const col = Math.floor((x - xmin) / cw),
    row = Math.floor((y - ymin) / ch);
  return col >= 0 && col < W && row >= 0 && row < H ? row * W + col : -1;
}

/**
 * Where the frustum points go on the BEV grid, sorted by cell. With F the [count, C] frustum
 * features, the BEV map is, for each occupied cell c = occupiedCells[s],
 *   bev[:, c] = Σ_{k = segmentStarts[s] .. segmentEnds[s]} F[keptIndex[k]]
 * computed in the graph as S = cumsum(gather(F, keptIndex)); seg[s] = S[ends[s]] − S[ends[s−1]]
 * (0 for s = 0); bev = gather([seg; 0], cellToSegment) reshaped to [H', W', C].
 */
export interface SplatIndex {
  /** Frustum points in total: cameras · depthBins · fH · fW. */
  count: number;
  cameras: number;
  depthBins: number;
  /** Image feature map size [fW, fH]. */
  featureSize: [number, number];
  /** Frustum points inside the grid, sorted by cell, ascending point index within a cell. */
  keptIndex: Int32Array;
  /** Cell of each kept point (non-decreasing). */
  cellOfKept: Int32Array;
  /** Per occupied cell (= segment), the position in keptIndex of its first point. */
  segmentStarts: Int32Array;
  /** Per segment, the position in keptIndex of its last point. */
  segmentEnds: Int32Array;
  /** Per segment, its cell (ascending). */
  occupiedCells: Int32Array;
  /** [H'·W'] segment of each cell, or occupiedCells.length (the zero row) for empty cells. */
  cellToSegment: Int32Array;
  /** BEV grid [W', H'] (featureGrid(space)). */
  gridSize: [number, number];
}

/** Builds the splat index with one counting sort over cells: O(points + cells), no per-point objects. */
export function frustumToBev(cameras: SplatCamera[], opts: SplatOptions): SplatIndex {
  const { fW, fH, D, count } = frustumShape(cameras.length, opts);
  const xyz = frustumPoints(cameras, opts);
  const { space } = opts;
  const [W, H] = featureGrid(space);
  const [cw, ch] = featureCellSize(space);
  const [xmin, ymin, zmin, , , zmax] = space.range;
  const cells = W * H;

  const cellOf = new Int32Array(count);
  const perCell = new Int32Array(cells);
  let kept = 0;
  for (let i = 0; i < count; i++) {
    const x = xyz[3 * i],
      y = xyz[3 * i + 1],
      z = xyz[3 * i + 2];
    const col = Math.floor((x - xmin) / cw),
      row = Math.floor((y - ymin) / ch);
    if (z >= zmin && z < zmax && col >= 0 && col < W && row >= 0 && row < H) {
      const c = row * W + col;
      cellOf[i] = c;
      perCell[c]++;
      kept++;
    } else cellOf[i] = -1;
  }

  let occupied = 0;
  for (let c = 0; c < cells; c++) if (perCell[c] > 0) occupied++;
  const next = new Int32Array(cells); // write position of each cell's next point
  const segmentStarts = new Int32Array(occupied),
    segmentEnds = new Int32Array(occupied);
  const occupiedCells = new Int32Array(occupied);
  const cellToSegment = new Int32Array(cells).fill(occupied);
  for (let c = 0, pos = 0, s = 0; c < cells; c++) {
    next[c] = pos;
    if (perCell[c] === 0) continue;
    segmentStarts[s] = pos;
    pos += perCell[c];
    segmentEnds[s] = pos - 1;
    occupiedCells[s] = c;
    cellToSegment[c] = s++;
  }
  const keptIndex = new Int32Array(kept),
    cellOfKept = new Int32Array(kept);
  for (let i = 0; i < count; i++) {
    const c = cellOf[i];
    if (c < 0) continue;
    const k = next[c]++;
    keptIndex[k] = i;
    cellOfKept[k] = c;
  }
  return {
    count,
    cameras: cameras.length,
    depthBins: D,
    featureSize: [fW, fH],
    keptIndex,
    cellOfKept,
    segmentStarts,
    segmentEnds,
    occupiedCells,
    cellToSegment,
    gridSize: [W, H],
  };
}

function checkFeatures(features: Float32Array, index: SplatIndex, C: number, who: string): void {
  if (!(Number.isInteger(C) && C > 0) || features.length !== index.count * C) {
    throw new Error(`${who}: features must be [${index.count}, ${C}] (${index.count * C} values), got ${features.length}`);
  }
}

/** Reference splat by scatter-add: [points, C] frustum features → [C, H', W'] BEV (float64 sums). */
export function splatReference(features: Float32Array, index: SplatIndex, C: number): Float32Array {
  checkFeatures(features, index, C, 'splatReference');
  const [W, H] = index.gridSize;
  const plane = W * H;
  const acc = new Float64Array(C * plane);
  for (let k = 0; k < index.keptIndex.length; k++) {
    const f = index.keptIndex[k] * C,
      cell = index.cellOfKept[k];
    for (let c = 0; c < C; c++) acc[c * plane + cell] += features[f + c];
  }
  return Float32Array.from(acc);
}

/**
 * The graph's cumsum path done on the CPU in float32, as a GPU would: running sums stored as
 * float32, segment sums by differences of running sums. It shows the rounding the cumsum trick
 * costs (the running sum grows with every point, so late segments lose low bits); compare with
 * splatReference.
 */
export function splatByCumsum(features: Float32Array, index: SplatIndex, C: number): Float32Array {
  checkFeatures(features, index, C, 'splatByCumsum');
  const [W, H] = index.gridSize;
  const plane = W * H;
  const K = index.keptIndex.length;
  const running = new Float32Array(K * C);
  for (let k = 0; k < K; k++) {
    const f = index.keptIndex[k] * C,
      o = k * C;
    for (let c = 0; c < C; c++) running[o + c] = (k > 0 ? running[o - C + c] : 0) + features[f + c];
  }
  const S = index.occupiedCells.length;
  const seg = new Float32Array((S + 1) * C); // last row stays zero for empty cells
  for (let s = 0; s < S; s++) {
    const e = index.segmentEnds[s] * C,
      p = s > 0 ? index.segmentEnds[s - 1] * C : -1;
    for (let c = 0; c < C; c++) seg[s * C + c] = running[e + c] - (p >= 0 ? running[p + c] : 0);
  }
  const out = new Float32Array(C * plane);
  for (let cell = 0; cell < plane; cell++) {
    const r = index.cellToSegment[cell] * C;
    for (let c = 0; c < C; c++) out[c * plane + cell] = seg[r + c];
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// HEAL's camera inputs (its LSS camera agents, e.g. m4 and m2 of the OPV2V-H configs), bit for bit.
//
// A network trained by HEAL sees HEAL's pixels and HEAL's frustum, so its inputs are reproduced
// exactly rather than by the conventions above (which differ on purpose: pixel-centre frustum,
// float64 geometry, bilinear crop-then-resize). What HEAL does, and what is matched here:
// - Picture: PIL `resize((int(W·r), int(H·r)))` with PIL's default filter (BICUBIC, fixed point;
//   datasets/resize.ts), r = max(H'/H, W'/W), then `crop((x0, y0, x0 + W', y0 + H'))` with
//   y0 = int((1 − mean(bot_pct_lim))·H·r) − H' (negative for m4: black rows on top), x0 =
//   int((W·r − W')/2); ToTensor + Normalize(ImageNet) in float32. The depth PNG likewise, ×255.
// - Calibration: camera→LiDAR = x1_to_x2(cords as float32, lidar pose) cast to float32, times
//   HEAL's UE4→OpenCV axis change (CV_TO_UE4); the YAML's `extrinsic` is not used. K is the
//   YAML's (of the W×H picture); the resize and crop live in post_rots = diag(r, r, 1) and
//   post_trans = (−x0, −y0, 0).
// - Frustum [D, fH, fW, 3] float32: u = linspace(0, W'−1, fW), v = linspace(0, H'−1, fH) as
//   torch computes them, depth = the bins' starts (depthBins(..., 'start')).
// - Geometry: rots·K⁻¹·((post_rots⁻¹·(frustum − post_trans))_{xy}·d, d) + trans in float32, in
//   torch's operation order, with torch's float32 3×3 inverse.

/** HEAL's camera preprocessing settings (its yaml's data_aug_conf, img_downsample, grid_conf.ddiscr/mode). */
export interface HealCameraConfig {
  /** Size [W, H] of the source pictures (data_aug_conf W, H). */
  sourceSize: [number, number];
  /** Network input size [W', H'] (data_aug_conf final_dim is [H', W']). */
  inputSize: [number, number];
  /** data_aug_conf bot_pct_lim: the test-time crop keeps the picture down to 1 − their mean. */
  botPctLim: [number, number];
  /** Image feature stride (img_downsample). */
  downsample: number;
  /** grid_conf ddiscr [min, max, bins] and mode. */
  depth: { mode: DepthMode; min: number; max: number; bins: number };
}

/** HEAL's m4 camera agent (stage-2 m4_single_pyramid.yaml): 800×600 → 448×336, stride 8, 48 LID bins over 2–50 m. */
export const HEAL_M4_CAMERA: HealCameraConfig = {
  sourceSize: [800, 600],
  inputSize: [448, 336],
  botPctLim: [0, 0.05],
  downsample: 8,
  depth: { mode: 'LID', min: 2, max: 50, bins: 48 },
};

/** HEAL's test-time image augmentation (sample_augmentation with is_train false). */
export interface HealAugmentation {
  resize: number;
  /** PIL resize target [w, h]. */
  resizeSize: [number, number];
  /** PIL crop box [x0, y0, x1, y1] in resized pixels; y0 < 0 adds black rows on top. */
  crop: [number, number, number, number];
  /** 3×3 row-major float32: diag(resize, resize, 1). */
  postRot: Float32Array;
  /** float32 (−x0, −y0, 0). */
  postTrans: Float32Array;
}

export function healAugmentation(cfg: HealCameraConfig): HealAugmentation {
  const [W, H] = cfg.sourceSize;
  const [fW, fH] = cfg.inputSize;
  if (![W, H, fW, fH].every((v) => Number.isInteger(v) && v > 0)) {
    throw new Error(`HEAL camera config: sizes must be positive integers, got source ${W}×${H}, input ${fW}×${fH}`);
  }
  const resize = Math.max(fH / H, fW / W);
  // Python's int() truncates toward zero.
  const newW = Math.trunc(W * resize),
    newH = Math.trunc(H * resize);
  const cropH = Math.trunc((1 - (cfg.botPctLim[0] + cfg.botPctLim[1]) / 2) * newH) - fH;
  const cropW = Math.trunc(Math.max(0, newW - fW) / 2);
  const postRot = Float32Array.of(resize, 0, 0, 0, resize, 0, 0, 0, 1);
  return { resize, resizeSize: [newW, newH], crop: [cropW, cropH, cropW + fW, cropH + fH], postRot, postTrans: Float32Array.of(0 - cropW, 0 - cropH, 0) };
}

/**
 * torch.linspace(start, end, steps) in float32 as torch's CPU kernel fills it (torch 1.13, 8-wide
 * float vectors, steps ≤ 32768): step = (end − start)/(steps − 1); the first half counts up from
 * start, the second half down from end, but in blocks of 8 that each start from such a value and
 * add k·step, while a whole block pair of 16 fits; the rest element by element. The rounding of
 * this order is what HEAL's frustum holds (a plain start + i·step differs in ~1 of 5 values).
 */
export function torchLinspace(start: number, end: number, steps: number): Float32Array {
  if (!(Number.isInteger(steps) && steps >= 1)) throw new Error(`torchLinspace: steps must be a positive integer, got ${steps}`);
  const f = Math.fround;
  const out = new Float32Array(steps);
  const s = f(start),
    e = f(end);
  if (steps === 1) {
    out[0] = s;
    return out;
  }
  const step = f(f(e - s) / (steps - 1));
  const half = Math.floor(steps / 2);
  const at = (i: number) => (i < half ? f(s + f(step * i)) : f(e - f(step * (steps - i - 1))));
  const V = 8;
  let i = 0;
  for (; i + 2 * V <= steps; i += 2 * V) {
    for (const b of [i, i + V]) {
      const base = at(b);
      for (let k = 0; k < V; k++) out[b + k] = f(base + f(k * step));
    }
  }
  for (; i < steps; i++) out[i] = at(i);
  return out;
}

/**
 * torch.inverse of a float32 3×3 (row-major) as torch 1.13 computes it on the CPU: linalg.solve(A, I),
 * which LU-factors Aᵀ (a row-major A read as column-major; LAPACK getrf, partial pivoting, the
 * column below a pivot scaled by its reciprocal) and solves with getrs('T'), whose triangular
 * solves multiply by each pivot's reciprocal (OpenBLAS). The zeros of an upper-triangular K come
 * out as rounding residues (~1e-10) and K⁻¹[0][0] one bit above 1/fx: a textbook inverse misses
 * HEAL's geometry by up to 1.5e-5 m. Checked bit-exact against HEAL's K and diag(r, r, 1).
 */
export function torchInverse3(a: ArrayLike<number>): Float32Array {
  if (a.length !== 9) throw new Error(`torchInverse3: need 9 values (3×3 row-major), got ${a.length}`);
  const f = Math.fround;
  // lu[r][c] = (Aᵀ)[r][c] = A[c][r]
  const lu = [0, 1, 2].map((r) => [0, 1, 2].map((c) => f(a[c * 3 + r])));
  const pivot = [0, 1, 2];
  for (let j = 0; j < 3; j++) {
    let p = j;
    for (let i = j + 1; i < 3; i++) if (Math.abs(lu[i][j]) > Math.abs(lu[p][j])) p = i;
    if (lu[p][j] === 0) throw new Error(`torchInverse3: singular matrix [${Array.from(a).join(', ')}]`);
    pivot[j] = p;
    [lu[p], lu[j]] = [lu[j], lu[p]];
    const inv = f(1 / lu[j][j]);
    for (let i = j + 1; i < 3; i++) lu[i][j] = f(lu[i][j] * inv);
    for (let i = j + 1; i < 3; i++) for (let c = j + 1; c < 3; c++) lu[i][c] = f(lu[i][c] - f(lu[i][j] * lu[j][c]));
  }
  // Solve (Aᵀ)ᵀ X = I: Uᵀ Z = I forward, Lᵀ W = Z backward, then undo the row swaps in reverse.
  const x: number[][] = [0, 1, 2].map((r) => [0, 1, 2].map((c) => (r === c ? 1 : 0)));
  for (let col = 0; col < 3; col++) {
    for (let i = 0; i < 3; i++) {
      let t = x[i][col];
      for (let k = 0; k < i; k++) t = f(t - f(lu[k][i] * x[k][col]));
      x[i][col] = f(t * f(1 / lu[i][i]));
    }
    for (let i = 2; i >= 0; i--) {
      let t = x[i][col];
      for (let k = i + 1; k < 3; k++) t = f(t - f(lu[k][i] * x[k][col]));
      x[i][col] = t;
    }
  }
  for (let i = 2; i >= 0; i--) [x[i], x[pivot[i]]] = [x[pivot[i]], x[i]];
  return Float32Array.from(x.flat());
}

/** C = A·B of float32 3×3 matrices, summed k = 0, 1, 2 in float32 from 0 as torch's small-batch matmul does. */
function matmul3f(a: ArrayLike<number>, b: ArrayLike<number>): Float32Array {
  const f = Math.fround;
  const out = new Float32Array(9);
  for (let i = 0; i < 3; i++) {
    for (let j = 0; j < 3; j++) out[i * 3 + j] = f(f(f(a[i * 3] * b[j]) + f(a[i * 3 + 1] * b[3 + j])) + f(a[i * 3 + 2] * b[6 + j]));
  }
  return out;
}

/** One camera's calibration as HEAL's camera models read it, float32. */
export interface HealCalibration {
  /** 3×3 row-major: camera (OpenCV axes) → LiDAR rotation. */
  rots: Float32Array;
  /** Camera → LiDAR translation (m). */
  trans: Float32Array;
  /** 3×3 row-major K of the source picture (not rescaled). */
  intrins: Float32Array;
  /** 4×4 row-major camera (OpenCV axes) → LiDAR. */
  extrinsic: Float32Array;
}

/**
 * HEAL's get_ext_int: T_{lidar←camera} = x1_to_x2(cords as float32, lidar pose), cast to float32,
 * times the UE4→OpenCV axis change. `worldFromLidar` is poseToMatrix(lidar_pose) (float64, as HEAL).
 */
export function healCalibration(cords: ArrayLike<number>, worldFromLidar: Mat4, intrinsic: ArrayLike<number>, label = 'camera'): HealCalibration {
  if (cords.length !== 6 || !isFiniteMatrix(cords))
    throw new DataError(label, 'cords', 'must be 6 finite numbers [x, y, z, roll, yaw, pitch]', Array.from(cords));
  if (intrinsic.length !== 9 || !isFiniteMatrix(intrinsic))
    throw new DataError(label, 'intrinsic', 'must be 9 finite numbers (3×3 row-major)', Array.from(intrinsic));
  // The axis change only permutes columns and flips a sign, so it is exact in float64 and float32 alike.
  const ue = Float32Array.from(relative(poseToMatrix(cords, 'float32'), worldFromLidar));
  const extrinsic = Float32Array.from(mul4(Float64Array.from(ue), CV_TO_UE4));
  return {
    rots: Float32Array.of(extrinsic[0], extrinsic[1], extrinsic[2], extrinsic[4], extrinsic[5], extrinsic[6], extrinsic[8], extrinsic[9], extrinsic[10]),
    trans: Float32Array.of(extrinsic[3], extrinsic[7], extrinsic[11]),
    intrins: Float32Array.from(intrinsic),
    extrinsic,
  };
}

/** HEAL's frustum [D, fH, fW, 3] float32 of (u, v, depth), fH = H' // downsample, fW = W' // downsample. */
export function healFrustum(cfg: HealCameraConfig): { frustum: Float32Array; shape: [number, number, number] } {
  const [W, H] = cfg.inputSize;
  const s = cfg.downsample;
  if (!(Number.isInteger(s) && s > 0)) throw new Error(`HEAL camera config: downsample must be a positive integer, got ${s}`);
  const fW = Math.floor(W / s),
    fH = Math.floor(H / s);
  if (fW < 1 || fH < 1) throw new Error(`HEAL camera config: input ${W}×${H} is smaller than one feature pixel of stride ${s}`);
  const { mode, min, max, bins } = cfg.depth;
  const ds = depthBins(mode, min, max, bins, 'start');
  const us = torchLinspace(0, W - 1, fW),
    vs = torchLinspace(0, H - 1, fH);
  const D = ds.length;
  const frustum = new Float32Array(D * fH * fW * 3);
  let p = 0;
  for (let d = 0; d < D; d++) {
    for (let v = 0; v < fH; v++) {
      for (let u = 0; u < fW; u++) {
        frustum[p++] = us[u];
        frustum[p++] = vs[v];
        frustum[p++] = ds[d];
      }
    }
  }
  return { frustum, shape: [D, fH, fW] };
}

/**
 * HEAL's get_geometry for one camera: the LiDAR-frame xyz of every frustum point, [D·fH·fW, 3]
 * float32 in the frustum's order, computed in float32 in torch's order (bit-exact with HEAL).
 */
export function healGeometry(frustum: Float32Array, calib: HealCalibration, postRot: ArrayLike<number>, postTrans: ArrayLike<number>): Float32Array {
  if (frustum.length % 3 !== 0) throw new Error(`healGeometry: frustum must be [..., 3], got ${frustum.length} values`);
  const f = Math.fround;
  const P = torchInverse3(postRot);
  const C = matmul3f(calib.rots, torchInverse3(calib.intrins));
  const [t0, t1, t2] = calib.trans;
  const [s0, s1, s2] = [f(postTrans[0]), f(postTrans[1]), f(postTrans[2])];
  const out = new Float32Array(frustum.length);
  for (let i = 0; i < frustum.length; i += 3) {
    const q0 = f(frustum[i] - s0),
      q1 = f(frustum[i + 1] - s1),
      q2 = f(frustum[i + 2] - s2);
    const p0 = f(f(f(P[0] * q0) + f(P[1] * q1)) + f(P[2] * q2));
    const p1 = f(f(f(P[3] * q0) + f(P[4] * q1)) + f(P[5] * q2));
    const z = f(f(f(P[6] * q0) + f(P[7] * q1)) + f(P[8] * q2));
    const x = f(p0 * z),
      y = f(p1 * z);
    out[i] = f(f(f(f(C[0] * x) + f(C[1] * y)) + f(C[2] * z)) + t0);
    out[i + 1] = f(f(f(f(C[3] * x) + f(C[4] * y)) + f(C[5] * z)) + t1);
    out[i + 2] = f(f(f(f(C[6] * x) + f(C[7] * y)) + f(C[8] * z)) + t2);
  }
  return out;
}

/** An LSS voxel grid as HEAL's grid_conf gives it: [min, max, step] per axis. */
export interface HealVoxelGrid {
  xbound: [number, number, number];
  ybound: [number, number, number];
  zbound: [number, number, number];
}

/** HEAL's LSS grid for its camera agents: ±51.2 m at 0.4 m, one 20 m cell over z ∈ [−10, 10]. */
export const HEAL_LSS_GRID: HealVoxelGrid = { xbound: [-51.2, 51.2, 0.4], ybound: [-51.2, 51.2, 0.4], zbound: [-10, 10, 20] };

/**
 * HEAL's voxel_pooling cell of each point: index = trunc(float32((p − (bx − dx/2)) / dx)) per axis,
 * kept when 0 ≤ index < n. Truncation toward zero (torch's .long()) puts points up to one cell
 * below the low edge into cell 0, and with one z cell keeps every −30 < z < 10 for ±10 m bounds.
 * Returns per point (iz·ny + iy)·nx + ix, or −1; row = y index and column = x index of a
 * [nz, ny, nx] grid, as HEAL's BEV map.
 */
export function healVoxelCells(xyz: Float32Array, grid: HealVoxelGrid): { cells: Int32Array; size: [number, number, number] } {
  const f = Math.fround;
  const axes = [grid.xbound, grid.ybound, grid.zbound];
  const dx = axes.map((b) => f(b[2]));
  const bx = axes.map((b) => f(b[0] + b[2] / 2));
  const n = axes.map((b) => Math.trunc((b[1] - b[0]) / b[2]));
  const low = bx.map((b, k) => f(b - f(dx[k] / 2)));
  const [nx, ny, nz] = n;
  const cells = new Int32Array(xyz.length / 3);
  for (let i = 0; i < cells.length; i++) {
    const ix = Math.trunc(f(f(xyz[3 * i] - low[0]) / dx[0]));
    const iy = Math.trunc(f(f(xyz[3 * i + 1] - low[1]) / dx[1]));
    const iz = Math.trunc(f(f(xyz[3 * i + 2] - low[2]) / dx[2]));
    cells[i] = ix >= 0 && ix < nx && iy >= 0 && iy < ny && iz >= 0 && iz < nz ? (iz * ny + iy) * nx + ix : -1;
  }
  return { cells, size: [nx, ny, nz] };
}

/** Everything HEAL's camera model reads for one agent, cameras in frame order. */
export interface HealCameraInputs {
  cameras: number;
  /** Network input size [W', H']. */
  size: [number, number];
  /** [N, H', W', 3] the resized and cropped pictures. */
  rgbU8: Uint8Array;
  /** [N, 3, H', W'] float32 (u8/255 − mean)/std, ImageNet statistics. */
  imgs: Float32Array;
  /** [N, H', W'] resized and cropped depth PNGs, when depth pictures were given. */
  depthU8?: Uint8Array;
  /** [N, H', W'] float32 depth channel as HEAL feeds it (u8/255·255, which is u8 exactly). */
  depth?: Float32Array;
  /** [N, 3, 3] */
  rots: Float32Array;
  /** [N, 3] */
  trans: Float32Array;
  /** [N, 3, 3] K of the source pictures. */
  intrins: Float32Array;
  /** [N, 3, 3] */
  postRots: Float32Array;
  /** [N, 3] */
  postTrans: Float32Array;
  /** [N, 4, 4] camera (OpenCV axes) → LiDAR. */
  extrinsics: Float32Array;
  /** [D, fH, fW, 3] (u, v, depth). */
  frustum: Float32Array;
  /** [D, fH, fW] */
  frustumShape: [number, number, number];
  /** [N, D, fH, fW, 3] LiDAR-frame xyz of every frustum point. */
  geometry: Float32Array;
}

/**
 * HEAL's camera inputs for one agent's frame: each camera needs its picture loaded
 * (readAgentFrame(..., { images: true })), its YAML `cords` and K. Depth pictures (OPV2V-H
 * `_depthN.png`, one per camera in the same order) are optional.
 */
export function healCameraInputs(
  frame: { lidarPose: Mat4; cameras: CameraRecord[] },
  cfg: HealCameraConfig = HEAL_M4_CAMERA,
  opts: { depth?: GrayImage[] } = {},
): HealCameraInputs {
  const N = frame.cameras.length;
  if (N === 0) throw new Error('healCameraInputs: the frame has no cameras');
  if (opts.depth && opts.depth.length !== N) throw new Error(`healCameraInputs: ${opts.depth.length} depth pictures for ${N} cameras`);
  const aug = healAugmentation(cfg);
  const [W, H] = cfg.inputSize;
  const [srcW, srcH] = cfg.sourceSize;
  const [x0, y0, x1, y1] = aug.crop;
  const plane = W * H;
  const { frustum, shape } = healFrustum(cfg);
  const points = frustum.length / 3;
  const out: HealCameraInputs = {
    cameras: N,
    size: [W, H],
    rgbU8: new Uint8Array(N * plane * 3),
    imgs: new Float32Array(N * 3 * plane),
    rots: new Float32Array(N * 9),
    trans: new Float32Array(N * 3),
    intrins: new Float32Array(N * 9),
    postRots: new Float32Array(N * 9),
    postTrans: new Float32Array(N * 3),
    extrinsics: new Float32Array(N * 16),
    frustum,
    frustumShape: shape,
    geometry: new Float32Array(N * points * 3),
  };
  if (opts.depth) {
    out.depthU8 = new Uint8Array(N * plane);
    out.depth = new Float32Array(N * plane);
  }
  const f = Math.fround;
  const mean = IMAGENET_MEAN.map(f),
    std = IMAGENET_STD.map(f);
  // ToTensor then Normalize, each a float32 division; per byte value, so a table of 256 per channel.
  const lut = [0, 1, 2].map((c) => Float32Array.from({ length: 256 }, (_, u) => f(f(f(u / 255) - mean[c]) / std[c])));
  frame.cameras.forEach((cam, n) => {
    const label = cam.imagePath ?? cam.name;
    if (!cam.image) throw new DataError(label, 'image', 'the picture is not loaded (read the frame with { images: true })');
    if (cam.image.width !== srcW || cam.image.height !== srcH) {
      // K is not rescaled: a picture of another size would put every frustum point in the wrong place.
      throw new DataError(label, 'size', `HEAL's camera config expects ${srcW}×${srcH} pictures`, `${cam.image.width}×${cam.image.height}`);
    }
    if (!cam.cords) throw new DataError(label, 'cords', "HEAL's camera models need the camera's world pose (YAML cords), which this dataset does not give");
    const rgb = cropImage(resizeImage({ ...cam.image, channels: 3 }, aug.resizeSize[0], aug.resizeSize[1]), x0, y0, x1, y1);
    out.rgbU8.set(rgb.data, n * plane * 3);
    for (let c = 0; c < 3; c++) {
      const dst = out.imgs.subarray((n * 3 + c) * plane, (n * 3 + c + 1) * plane);
      for (let i = 0; i < plane; i++) dst[i] = lut[c][rgb.data[i * 3 + c]];
    }
    const depth = opts.depth?.[n];
    if (depth && out.depthU8 && out.depth) {
      if (depth.width !== srcW || depth.height !== srcH)
        throw new DataError(cam.depthPath ?? label, 'size', `expected a ${srcW}×${srcH} depth picture`, `${depth.width}×${depth.height}`);
      const d = cropImage(resizeImage({ ...depth, channels: 1 }, aug.resizeSize[0], aug.resizeSize[1]), x0, y0, x1, y1);
      out.depthU8.set(d.data, n * plane);
      out.depth.set(d.data, n * plane);
    }
    const calib = healCalibration(cam.cords, frame.lidarPose, cam.intrinsic, label);
    out.rots.set(calib.rots, n * 9);
    out.trans.set(calib.trans, n * 3);
    out.intrins.set(calib.intrins, n * 9);
    out.extrinsics.set(calib.extrinsic, n * 16);
    out.postRots.set(aug.postRot, n * 9);
    out.postTrans.set(aug.postTrans, n * 3);
    out.geometry.set(healGeometry(frustum, calib, aug.postRot, aug.postTrans), n * points * 3);
  });
  return out;
}

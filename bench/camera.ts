// Camera (Lift-Splat-Shoot) preprocessing benchmark: image resize + normalisation, the
// frustum→BEV splat index for four OPV2V vehicle cameras (48 LID bins, input 256×192, strides
// 16 and 8, small and heal spaces), and the splat itself on the CPU by scatter-add and by the
// graph's float32 cumsum path, with the cumsum path's rounding error. Figures are medians.

import { adjustIntrinsics, depthBins, frustumToBev, preprocessImage, splatByCumsum, splatReference, type SplatCamera } from '../perception/camera.ts';
import { SPACES } from '../perception/space.ts';
import { invert, matrixToPose, multiply, poseToMatrix, x1ToX2 } from '../datasets/geometry/transforms.ts';
import { timeIt } from './timing.ts';

/** The four OPV2V vehicle cameras (formats.md §1.5) with extrinsics as the OPV2V writer makes them. */
function vehicleCameras(K: Float64Array): SplatCamera[] {
  const base = [10, 20, 0, 0, 30, 0];
  const onVehicle = (m: number[]) => matrixToPose(multiply(poseToMatrix(base), poseToMatrix(m)));
  const lidar = onVehicle([-0.5, 0, 1.9, 0, 0, 0]);
  const mounts = [
    [2.5, 0, 1.0, 0, 0, 0],
    [0, 0.3, 1.8, 0, 100, 0],
    [0, -0.3, 1.8, 0, -100, 0],
    [-2.0, 0, 1.5, 0, 180, 0],
  ];
  return mounts.map((m, i) => ({ intrinsic: K, extrinsic: invert(x1ToX2(onVehicle(m), lidar)), axes: 'ue4', name: `camera${i}` }));
}

export async function run(): Promise<Record<string, number | string>> {
  const out: Record<string, number | string> = {};
  const inputSize: [number, number] = [256, 192];

  // Preprocessing: a textured 800×600 frame (content does not change the cost).
  const data = new Uint8Array(800 * 600 * 3);
  for (let i = 0; i < data.length; i++) data[i] = (i * 31 + (i >> 11)) & 255;
  const image = { width: 800, height: 600, data };
  out.preprocess_800x600_to_256x192_ms = timeIt(10, () => preprocessImage(image, inputSize));
  out.preprocess_800x600_to_512x384_ms = timeIt(10, () => preprocessImage(image, [512, 384]));

  const K = adjustIntrinsics(Float64Array.from([335.6399, 0, 400, 0, 335.6399, 300, 0, 0, 1]), [256 / 800, 192 / 600]);
  const cameras = vehicleCameras(K);
  const depth = depthBins('LID', 2, 50, 48);
  const C = 64;
  for (const spaceName of ['small', 'heal']) {
    const space = SPACES[spaceName];
    for (const downsample of [16, 8]) {
      const key = `${spaceName}_ds${downsample}`;
      const opts = { imageSize: inputSize, downsample, depth, space };
      const index = frustumToBev(cameras, opts);
      out[`${key}_index_ms`] = timeIt(10, () => frustumToBev(cameras, opts));
      out[`${key}_points`] = index.count;
      out[`${key}_kept`] = index.keptIndex.length;
      out[`${key}_occupied_cells`] = index.occupiedCells.length;
      out[`${key}_grid`] = index.gridSize.join('x');

      const feats = new Float32Array(index.count * C);
      for (let i = 0; i < feats.length; i++) feats[i] = ((i * 2654435761) >>> 8) / 2 ** 24; // uniform [0, 1)
      let ref: Float32Array = new Float32Array(0),
        cum: Float32Array = new Float32Array(0);
      out[`${key}_splat_scatter_C${C}_ms`] = timeIt(3, () => {
        ref = splatReference(feats, index, C);
      });
      out[`${key}_splat_cumsum_f32_C${C}_ms`] = timeIt(3, () => {
        cum = splatByCumsum(feats, index, C);
      });
      let worst = 0,
        peak = 0;
      for (let j = 0; j < ref.length; j++) {
        worst = Math.max(worst, Math.abs(ref[j] - cum[j]));
        peak = Math.max(peak, Math.abs(ref[j]));
      }
      out[`${key}_cumsum_f32_max_abs_err`] = worst;
      out[`${key}_cell_sum_max`] = peak;
    }
  }
  return out;
}

// Warping other agents' BEV maps into the ego frame: bilinear grid sampling (ONNX GridSample,
// align_corners false, zeros outside) at a grid built from a 2×3 affine matrix (formats.md §1.3,
// normalize_pairwise_tfm gives that matrix from a pairwise 4×4 transform).

import { GraphBuilder, type GraphDesc, type TensorRef } from '../../models/graph.ts';

/**
 * PyTorch/ONNX affine_grid with align_corners = false for one sample: output [H, W, 2] row-major,
 * entry (i, j) = θ · [x_j, y_i, 1] with x_j = (2j + 1)/W − 1 and y_i = (2i + 1)/H − 1, the
 * normalised centre of pixel (i, j). theta is 2×3 row-major (6 numbers).
 */
export function affineGrid(theta: ArrayLike<number>, height: number, width: number): Float32Array {
  if (theta.length !== 6) throw new Error(`affineGrid: theta must have 6 entries (2×3 row-major), has ${theta.length}`);
  if (!(Number.isInteger(height) && height > 0 && Number.isInteger(width) && width > 0)) {
    throw new Error(`affineGrid: bad size ${height}×${width}`);
  }
  const [a, b, c, d, e, f] = Array.from(theta);
  const out = new Float32Array(height * width * 2);
  for (let i = 0; i < height; i++) {
    const y = (2 * i + 1) / height - 1;
    for (let j = 0; j < width; j++) {
      const x = (2 * j + 1) / width - 1;
      const o = (i * width + j) * 2;
      out[o] = a * x + b * y + c;
      out[o + 1] = d * x + e * y + f;
    }
  }
  return out;
}

/** Grids of several agents stacked as [A, H, W, 2]. */
export function affineGrids(thetas: ArrayLike<number>[], height: number, width: number): Float32Array {
  const out = new Float32Array(thetas.length * height * width * 2);
  thetas.forEach((t, k) => out.set(affineGrid(t, height, width), k * height * width * 2));
  return out;
}

/**
 * Warps features [A, C, H, W] and each agent's own validity map [A, 1, H, W] (1 where its
 * sensor sees, e.g. all ones for LiDAR) with grid [A, Ho, Wo, 2]. The warped validity is the
 * coverage mask pyramid fusion wants: 0 outside the agent's map, fractional at its border.
 */
export function addWarp(g: GraphBuilder, features: TensorRef, valid: TensorRef, grid: TensorRef, prefix: string): { warped: TensorRef; mask: TensorRef } {
  return {
    warped: g.gridSample(features, grid, `${prefix}.features`),
    mask: g.gridSample(valid, grid, `${prefix}.mask`),
  };
}

/** Standalone: inputs "features", "valid", "grid" → "warped", "mask". */
export function warpNetwork(cfg: { channels: number; height: number; width: number }, prefix = 'warp'): GraphDesc {
  const g = new GraphBuilder('warp');
  const features = g.input('features', ['agents', cfg.channels, cfg.height, cfg.width]);
  const valid = g.input('valid', ['agents', 1, cfg.height, cfg.width]);
  const grid = g.input('grid', ['agents', cfg.height, cfg.width, 2]);
  const { warped, mask } = addWarp(g, features, valid, grid, prefix);
  g.output('warped', warped);
  g.output('mask', mask);
  return g.build();
}

// From a pairwise pose to the sampling grid that warps another agent's BEV map into the ego's.

import type { SharedSpace } from '../perception/space.ts';
import { type Mat4, invert, multiply } from '../datasets/geometry/transforms.ts';
import { affineGrids } from './networks/warp.ts';

/** T_{agent←ego} from the two agents' T_{world←lidar}. */
export function agentFromEgo(worldFromEgo: Mat4, worldFromAgent: Mat4): Mat4 {
  return multiply(invert(worldFromAgent), worldFromEgo);
}

/**
 * The 2×3 affine (row-major) that grid sampling needs: for each ego-grid position in normalised
 * [−1, 1] coordinates (u along x / columns, v along y / rows), where to read in the agent's grid.
 * It is T_{agent←ego} restricted to BEV (x, y, yaw; z, roll and pitch do not move a BEV cell),
 * rescaled from meters to each axis's half extent and re-centred on the range's middle.
 * This is HEAL's normalize_pairwise_tfm generalised to ranges not centred on the LiDAR.
 */
export function warpTheta(agentFromEgoTf: Mat4, space: SharedSpace): Float64Array {
  const [xmin, ymin, , xmax, ymax] = space.range;
  const cx = (xmin + xmax) / 2,
    cy = (ymin + ymax) / 2;
  const sx = (xmax - xmin) / 2,
    sy = (ymax - ymin) / 2;
  const m = agentFromEgoTf;
  const r00 = m[0],
    r01 = m[1],
    t0 = m[3];
  const r10 = m[4],
    r11 = m[5],
    t1 = m[7];
  return Float64Array.of(r00, (r01 * sy) / sx, (r00 * cx + r01 * cy + t0 - cx) / sx, (r10 * sx) / sy, r11, (r10 * cx + r11 * cy + t1 - cy) / sy);
}

/** Sampling grids [A, H', W', 2] for agents given as T_{world←lidar}, the ego first or anywhere. */
export function warpGrids(worldFromEgo: Mat4, worldFromAgents: Mat4[], space: SharedSpace, height: number, width: number): Float32Array {
  const thetas = worldFromAgents.map((w) => warpTheta(agentFromEgo(worldFromEgo, w), space));
  return affineGrids(thetas, height, width);
}

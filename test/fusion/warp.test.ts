// Warping another agent's BEV map into the ego frame puts each feature where the poses say.

import { describe, it, expect, beforeAll } from 'vitest';
import { warpGrids } from '../../fusion/warp.ts';
import { warpNetwork } from '../../fusion/networks/warp.ts';
import { exportOnnx } from '../../models/onnx.ts';
import { initWeights } from '../../models/weights.ts';
import { createSession, runSession, type SessionInfo } from '../../models/runtime.ts';
import { poseToMatrix } from '../../datasets/geometry/transforms.ts';
import { type SharedSpace, SMALL_SPACE } from '../../perception/space.ts';

// 0.8 m cells, 40×40 grid, an off-centre range to exercise the re-centring.
const space: SharedSpace = { ...SMALL_SPACE, range: [-16, -12, -3, 16, 20, 1], voxel: [0.4, 0.4, 4], featureStride: 2, channels: 1 };
const W = 40,
  H = 40,
  cell = 0.8;
let warp: SessionInfo;

beforeAll(async () => {
  const desc = warpNetwork({ channels: 1, height: H, width: W });
  warp = await createSession(exportOnnx(desc, initWeights(desc, 0)), { device: 'cpu' });
});

/** Index of the cell holding metric (x, y) in this space. */
const cellOf = (x: number, y: number) => Math.floor((y - space.range[1]) / cell) * W + Math.floor((x - space.range[0]) / cell);

async function warpOne(features: Float32Array, egoPose: number[], agentPose: number[]) {
  const grid = warpGrids(poseToMatrix(egoPose), [poseToMatrix(agentPose)], space, H, W);
  const out = await runSession(warp.session, {
    features: { data: features, shape: [1, 1, H, W] },
    valid: { data: new Float32Array(H * W).fill(1), shape: [1, 1, H, W] },
    grid: { data: grid, shape: [1, H, W, 2] },
  });
  return { warped: out.warped.data as Float32Array, mask: out.mask.data as Float32Array };
}

describe('BEV warping', () => {
  it('moves a feature by the relative translation and rotation of the two agents', async () => {
    // The agent sees something at (2.4 m, 4.0 m) in its own frame (a cell centre).
    const f = new Float32Array(H * W);
    f[cellOf(2.4 + 0.4, 4.0 + 0.4)] = 1;
    const px = 2.8,
      py = 4.4; // centre of that cell
    // Agent 8 m ahead of the ego (x), same heading: the point is at x + 8 for the ego.
    let { warped } = await warpOne(f, [100, 50, 0, 0, 0, 0], [108, 50, 0, 0, 0, 0]);
    expect(warped[cellOf(px + 8, py)]).toBeCloseTo(1, 4);
    expect(warped.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 4);
    // Agent turned by +90° (yaw rotates x towards y): its x axis is the ego's y axis.
    ({ warped } = await warpOne(f, [100, 50, 0, 0, 0, 0], [100, 50, 0, 0, 90, 0]));
    expect(warped[cellOf(-py, px)]).toBeCloseTo(1, 4);
  });

  it('masks out ego cells the other agent does not cover', async () => {
    const f = new Float32Array(H * W).fill(1);
    const { warped, mask } = await warpOne(f, [0, 0, 0, 0, 0, 0], [20, 0, 0, 0, 0, 0]);
    // Ego x = −10 is x = −30 for the agent: outside its grid (x ≥ −16).
    expect(mask[cellOf(-10, 0)]).toBe(0);
    expect(warped[cellOf(-10, 0)]).toBe(0);
    expect(mask[cellOf(10, 0)]).toBeCloseTo(1, 5);
  });
});

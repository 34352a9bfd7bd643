// HEAL's window on camera agents in collaborative fusion (HeterPyramidCollab at eval): a camera
// agent's score counts only inside a centred window of each pyramid level, two cells inside its own
// map; LiDAR agents are not windowed.

import { describe, it, expect } from 'vitest';
import type { HostTensor } from '../../models/graph.ts';
import { initWeights } from '../../models/weights.ts';
import { exportOnnx } from '../../models/onnx.ts';
import { createSession, runSession } from '../../models/runtime.ts';
import { egoNetwork } from '../../fusion/networks/ego.ts';
import { pyramidLevelSizes, type PyramidFusionConfig } from '../../fusion/networks/pyramid.ts';
import { affineGrids } from '../../fusion/networks/warp.ts';
import { cameraWindow, egoInputsFor, levelValidity } from '../../fusion/pipeline.ts';
import { healCropRatios } from '../../perception/encoders/agent.ts';
import { loadRegistry } from '../../perception/registry.ts';
import { HEAL_SPACE } from '../../perception/space.ts';
import { rngFor } from '../../datasets/rng.ts';

const identity4 = () => Float64Array.from([1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]);

describe("HEAL's camera window", () => {
  it("is HEAL's crop (n/ratio − 4 cells, centred, floor halves) at each level of the heal profile", () => {
    // HEAL's m4 in the OPV2V-H collab config: ratio 102.4/51.2 = 2 on 256/128/64-cell levels.
    expect(cameraWindow(256, 2)).toEqual([66, 190]);
    expect(cameraWindow(128, 2)).toEqual([34, 94]);
    expect(cameraWindow(64, 2)).toEqual([18, 46]);
    // An odd crop: 100/3 − 4 = 29.33, half 14, centre 50.
    expect(cameraWindow(100, 3)).toEqual([36, 64]);
  });

  it("heal profile: m4 has HEAL's crop ratios, m1 none; egoInputsFor windows only the camera agent, per level", async () => {
    const registry = await loadRegistry();
    const m4 = healCropRatios(registry.profile('m4', 'heal').network, HEAL_SPACE);
    expect(m4).toEqual([2, 2]);
    expect(healCropRatios(registry.profile('m1', 'heal').network, HEAL_SPACE)).toBeUndefined();
    const H = 256;
    const inputs = egoInputsFor(
      HEAL_SPACE,
      new Float32Array(2 * 64 * H * H),
      [identity4(), identity4()],
      new Float32Array(2 * H * H).fill(1),
      [1, 1],
      [undefined, m4],
    );
    for (const [l, n] of [256, 128, 64].entries()) {
      const v = inputs[`valid${l}`];
      expect(v.shape).toEqual([2, 1, n, n]);
      const [a, b] = cameraWindow(n, 2);
      const lidar = v.data.subarray(0, n * n);
      const camera = v.data.subarray(n * n);
      expect(lidar.every((x) => x === 1)).toBe(true);
      let inside = 0;
      for (let y = 0; y < n; y++) {
        for (let x = 0; x < n; x++) {
          const want = y >= a && y < b && x >= a && x < b ? 1 : 0;
          expect(camera[y * n + x]).toBe(want);
          inside += want;
        }
      }
      expect(inside).toBe((b - a) ** 2);
    }
  });

  it('a sparse message is max-pooled level by level, then windowed', () => {
    const cfg: PyramidFusionConfig = {
      backbone: {
        inChannels: 1,
        layerNums: [1, 1],
        layerStrides: [1, 2],
        numFilters: [1, 1],
        upsampleStrides: [1, 2],
        numUpsampleFilters: [1, 1],
        batchNorm: false,
      },
      height: 4,
      width: 4,
      shrinkChannels: 0,
      warp: 'per-level',
    };
    // One sent cell (row 1, col 2): level 1 (2×2) has it at (0, 1).
    const valid = new Float32Array(16);
    valid[1 * 4 + 2] = 1;
    const [l0, l1] = levelValidity(cfg, valid, []);
    expect(Array.from(l0.data)).toEqual(Array.from(valid));
    expect(Array.from(l1.data)).toEqual([0, 1, 0, 0]);
    // Ratio 0.5: crop = 2·4 − 4 = 4 cells on level 0 (all of it), 2·2 − 4 = 0 on level 1 (none).
    const [w0, w1] = levelValidity(cfg, valid, [[0.5, 0.5]]);
    expect(Array.from(w0.data)).toEqual(Array.from(valid));
    expect(Array.from(w1.data)).toEqual([0, 0, 0, 0]);
  });

  it('a camera partner adds nothing outside its window; a LiDAR partner is not windowed (random weights)', async () => {
    const cfg: PyramidFusionConfig = {
      backbone: {
        inChannels: 4,
        layerNums: [1, 1, 1],
        layerStrides: [1, 2, 2],
        numFilters: [4, 4, 8],
        upsampleStrides: [1, 2, 4],
        numUpsampleFilters: [4, 4, 4],
        batchNorm: true,
      },
      height: 32,
      width: 32,
      shrinkChannels: 8,
      shrink: 'double-conv',
      warp: 'per-level',
    };
    const desc = egoNetwork({ fusion: cfg, head: { anchors: 2, dirBins: 2 } }, { intermediates: true });
    const { session } = await createSession(exportOnnx(desc, initWeights(desc, 91)), { device: 'cpu' });
    const rng = rngFor('camera-window-test', 92);
    const n = 4 * 32 * 32;
    const features = Float32Array.from({ length: 2 * n }, () => rng.uniform(-2, 2));
    const sizes = pyramidLevelSizes(cfg);
    // Both agents at the ego's pose, so the partner's own frame is the ego's cell for cell.
    const run = (A: number, windows: ([number, number] | undefined)[]) => {
      const inputs: Record<string, HostTensor> = {
        features: { data: features.subarray(0, A * n), shape: [A, 4, 32, 32] },
        trust: { data: new Float32Array(A).fill(1), shape: [A, 1, 1, 1] },
      };
      levelValidity(cfg, new Float32Array(A * 32 * 32).fill(1), windows).forEach((v, l) => {
        inputs[`valid${l}`] = v;
      });
      sizes.forEach(([h, w], l) => {
        inputs[`grid${l}`] = { data: affineGrids(new Array(A).fill([1, 0, 0, 0, 1, 0]), h, w), shape: [A, h, w, 2] };
      });
      return runSession(session, inputs);
    };
    const alone = await run(1, []);
    const camera = await run(2, [undefined, [1, 1]]);
    const lidar = await run(2, [undefined, undefined]);
    for (const [l, [h]] of sizes.entries()) {
      const name = `fusedLevel${l}`;
      const C = alone[name].shape[1];
      const [a, b] = cameraWindow(h, 1);
      let insideDiffers = 0;
      let outsideLidarDiffers = 0;
      for (let c = 0; c < C; c++) {
        for (let y = 0; y < h; y++) {
          for (let x = 0; x < h; x++) {
            const i = (c * h + y) * h + x;
            const inside = y >= a && y < b && x >= a && x < b;
            if (inside) {
              if (camera[name].data[i] !== alone[name].data[i]) insideDiffers++;
            } else {
              // Outside its window the camera partner's weight is exactly 0: the ego's level, bit for bit.
              expect(camera[name].data[i]).toBe(alone[name].data[i]);
              if (lidar[name].data[i] !== alone[name].data[i]) outsideLidarDiffers++;
            }
          }
        }
      }
      expect(insideDiffers).toBeGreaterThan(0);
      expect(outsideLidarDiffers).toBeGreaterThan(0);
    }
    await session.release();
  });
});

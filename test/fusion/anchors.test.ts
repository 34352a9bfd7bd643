import { describe, it, expect } from 'vitest';
import { makeAnchors, encodeBox, decodeBox, directionTarget, applyDirection, assignTargets } from '../../fusion/anchors.ts';
import { decodeDetections } from '../../fusion/detect.ts';
import { type SharedSpace, HEAL_SPACE, SMALL_SPACE, featureGrid } from '../../perception/space.ts';

const tiny: SharedSpace = { ...SMALL_SPACE, range: [-12.8, -12.8, -3, 12.8, 12.8, 1], voxel: [0.4, 0.4, 4], featureStride: 2 };

describe('anchors', () => {
  it('matches OpenCOOD linspace centres for stride 2 and the (H, W, A) layout', () => {
    const a = makeAnchors(HEAL_SPACE);
    expect([a.rows, a.cols, a.perCell]).toEqual([256, 256, 2]);
    // linspace(xmin+vw, xmax−vw, W/2): first 102.4−0.4·... = −102.0, step 0.8
    expect(a.boxes[0]).toBeCloseTo(-102.0, 5);
    expect(a.boxes[1]).toBeCloseTo(-102.0, 5);
    const i = (3 * a.cols + 5) * 2 + 1; // row 3 (y), col 5 (x), anchor 1
    expect(a.boxes[i * 7]).toBeCloseTo(-102.0 + 5 * 0.8, 4);
    expect(a.boxes[i * 7 + 1]).toBeCloseTo(-102.0 + 3 * 0.8, 4);
    expect(Array.from(a.boxes.subarray(i * 7 + 2, i * 7 + 7))).toEqual([
      -1,
      1.559999942779541,
      1.600000023841858,
      3.9000000953674316,
      Math.fround(Math.PI / 2),
    ]);
  });

  it('encode/decode round trip', () => {
    const a = makeAnchors(tiny);
    const gt = [1.3, -2.7, -0.8, 1.7, 1.9, 4.6, 0.4];
    const t = new Float32Array(7);
    encodeBox(gt, a.boxes, 17, t, 0);
    const back = decodeBox(t, a.boxes, 17);
    for (let k = 0; k < 7; k++) expect(back[k]).toBeCloseTo(gt[k], 4);
  });

  it('direction classifier recovers the heading that the regression alone folds by π', () => {
    for (const yaw of [-3.1, -2, -0.5, 0, 0.7, 0.8, 1.6, 3.1]) {
      const bin = directionTarget(yaw);
      // The regression only pins the yaw modulo π.
      const folded = yaw + (yaw > 0 ? -Math.PI : Math.PI);
      const r = applyDirection(folded, bin);
      const diff = Math.atan2(Math.sin(r - yaw), Math.cos(r - yaw));
      expect(Math.abs(diff)).toBeLessThan(1e-6);
      expect(r).toBeGreaterThanOrEqual(-Math.PI);
      expect(r).toBeLessThan(Math.PI);
    }
  });

  it('assigns positives near a GT box, negatives far from it, ignores the band between', () => {
    const a = makeAnchors(tiny);
    const gt = [2.0, 2.0, -1, 1.56, 1.6, 3.9, 0];
    const t = assignTargets(a, [gt]);
    expect(t.positives).toBeGreaterThan(0);
    for (let i = 0; i < a.count; i++) {
      if (t.labels[i] === 1) {
        const dx = a.boxes[i * 7] - 2,
          dy = a.boxes[i * 7 + 1] - 2;
        expect(Math.hypot(dx, dy)).toBeLessThan(2);
        expect(t.matched[i]).toBe(0);
      }
    }
    const far = (0 * a.cols + 0) * 2;
    expect(t.labels[far]).toBe(0);
    expect(Array.from(t.labels).some((v) => v === -1)).toBe(true);
    // A GT box far from any anchor overlap still gets its best anchor.
    const lonely = assignTargets(a, [[0.1, 0.1, -1, 0.3, 0.3, 0.3, 0.6]]);
    expect(lonely.positives).toBe(1);
  });
});

describe('decodeDetections', () => {
  it('recovers planted boxes through the head layout, with NMS removing a duplicate', () => {
    const a = makeAnchors(tiny);
    const [W, H] = featureGrid(tiny);
    const plane = W * H;
    const cls = new Float32Array(2 * plane).fill(-10);
    const reg = new Float32Array(14 * plane);
    const dir = new Float32Array(4 * plane);
    const boxes = [
      [3.0, -4.0, -1.0, 1.5, 1.8, 4.4, 2.5],
      [-6.0, 5.0, -0.9, 1.6, 1.9, 4.0, -0.3],
    ];
    const t = new Float32Array(7);
    const plant = (box: number[], row: number, col: number, anchor: number, logit: number) => {
      const p = row * W + col;
      const i = p * 2 + anchor;
      encodeBox(box, a.boxes, i, t, 0);
      cls[anchor * plane + p] = logit;
      for (let k = 0; k < 7; k++) reg[(anchor * 7 + k) * plane + p] = t[k];
      const bin = directionTarget(box[6]);
      dir[(anchor * 2 + bin) * plane + p] = 5;
    };
    const cell = (v: number, min: number) => Math.floor((v - min) / (tiny.voxel[0] * tiny.featureStride));
    plant(boxes[0], cell(-4, -12.8), cell(3, -12.8), 0, 3);
    plant(boxes[0], cell(-4, -12.8), cell(3, -12.8) + 1, 1, 1); // duplicate, lower score
    plant(boxes[1], cell(5, -12.8), cell(-6, -12.8), 1, 2);
    const dets = decodeDetections(a, cls, reg, dir, { scoreThreshold: 0.2, nmsThreshold: 0.15 });
    expect(dets.length).toBe(2);
    expect(dets[0].score).toBeCloseTo(1 / (1 + Math.exp(-3)), 5);
    for (const [j, d] of dets.entries()) {
      for (let k = 0; k < 6; k++) expect(d.box[k]).toBeCloseTo(boxes[j][k], 4);
      const dy = Math.atan2(Math.sin(d.box[6] - boxes[j][6]), Math.cos(d.box[6] - boxes[j][6]));
      expect(Math.abs(dy)).toBeLessThan(1e-4);
    }
    expect(() => decodeDetections(a, cls.subarray(1), reg, dir)).toThrow(/cls has/);
  });
});

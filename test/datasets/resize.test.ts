// Pillow's default resize (antialiased BICUBIC in fixed point) and crop, reimplemented: hand-checked
// cases, invariants, and HEAL's own camera pictures bit for bit.
import { describe, expect, it } from 'vitest';
import * as path from 'node:path';
import { BICUBIC, type Image8, cropImage, resizeImage } from '../../datasets/resize.ts';
import { readDepthPng, readPngRgb } from '../../datasets/png.ts';
import { readSafetensors } from '../../models/safetensors.ts';
import { healFixture } from '../helpers/heal-fixtures.ts';

const row = (values: number[], channels = 1): Image8 => ({ width: values.length / channels, height: 1, channels, data: Uint8Array.from(values) });
const column = (values: number[]): Image8 => ({ width: 1, height: values.length, channels: 1, data: Uint8Array.from(values) });

function noise(width: number, height: number, channels: number, seed: number): Image8 {
  const data = new Uint8Array(width * height * channels);
  let s = seed >>> 0;
  for (let i = 0; i < data.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    data[i] = s >>> 24;
  }
  return { width, height, channels, data };
}

describe('BICUBIC kernel', () => {
  it('is Keys’ cubic with a = −0.5: 1 at 0, 0 at the integers, the known values between', () => {
    expect(BICUBIC.weight(0)).toBe(1);
    for (const x of [1, -1, 2, -2, 2.5]) expect(Math.abs(BICUBIC.weight(x))).toBe(0);
    expect(BICUBIC.weight(0.5)).toBe(0.5625);
    expect(BICUBIC.weight(-0.5)).toBe(0.5625);
    expect(BICUBIC.weight(1.5)).toBe(-0.0625);
  });
});

describe('resizeImage (PIL Image.resize, default BICUBIC)', () => {
  it('copies the image when the size does not change', () => {
    const img = noise(7, 5, 3, 1);
    const out = resizeImage(img, 7, 5);
    expect(out.data).toEqual(img.data);
    expect(out.data).not.toBe(img.data);
  });

  it('hand-checked 4 → 2 shrink of an edge: [0, 0, 255, 255] → [21, 234]', () => {
    // Output 0: centre 1, support 2·2 = 4, taps 0..3 at (x − 0.5)/2 → kernel 0.8671875, 0.8671875,
    // 0.2265625, −0.0703125; normalised and ×2²² → …, 502624, −155987; 255·346637 + 2²¹ >> 22 = 21.
    // Output 1 mirrors it: 255·2·1923851 + 2²¹ >> 22 = 234.
    expect(Array.from(resizeImage(row([0, 0, 255, 255]), 2, 1).data)).toEqual([21, 234]);
    // The same along y (vertical pass only).
    expect(Array.from(resizeImage(column([0, 0, 255, 255]), 1, 2).data)).toEqual([21, 234]);
  });

  it('hand-checked 2 → 4 enlargement: the negative lobes overshoot and are clipped to 0..255', () => {
    // Scale 0.5: no antialiasing, support 2, centres 0.25, 0.75, 1.25, 1.75. Output 0: taps at 0.25
    // and 1.25 → 0.8671875, −0.0703125, normalised 1.088, −0.088 → 255·(−0.088) < 0 → 0. Output 1:
    // taps at −0.25, 0.75 → 0.8671875, 0.2265625 → 255·0.2071 = 52.8 → 53. Outputs 2, 3 mirror
    // them: 202.2 → 202 and 277.5 → 255.
    expect(Array.from(resizeImage(row([0, 255]), 4, 1).data)).toEqual([0, 53, 202, 255]);
    expect(Array.from(resizeImage(row([255, 0]), 4, 1).data)).toEqual([255, 202, 53, 0]);
  });

  it('keeps a constant picture constant when shrinking, enlarging and changing the aspect', () => {
    for (const value of [0, 1, 77, 254, 255]) {
      const img: Image8 = { width: 37, height: 23, channels: 3, data: new Uint8Array(37 * 23 * 3).fill(value) };
      for (const [w, h] of [
        [11, 7],
        [80, 61],
        [37, 5],
        [3, 23],
        [1, 1],
      ]) {
        const out = resizeImage(img, w, h);
        expect(out.data.length).toBe(w * h * 3);
        expect(out.data.every((v) => v === value)).toBe(true);
      }
    }
  });

  it('treats channels independently and one channel of RGB like an L image', () => {
    const rgb = noise(50, 40, 3, 7);
    const out = resizeImage(rgb, 28, 21);
    for (let c = 0; c < 3; c++) {
      const plane: Image8 = { width: 50, height: 40, channels: 1, data: rgb.data.filter((_, i) => i % 3 === c) };
      const single = resizeImage(plane, 28, 21);
      expect(Array.from(out.data.filter((_, i) => i % 3 === c))).toEqual(Array.from(single.data));
    }
  });

  it('is separable, horizontal pass first, with an 8-bit image between the passes', () => {
    const img = noise(60, 45, 1, 3);
    const both = resizeImage(img, 33, 25);
    const twoSteps = resizeImage(resizeImage(img, 33, 45), 33, 25);
    expect(Array.from(both.data)).toEqual(Array.from(twoSteps.data));
  });

  it('rejects malformed images and sizes', () => {
    expect(() => resizeImage({ width: 1, height: 1, channels: 4, data: new Uint8Array(4) }, 2, 2)).toThrow(/premultiplies alpha/);
    expect(() => resizeImage({ width: 2, height: 2, channels: 3, data: new Uint8Array(11) }, 1, 1)).toThrow(/needs 12 bytes/);
    expect(() => resizeImage(noise(4, 4, 1, 1), 0, 2)).toThrow(/positive integers/);
    expect(() => resizeImage(noise(4, 4, 1, 1), 2.5, 2)).toThrow(/positive integers/);
  });
});

describe('cropImage (PIL Image.crop)', () => {
  it('cuts a window and fills what lies outside the picture with 0', () => {
    const img: Image8 = { width: 3, height: 2, channels: 1, data: Uint8Array.from([1, 2, 3, 4, 5, 6]) };
    expect(Array.from(cropImage(img, 1, 0, 3, 2).data)).toEqual([2, 3, 5, 6]);
    expect(Array.from(cropImage(img, 0, -1, 3, 1).data)).toEqual([0, 0, 0, 1, 2, 3]);
    expect(Array.from(cropImage(img, -1, 1, 2, 3).data)).toEqual([0, 4, 5, 0, 0, 0]);
    expect(Array.from(cropImage(img, 5, 5, 7, 6).data)).toEqual([0, 0]);
    expect(() => cropImage(img, 2, 0, 1, 1)).toThrow(/x0 ≤ x1/);
  });
});

const fixtures = healFixture('heal_reference_cameras');

describe.skipIf(!fixtures)("HEAL's m4 camera pictures (Pillow 9.4 resize 800×600 → 448×336, crop (0, −9, 448, 327))", () => {
  it('gives the fixture’s rgb_u8 and depth_u8 for all 4 cameras, bit for bit', async () => {
    const dir = path.join(fixtures!, 'case_cam');
    const { tensors } = await readSafetensors(path.join(dir, 'expected_m4.safetensors'));
    const rgbWant = tensors.get('imgs.rgb_u8')!;
    const depthWant = tensors.get('imgs.depth_u8')!;
    expect(rgbWant.shape).toEqual([1, 4, 336, 448, 3]);
    const base = path.join(dir, 'test', '2021_09_10_11_32_19', '2300', '000120');
    const rgb: Image8[] = [];
    const depth: Image8[] = [];
    for (let n = 0; n < 4; n++) {
      rgb.push({ ...(await readPngRgb(`${base}_camera${n}.png`)), channels: 3 });
      depth.push({ ...(await readDepthPng(`${base}_depth${n}.png`)), channels: 1 });
    }
    const plane = 336 * 448;
    const run = () => {
      const t0 = performance.now();
      const outRgb = rgb.map((im) => cropImage(resizeImage(im, 448, 336), 0, -9, 448, 327));
      const tRgb = performance.now() - t0;
      const outDepth = depth.map((im) => cropImage(resizeImage(im, 448, 336), 0, -9, 448, 327));
      return { outRgb, outDepth, tRgb, tAll: performance.now() - t0 };
    };
    run(); // compile
    const { outRgb, outDepth, tRgb, tAll } = run();
    console.log(`resize+crop of 4 × 800×600 RGB: ${tRgb.toFixed(1)} ms; with the 4 depth pictures: ${tAll.toFixed(1)} ms`);
    for (let n = 0; n < 4; n++) {
      let rgbDiff = 0,
        depthDiff = 0;
      const want = (rgbWant.data as Uint8Array).subarray(n * plane * 3, (n + 1) * plane * 3);
      for (let i = 0; i < want.length; i++) if (outRgb[n].data[i] !== want[i]) rgbDiff++;
      const wantDepth = (depthWant.data as Uint8Array).subarray(n * plane, (n + 1) * plane);
      for (let i = 0; i < wantDepth.length; i++) if (outDepth[n].data[i] !== wantDepth[i]) depthDiff++;
      expect([rgbDiff, depthDiff], `camera${n}: differing bytes (rgb, depth)`).toEqual([0, 0]);
      // The 9 rows above the picture are black.
      expect(outRgb[n].data.subarray(0, 9 * 448 * 3).every((v) => v === 0)).toBe(true);
    }
  });
});

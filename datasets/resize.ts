// Pillow's `Image.resize(size)` and `Image.crop(box)` for 8-bit images, reimplemented so that
// preprocessing matches what HEAL feeds its camera networks bit for bit (HEAL resizes the OPV2V
// pictures with PIL and a network trained on those pixels sees the difference between filters).
//
// The resampler is Pillow's separable convolution (libImaging/Resample.c, the 8-bit path), as of
// Pillow 9.4 and unchanged since:
// - Per output sample x' of an axis of scale s = inSize/outSize: centre c = (x' + 0.5)·s; the
//   filter is stretched by f = max(s, 1) (antialiasing when shrinking), so its half-width is
//   support·f; taps i ∈ [trunc(c − support·f + 0.5), trunc(c + support·f + 0.5)) clipped to the
//   image; weight_i = filter((i − c + 0.5) · (1/f)), normalised to sum 1 in float64.
// - The weights become integers w·2²² rounded half away from zero (PRECISION_BITS = 32 − 8 − 2:
//   8 bits of pixel, 2 spare bits for the negative lobes' overshoot). Sums are int32, as in C.
// - Horizontal pass first (only over the rows the vertical pass will read), 8-bit intermediate
//   image, then the vertical pass. Each output = clamp((2²¹ + Σ pixel·weight) >> 22, 0, 255).
// - A pass whose axis keeps its size is skipped; an unchanged size copies the image.
// The default filter for 8-bit RGB and L images is BICUBIC (a = −0.5, support 2). Checked equal to
// Pillow 9.4 on random pictures, sizes and content (noise, binary, smooth), up and down.

/** An 8-bit image, row-major, `channels` interleaved bytes per pixel (1 = L, 3 = RGB). */
export interface Image8 {
  width: number;
  height: number;
  channels: number;
  data: Uint8Array;
}

/** A resampling kernel: weight(x) for a tap x source pixels from the sample, zero beyond `support`. */
export interface ResampleFilter {
  name: string;
  support: number;
  weight(x: number): number;
}

/** Keys' cubic convolution with a = −0.5 (Pillow's BICUBIC, its default for RGB and L). */
export const BICUBIC: ResampleFilter = {
  name: 'bicubic',
  support: 2,
  weight(x: number): number {
    const a = -0.5;
    if (x < 0) x = -x;
    if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
    if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
    return 0;
  },
};

const PRECISION_BITS = 22;
const HALF = 1 << (PRECISION_BITS - 1);

interface Taps {
  /** First source index of each output sample. */
  first: Int32Array;
  /** Number of taps of each output sample. */
  count: Int32Array;
  /** [out, ksize] fixed-point weights. */
  weight: Int32Array;
  ksize: number;
}

/** Pillow's precompute_coeffs + normalize_coeffs_8bpc for one axis (box = the whole axis). */
function taps(inSize: number, outSize: number, filter: ResampleFilter): Taps {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = filter.support * filterScale;
  const ksize = Math.ceil(support) * 2 + 1;
  const invScale = 1 / filterScale; // Pillow multiplies by the reciprocal; dividing can differ in the last bit
  const first = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const weight = new Int32Array(outSize * ksize);
  const w = new Float64Array(ksize);
  for (let o = 0; o < outSize; o++) {
    const centre = (o + 0.5) * scale;
    // C's (int) cast truncates toward zero; centre − support + 0.5 can be negative.
    const lo = Math.max(0, Math.trunc(centre - support + 0.5));
    const hi = Math.min(inSize, Math.trunc(centre + support + 0.5));
    const n = hi - lo;
    let sum = 0;
    for (let k = 0; k < n; k++) {
      w[k] = filter.weight((k + lo - centre + 0.5) * invScale);
      sum += w[k];
    }
    for (let k = 0; k < n; k++) {
      const v = sum !== 0 ? w[k] / sum : w[k];
      // Round half away from zero, then truncate: C's (int)(v·2²² ± 0.5).
      weight[o * ksize + k] = Math.trunc(v < 0 ? v * (1 << PRECISION_BITS) - 0.5 : v * (1 << PRECISION_BITS) + 0.5);
    }
    first[o] = lo;
    count[o] = n;
  }
  return { first, count, weight, ksize };
}

/** clip8 of Resample.c: the accumulator's integer part, clamped to a byte. */
function clip8(acc: number): number {
  const v = acc >> PRECISION_BITS; // int32 arithmetic shift, as the C accumulator is an int
  return Math.min(Math.max(v, 0), 255);
}

function checkImage(img: Image8, who: string): void {
  const { width, height, channels, data } = img;
  if (!(Number.isInteger(width) && Number.isInteger(height) && width > 0 && height > 0)) {
    throw new Error(`${who}: image size must be positive integers, got ${width}×${height}`);
  }
  if (!(Number.isInteger(channels) && channels >= 1 && channels <= 4)) throw new Error(`${who}: channels must be 1 to 4, got ${channels}`);
  if (data.length !== width * height * channels) {
    throw new Error(`${who}: a ${width}×${height}×${channels} image needs ${width * height * channels} bytes, got ${data.length}`);
  }
}

/**
 * `PIL.Image.resize((width, height))` of an 8-bit image with `filter` (default BICUBIC, PIL's
 * default for RGB and L), bit-exact. Not for RGBA: PIL premultiplies alpha there first.
 */
export function resizeImage(img: Image8, width: number, height: number, filter: ResampleFilter = BICUBIC): Image8 {
  checkImage(img, 'resizeImage');
  if (!(Number.isInteger(width) && Number.isInteger(height) && width > 0 && height > 0)) {
    throw new Error(`resizeImage: output size must be positive integers, got ${width}×${height}`);
  }
  const C = img.channels;
  if (C !== 1 && C !== 3) throw new Error(`resizeImage: only L (1 channel) and RGB (3) images, got ${C} channels (PIL premultiplies alpha for LA and RGBA)`);
  if (width === img.width && height === img.height) return { ...img, data: img.data.slice() };

  const tx = taps(img.width, width, filter);
  const ty = taps(img.height, height, filter);
  // Rows the vertical pass reads: the horizontal pass computes only these.
  const y0 = ty.first[0];
  const y1 = ty.first[height - 1] + ty.count[height - 1];

  let src = img.data;
  let srcW = img.width;
  let rowOffset = 0; // source row of intermediate row 0
  if (width !== img.width) {
    const rows = y1 - y0;
    const out = new Uint8Array(rows * width * C);
    const { first, count, weight, ksize } = tx;
    const data = img.data;
    for (let r = 0; r < rows; r++) {
      const inRow = (r + y0) * img.width * C;
      let q = r * width * C;
      for (let o = 0; o < width; o++) {
        const n = count[o];
        const k0 = o * ksize;
        let p = inRow + first[o] * C;
        // One accumulator per channel in a single sweep over the taps (RGB and L are the common cases).
        if (C === 3) {
          let a0 = HALF,
            a1 = HALF,
            a2 = HALF;
          for (let k = 0; k < n; k++, p += 3) {
            const wk = weight[k0 + k];
            a0 = (a0 + Math.imul(data[p], wk)) | 0;
            a1 = (a1 + Math.imul(data[p + 1], wk)) | 0;
            a2 = (a2 + Math.imul(data[p + 2], wk)) | 0;
          }
          out[q++] = clip8(a0);
          out[q++] = clip8(a1);
          out[q++] = clip8(a2);
        } else {
          let a0 = HALF;
          for (let k = 0; k < n; k++) a0 = (a0 + Math.imul(data[p + k], weight[k0 + k])) | 0;
          out[q++] = clip8(a0);
        }
      }
    }
    src = out;
    srcW = width;
    rowOffset = y0;
  }
  if (height === img.height) return { width, height, channels: C, data: src === img.data ? src.slice() : src };

  const out = new Uint8Array(width * height * C);
  const { first, count, weight, ksize } = ty;
  const stride = srcW * C;
  // Row-wise accumulation: each tap adds a whole source row, which keeps memory access sequential.
  const acc = new Int32Array(stride);
  for (let o = 0; o < height; o++) {
    const n = count[o];
    const k0 = o * ksize;
    acc.fill(HALF);
    for (let k = 0; k < n; k++) {
      const wk = weight[k0 + k];
      const row = (first[o] - rowOffset + k) * stride;
      for (let x = 0; x < stride; x++) acc[x] = (acc[x] + Math.imul(src[row + x], wk)) | 0;
    }
    const outRow = o * stride;
    for (let x = 0; x < stride; x++) out[outRow + x] = clip8(acc[x]);
  }
  return { width, height, channels: C, data: out };
}

/**
 * `PIL.Image.crop((x0, y0, x1, y1))`: the [x0, x1) × [y0, y1) window, which may reach outside the
 * image; pixels outside are 0 (black). HEAL's camera crop starts above the picture (y0 < 0).
 */
export function cropImage(img: Image8, x0: number, y0: number, x1: number, y1: number): Image8 {
  checkImage(img, 'cropImage');
  if (![x0, y0, x1, y1].every(Number.isInteger) || x1 < x0 || y1 < y0) {
    throw new Error(`cropImage: box (${x0}, ${y0}, ${x1}, ${y1}) must be integers with x0 ≤ x1 and y0 ≤ y1`);
  }
  const C = img.channels;
  const width = x1 - x0,
    height = y1 - y0;
  const out = new Uint8Array(width * height * C);
  const cx0 = Math.max(x0, 0),
    cx1 = Math.min(x1, img.width);
  if (cx1 > cx0) {
    for (let y = Math.max(y0, 0); y < Math.min(y1, img.height); y++) {
      const from = (y * img.width + cx0) * C;
      out.set(img.data.subarray(from, from + (cx1 - cx0) * C), ((y - y0) * width + (cx0 - x0)) * C);
    }
  }
  return { width, height, channels: C, data: out };
}

// PNG decode/encode through pngjs, with errors that name the file.
//
// pngjs always hands back 8-bit RGBA (grey, palette and 16-bit inputs are expanded or rescaled),
// so every colour type reduces to dropping the alpha channel.

import { PNG } from 'pngjs';
import { DataError, READ_CAPS, readFileChecked } from './io.ts';
import type { RgbImage } from './frame.ts';

export interface GrayImage {
  width: number;
  height: number;
  /** Row-major, 1 byte per pixel. */
  data: Uint8Array;
}

/** 8K×8K: far above any dataset camera (OPV2V 800×600, DAIR 1920×1080), far below what would exhaust memory as RGBA. */
export const MAX_PNG_PIXELS = 8192 * 8192;

function decodeRgba(buf: Uint8Array, file: string): PNG {
  // IHDR is always the first chunk: width and height at bytes 16 and 20. pngjs allocates
  // width × height × 4 before it reads a pixel, so a 40-byte file must not declare 2^31 of them.
  if (buf.byteLength >= 24) {
    const dv = new DataView(buf.buffer, buf.byteOffset, 24);
    const w = dv.getUint32(16),
      h = dv.getUint32(20);
    if (w * h > MAX_PNG_PIXELS) throw new DataError(file, 'IHDR', `PNG declares ${w}×${h} pixels, over the ${MAX_PNG_PIXELS}-pixel cap`, `${w}x${h}`);
  }
  try {
    return PNG.sync.read(Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength));
  } catch (err) {
    throw new DataError(file, undefined, `malformed or truncated PNG (${buf.byteLength} bytes): ${(err as Error).message}`);
  }
}

/** Decodes any PNG to RGB, dropping alpha. */
export function decodePng(buf: Uint8Array, file: string): RgbImage {
  const png = decodeRgba(buf, file);
  const n = png.width * png.height;
  const data = new Uint8Array(n * 3);
  const src = png.data;
  for (let i = 0; i < n; i++) {
    data[i * 3] = src[i * 4];
    data[i * 3 + 1] = src[i * 4 + 1];
    data[i * 3 + 2] = src[i * 4 + 2];
  }
  return { width: png.width, height: png.height, data };
}

/**
 * Decodes a depth PNG to one channel. OPV2V-H depth is 8-bit with the raw pixel value in meters
 * (HEAL multiplies ToTensor's [0,1] by 255); for RGB files the first channel is taken.
 */
export function decodeGrayPng(buf: Uint8Array, file: string): GrayImage {
  const png = decodeRgba(buf, file);
  const n = png.width * png.height;
  const data = new Uint8Array(n);
  for (let i = 0; i < n; i++) data[i] = png.data[i * 4];
  return { width: png.width, height: png.height, data };
}

export async function readPngRgb(file: string): Promise<RgbImage> {
  return decodePng(await readFileChecked(file, 'PNG image', READ_CAPS.png), file);
}

export async function readDepthPng(file: string): Promise<GrayImage> {
  return decodeGrayPng(await readFileChecked(file, 'depth PNG', READ_CAPS.png), file);
}

/** Encodes an RGB image as an opaque RGBA PNG. */
export function encodeRgbPng(img: RgbImage): Buffer {
  const png = new PNG({ width: img.width, height: img.height });
  const n = img.width * img.height;
  for (let i = 0; i < n; i++) {
    png.data[i * 4] = img.data[i * 3];
    png.data[i * 4 + 1] = img.data[i * 3 + 1];
    png.data[i * 4 + 2] = img.data[i * 3 + 2];
    png.data[i * 4 + 3] = 255;
  }
  return PNG.sync.write(png);
}

// PNG decode/encode through pngjs, with errors that name the file.
//
// pngjs always hands back 8-bit RGBA (grey, palette and 16-bit inputs are expanded or rescaled),
// so every colour type reduces to dropping the alpha channel.

import { PNG } from 'pngjs';
import { DataError, readFileChecked } from './io.ts';
import type { RgbImage } from './frame.ts';

export interface GrayImage {
  width: number;
  height: number;
  /** Row-major, 1 byte per pixel. */
  data: Uint8Array;
}

function decodeRgba(buf: Uint8Array, file: string): PNG {
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
  return decodePng(await readFileChecked(file, 'PNG image'), file);
}

export async function readDepthPng(file: string): Promise<GrayImage> {
  return decodeGrayPng(await readFileChecked(file, 'depth PNG'), file);
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

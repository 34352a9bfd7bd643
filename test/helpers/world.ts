// The one generated world the tests share, cached in .cache/ by datasets/synthetic/cached.ts: the
// first test file that asks generates it (the others wait for it), later runs reuse it until the
// generator's sources change. It is read-only: a test that changes files (corrupts a scan, removes
// depth maps) works on a copy (copySplit).

import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import type { Split } from '../../datasets/synthetic/generate.ts';
import { cachedWorld, type WorldOptions } from '../../datasets/synthetic/cached.ts';

/**
 * Seed 13, one scenario per split, three frames each. The train scenario has three connected
 * vehicles and a roadside unit (one agent per type m1–m4); validate and test have three agents,
 * which keeps the evaluation and calibration tests that encode every agent of a frame short.
 * Cameras at the small profile's largest input (m4's 160×120), sun shadows on so that the
 * generator's shadow rays are exercised, compressed PCD because the tests read every scan.
 */
export const TEST_WORLD: WorldOptions = {
  scenarios: 3,
  frames: 3,
  seed: 13,
  camera: { width: 160, height: 120 },
  splits: ['train', 'validate', 'test'],
  pcdFormat: 'binary_compressed',
  shadows: true,
};

/** A beforeAll timeout that covers generating the world on a loaded 2-core machine. */
export const WORLD_TIMEOUT_MS = 300_000;

/** The shared world's root folder (train/, validate/, test/). */
export async function testWorld(): Promise<string> {
  return (await cachedWorld(TEST_WORLD)).dir;
}

/** One split folder of the shared world, which readers open as a dataset of that split alone. */
export async function testSplit(split: Split): Promise<string> {
  return path.join(await testWorld(), split);
}

/** Copies one split of the shared world to `<dest>/<split>` for a test that changes files; returns `dest`. */
export async function copySplit(split: Split, dest: string): Promise<string> {
  await fs.cp(await testSplit(split), path.join(dest, split), { recursive: true });
  return dest;
}

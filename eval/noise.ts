// Seeded randomness: every draw depends on (seed, what, scenario, timestamp, agent), so pose noise
// and drops are the same for every combination and mode of a run, and do not depend on order.

import { rngFor } from '../datasets/rng.ts';
import type { Mat4 } from '../datasets/geometry/transforms.ts';

export function rng(key: string): () => number {
  const r = rngFor('heal-eval', key);
  return () => r.next();
}

function gaussian(next: () => number): number {
  const u = Math.max(next(), 1e-12);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * next());
}

/**
 * The pose a sender reports with HEAL-style noise: x and y shifted in the world, yaw turned about
 * the world z axis through the sender's position. The points stay in the sender's own frame, so
 * only where the ego places them moves.
 */
export function noisyPose(pose: Mat4, sigma: [number, number, number], next: () => number): Mat4 {
  const dx = gaussian(next) * sigma[0];
  const dy = gaussian(next) * sigma[1];
  const dyaw = (gaussian(next) * sigma[2] * Math.PI) / 180;
  const c = Math.cos(dyaw),
    s = Math.sin(dyaw);
  const out = new Float64Array(pose);
  for (let col = 0; col < 3; col++) {
    const a = pose[col],
      b = pose[4 + col];
    out[col] = c * a - s * b;
    out[4 + col] = s * a + c * b;
  }
  out[3] = pose[3] + dx;
  out[7] = pose[7] + dy;
  return out;
}

// Per-type fusion trust. HEAL's pyramid weighs agents by softmax over sigmoid foreground scores, so
// an agent that is sure of a car can outweigh one that sees nothing by at most e : 1. A weak type
// (a camera that finds little) then dilutes what the ego sees in every cell it covers. A type's
// trust t multiplies its softmax weight (adds ln t to its scores): 1 is HEAL's rule, 0 leaves the
// type out of the fusion. It is one number per type, fitted by `heal calibrate` with the encoders,
// fusion and head frozen, and travels in the weight file as the tensor `trust.<type>`.

import type { Weights } from '../models/weights.ts';
import { DataError } from '../datasets/io.ts';

export type Trust = Record<string, number>;

const PREFIX = 'trust.';

export function trustTensorName(type: string): string {
  return PREFIX + type;
}

function checkValue(t: number, where: string, what: string): void {
  if (!Number.isFinite(t) || t < 0) throw new DataError(where, what, `fusion trust must be a finite number ≥ 0 (got ${t})`);
}

/** The trust values a weight file carries (types without one are trusted 1). */
export function trustFromWeights(weights: Weights, file = 'weights'): Trust {
  const out: Trust = {};
  for (const [name, w] of weights) {
    if (!name.startsWith(PREFIX)) continue;
    if (w.data.length !== 1) throw new DataError(file, name, `a fusion trust is one number (got shape [${w.shape}])`);
    checkValue(w.data[0], file, name);
    // Float32 keeps 7 significant digits: 0.3 is stored as 0.30000001192…, and is read back as 0.3.
    out[name.slice(PREFIX.length)] = Number(w.data[0].toPrecision(7));
  }
  return out;
}

/** A copy of `weights` carrying `trust` (replacing any trust it had for those types). */
export function withTrust(weights: Weights, trust: Trust): Weights {
  const out: Weights = new Map(weights);
  for (const [type, t] of Object.entries(trust)) {
    checkValue(t, 'trust', type);
    out.set(trustTensorName(type), { shape: [1], data: Float32Array.of(t) });
  }
  return out;
}

export function formatTrust(trust: Trust): string {
  const entries = Object.entries(trust)
    .filter(([, t]) => t !== 1)
    .sort((a, b) => a[0].localeCompare(b[0]));
  return entries.length ? entries.map(([k, t]) => `${k} ${t}`).join(', ') : "every type 1 (HEAL's rule)";
}

// Where the weights that heal ships live. `npm start`, `heal eval`, `heal detect` and `heal view`
// use them when no --weights is given.

import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as path from 'node:path';

const DIR = path.dirname(fileURLToPath(import.meta.url));

/** models/shipped/<profile>/weights.bin: every parameter (encoder.*, aligner.*, fusion.*, head.*). */
export function shippedWeightsPath(profile = 'small'): string {
  return path.join(DIR, 'shipped', profile, 'weights.bin');
}

/** models/shipped/<profile>/manifest.json: how the weights were made, and their validation metrics. */
export function shippedManifestPath(profile = 'small'): string {
  return path.join(DIR, 'shipped', profile, 'manifest.json');
}

/** The shipped weight file of a profile, or undefined when none is shipped for it. */
export function shippedWeights(profile = 'small'): string | undefined {
  const p = shippedWeightsPath(profile);
  return existsSync(p) ? p : undefined;
}

/** models/shipped/<profile>/codecs.bin: learned message codecs (codec.r<R>.*, heal train-codec), when shipped. */
export function shippedCodecs(profile = 'small'): string[] | undefined {
  const p = path.join(DIR, 'shipped', profile, 'codecs.bin');
  return existsSync(p) ? [p] : undefined;
}

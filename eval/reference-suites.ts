// The reference suites `heal verify-reference` runs, one per expected file a case folder may hold
// (eval/reference.ts). A camera agent's suite (HEAL's m4, expected_m4.safetensors) goes here too.

import type { ReferenceSuite } from './reference.ts';
import { LIDAR_SUITE } from './reference-lidar.ts';

export const REFERENCE_SUITES: readonly ReferenceSuite[] = [LIDAR_SUITE];

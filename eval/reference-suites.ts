// The reference suites `heal verify-reference` runs, one per expected file a case folder may hold
// (eval/reference.ts): HEAL's m1 LiDAR agent (expected.safetensors) and m4 camera agent
// (expected_m4.safetensors).

import type { ReferenceSuite } from './reference.ts';
import { LIDAR_SUITE } from './reference-lidar.ts';
import { CAMERA_SUITE } from './reference-camera.ts';

export const REFERENCE_SUITES: readonly ReferenceSuite[] = [LIDAR_SUITE, CAMERA_SUITE];

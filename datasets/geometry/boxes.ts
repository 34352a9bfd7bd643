// Box conventions: the one place heal defines box layout, corner order and the corner refit.
//
// A box is [x, y, z, h, w, l, yaw] ('hwl' order, formats.md §4.1): (x, y, z) is the geometric
// centre, yaw in radians about z. Corners follow OpenCOOD's boxes_to_corners_3d (§4.2):
//   0:(+,-,-) 1:(+,+,-) 2:(-,+,-) 3:(-,-,-) 4:(+,-,+) 5:(+,+,+) 6:(-,+,+) 7:(-,-,+)
// scaled by [l, w, h]/2 in the box frame (x along length), rotated by yaw, then translated.
// Corners 0..3 are the bottom face and form the BEV footprint.

import { type Mat4, poseToMatrix, invert, multiply, transformPoint } from './transforms.ts';

export type Box7 = [x: number, y: number, z: number, h: number, w: number, l: number, yaw: number];
/** 8 corners × xyz, flattened: corner i is [8*0+3i .. 3i+2]. */
export type Corners = Float64Array;

const SIGNS: ReadonlyArray<readonly [number, number, number]> = [
  [1, -1, -1],
  [1, 1, -1],
  [-1, 1, -1],
  [-1, -1, -1],
  [1, -1, 1],
  [1, 1, 1],
  [-1, 1, 1],
  [-1, -1, 1],
];

export function boxToCorners(box: ArrayLike<number>): Corners {
  const [x, y, z, h, w, l, yaw] = [box[0], box[1], box[2], box[3], box[4], box[5], box[6]];
  const c = Math.cos(yaw),
    s = Math.sin(yaw);
  const out = new Float64Array(24);
  for (let i = 0; i < 8; i++) {
    const px = (SIGNS[i][0] * l) / 2,
      py = (SIGNS[i][1] * w) / 2,
      pz = (SIGNS[i][2] * h) / 2;
    out[i * 3] = px * c - py * s + x;
    out[i * 3 + 1] = px * s + py * c + y;
    out[i * 3 + 2] = pz + z;
  }
  return out;
}

/** OpenCOOD `create_bbx`: corners of a box with half-extents [ex, ey, ez] at the origin. */
export function extentToCorners(extent: ArrayLike<number>): Corners {
  const out = new Float64Array(24);
  for (let i = 0; i < 8; i++) {
    out[i * 3] = SIGNS[i][0] * extent[0];
    out[i * 3 + 1] = SIGNS[i][1] * extent[1];
    out[i * 3 + 2] = SIGNS[i][2] * extent[2];
  }
  return out;
}

export function transformCorners(m: Mat4, corners: Corners): Corners {
  const out = new Float64Array(24);
  for (let i = 0; i < 8; i++) {
    const p = transformPoint(m, corners[i * 3], corners[i * 3 + 1], corners[i * 3 + 2]);
    out[i * 3] = p[0];
    out[i * 3 + 1] = p[1];
    out[i * 3 + 2] = p[2];
  }
  return out;
}

/**
 * OpenCOOD `corner_to_center` (§4.3), with one deliberate difference: the four edge headings are
 * averaged as a circular mean, because the arithmetic mean breaks near ±π.
 */
export function cornersToBox(c: Corners): Box7 {
  const P = (i: number) => [c[i * 3], c[i * 3 + 1], c[i * 3 + 2]] as const;
  const d2 = (a: number, b: number) => Math.hypot(c[a * 3] - c[b * 3], c[a * 3 + 1] - c[b * 3 + 1]);
  let x = 0,
    y = 0,
    z = 0;
  for (const i of [0, 3, 5, 6]) {
    const p = P(i);
    x += p[0] / 4;
    y += p[1] / 4;
    z += p[2] / 4;
  }
  let h = 0;
  for (let i = 0; i < 4; i++) h += (c[(i + 4) * 3 + 2] - c[i * 3 + 2]) / 4;
  h = Math.abs(h);
  const l = (d2(0, 3) + d2(2, 1) + d2(4, 7) + d2(5, 6)) / 4;
  const w = (d2(0, 1) + d2(2, 3) + d2(4, 5) + d2(6, 7)) / 4;
  let sx = 0,
    sy = 0;
  for (const [a, b] of [
    [1, 2],
    [0, 3],
    [5, 6],
    [4, 7],
  ]) {
    const ang = Math.atan2(c[a * 3 + 1] - c[b * 3 + 1], c[a * 3] - c[b * 3]);
    sx += Math.cos(ang);
    sy += Math.sin(ang);
  }
  return [x, y, z, h, w, l, Math.atan2(sy, sx)];
}

/** BEV footprint of a box: corners 0..3 as [x0,y0,x1,y1,x2,y2,x3,y3]. */
export function bevCorners(box: ArrayLike<number>): Float64Array {
  const c = boxToCorners(box);
  return Float64Array.of(c[0], c[1], c[3], c[4], c[6], c[7], c[9], c[10]);
}

export function bevFromCorners(c: Corners): Float64Array {
  return Float64Array.of(c[0], c[1], c[3], c[4], c[6], c[7], c[9], c[10]);
}

/** A world-frame object as written in OPV2V `vehicles` entries. */
export interface WorldObject {
  location: [number, number, number];
  center: [number, number, number];
  /** [roll, yaw, pitch] in degrees. */
  angle: [number, number, number];
  /** Half sizes [ex, ey, ez]. */
  extent: [number, number, number];
}

/**
 * OpenCOOD `project_world_objects` for one object: corners in the reference LiDAR frame.
 * `center` is added to `location` in world axes without rotation, exactly as the readers do.
 */
export function worldObjectCorners(obj: WorldObject, worldFromRef: Mat4): Corners {
  const pose = [obj.location[0] + obj.center[0], obj.location[1] + obj.center[1], obj.location[2] + obj.center[2], obj.angle[0], obj.angle[1], obj.angle[2]];
  const refFromObj = multiply(invert(worldFromRef), poseToMatrix(pose));
  return transformCorners(refFromObj, extentToCorners(obj.extent));
}

export function worldObjectToBox(obj: WorldObject, worldFromRef: Mat4): Box7 {
  return cornersToBox(worldObjectCorners(obj, worldFromRef));
}

/** Range is [xmin, ymin, zmin, xmax, ymax, zmax]. True when all 8 corners are inside (z optional). */
export function cornersInRange(c: Corners, range: ArrayLike<number>, checkZ = true): boolean {
  for (let i = 0; i < 8; i++) {
    const x = c[i * 3],
      y = c[i * 3 + 1],
      z = c[i * 3 + 2];
    if (x < range[0] || x > range[3] || y < range[1] || y > range[4]) return false;
    if (checkZ && (z < range[2] || z > range[5])) return false;
  }
  return true;
}

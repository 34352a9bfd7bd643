// Camera simulation by ray casting: one ray per pixel through OPV2V's pinhole model (100°
// horizontal field of view, principal point at the image centre, formats.md §1.5), shaded with
// Lambert sunlight, sky-hemisphere ambient, sun shadows, distance haze and a sky gradient.
// Surfaces get cheap procedural detail: lane paint and crosswalks, sidewalk tiles, facade
// windows, car glass, tyres and lights. Depth is planar (along the optical axis), as CARLA's
// depth camera gives it.

import { type Pose6, multiply, matrixToPose, poseToMatrix } from '../geometry/transforms.ts';
import { hash2 } from '../rng.ts';
import { GROUND, type Scene } from './raycast.ts';
import {
  SURF_ASPHALT,
  SURF_CROSSWALK,
  SURF_CURB,
  SURF_GRASS,
  SURF_LINE,
  SURF_LOT,
  SURF_PLAZA,
  SURF_SIDEWALK,
  SURF_YARD,
  blockIndex,
  onLotLine,
  surfaceAt,
} from './town.ts';
import type { BoxSolid, MaterialKind, Town } from './world.ts';

export const HORIZONTAL_FOV_DEG = 100;

/** Camera placement relative to the agent's base pose: position (m) and yaw/pitch (degrees). */
export interface CameraMount {
  x: number;
  y: number;
  z: number;
  yaw: number;
  pitch: number;
}

/** OPV2V's four vehicle cameras: front, right-rear, left-rear, back (formats.md §1.5). */
export const VEHICLE_CAMERAS: readonly CameraMount[] = [
  { x: 2.5, y: 0, z: 1.0, yaw: 0, pitch: 0 },
  { x: 0, y: 0.3, z: 1.8, yaw: 100, pitch: 0 },
  { x: 0, y: -0.3, z: 1.8, yaw: -100, pitch: 0 },
  { x: -2.0, y: 0, z: 1.5, yaw: 180, pitch: 0 },
];

/** Roadside unit: four cameras on the mast, tilted down, looking along the four road arms. */
export function rsuCameras(mastHeight: number): CameraMount[] {
  const z = mastHeight - 0.3;
  return [-45, 45, -135, 135].map((yaw) => ({ x: 0, y: 0, z, yaw, pitch: -12 }));
}

/** 3×3 K for a W×H image: fx = fy = W / (2·tan(50°)), principal point at the centre. */
export function cameraIntrinsic(width: number, height: number): number[][] {
  const f = width / (2 * Math.tan((HORIZONTAL_FOV_DEG / 2) * (Math.PI / 180)));
  return [
    [f, 0, width / 2],
    [0, f, height / 2],
    [0, 0, 1],
  ];
}

/** World pose of a camera mounted on an agent whose base (actor) pose is `base`. */
export function cameraPose(base: ArrayLike<number>, mount: CameraMount): Pose6 {
  return matrixToPose(multiply(poseToMatrix(base), poseToMatrix([mount.x, mount.y, mount.z, 0, mount.yaw, mount.pitch])));
}

export interface CameraImage {
  width: number;
  height: number;
  /** Row-major RGB, 3 bytes per pixel. */
  rgb: Uint8Array;
  /** Planar depth in meters, rounded and clamped to 255 (OPV2V-H 8-bit depth). */
  depth: Uint8Array;
}

const K_GROUND = 0,
  K_BLOCK = 1,
  K_BUILDING = 2,
  K_PAINT = 3,
  K_CABIN = 4,
  K_GLASS = 5,
  K_FOLIAGE = 6,
  K_OTHER = 7,
  K_SHELTER = 8;
const KIND_CODE: Record<MaterialKind, number> = {
  block: K_BLOCK,
  building: K_BUILDING,
  paint: K_PAINT,
  cabin: K_CABIN,
  glass: K_GLASS,
  foliage: K_FOLIAGE,
  wall: K_OTHER,
  hedge: K_FOLIAGE,
  trunk: K_OTHER,
  metal: K_OTHER,
  shelter: K_SHELTER,
};

const SUN_COLOR = [1.0, 0.95, 0.86];
const SKY_AMBIENT = [0.52, 0.56, 0.62];
const HORIZON = [0.78, 0.84, 0.9];
const ZENITH = [0.3, 0.5, 0.82];
const HAZE_DISTANCE = 450;

/** Linear → 8-bit sRGB-ish (gamma 2.2), tabulated. */
const GAMMA = new Uint8Array(4096);
for (let i = 0; i < 4096; i++) GAMMA[i] = Math.round(255 * (i / 4095) ** (1 / 2.2));
const toByte = (v: number) => GAMMA[v <= 0 ? 0 : v >= 1 ? 4095 : (v * 4095) | 0];

export interface RenderOptions {
  /** Cast shadow rays towards the sun (default true). */
  shadows?: boolean;
}

/**
 * Renders one camera at world pose `pose` ([x, y, z, roll, yaw, pitch], UE4 axes: the camera
 * looks along its x axis). `ignoreOwner` hides the agent's own body.
 */
export function renderCamera(
  scene: Scene,
  town: Town,
  pose: ArrayLike<number>,
  width: number,
  height: number,
  ignoreOwner: number,
  opts: RenderOptions = {},
): CameraImage {
  const shadows = opts.shadows ?? true;
  const K = cameraIntrinsic(width, height);
  const fx = K[0][0],
    fy = K[1][1],
    cx = K[0][2],
    cy = K[1][2];
  const m = poseToMatrix(pose);
  const ox = m[3],
    oy = m[7],
    oz = m[11];
  const rgb = new Uint8Array(width * height * 3);
  const depth = new Uint8Array(width * height);
  const hit = scene.hit;
  const kinds = scene.materials.map((mt) => KIND_CODE[mt.kind]);
  const matIdx = scene.materialIndex;
  const mats = scene.materials;
  const solids = scene.solids;
  const [sunX, sunY, sunZ] = town.sun;
  const nrm = new Float64Array(3);
  const col = new Float64Array(3);

  for (let v = 0; v < height; v++) {
    for (let u = 0; u < width; u++) {
      // Pixel centre → UE4 camera axes (x forward, y right, z up) → world.
      const cxr = 1,
        cyr = (u + 0.5 - cx) / fx,
        czr = -(v + 0.5 - cy) / fy;
      const len = Math.sqrt(cxr * cxr + cyr * cyr + czr * czr);
      const lx = cxr / len,
        ly = cyr / len,
        lz = czr / len;
      const dx = m[0] * lx + m[1] * ly + m[2] * lz;
      const dy = m[4] * lx + m[5] * ly + m[6] * lz;
      const dz = m[8] * lx + m[9] * ly + m[10] * lz;
      const t = scene.cast(ox, oy, oz, dx, dy, dz, 600, ignoreOwner);
      const pix = v * width + u;
      if (t === Infinity) {
        sky(dx, dy, dz, sunX, sunY, sunZ, col);
        depth[pix] = 255;
      } else {
        const prim = hit.prim,
          face = hit.face;
        const px = ox + dx * t,
          py = oy + dy * t,
          pz = oz + dz * t;
        scene.normal(prim, face, px, py, pz, dx, dy, dz, nrm);
        const kind = prim === GROUND ? K_GROUND : kinds[matIdx[prim]];
        let specular = 0;
        let mirror = 0;
        // Base colour with procedural detail.
        if (kind === K_GROUND || (kind === K_BLOCK && face === 2)) {
          groundColor(town, px, py, col);
        } else if (kind === K_BUILDING) {
          const sol = solids[prim] as BoxSolid;
          mirror = facadeColor(sol, mats[matIdx[prim]].pattern ?? 0, face, px, py, pz, col);
        } else if (kind === K_PAINT) {
          const c = mats[matIdx[prim]].color;
          col[0] = c[0];
          col[1] = c[1];
          col[2] = c[2];
          specular = 0.3;
          vehicleDetail(solids[prim] as BoxSolid, face, px, py, pz, col);
        } else if (kind === K_CABIN) {
          const c = mats[matIdx[prim]].color;
          if (face === 2) {
            col[0] = c[0];
            col[1] = c[1];
            col[2] = c[2];
            specular = 0.25;
          } else {
            col[0] = 0.04;
            col[1] = 0.05;
            col[2] = 0.06;
            mirror = 0.15;
          }
        } else if (kind === K_FOLIAGE) {
          const c = mats[matIdx[prim]].color;
          const f = 0.75 + 0.5 * hash2(Math.floor(px * 4), Math.floor(py * 4) + 97 * Math.floor(pz * 4), 7);
          col[0] = c[0] * f;
          col[1] = c[1] * f;
          col[2] = c[2] * f;
        } else if (kind === K_SHELTER) {
          const c = mats[matIdx[prim]].color;
          col[0] = c[0];
          col[1] = c[1];
          col[2] = c[2];
          mirror = 0.25;
        } else {
          const c = mats[matIdx[prim]].color;
          col[0] = c[0];
          col[1] = c[1];
          col[2] = c[2];
        }
        // Lighting: sun (if not shadowed) + sky hemisphere.
        let ndl = nrm[0] * sunX + nrm[1] * sunY + nrm[2] * sunZ;
        if (ndl > 0 && shadows && t < 150) {
          const sx = px + nrm[0] * 0.02,
            sy = py + nrm[1] * 0.02,
            sz = pz + nrm[2] * 0.02;
          if (scene.cast(sx, sy, sz, sunX, sunY, sunZ, 200, 0) !== Infinity) ndl = 0;
        }
        if (ndl < 0) ndl = 0;
        const amb = 0.55 + 0.25 * nrm[2];
        let spec = 0;
        if (specular > 0 && ndl > 0) {
          // Blinn-Phong highlight with the half vector between the sun and the viewer.
          let hx = sunX - dx,
            hy = sunY - dy,
            hz = sunZ - dz;
          const hl = Math.sqrt(hx * hx + hy * hy + hz * hz);
          hx /= hl;
          hy /= hl;
          hz /= hl;
          const nh = Math.max(0, nrm[0] * hx + nrm[1] * hy + nrm[2] * hz);
          spec = specular * nh ** 60;
        }
        for (let k = 0; k < 3; k++) col[k] = col[k] * (SKY_AMBIENT[k] * amb + SUN_COLOR[k] * 0.95 * ndl) + spec * SUN_COLOR[k];
        if (mirror > 0) {
          // Glass reflects the sky (mirrored view direction about the normal).
          const dn = dx * nrm[0] + dy * nrm[1] + dz * nrm[2];
          const rz = dz - 2 * dn * nrm[2];
          const g = Math.max(0, Math.min(1, rz * 1.5 + 0.3));
          for (let k = 0; k < 3; k++) col[k] = col[k] * (1 - mirror) + mirror * (HORIZON[k] * (1 - g) + ZENITH[k] * g);
        }
        const haze = 1 - Math.exp(-t / HAZE_DISTANCE);
        for (let k = 0; k < 3; k++) col[k] = col[k] * (1 - haze) + HORIZON[k] * haze;
        // Planar depth: the ray's component along the optical axis.
        const d = Math.round(t / len);
        depth[pix] = Math.min(d, 255);
      }
      const o = pix * 3;
      rgb[o] = toByte(col[0]);
      rgb[o + 1] = toByte(col[1]);
      rgb[o + 2] = toByte(col[2]);
    }
  }
  return { width, height, rgb, depth };
}

function sky(dx: number, dy: number, dz: number, sunX: number, sunY: number, sunZ: number, col: Float64Array): void {
  const g = Math.max(0, dz) ** 0.6;
  const cosSun = dx * sunX + dy * sunY + dz * sunZ;
  const glow = cosSun > 0 ? cosSun ** 64 * 0.8 + cosSun ** 6 * 0.12 : 0;
  for (let k = 0; k < 3; k++) col[k] = HORIZON[k] * (1 - g) + ZENITH[k] * g + glow * SUN_COLOR[k];
  if (dz < 0) {
    // Below the horizon beyond the town: distant haze.
    for (let k = 0; k < 3; k++) col[k] = HORIZON[k] * 0.9;
  }
}

/** Bilinear value noise in [0, 1): smooth where plain lattice hashing shows square tiles up close. */
function smoothNoise(x: number, y: number, salt: number): number {
  const ix = Math.floor(x),
    iy = Math.floor(y);
  let fx = x - ix,
    fy = y - iy;
  fx = fx * fx * (3 - 2 * fx);
  fy = fy * fy * (3 - 2 * fy);
  const a = hash2(ix, iy, salt),
    b = hash2(ix + 1, iy, salt),
    c = hash2(ix, iy + 1, salt),
    d = hash2(ix + 1, iy + 1, salt);
  return (a + (b - a) * fx) * (1 - fy) + (c + (d - c) * fx) * fy;
}

function groundColor(town: Town, x: number, y: number, col: Float64Array): void {
  const s = surfaceAt(town, x, y);
  const n = 0.6 * smoothNoise(x * 2.5, y * 2.5, 1) + 0.4 * hash2(Math.floor(x * 8), Math.floor(y * 8), 9);
  const coarse = smoothNoise(x * 0.25, y * 0.25, 2);
  let r: number, g: number, b: number;
  switch (s) {
    case SURF_ASPHALT: {
      const f = 0.85 + 0.12 * n + 0.1 * coarse;
      r = 0.16 * f;
      g = 0.16 * f;
      b = 0.17 * f;
      break;
    }
    case SURF_LINE:
    case SURF_CROSSWALK:
      r = 0.78;
      g = 0.78;
      b = 0.74;
      break;
    case SURF_CURB:
      r = 0.62;
      g = 0.62;
      b = 0.6;
      break;
    case SURF_SIDEWALK: {
      // Square slabs with darker joints.
      const jx = Math.abs(x - Math.round(x)),
        jy = Math.abs(y - Math.round(y));
      const joint = jx < 0.03 || jy < 0.03 ? 0.75 : 1;
      const f = (0.9 + 0.1 * hash2(Math.floor(x), Math.floor(y), 3)) * joint;
      r = 0.5 * f;
      g = 0.49 * f;
      b = 0.47 * f;
      break;
    }
    case SURF_GRASS: {
      const f = 0.8 + 0.3 * n;
      r = 0.14 * f;
      g = 0.28 * f;
      b = 0.08 * f;
      break;
    }
    case SURF_LOT: {
      const bi = blockIndex(town, x, y);
      if (bi >= 0 && onLotLine(town.blocks[bi], x, y)) {
        r = 0.75;
        g = 0.75;
        b = 0.72;
        break;
      }
      const f = 0.85 + 0.15 * n;
      r = 0.22 * f;
      g = 0.22 * f;
      b = 0.23 * f;
      break;
    }
    case SURF_PLAZA: {
      const jx = Math.abs(x * 2 - Math.round(x * 2)),
        jy = Math.abs(y * 2 - Math.round(y * 2));
      const joint = jx < 0.05 || jy < 0.05 ? 0.8 : 1;
      const f = (0.85 + 0.2 * hash2(Math.floor(x * 2), Math.floor(y * 2), 4)) * joint;
      r = 0.52 * f;
      g = 0.49 * f;
      b = 0.44 * f;
      break;
    }
    case SURF_YARD: {
      const f = 0.9 + 0.1 * n;
      r = 0.42 * f;
      g = 0.41 * f;
      b = 0.38 * f;
      break;
    }
    default: {
      const f = 0.85 + 0.2 * n;
      r = 0.34 * f;
      g = 0.31 * f;
      b = 0.24 * f;
    }
  }
  col[0] = r;
  col[1] = g;
  col[2] = b;
}

/** Facade colour with windows; returns how mirror-like the spot is. */
function facadeColor(sol: BoxSolid, pattern: number, face: number, x: number, y: number, z: number, col: Float64Array): number {
  const c = sol.material.color;
  if (face === 2) {
    // Flat roof: tar and gravel.
    const f = 0.8 + 0.2 * hash2(Math.floor(x * 2), Math.floor(y * 2), 5);
    col[0] = 0.3 * f;
    col[1] = 0.3 * f;
    col[2] = 0.31 * f;
    return 0;
  }
  const cs = Math.cos(sol.yaw),
    sn = Math.sin(sol.yaw);
  const rx = x - sol.cx,
    ry = y - sol.cy;
  // Horizontal coordinate along the face, measured from the face's left edge.
  const along = face === 0 ? -rx * sn + ry * cs + sol.hy : rx * cs + ry * sn + sol.hx;
  const h = z - sol.z0;
  const floor = 3.3;
  const fz = h % floor;
  const storey = Math.floor(h / floor);
  const top = sol.z1 - sol.z0;
  col[0] = c[0];
  col[1] = c[1];
  col[2] = c[2];
  // Light shade variation per storey and bay keeps large facades from looking flat.
  const vary = 0.93 + 0.07 * hash2(Math.floor(along / 3), storey, 6);
  col[0] *= vary;
  col[1] *= vary;
  col[2] *= vary;
  if (top - h < 0.6) {
    col[0] *= 0.8;
    col[1] *= 0.8;
    col[2] *= 0.8;
    return 0;
  } // parapet
  let window = false;
  switch (pattern) {
    case 0: {
      const bay = 2.8;
      const a = along % bay;
      window = storey === 0 ? a > 0.3 && a < 2.5 && fz > 0.5 && fz < 2.9 : a > 0.6 && a < 2.2 && fz > 1.0 && fz < 2.5;
      break;
    }
    case 1:
      window = fz > 1.0 && fz < 2.4 && along % 6 > 0.25;
      break;
    case 2: {
      const a = along % 1.6;
      window = a > 0.08 && fz > 0.12;
      break;
    }
    default:
      // Warehouse: corrugated panels, a roller door at street level every 12 m.
      if (storey === 0 && along % 12 > 3 && along % 12 < 7 && fz < 3.2) {
        col[0] *= 0.7;
        col[1] *= 0.7;
        col[2] *= 0.72;
      } else if (along % 0.8 < 0.1) {
        col[0] *= 0.85;
        col[1] *= 0.85;
        col[2] *= 0.85;
      }
      return 0;
  }
  if (!window) return 0;
  const lit = hash2(Math.floor(along / 2.8), storey, 8);
  const base = lit > 0.85 ? 0.25 : 0.07;
  col[0] = base;
  col[1] = base * 1.1;
  col[2] = base * 1.3;
  return pattern === 2 ? 0.5 : 0.35;
}

/** Tyres, lights and a dark lower sill on a vehicle body box. */
function vehicleDetail(sol: BoxSolid, face: number, x: number, y: number, z: number, col: Float64Array): void {
  if (face === 2) return;
  const cs = Math.cos(sol.yaw),
    sn = Math.sin(sol.yaw);
  const rx = x - sol.cx,
    ry = y - sol.cy;
  const lxp = rx * cs + ry * sn,
    lyp = -rx * sn + ry * cs;
  const h = z - sol.z0;
  if (face === 1) {
    // Side: wheel arches near both axles.
    const ax = Math.abs(lxp);
    const wheelZ = Math.min(0.7, (sol.z1 - sol.z0) * 0.8);
    const axle = sol.hx - Math.min(1.0, sol.hx * 0.38);
    if (h < wheelZ && Math.abs(ax - axle) < 0.38) {
      col[0] = 0.03;
      col[1] = 0.03;
      col[2] = 0.03;
      return;
    }
    if (h < 0.22) {
      col[0] *= 0.35;
      col[1] *= 0.35;
      col[2] *= 0.35;
    }
    return;
  }
  // Front or rear face: lamps near the corners.
  const front = lxp > 0;
  const side = Math.abs(lyp) / sol.hy;
  if (side > 0.65 && h > 0.45 && h < 0.75) {
    if (front) {
      col[0] = 0.95;
      col[1] = 0.93;
      col[2] = 0.8;
    } else {
      col[0] = 0.7;
      col[1] = 0.05;
      col[2] = 0.04;
    }
  } else if (h < 0.3) {
    col[0] *= 0.4;
    col[1] *= 0.4;
    col[2] *= 0.4;
  }
}

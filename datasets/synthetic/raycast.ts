// Ray casting against the scene: the ground plane, upright boxes, vertical cylinders and spheres.
//
// The solids are packed into typed arrays and binned into a uniform 2D grid over x/y (scenes are
// flat and wide, so a grid beats a tree here). A ray walks the grid cells it crosses in order
// (Amanatides–Woo) and stops as soon as the nearest hit lies before the next cell boundary. Boxes
// are intersected in their own frame with the slab test. Each solid is tested once per ray
// (mailboxing), though it may be binned in many cells.

import type { Material, Solid } from './world.ts';

export const PRIM_BOX = 0;
export const PRIM_CYLINDER = 1;
export const PRIM_SPHERE = 2;
/** Primitive index reported for the ground plane (z = 0). */
export const GROUND = -1;
const STRIDE = 8;
const EPS = 1e-4;

/** Result of the last cast: filled by Scene.cast, read right after. */
export interface Hit {
  /** Distance along the (unit) direction; Infinity for no hit. */
  t: number;
  /** Primitive index, GROUND for the ground plane, or −2 for nothing. */
  prim: number;
  /** Which slab of a box was entered (0 x, 1 y, 2 z); for cylinders 0 side, 2 top. */
  face: number;
}

export class Scene {
  readonly count: number;
  readonly type: Uint8Array;
  /** STRIDE numbers per primitive; see pack(). */
  readonly data: Float64Array;
  readonly owner: Int32Array;
  readonly materialIndex: Int32Array;
  readonly materials: Material[];
  readonly solids: readonly Solid[];
  readonly gx0: number;
  readonly gy0: number;
  readonly cell: number;
  readonly nx: number;
  readonly ny: number;
  readonly cellStart: Int32Array;
  readonly cellItems: Int32Array;
  /** Highest point of any solid: rays above it can stop. */
  readonly zTop: number;
  private readonly stamp: Int32Array;
  private rayId = 0;
  readonly hit: Hit = { t: Infinity, prim: -2, face: 0 };

  constructor(solids: readonly Solid[], cell = 4) {
    const n = solids.length;
    this.count = n;
    this.solids = solids;
    this.type = new Uint8Array(n);
    this.data = new Float64Array(n * STRIDE);
    this.owner = new Int32Array(n);
    this.materialIndex = new Int32Array(n);
    this.stamp = new Int32Array(n);
    const matIds = new Map<Material, number>();
    this.materials = [];
    const aabb = new Float64Array(n * 4);
    let zTop = 0;
    let minX = Infinity,
      minY = Infinity,
      maxX = -Infinity,
      maxY = -Infinity;
    for (let i = 0; i < n; i++) {
      const s = solids[i];
      const d = i * STRIDE;
      let ex: number, ey: number;
      if (s.shape === 'box') {
        const c = Math.cos(s.yaw),
          sn = Math.sin(s.yaw);
        this.type[i] = PRIM_BOX;
        this.data.set([s.cx, s.cy, s.z0, s.z1, s.hx, s.hy, c, sn], d);
        ex = Math.abs(s.hx * c) + Math.abs(s.hy * sn);
        ey = Math.abs(s.hx * sn) + Math.abs(s.hy * c);
        zTop = Math.max(zTop, s.z1);
      } else if (s.shape === 'cylinder') {
        this.type[i] = PRIM_CYLINDER;
        this.data.set([s.cx, s.cy, s.z0, s.z1, s.r, s.r * s.r, 0, 0], d);
        ex = ey = s.r;
        zTop = Math.max(zTop, s.z1);
      } else {
        this.type[i] = PRIM_SPHERE;
        this.data.set([s.cx, s.cy, s.cz, s.r, s.r * s.r, 0, 0, 0], d);
        ex = ey = s.r;
        zTop = Math.max(zTop, s.cz + s.r);
      }
      const cx = s.cx,
        cy = s.cy;
      aabb[i * 4] = cx - ex;
      aabb[i * 4 + 1] = cy - ey;
      aabb[i * 4 + 2] = cx + ex;
      aabb[i * 4 + 3] = cy + ey;
      minX = Math.min(minX, cx - ex);
      minY = Math.min(minY, cy - ey);
      maxX = Math.max(maxX, cx + ex);
      maxY = Math.max(maxY, cy + ey);
      this.owner[i] = s.owner;
      let m = matIds.get(s.material);
      if (m === undefined) {
        m = this.materials.length;
        this.materials.push(s.material);
        matIds.set(s.material, m);
      }
      this.materialIndex[i] = m;
    }
    this.zTop = zTop + 0.01;
    if (n === 0) {
      minX = minY = -1;
      maxX = maxY = 1;
    }
    this.cell = cell;
    this.gx0 = minX - 0.01;
    this.gy0 = minY - 0.01;
    this.nx = Math.max(1, Math.ceil((maxX - this.gx0 + 0.01) / cell));
    this.ny = Math.max(1, Math.ceil((maxY - this.gy0 + 0.01) / cell));
    const cells = this.nx * this.ny;
    const counts = new Int32Array(cells + 1);
    const range = (i: number, visit: (c: number) => void) => {
      const ix0 = Math.floor((aabb[i * 4] - this.gx0) / cell),
        iy0 = Math.floor((aabb[i * 4 + 1] - this.gy0) / cell);
      const ix1 = Math.min(this.nx - 1, Math.floor((aabb[i * 4 + 2] - this.gx0) / cell));
      const iy1 = Math.min(this.ny - 1, Math.floor((aabb[i * 4 + 3] - this.gy0) / cell));
      for (let iy = Math.max(0, iy0); iy <= iy1; iy++) for (let ix = Math.max(0, ix0); ix <= ix1; ix++) visit(iy * this.nx + ix);
    };
    for (let i = 0; i < n; i++) range(i, (c) => counts[c + 1]++);
    for (let c = 0; c < cells; c++) counts[c + 1] += counts[c];
    this.cellStart = counts;
    this.cellItems = new Int32Array(counts[cells]);
    const fill = counts.slice(0, cells);
    for (let i = 0; i < n; i++)
      range(i, (c) => {
        this.cellItems[fill[c]++] = i;
      });
  }

  /**
   * Nearest hit along a ray with unit direction (dx, dy, dz) within tMax, ignoring the solids of
   * `ignoreOwner` (0 ignores nothing). Returns the distance and fills this.hit.
   */
  cast(ox: number, oy: number, oz: number, dx: number, dy: number, dz: number, tMax: number, ignoreOwner: number): number {
    const hit = this.hit;
    let best = tMax;
    let bestPrim = -2,
      bestFace = 0;
    if (dz < 0) {
      const tg = -oz / dz;
      if (tg < best) {
        best = tg;
        bestPrim = GROUND;
        bestFace = 2;
      }
    }
    // Nothing stands above zTop, so an upward ray can stop there.
    let limit = best;
    if (dz > 0) limit = Math.min(limit, (this.zTop - oz) / dz);

    const cell = this.cell,
      nx = this.nx,
      ny = this.ny;
    const gx0 = this.gx0,
      gy0 = this.gy0,
      gx1 = gx0 + nx * cell,
      gy1 = gy0 + ny * cell;
    let t0 = 0,
      t1 = limit;
    if (Math.abs(dx) < 1e-12) {
      if (ox < gx0 || ox > gx1) t1 = -1;
    } else {
      const a = (gx0 - ox) / dx,
        b = (gx1 - ox) / dx;
      t0 = Math.max(t0, Math.min(a, b));
      t1 = Math.min(t1, Math.max(a, b));
    }
    if (Math.abs(dy) < 1e-12) {
      if (oy < gy0 || oy > gy1) t1 = -1;
    } else {
      const a = (gy0 - oy) / dy,
        b = (gy1 - oy) / dy;
      t0 = Math.max(t0, Math.min(a, b));
      t1 = Math.min(t1, Math.max(a, b));
    }
    if (t0 <= t1) {
      if (++this.rayId >= 0x7fffffff) {
        this.stamp.fill(0);
        this.rayId = 1;
      }
      const ray = this.rayId;
      const stamp = this.stamp,
        type = this.type,
        data = this.data,
        owner = this.owner;
      const cellStart = this.cellStart,
        cellItems = this.cellItems;
      const px = ox + dx * t0,
        py = oy + dy * t0;
      let ix = Math.min(nx - 1, Math.max(0, Math.floor((px - gx0) / cell)));
      let iy = Math.min(ny - 1, Math.max(0, Math.floor((py - gy0) / cell)));
      const stepX = dx > 0 ? 1 : -1,
        stepY = dy > 0 ? 1 : -1;
      const tDeltaX = Math.abs(dx) < 1e-12 ? Infinity : cell / Math.abs(dx);
      const tDeltaY = Math.abs(dy) < 1e-12 ? Infinity : cell / Math.abs(dy);
      let tNextX = Math.abs(dx) < 1e-12 ? Infinity : (gx0 + (ix + (dx > 0 ? 1 : 0)) * cell - ox) / dx;
      let tNextY = Math.abs(dy) < 1e-12 ? Infinity : (gy0 + (iy + (dy > 0 ? 1 : 0)) * cell - oy) / dy;
      for (;;) {
        const c = iy * nx + ix;
        for (let k = cellStart[c], end = cellStart[c + 1]; k < end; k++) {
          const p = cellItems[k];
          if (stamp[p] === ray) continue;
          stamp[p] = ray;
          if (ignoreOwner !== 0 && owner[p] === ignoreOwner) continue;
          const d = p * STRIDE;
          const ty = type[p];
          if (ty === PRIM_BOX) {
            const rx = ox - data[d],
              ry = oy - data[d + 1];
            const cs = data[d + 6],
              sn = data[d + 7];
            const hx = data[d + 4],
              hy = data[d + 5];
            const lx = rx * cs + ry * sn,
              ly = -rx * sn + ry * cs;
            const ldx = dx * cs + dy * sn,
              ldy = -dx * sn + dy * cs;
            let tn = -Infinity,
              tf = Infinity,
              face = 0;
            if (Math.abs(ldx) < 1e-12) {
              if (lx < -hx || lx > hx) continue;
            } else {
              const inv = 1 / ldx;
              let a = (-hx - lx) * inv,
                b = (hx - lx) * inv;
              if (a > b) {
                const t = a;
                a = b;
                b = t;
              }
              tn = a;
              tf = b;
            }
            if (Math.abs(ldy) < 1e-12) {
              if (ly < -hy || ly > hy) continue;
            } else {
              const inv = 1 / ldy;
              let a = (-hy - ly) * inv,
                b = (hy - ly) * inv;
              if (a > b) {
                const t = a;
                a = b;
                b = t;
              }
              if (a > tn) {
                tn = a;
                face = 1;
              }
              if (b < tf) tf = b;
            }
            if (tn > tf) continue;
            const z0 = data[d + 2],
              z1 = data[d + 3];
            if (Math.abs(dz) < 1e-12) {
              if (oz < z0 || oz > z1) continue;
            } else {
              const inv = 1 / dz;
              let a = (z0 - oz) * inv,
                b = (z1 - oz) * inv;
              if (a > b) {
                const t = a;
                a = b;
                b = t;
              }
              if (a > tn) {
                tn = a;
                face = 2;
              }
              if (b < tf) tf = b;
            }
            // A ray starting inside a box (tn < 0) does not see it.
            if (tn > tf || tn < EPS || tn >= best) continue;
            best = tn;
            bestPrim = p;
            bestFace = face;
          } else if (ty === PRIM_CYLINDER) {
            const rx = ox - data[d],
              ry = oy - data[d + 1];
            const z0 = data[d + 2],
              z1 = data[d + 3];
            const a = dx * dx + dy * dy;
            if (a > 1e-12) {
              const b = rx * dx + ry * dy;
              const cc = rx * rx + ry * ry - data[d + 5];
              const disc = b * b - a * cc;
              if (disc >= 0) {
                const t = (-b - Math.sqrt(disc)) / a;
                if (t > EPS && t < best) {
                  const z = oz + t * dz;
                  if (z >= z0 && z <= z1) {
                    best = t;
                    bestPrim = p;
                    bestFace = 0;
                    continue;
                  }
                }
              }
            }
            if (dz < 0 && oz > z1) {
              const t = (z1 - oz) / dz;
              if (t > EPS && t < best) {
                const hx = rx + t * dx,
                  hy = ry + t * dy;
                if (hx * hx + hy * hy <= data[d + 5]) {
                  best = t;
                  bestPrim = p;
                  bestFace = 2;
                }
              }
            }
          } else {
            const rx = ox - data[d],
              ry = oy - data[d + 1],
              rz = oz - data[d + 2];
            const b = rx * dx + ry * dy + rz * dz;
            const cc = rx * rx + ry * ry + rz * rz - data[d + 4];
            const disc = b * b - cc;
            if (disc < 0) continue;
            const t = -b - Math.sqrt(disc);
            if (t > EPS && t < best) {
              best = t;
              bestPrim = p;
              bestFace = 0;
            }
          }
        }
        const tExit = Math.min(tNextX, tNextY);
        if (best <= tExit || tExit > t1) break;
        if (tNextX < tNextY) {
          ix += stepX;
          if (ix < 0 || ix >= nx) break;
          tNextX += tDeltaX;
        } else {
          iy += stepY;
          if (iy < 0 || iy >= ny) break;
          tNextY += tDeltaY;
        }
      }
    }
    hit.t = bestPrim === -2 ? Infinity : best;
    hit.prim = bestPrim;
    hit.face = bestFace;
    return hit.t;
  }

  /** Outward unit normal at a hit point on primitive `prim` (GROUND: straight up), into `out`. */
  normal(prim: number, face: number, x: number, y: number, z: number, dx: number, dy: number, dz: number, out: Float64Array): void {
    if (prim < 0) {
      out[0] = 0;
      out[1] = 0;
      out[2] = 1;
      return;
    }
    const d = prim * STRIDE,
      data = this.data;
    const ty = this.type[prim];
    if (ty === PRIM_BOX) {
      const cs = data[d + 6],
        sn = data[d + 7];
      if (face === 2) {
        out[0] = 0;
        out[1] = 0;
        out[2] = dz > 0 ? -1 : 1;
        return;
      }
      // The entered face points back against the ray's local direction.
      if (face === 0) {
        const sgn = dx * cs + dy * sn > 0 ? -1 : 1;
        out[0] = cs * sgn;
        out[1] = sn * sgn;
        out[2] = 0;
      } else {
        const sgn = -dx * sn + dy * cs > 0 ? -1 : 1;
        out[0] = -sn * sgn;
        out[1] = cs * sgn;
        out[2] = 0;
      }
    } else if (ty === PRIM_CYLINDER) {
      if (face === 2) {
        out[0] = 0;
        out[1] = 0;
        out[2] = 1;
        return;
      }
      const rx = x - data[d],
        ry = y - data[d + 1];
      const l = Math.hypot(rx, ry) || 1;
      out[0] = rx / l;
      out[1] = ry / l;
      out[2] = 0;
    } else {
      const r = data[d + 3];
      out[0] = (x - data[d]) / r;
      out[1] = (y - data[d + 1]) / r;
      out[2] = (z - data[d + 2]) / r;
    }
  }
}

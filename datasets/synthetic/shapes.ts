// Vehicle bodies: the solids the sensors see, all strictly inside the one ground-truth box.
//
// A car is a body box (bonnet and boot height) plus a narrower cabin box, which gives LiDAR and
// cameras a recognisable silhouette. Every part stays a few centimetres inside the box edges, as
// CARLA's boxes do around its meshes, so range noise rarely pushes a return outside its box.

import type { Material, Solid, VehiclePose, VehicleSpec } from './world.ts';

const DEG = Math.PI / 180;
/** Parts keep this far inside the ground-truth box sides. */
const INSET = 0.05;

export function vehicleSolids(spec: VehicleSpec, pose: VehiclePose): Solid[] {
  const L = spec.length,
    W = spec.width,
    H = spec.height;
  const yaw = pose.yaw * DEG;
  const c = Math.cos(yaw),
    s = Math.sin(yaw);
  const paint: Material = { kind: 'paint', color: spec.color, reflectivity: 0.7 };
  const cabin: Material = { kind: 'cabin', color: spec.color, reflectivity: 0.3 };
  const out: Solid[] = [];
  // A part centred `dx` ahead of the box centre, `hx` × `hy` half sizes, from z0 to z1 above ground.
  const part = (dx: number, hx: number, hy: number, z0: number, z1: number, material: Material) => {
    out.push({
      shape: 'box',
      cx: pose.x + c * dx,
      cy: pose.y + s * dx,
      z0: pose.z + z0,
      z1: pose.z + z1,
      hx,
      hy,
      yaw,
      material,
      owner: spec.id,
    });
  };
  const hx = L / 2 - INSET,
    hy = W / 2 - INSET,
    top = H - 0.03;
  switch (spec.type) {
    case 'compact':
    case 'sedan':
    case 'suv': {
      const belt = spec.type === 'suv' ? 0.58 : 0.55;
      const cabinLen = spec.type === 'suv' ? 0.66 : spec.type === 'compact' ? 0.6 : 0.52;
      const shift = spec.type === 'suv' ? -0.12 : spec.type === 'compact' ? -0.06 : -0.05;
      part(0, hx, hy, 0.02, H * belt, paint);
      part(L * shift, (L * cabinLen) / 2, hy - 0.1, H * belt, top, cabin);
      break;
    }
    case 'van':
      part(0, hx, hy, 0.02, H * 0.45, paint);
      part(-L * 0.06, L * 0.42, hy - 0.04, H * 0.45, top, cabin);
      break;
    case 'truck': {
      const cabLen = 2.2;
      part(hx - cabLen / 2, cabLen / 2, hy, 0.02, H * 0.5, paint);
      part(hx - cabLen / 2 + 0.1, cabLen / 2 - 0.1, hy - 0.05, H * 0.5, H * 0.82, cabin);
      const boxLen = 2 * hx - cabLen - 0.3;
      part(-hx + boxLen / 2, boxLen / 2, hy - 0.2, 0.35, 1.0, { ...paint, color: [0.15, 0.15, 0.15] });
      part(-hx + boxLen / 2, boxLen / 2, hy, 1.0, top, paint);
      break;
    }
    case 'bus':
      part(0, hx, hy, 0.02, H * 0.42, paint);
      part(0, hx - 0.02, hy - 0.02, H * 0.42, H * 0.85, cabin);
      part(0, hx, hy, H * 0.85, top, paint);
      break;
  }
  return out;
}

/** The OPV2V `vehicles` entry of a vehicle at a pose (formats.md §1.2). */
export function vehicleEntry(
  spec: VehicleSpec,
  pose: VehiclePose,
): {
  angle: [number, number, number];
  center: [number, number, number];
  extent: [number, number, number];
  location: [number, number, number];
  speed: number;
} {
  return {
    angle: [0, pose.yaw, 0],
    center: [0, 0, spec.height / 2],
    extent: [spec.length / 2, spec.width / 2, spec.height / 2],
    location: [pose.x, pose.y, pose.z],
    // OpenCDA writes km/h.
    speed: Math.round(pose.speed * 3.6 * 1000) / 1000,
  };
}

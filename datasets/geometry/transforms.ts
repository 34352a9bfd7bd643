// Poses and rigid transforms. The one place heal turns poses into matrices.
//
// Conventions (formats.md §1.3): CARLA/UE4 frames are left-handed (x forward, y right, z up),
// a pose is [x, y, z, roll, yaw, pitch] in meters and degrees, and matrices are 4×4 row-major
// Float64Arrays. T_{b←a} maps points from frame a into frame b.

export type Pose6 = [x: number, y: number, z: number, roll: number, yaw: number, pitch: number];
export type Mat4 = Float64Array;

const DEG = Math.PI / 180;

export function identity4(): Mat4 {
  const m = new Float64Array(16);
  m[0] = m[5] = m[10] = m[15] = 1;
  return m;
}

export function mat4FromRows(rows: ArrayLike<ArrayLike<number>>): Mat4 {
  const m = new Float64Array(16);
  for (let r = 0; r < 4; r++) for (let c = 0; c < 4; c++) m[r * 4 + c] = rows[r][c];
  return m;
}

export function mat4ToRows(m: Mat4): number[][] {
  return [0, 1, 2, 3].map((r) => [m[r * 4], m[r * 4 + 1], m[r * 4 + 2], m[r * 4 + 3]]);
}

/**
 * CARLA's Transform.get_matrix: OpenCOOD/HEAL `x_to_world`. Returns T_{world←x}.
 *
 * `precision: 'float32'` is x_to_world of a float32 pose, as HEAL computes a camera's pose (it casts
 * the YAML `cords` to float32 first): numpy then rounds the pose, the radians, every sine, cosine
 * and product to float32 and stores the results in a float64 matrix. The camera→LiDAR transform
 * differs from the float64 one by up to 1e-6 m (world coordinates near 20 m lose their low bits).
 * Sines and cosines here are correctly rounded; numpy's SIMD float32 ones may differ in the last
 * bit for some angles (exact for the 0°, ±100°, 180° camera mounts of OPV2V).
 */
export function poseToMatrix(pose: ArrayLike<number>, precision: 'float64' | 'float32' = 'float64'): Mat4 {
  const r = precision === 'float32' ? Math.fround : (v: number) => v;
  const [x, y, z, roll, yaw, pitch] = [r(pose[0]), r(pose[1]), r(pose[2]), r(pose[3]), r(pose[4]), r(pose[5])];
  const deg = r(DEG);
  const cy = r(Math.cos(r(yaw * deg))),
    sy = r(Math.sin(r(yaw * deg)));
  const cr = r(Math.cos(r(roll * deg))),
    sr = r(Math.sin(r(roll * deg)));
  const cp = r(Math.cos(r(pitch * deg))),
    sp = r(Math.sin(r(pitch * deg)));
  const m = new Float64Array(16);
  m[0] = r(cp * cy);
  m[1] = r(r(r(cy * sp) * sr) - r(sy * cr));
  m[2] = r(r(r(-cy * sp) * cr) - r(sy * sr));
  m[3] = x;
  m[4] = r(sy * cp);
  m[5] = r(r(r(sy * sp) * sr) + r(cy * cr));
  m[6] = r(r(r(-sy * sp) * cr) + r(cy * sr));
  m[7] = y;
  m[8] = sp;
  m[9] = r(-cp * sr);
  m[10] = r(cp * cr);
  m[11] = z;
  m[15] = 1;
  return m;
}

/** HEAL `tfm_to_pose`: the inverse of poseToMatrix for any proper rotation. */
export function matrixToPose(m: Mat4): Pose6 {
  const yaw = Math.atan2(m[4], m[0]);
  const roll = Math.atan2(-m[9], m[10]);
  const pitch = Math.atan2(m[8], Math.hypot(m[9], m[10]));
  return [m[3], m[7], m[11], roll / DEG, yaw / DEG, pitch / DEG];
}

export function multiply(a: Mat4, b: Mat4): Mat4 {
  const out = new Float64Array(16);
  for (let r = 0; r < 4; r++) {
    for (let c = 0; c < 4; c++) {
      out[r * 4 + c] = a[r * 4] * b[c] + a[r * 4 + 1] * b[4 + c] + a[r * 4 + 2] * b[8 + c] + a[r * 4 + 3] * b[12 + c];
    }
  }
  return out;
}

/**
 * General 4×4 inverse (Gauss-Jordan with partial pivoting). Calibration matrices from real
 * datasets are not exactly orthonormal, so the rigid shortcut R^T would drift from HEAL's solve().
 */
export function invert(m: Mat4): Mat4 {
  const a = Array.from(m);
  const inv = Array.from(identity4());
  for (let col = 0; col < 4; col++) {
    let pivot = col;
    for (let r = col + 1; r < 4; r++) if (Math.abs(a[r * 4 + col]) > Math.abs(a[pivot * 4 + col])) pivot = r;
    const p = a[pivot * 4 + col];
    if (Math.abs(p) < 1e-12) throw new Error('invert: matrix is singular');
    if (pivot !== col) {
      for (let c = 0; c < 4; c++) {
        [a[col * 4 + c], a[pivot * 4 + c]] = [a[pivot * 4 + c], a[col * 4 + c]];
        [inv[col * 4 + c], inv[pivot * 4 + c]] = [inv[pivot * 4 + c], inv[col * 4 + c]];
      }
    }
    for (let c = 0; c < 4; c++) {
      a[col * 4 + c] /= p;
      inv[col * 4 + c] /= p;
    }
    for (let r = 0; r < 4; r++) {
      if (r === col) continue;
      const f = a[r * 4 + col];
      if (f === 0) continue;
      for (let c = 0; c < 4; c++) {
        a[r * 4 + c] -= f * a[col * 4 + c];
        inv[r * 4 + c] -= f * inv[col * 4 + c];
      }
    }
  }
  return Float64Array.from(inv);
}

/** OpenCOOD `x1_to_x2`: T_{2←1} = inv(T_{world←2}) · T_{world←1}. */
export function x1ToX2(pose1: ArrayLike<number>, pose2: ArrayLike<number>): Mat4 {
  return multiply(invert(poseToMatrix(pose2)), poseToMatrix(pose1));
}

/** T_{to←from} from two world-frame matrices. */
export function relative(worldFromA: Mat4, worldFromB: Mat4): Mat4 {
  return multiply(invert(worldFromB), worldFromA);
}

export function transformPoint(m: Mat4, x: number, y: number, z: number): [number, number, number] {
  return [m[0] * x + m[1] * y + m[2] * z + m[3], m[4] * x + m[5] * y + m[6] * z + m[7], m[8] * x + m[9] * y + m[10] * z + m[11]];
}

/**
 * Transforms the xyz of N×stride packed points (stride ≥ 3, extra columns such as intensity
 * are copied). Writes into `out` when given, which may alias `points`.
 */
export function transformPoints(m: Mat4, points: Float32Array, stride = 4, out?: Float32Array): Float32Array {
  const dst = out ?? new Float32Array(points.length);
  const n = Math.floor(points.length / stride);
  for (let i = 0; i < n; i++) {
    const o = i * stride;
    const x = points[o],
      y = points[o + 1],
      z = points[o + 2];
    dst[o] = m[0] * x + m[1] * y + m[2] * z + m[3];
    dst[o + 1] = m[4] * x + m[5] * y + m[6] * z + m[7];
    dst[o + 2] = m[8] * x + m[9] * y + m[10] * z + m[11];
    if (dst !== points) for (let k = 3; k < stride; k++) dst[o + k] = points[o + k];
  }
  return dst;
}

/** Rotation + translation from DAIR-style calibration JSON: R 3×3 nested, t 3×1 nested or flat. */
export function mat4FromRt(R: number[][], t: number[] | number[][]): Mat4 {
  const tv = (t as (number | number[])[]).map((v) => (Array.isArray(v) ? v[0] : v));
  return mat4FromRows([
    [R[0][0], R[0][1], R[0][2], tv[0]],
    [R[1][0], R[1][1], R[1][2], tv[1]],
    [R[2][0], R[2][1], R[2][2], tv[2]],
    [0, 0, 0, 1],
  ]);
}

export function isFiniteMatrix(m: ArrayLike<number>): boolean {
  for (let i = 0; i < m.length; i++) if (!Number.isFinite(m[i])) return false;
  return true;
}

export const degToRad = (d: number) => d * DEG;
export const radToDeg = (r: number) => r / DEG;

/** OpenCOOD `limit_period`: v − floor(v/period + offset)·period. */
export function limitPeriod(v: number, offset: number, period: number): number {
  return v - Math.floor(v / period + offset) * period;
}

// Convex polygons in the BEV plane: area, intersection and rotated IoU.
//
// A polygon is a flat array [x0, y0, x1, y1, ...] of its vertices in order, either winding.
// Box footprints are 4-vertex polygons from bevCorners / bevFromCorners (boxes.ts): corners 0..3,
// the bottom face, which is what OpenCOOD/HEAL hand to shapely for evaluation and NMS (§3.2, §4.7).
// Everything here assumes convex input; a rectangle footprint always is.

/** Shoelace area: positive for counter-clockwise vertices in an x-right/y-up picture. */
export function signedArea(poly: ArrayLike<number>): number {
  const n = poly.length >> 1;
  let s = 0;
  for (let i = 0, j = n - 1; i < n; j = i++) {
    s += poly[j * 2] * poly[i * 2 + 1] - poly[i * 2] * poly[j * 2 + 1];
  }
  return s / 2;
}

export function polygonArea(poly: ArrayLike<number>): number {
  return Math.abs(signedArea(poly));
}

/**
 * Intersection of two convex polygons (Sutherland–Hodgman: clip `subject` by each edge of `clip`).
 * Either winding works for both. Identical, touching or degenerate inputs give a polygon of the
 * right (possibly zero) area, possibly with repeated vertices; no overlap gives an empty array.
 */
export function clipConvex(subject: ArrayLike<number>, clip: ArrayLike<number>): Float64Array {
  const m = clip.length >> 1;
  if (subject.length < 6 || m < 3) return new Float64Array(0);
  const orientation = Math.sign(signedArea(clip));
  // A zero-area clip polygon (a segment or point) cannot contain any area.
  if (orientation === 0) return new Float64Array(0);

  let input: number[] = Array.from(subject);
  let output: number[] = [];
  for (let e = 0; e < m && input.length >= 6; e++) {
    const ax = clip[e * 2],
      ay = clip[e * 2 + 1];
    const f = (e + 1) % m;
    // Scaling by the orientation makes "inside" mean d >= 0 for either winding of `clip`.
    const ex = (clip[f * 2] - ax) * orientation,
      ey = (clip[f * 2 + 1] - ay) * orientation;
    const side = (x: number, y: number) => ex * (y - ay) - ey * (x - ax);

    output = [];
    const k = input.length >> 1;
    let px = input[(k - 1) * 2],
      py = input[(k - 1) * 2 + 1];
    let dp = side(px, py);
    for (let i = 0; i < k; i++) {
      const qx = input[i * 2],
        qy = input[i * 2 + 1];
      const dq = side(qx, qy);
      // Points on the edge line count as inside, so identical and touching polygons keep their
      // shared vertices instead of producing near-duplicate intersection points.
      if (dq >= 0) {
        if (dp < 0) pushCrossing(output, px, py, dp, qx, qy, dq);
        output.push(qx, qy);
      } else if (dp >= 0) {
        pushCrossing(output, px, py, dp, qx, qy, dq);
      }
      px = qx;
      py = qy;
      dp = dq;
    }
    input = output;
  }
  return input.length >= 6 ? Float64Array.from(input) : new Float64Array(0);
}

// The two signs differ (one >= 0, one < 0), so dp - dq is never zero.
function pushCrossing(out: number[], px: number, py: number, dp: number, qx: number, qy: number, dq: number): void {
  const t = dp / (dp - dq);
  out.push(px + (qx - px) * t, py + (qy - py) * t);
}

/** Axis-aligned bounds [xmin, ymin, xmax, ymax]. */
export function polygonBounds(poly: ArrayLike<number>): [number, number, number, number] {
  let x0 = Infinity,
    y0 = Infinity,
    x1 = -Infinity,
    y1 = -Infinity;
  for (let i = 0; i + 1 < poly.length; i += 2) {
    const x = poly[i],
      y = poly[i + 1];
    if (x < x0) x0 = x;
    if (x > x1) x1 = x;
    if (y < y0) y0 = y;
    if (y > y1) y1 = y;
  }
  return [x0, y0, x1, y1];
}

/**
 * Rotated BEV IoU of two convex footprints, in [0, 1]. Zero-area footprints give 0 rather than
 * NaN (shapely would give 0/0).
 */
export function bevIoU(a: ArrayLike<number>, b: ArrayLike<number>): number {
  return iouWithAreas(a, polygonArea(a), b, polygonArea(b));
}

function iouWithAreas(a: ArrayLike<number>, areaA: number, b: ArrayLike<number>, areaB: number): number {
  if (!(areaA > 0) || !(areaB > 0)) return 0;
  const inter = polygonArea(clipConvex(a, b));
  const union = areaA + areaB - inter;
  if (!(union > 0)) return 0;
  return Math.min(1, Math.max(0, inter / union));
}

/**
 * Areas and axis-aligned bounds of many footprints, computed once so that pairwise IoU can skip
 * pairs whose bounds do not overlap (most pairs in a real scene).
 */
export interface PreparedFootprints {
  polys: readonly ArrayLike<number>[];
  areas: Float64Array;
  /** [xmin, ymin, xmax, ymax] per footprint, flattened. */
  bounds: Float64Array;
}

export function prepareFootprints(polys: readonly ArrayLike<number>[]): PreparedFootprints {
  const areas = new Float64Array(polys.length);
  const bounds = new Float64Array(polys.length * 4);
  polys.forEach((p, i) => {
    if (p.length < 6 || p.length % 2 !== 0) {
      throw new RangeError(`footprint ${i} has ${p.length} coordinates; expected an even count of at least 6`);
    }
    areas[i] = polygonArea(p);
    bounds.set(polygonBounds(p), i * 4);
  });
  return { polys, areas, bounds };
}

/** IoU of footprint i of `a` with footprint j of `b`, with the bounding-box pre-check. */
export function preparedIoU(a: PreparedFootprints, i: number, b: PreparedFootprints, j: number): number {
  const ba = a.bounds,
    bb = b.bounds;
  // Bounds that only touch give zero intersection area, so `<=` can skip them too.
  if (ba[i * 4 + 2] <= bb[j * 4] || bb[j * 4 + 2] <= ba[i * 4] || ba[i * 4 + 3] <= bb[j * 4 + 1] || bb[j * 4 + 3] <= ba[i * 4 + 1]) return 0;
  return iouWithAreas(a.polys[i], a.areas[i], b.polys[j], b.areas[j]);
}

/** IoU matrix, row-major a.length × b.length: entry [i * b.length + j] = bevIoU(a[i], b[j]). */
export function bevIoUMatrix(a: readonly ArrayLike<number>[], b: readonly ArrayLike<number>[]): Float64Array {
  const pa = prepareFootprints(a);
  const pb = a === b ? pa : prepareFootprints(b);
  const out = new Float64Array(a.length * b.length);
  for (let i = 0; i < a.length; i++) {
    for (let j = 0; j < b.length; j++) out[i * b.length + j] = preparedIoU(pa, i, pb, j);
  }
  return out;
}

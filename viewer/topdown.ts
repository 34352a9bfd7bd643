// Top-down (BEV) picture of one cooperative frame: every agent's points in the ego LiDAR frame,
// coloured by agent, the cooperative GT boxes, agent markers, a scale bar and a legend.
//
// OPV2V frames are left-handed (x forward, y right), so x is drawn up and y to the right: the
// picture then looks like the scene seen from above, not mirrored.

import type { Dataset, FrameRef, LidarBeams } from '../datasets/dataset.ts';
import type { AgentKind, GtBox, RgbImage } from '../datasets/frame.ts';
import { type Mat4, relative } from '../datasets/geometry/transforms.ts';
import { bevCorners } from '../datasets/geometry/boxes.ts';
import { encodeRgbPng } from '../datasets/png.ts';
import { writeFileAtomic } from '../datasets/io.ts';
import { DEFAULT_COMM_RANGE } from '../datasets/opv2v.ts';

export interface TopDownOptions {
  /** Default: the frame's default ego (first of ref.agentIds). */
  egoId?: number;
  lidar?: LidarBeams;
  /** Half-width of the square view in meters. Default 60. */
  rangeM?: number;
  /** Picture side in pixels. Default 800. */
  size?: number;
  /** Agents farther than this from the ego (XY) contribute neither points nor boxes. Default 70. */
  commRange?: number;
}

export interface TopDownAgent {
  id: number;
  kind: AgentKind;
  /** T_{ego←agent}. */
  egoFromAgent: Mat4;
  /** N×4 points in the agent's own LiDAR frame; omitted for agents out of comm range. */
  points?: Float32Array;
}

export interface TopDownScene {
  title: string;
  egoId: number;
  agents: TopDownAgent[];
  /** Boxes in the ego LiDAR frame. */
  boxes: GtBox[];
}

export interface TopDownSummary {
  egoId: number;
  agents: number;
  agentsInRange: number;
  points: number;
  boxes: number;
}

type Rgb = readonly [number, number, number];

const BACKGROUND: Rgb = [16, 20, 24];
const GRID: Rgb = [38, 44, 52];
const BOX: Rgb = [255, 255, 255];
const BOX_FRONT: Rgb = [255, 70, 70];
const TEXT: Rgb = [235, 235, 235];
const PALETTE: Rgb[] = [
  [0, 200, 255],
  [255, 150, 40],
  [230, 80, 230],
  [240, 230, 60],
  [120, 230, 120],
  [255, 120, 160],
  [150, 150, 255],
  [180, 255, 230],
];

/** Reads every agent of the frame and draws it. */
export async function renderTopDown(ds: Dataset, ref: FrameRef, opts: TopDownOptions = {}): Promise<{ png: Buffer; summary: TopDownSummary }> {
  const egoId = opts.egoId ?? ref.agentIds[0];
  const commRange = opts.commRange ?? DEFAULT_COMM_RANGE;
  const ego = await ds.readAgentFrame(ref, egoId, { lidar: opts.lidar });
  const agents: TopDownAgent[] = [];
  let points = 0;
  let inRange = 0;
  for (const id of [egoId, ...ref.agentIds.filter((a) => a !== egoId)]) {
    const f = id === egoId ? ego : await ds.readAgentFrame(ref, id, { lidar: opts.lidar });
    const egoFromAgent = relative(f.lidarPose, ego.lidarPose);
    const dist = Math.hypot(egoFromAgent[3], egoFromAgent[7]);
    const within = dist <= commRange;
    agents.push({ id, kind: f.kind, egoFromAgent, points: within ? f.points : undefined });
    if (within) {
      inRange++;
      points += f.points.length / 4;
    }
  }
  const boxes = await ds.cooperativeBoxes(ref, egoId, { commRange });
  const title = `${ref.scenario} ${ref.timestamp}`;
  const img = drawTopDown({ title, egoId, agents, boxes }, opts);
  return {
    png: encodeRgbPng(img),
    summary: { egoId, agents: agents.length, agentsInRange: inRange, points, boxes: boxes.length },
  };
}

export async function writeTopDown(file: string, ds: Dataset, ref: FrameRef, opts: TopDownOptions = {}): Promise<TopDownSummary> {
  const { png, summary } = await renderTopDown(ds, ref, opts);
  await writeFileAtomic(file, png);
  return summary;
}

/** Pure raster drawing of a scene already expressed in the ego frame. */
export function drawTopDown(scene: TopDownScene, opts: { rangeM?: number; size?: number } = {}): RgbImage {
  const size = opts.size ?? 800;
  const range = opts.rangeM ?? 60;
  if (!(size >= 64 && size <= 8192)) throw new Error(`top-down size must be 64..8192 px, got ${size}`);
  if (!(range > 0)) throw new Error(`top-down range must be positive, got ${range}`);
  const c = new Canvas(size, size, BACKGROUND);
  const mPerPx = (2 * range) / size;
  const col = (y: number) => size / 2 + y / mPerPx;
  const row = (x: number) => size / 2 - x / mPerPx;

  const gridStep = niceStep(range / 3);
  for (let v = -Math.floor(range / gridStep) * gridStep; v <= range; v += gridStep) {
    c.line(Math.round(col(v)), 0, Math.round(col(v)), size - 1, GRID);
    c.line(0, Math.round(row(v)), size - 1, Math.round(row(v)), GRID);
  }

  const colour = (i: number) => PALETTE[i % PALETTE.length];
  // Ego last, so its own points stay on top of the others'.
  for (let i = scene.agents.length - 1; i >= 0; i--) {
    const a = scene.agents[i];
    if (!a.points) continue;
    const m = a.egoFromAgent,
      p = a.points,
      rgb = colour(i);
    for (let k = 0; k + 3 < p.length; k += 4) {
      const x = m[0] * p[k] + m[1] * p[k + 1] + m[2] * p[k + 2] + m[3];
      const y = m[4] * p[k] + m[5] * p[k + 1] + m[6] * p[k + 2] + m[7];
      c.set(Math.floor(col(y)), Math.floor(row(x)), rgb);
    }
  }

  for (const b of scene.boxes) {
    const q = bevCorners(b.box);
    const px = [0, 1, 2, 3].map((i) => [Math.round(col(q[i * 2 + 1])), Math.round(row(q[i * 2]))] as const);
    for (let i = 1; i <= 3; i++) c.line(px[i][0], px[i][1], px[(i + 1) % 4][0], px[(i + 1) % 4][1], BOX);
    c.line(px[0][0], px[0][1], px[1][0], px[1][1], BOX_FRONT);
    // Heading tick: centre to the middle of the front edge (corners 0–1).
    const cx = Math.round(col(b.box[1])),
      cy = Math.round(row(b.box[0]));
    c.line(cx, cy, Math.round((px[0][0] + px[1][0]) / 2), Math.round((px[0][1] + px[1][1]) / 2), BOX_FRONT);
  }

  scene.agents.forEach((a, i) => {
    const m = a.egoFromAgent;
    const ax = Math.round(col(m[7])),
      ay = Math.round(row(m[3]));
    // Heading on screen: the agent's x axis, with screen up = ego x and screen right = ego y.
    const hx = m[4],
      hy = -m[0];
    const hn = Math.hypot(hx, hy) || 1;
    const ux = hx / hn,
      uy = hy / hn;
    if (a.kind === 'rsu') {
      c.fillRect(ax - 6, ay - 6, 13, 13, TEXT);
      c.fillRect(ax - 4, ay - 4, 9, 9, colour(i));
    } else {
      const tip = [ax + ux * 12, ay + uy * 12];
      const l = [ax - ux * 6 - uy * 7, ay - uy * 6 + ux * 7];
      const r = [ax - ux * 6 + uy * 7, ay - uy * 6 - ux * 7];
      c.fillTriangle(tip, l, r, colour(i));
      c.line(Math.round(tip[0]), Math.round(tip[1]), Math.round(l[0]), Math.round(l[1]), TEXT);
      c.line(Math.round(l[0]), Math.round(l[1]), Math.round(r[0]), Math.round(r[1]), TEXT);
      c.line(Math.round(r[0]), Math.round(r[1]), Math.round(tip[0]), Math.round(tip[1]), TEXT);
    }
    c.label(String(a.id), ax + 10, ay + 8, TEXT);
  });

  // Legend, top left.
  let y = 8;
  c.label(scene.title, 8, y, TEXT);
  y += 16;
  scene.agents.forEach((a, i) => {
    c.fillRect(8, y + 1, 10, 10, colour(i));
    const role = a.id === scene.egoId ? 'EGO' : a.kind === 'rsu' ? 'RSU' : 'CAV';
    c.label(`${a.id} ${role}${a.points ? '' : ' (OUT OF RANGE)'}`, 24, y, TEXT);
    y += 16;
  });
  c.fillRect(8, y + 5, 10, 2, BOX);
  c.label(`GT BOXES ${scene.boxes.length}`, 24, y, TEXT);

  // Scale bar, bottom left.
  const barM = niceStep(range / 4);
  const barPx = Math.round(barM / mPerPx);
  const by = size - 16;
  c.fillRect(12, by, barPx, 3, TEXT);
  c.fillRect(12, by - 5, 2, 13, TEXT);
  c.fillRect(12 + barPx - 2, by - 5, 2, 13, TEXT);
  c.label(`${barM} M`, 20 + barPx, by - 4, TEXT);

  return { width: size, height: size, data: c.data };
}

/** The largest of 1, 2, 5 × 10^k not above v. */
function niceStep(v: number): number {
  const p = 10 ** Math.floor(Math.log10(v));
  for (const k of [5, 2, 1]) if (k * p <= v) return k * p;
  return p;
}

class Canvas {
  readonly data: Uint8Array;

  constructor(
    readonly width: number,
    readonly height: number,
    bg: Rgb,
  ) {
    this.data = new Uint8Array(width * height * 3);
    for (let i = 0; i < width * height; i++) this.data.set(bg, i * 3);
  }

  set(x: number, y: number, rgb: Rgb): void {
    if (x < 0 || y < 0 || x >= this.width || y >= this.height) return;
    const o = (y * this.width + x) * 3;
    this.data[o] = rgb[0];
    this.data[o + 1] = rgb[1];
    this.data[o + 2] = rgb[2];
  }

  /**
   * Bresenham, clipping per pixel. Box edges and grid lines are at most a few canvas sizes long;
   * anything longer can only come from absurd coordinates and is not drawn at all.
   */
  line(x0: number, y0: number, x1: number, y1: number, rgb: Rgb): void {
    if (!Number.isFinite(x0 + y0 + x1 + y1)) return;
    const dx = Math.abs(x1 - x0),
      dy = -Math.abs(y1 - y0);
    if (dx - dy > 8 * (this.width + this.height)) return;
    const sx = x0 < x1 ? 1 : -1,
      sy = y0 < y1 ? 1 : -1;
    let err = dx + dy;
    for (;;) {
      this.set(x0, y0, rgb);
      if (x0 === x1 && y0 === y1) return;
      const e2 = 2 * err;
      if (e2 >= dy) {
        err += dy;
        x0 += sx;
      }
      if (e2 <= dx) {
        err += dx;
        y0 += sy;
      }
    }
  }

  fillRect(x: number, y: number, w: number, h: number, rgb: Rgb): void {
    for (let j = 0; j < h; j++) for (let i = 0; i < w; i++) this.set(x + i, y + j, rgb);
  }

  fillTriangle(a: number[], b: number[], c: number[], rgb: Rgb): void {
    const minX = Math.floor(Math.min(a[0], b[0], c[0])),
      maxX = Math.ceil(Math.max(a[0], b[0], c[0]));
    const minY = Math.floor(Math.min(a[1], b[1], c[1])),
      maxY = Math.ceil(Math.max(a[1], b[1], c[1]));
    const edge = (p: number[], q: number[], x: number, y: number) => (q[0] - p[0]) * (y - p[1]) - (q[1] - p[1]) * (x - p[0]);
    for (let y = minY; y <= maxY; y++) {
      for (let x = minX; x <= maxX; x++) {
        const e0 = edge(a, b, x, y),
          e1 = edge(b, c, x, y),
          e2 = edge(c, a, x, y);
        if ((e0 >= 0 && e1 >= 0 && e2 >= 0) || (e0 <= 0 && e1 <= 0 && e2 <= 0)) this.set(x, y, rgb);
      }
    }
  }

  /** Text in a 3×5 font drawn at 2× on a dark backing so it stays readable over points. */
  label(text: string, x: number, y: number, rgb: Rgb): void {
    const s = text.toUpperCase();
    const scale = 2,
      advance = 4 * scale;
    this.fillRect(x - 2, y - 2, s.length * advance + 2, 5 * scale + 4, BACKGROUND);
    for (let k = 0; k < s.length; k++) {
      const glyph = FONT[s[k]] ?? FONT['?'];
      for (let r = 0; r < 5; r++) {
        for (let cI = 0; cI < 3; cI++) {
          if (glyph[r][cI] === '1') this.fillRect(x + k * advance + cI * scale, y + r * scale, scale, scale, rgb);
        }
      }
    }
  }
}

// A hand-drawn 3×5 pixel font: each glyph is five rows of three cells.
const FONT: Record<string, string[]> = {
  '0': ['111', '101', '101', '101', '111'],
  '1': ['010', '110', '010', '010', '111'],
  '2': ['111', '001', '111', '100', '111'],
  '3': ['111', '001', '111', '001', '111'],
  '4': ['101', '101', '111', '001', '001'],
  '5': ['111', '100', '111', '001', '111'],
  '6': ['111', '100', '111', '101', '111'],
  '7': ['111', '001', '001', '001', '001'],
  '8': ['111', '101', '111', '101', '111'],
  '9': ['111', '101', '111', '001', '111'],
  A: ['010', '101', '111', '101', '101'],
  B: ['110', '101', '110', '101', '110'],
  C: ['011', '100', '100', '100', '011'],
  D: ['110', '101', '101', '101', '110'],
  E: ['111', '100', '110', '100', '111'],
  F: ['111', '100', '110', '100', '100'],
  G: ['011', '100', '101', '101', '011'],
  H: ['101', '101', '111', '101', '101'],
  I: ['111', '010', '010', '010', '111'],
  J: ['001', '001', '001', '101', '010'],
  K: ['101', '101', '110', '101', '101'],
  L: ['100', '100', '100', '100', '111'],
  M: ['101', '111', '111', '101', '101'],
  N: ['110', '101', '101', '101', '101'],
  O: ['010', '101', '101', '101', '010'],
  P: ['110', '101', '110', '100', '100'],
  Q: ['010', '101', '101', '110', '011'],
  R: ['110', '101', '110', '101', '101'],
  S: ['011', '100', '010', '001', '110'],
  T: ['111', '010', '010', '010', '010'],
  U: ['101', '101', '101', '101', '111'],
  V: ['101', '101', '101', '101', '010'],
  W: ['101', '101', '111', '111', '101'],
  X: ['101', '101', '010', '101', '101'],
  Y: ['101', '101', '010', '010', '010'],
  Z: ['111', '001', '010', '100', '111'],
  ' ': ['000', '000', '000', '000', '000'],
  '-': ['000', '000', '111', '000', '000'],
  '.': ['000', '000', '000', '000', '010'],
  ':': ['000', '010', '000', '010', '000'],
  '/': ['001', '001', '010', '100', '100'],
  '(': ['010', '100', '100', '100', '010'],
  ')': ['010', '001', '001', '001', '010'],
  _: ['000', '000', '000', '000', '111'],
  '?': ['111', '001', '010', '000', '010'],
};

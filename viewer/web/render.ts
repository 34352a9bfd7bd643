// The three.js side of heal view: turns one decoded healview.Frame into scene objects and keeps
// two cameras (top-down orthographic BEV, free perspective orbit). Everything is built in the
// ego's LiDAR frame inside one `root` group; a left-handed frame (OPV2V, CARLA) is drawn through
// a y-mirror of that group so that left and right look as they do in the world.

import * as THREE from 'three';
import { OrbitControls } from 'three/addons/controls/OrbitControls.js';
import { LineSegments2 } from 'three/addons/lines/LineSegments2.js';
import { LineSegmentsGeometry } from 'three/addons/lines/LineSegmentsGeometry.js';
import { LineMaterial } from 'three/addons/lines/LineMaterial.js';
import { CSS2DRenderer, CSS2DObject } from 'three/addons/renderers/CSS2DRenderer.js';
import type { ViewBox, ViewFrame } from './frame.ts';

export const COLORS = {
  background: 0x0b0f14,
  tp: 0x3ddc84,
  fp: 0xff4d5a,
  missed: 0xffb020,
  matched: 0x8fa3bf,
  link: 0x4fc3f7,
  linkOff: 0x5a6472,
  grid: 0x1b2430,
  range: 0x34465a,
};

/** Agent colours, ego first; points coloured by agent use the same ones. */
export const AGENT_COLORS = ['#4fc3f7', '#f06292', '#ffd54f', '#aed581', '#ba68c8', '#ff8a65', '#4db6ac', '#e0e0e0'];

export const STATUS = { TP: 1, FP: 2, MATCHED: 3, MISSED: 4 };

// Height colour map over the ground-aligned z range: the ground sits at -1.9 m, car roofs near 0,
// walls and poles above.
const HEIGHT_MIN = -2.2;
const HEIGHT_MAX = 2.5;
const HEIGHT_STOPS: [number, number[]][] = [
  [0.0, [0.19, 0.07, 0.23]],
  [0.15, [0.27, 0.35, 0.85]],
  [0.35, [0.11, 0.72, 0.88]],
  [0.55, [0.3, 0.95, 0.45]],
  [0.75, [0.98, 0.8, 0.2]],
  [0.9, [0.98, 0.45, 0.1]],
  [1.0, [0.8, 0.1, 0.05]],
];

export function heightColor(z: number, out = [0, 0, 0]): number[] {
  const t = Math.min(1, Math.max(0, (z - HEIGHT_MIN) / (HEIGHT_MAX - HEIGHT_MIN)));
  for (let i = 1; i < HEIGHT_STOPS.length; i++) {
    const [t1, c1] = HEIGHT_STOPS[i];
    if (t <= t1) {
      const [t0, c0] = HEIGHT_STOPS[i - 1];
      const f = (t - t0) / (t1 - t0);
      for (let k = 0; k < 3; k++) out[k] = c0[k] + f * (c1[k] - c0[k]);
      return out;
    }
  }
  return out;
}
export const HEIGHT_RANGE = [HEIGHT_MIN, HEIGHT_MAX];
export const HEIGHT_GRADIENT = HEIGHT_STOPS.map(([t, c]) => `rgb(${c.map((v) => Math.round(v * 255)).join(',')}) ${t * 100}%`).join(', ');

// Box edges over heal's corner order (0..3 bottom, 4..7 top; 0,1,4,5 are the front face).
const EDGES: [number, number][] = [
  [0, 1],
  [1, 2],
  [2, 3],
  [3, 0],
  [4, 5],
  [5, 6],
  [6, 7],
  [7, 4],
  [0, 4],
  [1, 5],
  [2, 6],
  [3, 7],
  [0, 5],
  [1, 4],
];
/** Segments drawn per box: 12 edges and an X on the front face that shows the heading. */
export const SEGMENTS_PER_BOX = EDGES.length;

function disposeTree(obj: THREE.Object3D) {
  obj.traverse((o) => {
    const drawn = o as Partial<Pick<THREE.Mesh, 'geometry' | 'material'>>;
    drawn.geometry?.dispose();
    if (drawn.material)
      (Array.isArray(drawn.material) ? drawn.material : [drawn.material]).forEach((m) => {
        (m as THREE.MeshBasicMaterial).map?.dispose();
        m.dispose();
      });
    if (o instanceof CSS2DObject) o.element.remove();
  });
}

// Foreground probability → RGBA: transparent where empty, a warm ramp where the fusion sees objects.
const FG_STOPS: [number, number[]][] = [
  [0, [40, 20, 90]],
  [0.5, [190, 40, 130]],
  [0.8, [250, 120, 60]],
  [1, [255, 235, 120]],
];
function foregroundRGBA(p: number): number[] {
  const t = p / 255;
  let c = FG_STOPS[FG_STOPS.length - 1][1];
  for (let i = 1; i < FG_STOPS.length; i++) {
    if (t <= FG_STOPS[i][0]) {
      const [t0, c0] = FG_STOPS[i - 1],
        [t1, c1] = FG_STOPS[i];
      const f = (t - t0) / (t1 - t0);
      c = c0.map((v, k) => v + f * (c1[k] - v));
      break;
    }
  }
  // Low probabilities fade out so that points and boxes stay readable on top.
  return [c[0], c[1], c[2], Math.round(255 * fgAlpha(t))];
}
const fgAlpha = (t: number) => 0.55 * t ** 2;
export const FOREGROUND_GRADIENT = FG_STOPS.map(([t, c]) => `rgba(${c.join(',')},${Math.max(0.15, fgAlpha(t)).toFixed(2)}) ${t * 100}%`).join(', ');

const LAYERS = ['grid', 'points', 'gt', 'pred', 'agents', 'links', 'foreground', 'labels'] as const;
export type LayerName = (typeof LAYERS)[number];

export interface Counts {
  points: number;
  gtBoxes: number;
  predBoxes: number;
  tp: number;
  fp: number;
  miss: number;
  agents: number;
}

interface LineOptions {
  opacity?: number;
  dashed?: boolean;
  /** Drawn over everything (no depth test). */
  overlay?: boolean;
}

export class SceneView {
  readonly container: HTMLElement;
  readonly renderer: THREE.WebGLRenderer;
  readonly labels: CSS2DRenderer;
  readonly scene: THREE.Scene;
  readonly root: THREE.Group;
  readonly layers = {} as Record<LayerName, THREE.Group>;
  lineMaterials: LineMaterial[] = [];
  readonly bevCamera: THREE.OrthographicCamera;
  readonly orbitCamera: THREE.PerspectiveCamera;
  readonly bevControls: OrbitControls;
  readonly orbitControls: OrbitControls;
  view: 'bev' | 'orbit' = 'bev';
  halfExtent = 55;
  aspect = 1;
  groundZ = -1.9;
  pending = 0;
  pointColorMode = 'agent';
  foregroundLevel = 0;
  foregroundAgent = 'max';
  frame: ViewFrame | null = null;
  counts: Counts = { points: 0, gtBoxes: 0, predBoxes: 0, tp: 0, fp: 0, miss: 0, agents: 0 };
  pointsObject: THREE.Points<THREE.BufferGeometry, THREE.PointsMaterial> | null = null;
  gtMatchedObject: LineSegments2 | null = null;
  gtMissedObject: LineSegments2 | null = null;
  tpObject: LineSegments2 | null = null;
  fpObject: LineSegments2 | null = null;
  agentMarkers = 0;

  constructor(container: HTMLElement) {
    this.container = container;
    this.renderer = new THREE.WebGLRenderer({ antialias: true, preserveDrawingBuffer: true });
    this.renderer.setPixelRatio(Math.min(window.devicePixelRatio, 2));
    this.renderer.setClearColor(COLORS.background, 1);
    container.appendChild(this.renderer.domElement);
    this.labels = new CSS2DRenderer();
    this.labels.domElement.className = 'labels';
    container.appendChild(this.labels.domElement);

    this.scene = new THREE.Scene();
    this.root = new THREE.Group();
    this.scene.add(this.root);
    for (const name of LAYERS) {
      const g = new THREE.Group();
      g.name = name;
      this.layers[name] = g;
      this.root.add(g);
    }

    this.bevCamera = new THREE.OrthographicCamera(-1, 1, 1, -1, 0.1, 2000);
    this.bevCamera.up.set(1, 0, 0);
    this.orbitCamera = new THREE.PerspectiveCamera(55, 1, 0.5, 3000);
    this.orbitCamera.up.set(0, 0, 1);
    this.bevControls = new OrbitControls(this.bevCamera, this.labels.domElement);
    this.bevControls.enableRotate = false;
    this.bevControls.screenSpacePanning = true;
    this.bevControls.zoomToCursor = true;
    this.orbitControls = new OrbitControls(this.orbitCamera, this.labels.domElement);
    this.orbitControls.maxPolarAngle = Math.PI * 0.49;
    for (const c of [this.bevControls, this.orbitControls]) c.addEventListener('change', () => this.requestRender());
    this.resetCameras();
    this.setView('bev');

    new ResizeObserver(() => this.resize()).observe(container);
    this.resize();
  }

  resize() {
    const w = Math.max(1, this.container.clientWidth),
      h = Math.max(1, this.container.clientHeight);
    this.renderer.setSize(w, h, false);
    this.renderer.domElement.style.width = `${w}px`;
    this.renderer.domElement.style.height = `${h}px`;
    this.labels.setSize(w, h);
    this.aspect = w / h;
    this.orbitCamera.aspect = this.aspect;
    this.orbitCamera.updateProjectionMatrix();
    this.fitBev();
    for (const m of this.lineMaterials) m.resolution.set(w, h);
    this.requestRender();
  }

  fitBev() {
    const e = this.halfExtent;
    const c = this.bevCamera;
    // Screen up is the ego's forward (x), so the vertical extent spans x.
    c.top = e;
    c.bottom = -e;
    c.left = -e * this.aspect;
    c.right = e * this.aspect;
    c.updateProjectionMatrix();
  }

  resetCameras() {
    this.bevCamera.position.set(0, 0, 400);
    this.bevCamera.zoom = 1;
    this.bevControls.target.set(0, 0, 0);
    this.bevCamera.lookAt(0, 0, 0);
    this.bevControls.update();
    this.orbitCamera.position.set(-38, 0, 30);
    this.orbitControls.target.set(8, 0, -1.9);
    this.orbitControls.update();
    this.requestRender();
  }

  setView(view: string) {
    this.view = view === 'orbit' ? 'orbit' : 'bev';
    this.bevControls.enabled = this.view === 'bev';
    this.orbitControls.enabled = this.view === 'orbit';
    this.requestRender();
  }

  get camera() {
    return this.view === 'bev' ? this.bevCamera : this.orbitCamera;
  }

  requestRender() {
    if (this.pending) return;
    this.pending = requestAnimationFrame(() => {
      this.pending = 0;
      this.renderNow();
    });
  }

  renderNow() {
    this.renderer.render(this.scene, this.camera);
    this.labels.render(this.scene, this.camera);
  }

  setLayerVisible(name: string, visible: boolean) {
    if (Object.hasOwn(this.layers, name)) this.layers[name as LayerName].visible = visible;
    this.requestRender();
  }

  lineMaterial(color: number, width: number, opts: LineOptions = {}) {
    // Fat lines are quads built in clip space; the y-mirror of a left-handed frame flips their
    // winding, so they must not be face-culled.
    const m = new LineMaterial({
      color,
      linewidth: width,
      transparent: opts.opacity !== undefined,
      opacity: opts.opacity ?? 1,
      dashed: !!opts.dashed,
      dashSize: 2,
      gapSize: 1.5,
      side: THREE.DoubleSide,
      depthTest: !opts.overlay,
    });
    m.resolution.set(this.container.clientWidth, this.container.clientHeight);
    this.lineMaterials.push(m);
    return m;
  }

  clearLayer(name: LayerName) {
    const g = this.layers[name];
    for (const c of [...g.children]) {
      g.remove(c);
      disposeTree(c);
    }
  }

  /** Line segments from a flat [x0,y0,z0,x1,y1,z1, ...] list; returns the object, or null when empty. */
  segments(positions: number[], color: number, width: number, opts?: LineOptions): LineSegments2 | null {
    if (!positions.length) return null;
    const geom = new LineSegmentsGeometry();
    geom.setPositions(positions);
    const line = new LineSegments2(geom, this.lineMaterial(color, width, opts));
    if (opts?.dashed) line.computeLineDistances();
    if (opts?.overlay) line.renderOrder = 10;
    return line;
  }

  /** Number of segments actually held by a LineSegments2 (0 for null). */
  static segmentCount(obj: LineSegments2 | null): number {
    return obj ? obj.geometry.attributes.instanceStart.count : 0;
  }

  show(frame: ViewFrame): Counts {
    this.frame = frame;
    this.root.scale.set(1, frame.leftHanded ? -1 : 1, 1);
    for (const name of LAYERS) this.clearLayer(name);
    this.lineMaterials = [];
    const [xmin, ymin, _zmin, xmax, ymax] = frame.range.length === 6 ? frame.range : [-51.2, -51.2, -3, 51.2, 51.2, 1];
    this.groundZ = -1.9;
    this.halfExtent = Math.max(xmax - xmin, ymax - ymin) / 2 + 4;
    this.fitBev();
    this.buildGrid(xmin, ymin, xmax, ymax);
    this.buildPoints();
    this.buildBoxes();
    this.buildAgents();
    this.buildForeground();
    this.updateCounts();
    this.requestRender();
    return this.counts;
  }

  buildGrid(xmin: number, ymin: number, xmax: number, ymax: number) {
    const z = this.groundZ - 0.05;
    const p = [];
    for (let x = Math.ceil(xmin / 10) * 10; x <= xmax; x += 10) p.push(x, ymin, z, x, ymax, z);
    for (let y = Math.ceil(ymin / 10) * 10; y <= ymax; y += 10) p.push(xmin, y, z, xmax, y, z);
    const grid = this.segments(p, COLORS.grid, 1)!;
    grid.renderOrder = -2;
    this.layers.grid.add(grid);
    const r = [xmin, ymin, z, xmax, ymin, z, xmax, ymin, z, xmax, ymax, z, xmax, ymax, z, xmin, ymax, z, xmin, ymax, z, xmin, ymin, z];
    this.layers.grid.add(this.segments(r, COLORS.range, 1.5)!);
    for (let d = 20; d <= Math.max(xmax, ymax); d += 20) {
      const el = document.createElement('div');
      el.className = 'grid-label';
      el.textContent = `${d} m`;
      const o = new CSS2DObject(el);
      o.position.set(d, ymin, z);
      this.layers.grid.add(o);
    }
  }

  buildPoints() {
    const f = this.frame!;
    const n = f.points?.count ?? 0;
    if (!f.points || !n) {
      this.pointsObject = null;
      return;
    }
    // Decoded bytes may sit at any offset of the message buffer; copy to get an aligned Float32Array.
    const xyz = new Float32Array(f.points.xyz.slice().buffer, 0, n * 3);
    const geom = new THREE.BufferGeometry();
    geom.setAttribute('position', new THREE.BufferAttribute(xyz, 3));
    geom.setAttribute('color', new THREE.BufferAttribute(new Float32Array(n * 3), 3));
    geom.computeBoundingSphere();
    const mat = new THREE.PointsMaterial({ size: 2, sizeAttenuation: false, vertexColors: true });
    const pts = new THREE.Points(geom, mat);
    pts.frustumCulled = false;
    this.pointsObject = pts;
    this.layers.points.add(pts);
    this.colorPoints();
  }

  setPointColorMode(mode: string) {
    this.pointColorMode = mode;
    this.colorPoints();
    this.requestRender();
  }

  colorPoints() {
    const pts = this.pointsObject;
    const f = this.frame;
    if (!pts || !f?.points) return;
    const pos = pts.geometry.attributes.position.array;
    const col = pts.geometry.attributes.color;
    const agentIdx = f.points.agent;
    const palette = AGENT_COLORS.map((c) => new THREE.Color(c));
    const tmp = [0, 0, 0];
    for (let i = 0; i < col.count; i++) {
      if (this.pointColorMode === 'height') {
        heightColor(pos[i * 3 + 2], tmp);
        col.array[i * 3] = tmp[0];
        col.array[i * 3 + 1] = tmp[1];
        col.array[i * 3 + 2] = tmp[2];
      } else {
        const c = palette[agentIdx[i] % palette.length];
        col.array[i * 3] = c.r;
        col.array[i * 3 + 1] = c.g;
        col.array[i * 3 + 2] = c.b;
      }
    }
    col.needsUpdate = true;
  }

  boxSegments(boxes: ViewBox[]): number[] {
    const p: number[] = [];
    for (const b of boxes) {
      const c = b.corners;
      for (const [i, j] of EDGES) p.push(c[i * 3], c[i * 3 + 1], c[i * 3 + 2], c[j * 3], c[j * 3 + 1], c[j * 3 + 2]);
    }
    return p;
  }

  buildBoxes() {
    const f = this.frame!;
    const add = (layer: THREE.Group, boxes: ViewBox[], color: number, width: number, opts?: LineOptions) => {
      const obj = this.segments(this.boxSegments(boxes), color, width, opts);
      if (obj) layer.add(obj);
      return obj;
    };
    this.gtMatchedObject = add(
      this.layers.gt,
      f.gt.filter((b) => b.status === STATUS.MATCHED),
      COLORS.matched,
      1.5,
      { opacity: 0.9 },
    );
    this.gtMissedObject = add(
      this.layers.gt,
      f.gt.filter((b) => b.status === STATUS.MISSED),
      COLORS.missed,
      2.5,
    );
    this.tpObject = add(
      this.layers.pred,
      f.predictions.filter((b) => b.status === STATUS.TP),
      COLORS.tp,
      2.5,
    );
    this.fpObject = add(
      this.layers.pred,
      f.predictions.filter((b) => b.status === STATUS.FP),
      COLORS.fp,
      2.5,
    );
  }

  buildAgents() {
    const f = this.frame!;
    const ego = f.agents.find((a) => a.ego);
    const links: number[] = [],
      linksOff: number[] = [];
    let markers = 0;
    f.agents.forEach((a, i) => {
      if (a.pose.length !== 16) return;
      const m = a.pose;
      const x = m[3],
        y = m[7],
        z = m[11];
      const color = new THREE.Color(AGENT_COLORS[i % AGENT_COLORS.length]);
      const g = new THREE.Group();
      g.name = `agent ${a.id}`;
      // The marker points along the agent's own x axis (its heading).
      const heading = Math.atan2(m[4], m[0]);
      g.position.set(x, y, this.groundZ + 0.1);
      g.rotation.z = heading;
      // Markers and links sit on top of the points: they are what the eye looks for first.
      const mat = new THREE.MeshBasicMaterial({ color, side: THREE.DoubleSide, transparent: true, opacity: 0.95, depthTest: false });
      if (a.kind === 'rsu') {
        const s = new THREE.Mesh(new THREE.BoxGeometry(2.2, 2.2, 0.3), mat);
        g.add(s);
        const mast = new THREE.Mesh(new THREE.CylinderGeometry(0.25, 0.25, z - this.groundZ, 8), mat.clone());
        mast.rotation.x = Math.PI / 2;
        mast.position.z = (z - this.groundZ) / 2;
        g.add(mast);
      } else {
        const shape = new THREE.Shape();
        shape.moveTo(3.2, 0);
        shape.lineTo(-1.8, 1.7);
        shape.lineTo(-0.9, 0);
        shape.lineTo(-1.8, -1.7);
        shape.closePath();
        g.add(new THREE.Mesh(new THREE.ShapeGeometry(shape), mat));
      }
      if (a.ego) {
        const ring = new THREE.Mesh(
          new THREE.RingGeometry(4.2, 4.8, 48),
          new THREE.MeshBasicMaterial({ color, side: THREE.DoubleSide, transparent: true, opacity: 0.7, depthTest: false }),
        );
        g.add(ring);
      }
      g.userData.agentId = a.id;
      g.traverse((o) => {
        o.renderOrder = 11;
      });
      this.layers.agents.add(g);
      markers++;

      const el = document.createElement('div');
      el.className = `agent-label${a.ego ? ' ego' : ''}${a.used || a.ego ? '' : ' unused'}`;
      el.style.borderColor = AGENT_COLORS[i % AGENT_COLORS.length];
      el.textContent = `${a.ego ? 'ego ' : a.kind === 'rsu' ? 'RSU ' : ''}${a.id} · ${a.type || '?'}`;
      const lbl = new CSS2DObject(el);
      lbl.position.set(x, y, this.groundZ + 3);
      lbl.center.set(0.5, 1.4);
      this.layers.labels.add(lbl);

      if (ego && !a.ego) {
        const e = ego.pose;
        (a.used ? links : linksOff).push(e[3], e[7], this.groundZ + 0.3, x, y, this.groundZ + 0.3);
      }
    });
    this.agentMarkers = markers;
    const on = this.segments(links, COLORS.link, 2, { opacity: 0.85, overlay: true });
    if (on) this.layers.links.add(on);
    const off = this.segments(linksOff, COLORS.linkOff, 1.5, { dashed: true, overlay: true });
    if (off) this.layers.links.add(off);
    if (ego) {
      // The communication range around the ego: agents outside it send nothing.
      const p: number[] = [];
      const r = 70,
        n = 96;
      for (let k = 0; k < n; k++) {
        const a0 = (k / n) * Math.PI * 2,
          a1 = ((k + 1) / n) * Math.PI * 2;
        p.push(r * Math.cos(a0), r * Math.sin(a0), this.groundZ, r * Math.cos(a1), r * Math.sin(a1), this.groundZ);
      }
      this.layers.links.add(this.segments(p, COLORS.linkOff, 1, { opacity: 0.5 })!);
    }
  }

  setForeground(level: number, agent: string) {
    this.foregroundLevel = level;
    this.foregroundAgent = agent;
    this.clearLayer('foreground');
    this.buildForeground();
    this.requestRender();
  }

  buildForeground() {
    const f = this.frame!;
    const lv = f.foreground.find((l) => l.level === this.foregroundLevel) ?? f.foreground[0];
    if (!lv) return;
    const { width: w, height: h, data } = lv;
    const A = lv.agents.length || Math.max(1, data.length / (w * h));
    const pick = this.foregroundAgent === 'max' ? -1 : lv.agents.indexOf(Number(this.foregroundAgent));
    const rgba = new Uint8Array(w * h * 4);
    for (let c = 0; c < w * h; c++) {
      let p = 0;
      if (pick >= 0) p = data[pick * w * h + c];
      else for (let a = 0; a < A; a++) p = Math.max(p, data[a * w * h + c]);
      const [r, g, b, al] = foregroundRGBA(p);
      rgba[c * 4] = r;
      rgba[c * 4 + 1] = g;
      rgba[c * 4 + 2] = b;
      rgba[c * 4 + 3] = al;
    }
    // Texel (column c, row r) covers x = xmin + c·cell, y = ymin + r·cell: DataTexture row 0 is v = 0 = ymin.
    const tex = new THREE.DataTexture(rgba, w, h, THREE.RGBAFormat);
    tex.magFilter = THREE.NearestFilter;
    tex.needsUpdate = true;
    const [xmin, ymin, , xmax, ymax] = f.range;
    const plane = new THREE.Mesh(
      new THREE.PlaneGeometry(xmax - xmin, ymax - ymin),
      new THREE.MeshBasicMaterial({ map: tex, transparent: true, side: THREE.DoubleSide, depthWrite: false }),
    );
    plane.position.set((xmin + xmax) / 2, (ymin + ymax) / 2, this.groundZ - 0.02);
    plane.renderOrder = -1;
    this.layers.foreground.add(plane);
  }

  /** Counts of what is in the scene graph now (not of what the server sent). */
  updateCounts() {
    const seg = SceneView.segmentCount;
    const per = SEGMENTS_PER_BOX;
    const matched = seg(this.gtMatchedObject) / per,
      missed = seg(this.gtMissedObject) / per;
    const tp = seg(this.tpObject) / per,
      fp = seg(this.fpObject) / per;
    this.counts = {
      points: this.pointsObject ? this.pointsObject.geometry.attributes.position.count : 0,
      gtBoxes: matched + missed,
      predBoxes: tp + fp,
      tp,
      fp,
      miss: missed,
      agents: this.layers.agents.children.length,
    };
  }

  /**
   * The box under a screen position: the ray is cut with the ground plane and the footprint
   * (corners 0..3) that contains that point wins, predictions before GT. Returns null when none.
   */
  pick(clientX: number, clientY: number): { kind: 'prediction' | 'gt'; box: ViewBox } | null {
    const f = this.frame;
    if (!f) return null;
    const rect = this.renderer.domElement.getBoundingClientRect();
    const ndc = new THREE.Vector2(((clientX - rect.left) / rect.width) * 2 - 1, -((clientY - rect.top) / rect.height) * 2 + 1);
    const ray = new THREE.Raycaster();
    ray.setFromCamera(ndc, this.camera);
    const hit = new THREE.Vector3();
    if (!ray.ray.intersectPlane(new THREE.Plane(new THREE.Vector3(0, 0, 1), -this.groundZ), hit)) return null;
    const x = hit.x,
      y = f.leftHanded ? -hit.y : hit.y;
    const inside = (c: number[]) => {
      let sign = 0;
      for (let i = 0; i < 4; i++) {
        const j = (i + 1) % 4;
        const cross = (c[j * 3] - c[i * 3]) * (y - c[i * 3 + 1]) - (c[j * 3 + 1] - c[i * 3 + 1]) * (x - c[i * 3]);
        if (cross !== 0) {
          if (sign && Math.sign(cross) !== sign) return false;
          sign = Math.sign(cross);
        }
      }
      return true;
    };
    const visible = (layer: LayerName) => this.layers[layer].visible;
    const pred = visible('pred') ? f.predictions.find((b) => inside(b.corners)) : undefined;
    if (pred) return { kind: 'prediction', box: pred };
    const gt = visible('gt') ? f.gt.find((b) => inside(b.corners)) : undefined;
    return gt ? { kind: 'gt', box: gt } : null;
  }

  /** Centres the active camera on an agent. */
  focusOn(agentId: number | null) {
    const a = this.frame?.agents.find((x) => x.id === agentId);
    if (a?.pose.length !== 16) return;
    const sy = this.frame!.leftHanded ? -1 : 1;
    const target = new THREE.Vector3(a.pose[3], sy * a.pose[7], 0);
    if (this.view === 'bev') {
      this.bevControls.target.copy(target);
      this.bevCamera.position.set(target.x, target.y, 400);
      this.bevControls.update();
    } else {
      const d = new THREE.Vector3().subVectors(this.orbitCamera.position, this.orbitControls.target);
      this.orbitControls.target.copy(target).setZ(-1.9);
      this.orbitCamera.position.copy(this.orbitControls.target).add(d);
      this.orbitControls.update();
    }
    this.requestRender();
  }
}

// Reader for OPV2V, OPV2V-H and V2XSet (formats.md §1): split/scenario/<cav id>/<ts>.{yaml,pcd,...}.
//
// Ground truth is rebuilt from the world-frame `vehicles` entries of each agent's YAML, projected
// into the requested LiDAR frame, exactly as OpenCOOD/HEAL do (formats.md §1.4).

import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import type { AgentInfo, Dataset, FrameRef, LidarBeams, ReadOptions, ScenarioInfo } from './dataset.ts';
import type { AgentFrame, AgentKind, CameraRecord, GtBox } from './frame.ts';
import { DataError, READ_CAPS, readFileChecked } from './io.ts';
import { type Mat4, poseToMatrix } from './geometry/transforms.ts';
import { cornersInRange, cornersToBox, worldObjectCorners } from './geometry/boxes.ts';
import { CAMERA_NAMES, type FrameYaml, parseFrameYaml } from './yaml.ts';
import { readPcd } from './pcd.ts';
import { readPngRgb } from './png.ts';

/** HEAL's default comm_range for OPV2V and V2XSet. */
export const DEFAULT_COMM_RANGE = 70;

export interface Opv2vReadOptions extends ReadOptions {
  /** Keep only boxes with all 8 corners inside [xmin, ymin, zmin, xmax, ymax, zmax]. Default: no filter. */
  gtRange?: ArrayLike<number>;
}

export interface CooperativeOptions {
  commRange?: number;
  gtRange?: ArrayLike<number>;
  /** Only these agents' objects count (the ego's always do). */
  agentIds?: number[];
}

interface AgentDir {
  id: number;
  kind: AgentKind;
  dir: string;
  /** File names in the folder when the dataset was opened. */
  files: Set<string>;
  timestamps: string[];
  sensors: string[];
}

interface Scenario {
  split: string;
  name: string;
  dir: string;
  /** In ego-selection order. */
  agents: AgentDir[];
  /** Union of the agents' timestamps, sorted. */
  timestamps: string[];
}

const AGENT_DIR = /^-?\d+$/;
const SPLIT_ORDER = ['train', 'validate', 'test'];
const LIDAR_SUFFIX: Record<LidarBeams, string> = { 64: '', 32: '_32', 16: '_16' };

export function lidarFileName(timestamp: string, beams: LidarBeams = 64): string {
  return `${timestamp}${LIDAR_SUFFIX[beams]}.pcd`;
}

/**
 * Opens ROOT, which may be the dataset root holding splits, one split folder, or one scenario
 * folder. Throws DataError when none of these layouts is found.
 */
export async function openOpv2v(root: string): Promise<Opv2vDataset> {
  const abs = path.resolve(root);
  const st = await fs.stat(abs).catch(() => undefined);
  if (!st) throw new DataError(abs, undefined, 'dataset folder does not exist');
  if (!st.isDirectory()) throw new DataError(abs, undefined, 'dataset path is not a folder');

  const warnings: string[] = [];
  const scenarioDirs: { split: string; name: string; dir: string }[] = [];
  if (await isScenarioDir(abs)) {
    scenarioDirs.push({ split: path.basename(path.dirname(abs)), name: path.basename(abs), dir: abs });
  } else if (await isSplitDir(abs)) {
    for (const name of await subdirs(abs)) {
      scenarioDirs.push({ split: path.basename(abs), name, dir: path.join(abs, name) });
    }
  } else {
    // `additional` holds OPV2V's BEV-visibility pictures mirrored per split, not frames.
    const splits = (await subdirs(abs)).filter((s) => s !== 'additional');
    for (const split of sortSplits(splits)) {
      const sdir = path.join(abs, split);
      if (!(await isSplitDir(sdir))) continue;
      for (const name of await subdirs(sdir)) scenarioDirs.push({ split, name, dir: path.join(sdir, name) });
    }
  }
  if (scenarioDirs.length === 0) {
    throw new DataError(
      abs,
      undefined,
      'no OPV2V-style layout found: expected <split>/<scenario>/<cav id>/<timestamp>.yaml, ' +
        '<scenario>/<cav id>/<timestamp>.yaml, or <cav id>/<timestamp>.yaml under this folder',
    );
  }

  const scenarios: Scenario[] = [];
  for (const s of scenarioDirs) {
    const sc = await scanScenario(s.split, s.name, s.dir, warnings);
    if (sc) scenarios.push(sc);
  }
  if (scenarios.length === 0) throw new DataError(abs, undefined, 'no scenario with frames found');
  return new Opv2vDataset(abs, scenarios, warnings);
}

export class Opv2vDataset implements Dataset {
  readonly format = 'opv2v' as const;
  private readonly byKey = new Map<string, Scenario>();
  private readonly yamlCache = new Map<string, Promise<FrameYaml>>();

  constructor(
    readonly root: string,
    private readonly list: Scenario[],
    /** Layout problems found while opening (agents whose timestamps disagree, empty folders). */
    readonly warnings: string[],
  ) {
    for (const s of list) this.byKey.set(`${s.split}\u0000${s.name}`, s);
  }

  scenarios(): ScenarioInfo[] {
    return this.list.map((s) => ({
      split: s.split,
      name: s.name,
      agents: s.agents.map((a): AgentInfo => ({ id: a.id, kind: a.kind, sensors: [...a.sensors] })),
      timestamps: [...s.timestamps],
    }));
  }

  frames(): FrameRef[] {
    const out: FrameRef[] = [];
    for (const s of this.list) {
      for (const ts of s.timestamps) {
        const agentIds = s.agents.filter((a) => a.files.has(`${ts}.yaml`)).map((a) => a.id);
        if (agentIds.length > 0) out.push({ split: s.split, scenario: s.name, timestamp: ts, agentIds });
      }
    }
    return out;
  }

  /** The parsed YAML of one agent at one frame (cached: cooperative GT reads every agent's file). */
  readFrameYaml(ref: FrameRef, agentId: number): Promise<FrameYaml> {
    const agent = this.agent(ref, agentId);
    return this.loadYaml(path.join(agent.dir, `${ref.timestamp}.yaml`));
  }

  async readAgentFrame(ref: FrameRef, agentId: number, opts: Opv2vReadOptions = {}): Promise<AgentFrame> {
    const agent = this.agent(ref, agentId);
    const ts = ref.timestamp;
    const y = await this.loadYaml(path.join(agent.dir, `${ts}.yaml`));
    const lidarPose = poseToMatrix(y.lidarPose);

    const beams = opts.lidar ?? 64;
    if (!(beams in LIDAR_SUFFIX)) throw new DataError(agent.dir, 'lidar', 'LiDAR beams must be 64, 32 or 16', beams);
    const lidarFile = lidarFileName(ts, beams);
    const lidarPath = path.join(agent.dir, lidarFile);
    if (!agent.files.has(lidarFile)) throw new DataError(lidarPath, undefined, `${beams}-beam LiDAR file is missing`);
    const cloud = await readPcd(lidarPath);

    const cameras: CameraRecord[] = [];
    for (const name of CAMERA_NAMES) {
      const calib = y.cameras[name];
      const imageFile = `${ts}_${name}.png`;
      // A camera needs both its picture and its calibration; either alone is not usable.
      if (!calib || !agent.files.has(imageFile)) continue;
      const depthFile = `${ts}_depth${name.slice(-1)}.png`;
      const cam: CameraRecord = {
        name,
        imagePath: path.join(agent.dir, imageFile),
        intrinsic: calib.intrinsic,
        extrinsic: calib.extrinsic,
        extrinsicAxes: 'ue4',
        cords: calib.cords,
      };
      if (agent.files.has(depthFile)) cam.depthPath = path.join(agent.dir, depthFile);
      if (opts.images) cam.image = await readPngRgb(cam.imagePath);
      cameras.push(cam);
    }

    return {
      dataset: 'opv2v',
      split: ref.split,
      scenario: ref.scenario,
      timestamp: ts,
      agentId,
      kind: agent.kind,
      lidarPose,
      lidarHeight: y.trueEgoPos ? y.lidarPose[2] - y.trueEgoPos[2] : undefined,
      points: cloud.points,
      lidarFile,
      cameras,
      boxes: projectVehicles(y, lidarPose, { excludeId: agentId, range: opts.gtRange }),
    };
  }

  async cooperativeBoxes(ref: FrameRef, egoId: number, opts: CooperativeOptions = {}): Promise<GtBox[]> {
    const commRange = opts.commRange ?? DEFAULT_COMM_RANGE;
    const ego = await this.readFrameYaml(ref, egoId);
    const worldFromEgo = poseToMatrix(ego.lidarPose);
    // The ego is never its own target, even when another agent sees it.
    const seen = new Set<number>([egoId]);
    const boxes: GtBox[] = [];
    const allowed = opts.agentIds ? new Set([egoId, ...opts.agentIds]) : undefined;
    for (const id of [egoId, ...ref.agentIds.filter((a) => a !== egoId)]) {
      if (allowed && !allowed.has(id)) continue;
      const y = id === egoId ? ego : await this.readFrameYaml(ref, id);
      const dist = Math.hypot(y.lidarPose[0] - ego.lidarPose[0], y.lidarPose[1] - ego.lidarPose[1]);
      if (dist > commRange) continue;
      for (const [vid, obj] of y.vehicles) {
        if (seen.has(vid)) continue;
        seen.add(vid);
        const corners = worldObjectCorners(obj, worldFromEgo);
        if (opts.gtRange && !cornersInRange(corners, opts.gtRange)) continue;
        boxes.push({ id: vid, box: cornersToBox(corners) });
      }
    }
    return boxes;
  }

  private agent(ref: FrameRef, agentId: number): AgentDir {
    const s = this.byKey.get(`${ref.split}\u0000${ref.scenario}`);
    if (!s) throw new DataError(this.root, 'scenario', `no scenario "${ref.scenario}" in split "${ref.split}"`, ref.scenario);
    const a = s.agents.find((x) => x.id === agentId);
    if (!a) throw new DataError(s.dir, 'agent', `no agent folder for this id (agents: ${s.agents.map((x) => x.id).join(', ')})`, agentId);
    return a;
  }

  private loadYaml(file: string): Promise<FrameYaml> {
    let p = this.yamlCache.get(file);
    if (p) {
      // Re-insert so the Map's insertion order doubles as least-recently-used order.
      this.yamlCache.delete(file);
      this.yamlCache.set(file, p);
      return p;
    }
    p = readFileChecked(file, 'frame YAML', READ_CAPS.yaml).then((buf) => parseFrameYaml(buf.toString('utf8'), file));
    p.catch(() => this.yamlCache.delete(file));
    this.yamlCache.set(file, p);
    if (this.yamlCache.size > 256) this.yamlCache.delete(this.yamlCache.keys().next().value!);
    return p;
  }
}

/**
 * The `vehicles` of one YAML as boxes in the frame whose world pose is `worldFromRef`
 * (OpenCOOD `project_world_objects`). `excludeId` drops the agent itself.
 */
export function projectVehicles(y: FrameYaml, worldFromRef: Mat4, opts: { excludeId?: number; range?: ArrayLike<number> } = {}): GtBox[] {
  const out: GtBox[] = [];
  for (const [id, obj] of y.vehicles) {
    if (id === opts.excludeId) continue;
    const corners = worldObjectCorners(obj, worldFromRef);
    if (opts.range && !cornersInRange(corners, opts.range)) continue;
    out.push({ id, box: cornersToBox(corners) });
  }
  return out;
}

/**
 * OpenCOOD ego order: folder names sorted as strings ("1045" < "641"). OpenCOOD moves only a
 * leading negative id to the end; we move every negative id (keeping their order) so that a
 * scene with two roadside units still never gets one as the default ego.
 */
export function egoOrder(ids: string[]): string[] {
  const sorted = [...ids].sort();
  return [...sorted.filter((s) => !s.startsWith('-')), ...sorted.filter((s) => s.startsWith('-'))];
}

async function scanScenario(split: string, name: string, dir: string, warnings: string[]): Promise<Scenario | undefined> {
  const where = `${split}/${name}`;
  const ids = (await subdirs(dir)).filter((d) => AGENT_DIR.test(d));
  const agents: AgentDir[] = [];
  for (const idText of egoOrder(ids)) {
    const adir = path.join(dir, idText);
    const files = new Set(await fs.readdir(adir));
    const timestamps = [...files]
      .filter((f) => f.endsWith('.yaml') && !f.includes('additional'))
      .map((f) => f.slice(0, -'.yaml'.length))
      .sort();
    if (timestamps.length === 0) {
      warnings.push(`${where}: agent ${idText} has no <timestamp>.yaml files; ignored`);
      continue;
    }
    const id = Number(idText);
    agents.push({ id, kind: id < 0 ? 'rsu' : 'vehicle', dir: adir, files, timestamps, sensors: sensorsOf(files, timestamps) });
  }
  if (agents.length === 0) {
    warnings.push(`${where}: no agent folders with frames; scenario ignored`);
    return undefined;
  }
  const union = [...new Set(agents.flatMap((a) => a.timestamps))].sort();
  for (const a of agents) {
    if (a.timestamps.length === union.length) continue;
    const own = new Set(a.timestamps);
    const missing = union.filter((t) => !own.has(t));
    const shown = missing.slice(0, 5).join(', ') + (missing.length > 5 ? ', ...' : '');
    warnings.push(`${where}: agent ${a.id} lacks ${missing.length} of ${union.length} timestamps (${shown})`);
  }
  return { split, name, dir, agents, timestamps: union };
}

function sensorsOf(files: Set<string>, timestamps: string[]): string[] {
  const out: string[] = [];
  const any = (suffix: string) => timestamps.some((t) => files.has(t + suffix));
  if (any('.pcd')) out.push('lidar64');
  if (any('_32.pcd')) out.push('lidar32');
  if (any('_16.pcd')) out.push('lidar16');
  for (let i = 0; i < 4; i++) if (any(`_camera${i}.png`)) out.push(`camera${i}`);
  for (let i = 0; i < 4; i++) if (any(`_depth${i}.png`)) out.push(`depth${i}`);
  return out;
}

function sortSplits(names: string[]): string[] {
  const rank = (s: string) => (SPLIT_ORDER.includes(s) ? SPLIT_ORDER.indexOf(s) : SPLIT_ORDER.length);
  return [...names].sort((a, b) => rank(a) - rank(b) || (a < b ? -1 : a > b ? 1 : 0));
}

/** Sorted names of the sub-folders (following symlinks, since datasets are often linked in). */
async function subdirs(dir: string): Promise<string[]> {
  const entries = await fs.readdir(dir, { withFileTypes: true });
  const out: string[] = [];
  for (const e of entries) {
    if (e.isDirectory()) out.push(e.name);
    else if (e.isSymbolicLink()) {
      const st = await fs.stat(path.join(dir, e.name)).catch(() => undefined);
      if (st?.isDirectory()) out.push(e.name);
    }
  }
  return out.sort();
}

/** A scenario folder holds at least one <cav id>/ folder with a <ts>.yaml in it. */
async function isScenarioDir(dir: string): Promise<boolean> {
  for (const d of (await subdirs(dir)).filter((x) => AGENT_DIR.test(x))) {
    const files = await fs.readdir(path.join(dir, d));
    if (files.some((f) => f.endsWith('.yaml') && !f.includes('additional'))) return true;
  }
  return false;
}

async function isSplitDir(dir: string): Promise<boolean> {
  for (const d of await subdirs(dir)) if (await isScenarioDir(path.join(dir, d))) return true;
  return false;
}

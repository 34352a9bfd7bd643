// Reads a run folder written by `heal eval`: run.json (what was evaluated, on which data, with
// which weights) and frames.jsonl (one evaluated frame per line). The viewer shows the run's own
// detections where it has them, so what a user sees is exactly what was scored.

import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { DataError } from '../datasets/io.ts';
import type { Box7 } from '../datasets/geometry/boxes.ts';
import { INCOMPLETE_MARKER, isIncompleteRun } from '../eval/runfolder.ts';

export interface RunMeta {
  version: 1;
  data: string;
  split?: string;
  profile: string;
  types: string[];
  combos: string[][];
  fusion: string[];
  dtype?: string;
  device?: string;
  provider?: string;
  weights: string | null;
  poseNoise?: unknown;
  latency?: unknown;
  drop?: unknown;
  seed?: number;
  createdAt?: string;
}

export interface RunFrame {
  scenario: string;
  split: string;
  timestamp: string;
  egoId: number;
  combo: string[];
  fusion: string;
  agents: { id: number; type: string; used: boolean }[];
  detections: { box: Box7; score: number; tp: boolean }[];
  gt: { box: Box7; matched: boolean }[];
}

export interface Run {
  dir: string;
  meta: RunMeta;
  /** Frames of the first combo and first fusion mode, by `split/scenario\0timestamp`. */
  frames: Map<string, RunFrame>;
  /** Lines that could not be read, each naming the line and the problem. */
  warnings: string[];
  /** heal eval did not finish this run (its INCOMPLETE marker is there): frames and report may be partial. */
  incomplete: boolean;
}

export const runFrameKey = (split: string, scenario: string, timestamp: string) => `${split}/${scenario}\u0000${timestamp}`;

export async function isRunDir(dir: string): Promise<boolean> {
  return fs.stat(path.join(dir, 'run.json')).then(
    (s) => s.isFile(),
    () => false,
  );
}

function need<_T>(ok: boolean, file: string, field: string, what: string, value: unknown): asserts ok {
  if (!ok) throw new DataError(file, field, what, value);
}

const isStrings = (v: unknown): v is string[] => Array.isArray(v) && v.every((s) => typeof s === 'string');

export function parseRunMeta(text: string, file: string): RunMeta {
  let j: Record<string, unknown>;
  try {
    j = JSON.parse(text);
  } catch (err) {
    throw new DataError(file, undefined, `not valid JSON: ${(err as Error).message}`);
  }
  need(!!j && typeof j === 'object' && !Array.isArray(j), file, '(root)', 'must be a JSON object', j);
  need(j.version === 1, file, 'version', 'unknown run format version (this heal reads 1)', j.version);
  need(typeof j.data === 'string' && j.data.length > 0, file, 'data', 'must be the dataset path', j.data);
  need(j.split === undefined || j.split === null || typeof j.split === 'string', file, 'split', 'must be a string', j.split);
  need(typeof j.profile === 'string', file, 'profile', 'must be a shared-space profile name', j.profile);
  need(isStrings(j.types), file, 'types', 'must be a list of agent type names', j.types);
  need(Array.isArray(j.combos) && j.combos.every(isStrings), file, 'combos', 'must be a list of lists of agent type names', j.combos);
  need(isStrings(j.fusion), file, 'fusion', 'must be a list of fusion modes', j.fusion);
  need(j.weights === null || typeof j.weights === 'string', file, 'weights', 'must be a path or null', j.weights);
  return {
    ...(j as object),
    split: (j.split as string | null | undefined) ?? undefined,
    // A relative dataset path is read against the run folder, so a moved run folder with its data beside it still opens.
    data: path.resolve(path.dirname(file), j.data as string),
    weights: j.weights ? path.resolve(path.dirname(file), j.weights as string) : null,
  } as RunMeta;
}

function isBox(v: unknown): v is Box7 {
  return Array.isArray(v) && v.length === 7 && v.every((x) => typeof x === 'number' && Number.isFinite(x));
}

/** One frames.jsonl line; throws naming the field. */
export function parseRunFrame(line: unknown, where: string): RunFrame {
  const f = line as Record<string, unknown>;
  need(!!f && typeof f === 'object', where, '(line)', 'must be a JSON object', f);
  need(typeof f.scenario === 'string', where, 'scenario', 'must be a string', f.scenario);
  need(typeof f.split === 'string', where, 'split', 'must be a string', f.split);
  need(typeof f.timestamp === 'string', where, 'timestamp', 'must be a string', f.timestamp);
  need(Number.isInteger(f.egoId), where, 'egoId', 'must be an integer agent id', f.egoId);
  need(isStrings(f.combo), where, 'combo', 'must be a list of agent type names', f.combo);
  need(typeof f.fusion === 'string', where, 'fusion', 'must be a string', f.fusion);
  need(Array.isArray(f.agents), where, 'agents', 'must be a list', f.agents);
  need(Array.isArray(f.detections), where, 'detections', 'must be a list', f.detections);
  need(Array.isArray(f.gt), where, 'gt', 'must be a list', f.gt);
  const agents = (f.agents as Record<string, unknown>[]).map((a, i) => {
    need(!!a && Number.isInteger(a.id) && typeof a.type === 'string', where, `agents[${i}]`, 'must be {id, type, used}', a);
    return { id: a.id as number, type: a.type as string, used: a.used !== false };
  });
  const detections = (f.detections as Record<string, unknown>[]).map((d, i) => {
    need(!!d && isBox(d.box), where, `detections[${i}].box`, 'must be 7 finite numbers [x,y,z,h,w,l,yaw]', d?.box);
    need(typeof d.score === 'number' && Number.isFinite(d.score), where, `detections[${i}].score`, 'must be a finite number', d.score);
    return { box: d.box as Box7, score: d.score as number, tp: d.tp === true };
  });
  const gt = (f.gt as Record<string, unknown>[]).map((g, i) => {
    need(!!g && isBox(g.box), where, `gt[${i}].box`, 'must be 7 finite numbers [x,y,z,h,w,l,yaw]', g?.box);
    return { box: g.box as Box7, matched: g.matched === true };
  });
  return {
    scenario: f.scenario as string,
    split: f.split as string,
    timestamp: f.timestamp as string,
    egoId: f.egoId as number,
    combo: f.combo as string[],
    fusion: f.fusion as string,
    agents,
    detections,
    gt,
  };
}

export async function readRun(dir: string): Promise<Run> {
  const metaFile = path.join(dir, 'run.json');
  const meta = parseRunMeta(await fs.readFile(metaFile, 'utf8'), metaFile);
  const frames = new Map<string, RunFrame>();
  const warnings: string[] = [];
  const incomplete = await isIncompleteRun(dir);
  if (incomplete) warnings.push(`${path.join(dir, INCOMPLETE_MARKER)}: this run did not finish (interrupted, or still running); its frames may be partial`);
  const framesFile = path.join(dir, 'frames.jsonl');
  const text = await fs.readFile(framesFile, 'utf8').catch(() => undefined);
  if (text === undefined) {
    warnings.push(`${framesFile}: missing; every frame is computed here`);
    return { dir, meta, frames, warnings, incomplete };
  }
  const combo = (meta.combos[0] ?? meta.types).join(',');
  const fusion = meta.fusion[0];
  // A sweep (several dtypes or sparsities) writes one line per setting; show the first setting.
  const m = meta as unknown as Record<string, unknown>;
  const firstOf = (list: unknown, single: unknown) => (Array.isArray(list) && list.length ? list[0] : single);
  const dtype = firstOf(m.dtypes, m.dtype);
  const keep = firstOf(m.keep, undefined);
  text.split('\n').forEach((raw, i) => {
    if (!raw.trim()) return;
    const where = `${framesFile}:${i + 1}`;
    try {
      const line = JSON.parse(raw);
      const f = parseRunFrame(line, where);
      if (f.combo.join(',') !== combo || f.fusion !== fusion) return;
      if (dtype !== undefined && line.dtype !== undefined && line.dtype !== dtype) return;
      if (keep !== undefined && line.keep !== undefined && line.keep !== keep) return;
      const key = runFrameKey(f.split, f.scenario, f.timestamp);
      if (!frames.has(key)) frames.set(key, f);
    } catch (err) {
      // One bad line costs that frame its stored detections, not the viewer.
      warnings.push(err instanceof DataError ? err.message : `${where}: ${(err as Error).message}`);
    }
  });
  return { dir, meta, frames, warnings, incomplete };
}

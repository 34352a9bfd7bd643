// heal against HEAL's own tensors: a reference folder holds a HEAL checkpoint and case folders,
// each with a dataset frame and what HEAL's PyTorch code computed on it (expected*.safetensors:
// inputs, intermediates, outputs, boxes; expected*.json: agent order, poses, crops, counts).
// ../shared/fixtures/heal_reference/README.md describes the layout. Every stage a suite knows and
// the case holds is compared against its tolerance; the result is one row per stage (max |diff|,
// tolerance, pass or fail), which `heal verify-reference` prints and the reference tests assert.
//
// Suites plug in per expected file: eval/reference-lidar.ts reads expected.safetensors (HEAL's m1,
// LiDAR, intermediate pyramid fusion); a camera suite reads expected_<m>.safetensors. The list of
// suites is eval/reference-suites.ts.

import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { DataError } from '../datasets/io.ts';
import type { HostTensor } from '../models/graph.ts';
import { readSafetensors, type SafeTensor } from '../models/safetensors.ts';
import type { Device } from '../models/runtime.ts';
import { alignTable } from './table.ts';

/** One compared stage. `diff` and `tolerance` are in the stage's unit (`kind`). */
export interface StageCheck {
  case: string;
  suite: string;
  stage: string;
  /** 'abs': max |heal − HEAL|; 'rel': max |diff| of channel sums over the largest |sum|; 'count': mismatching entries. */
  kind: 'abs' | 'rel' | 'count';
  diff: number;
  tolerance: number;
  pass: boolean;
  note?: string;
}

/** A case as a suite sees it. */
export interface ReferenceCase {
  /** The case folder's name. */
  name: string;
  /** The case folder (also the dataset root of its frame). */
  dir: string;
  tensors: Map<string, SafeTensor>;
  /** expected*.json, parsed. */
  json: Record<string, unknown>;
  /** The HEAL checkpoint the expected tensors were made with. */
  checkpoint: string;
}

export interface SuiteOptions {
  device: Device;
  /** Only these stage groups of the suite (a suite names its groups); all when undefined. */
  only?: readonly string[];
  log: (line: string) => void;
  /** Extra agent-type declarations, as --types-dir. */
  typesDirs?: string[];
}

export interface ReferenceSuite {
  /** What the suite checks, e.g. "m1 (LiDAR, stage 1)". */
  name: string;
  /** The case files it reads: `${expected}.safetensors` and `${expected}.json`. */
  expected: string;
  /** Its stage groups, in run order (for SuiteOptions.only). */
  groups: readonly string[];
  run(c: ReferenceCase, opts: SuiteOptions): Promise<StageCheck[]>;
}

export interface VerifyOptions extends Partial<SuiteOptions> {
  /** The checkpoint to use instead of the one each expected*.json names. */
  checkpoint?: string;
  /** Only these case folders (names). */
  cases?: string[];
}

export interface VerifyResult {
  checks: StageCheck[];
  /** Case folders found, each with the suites that ran on it. */
  cases: { name: string; suites: string[] }[];
  /** Tensors of the expected files no stage compared (informational). */
  unchecked: { case: string; file: string; names: string[] }[];
  pass: boolean;
}

/**
 * Every case folder of `dir` (a folder with expected*.safetensors; `dir` itself when it is one)
 * through every suite whose expected file it holds. Throws a DataError when there is no case, or a
 * case's checkpoint is missing; a stage out of tolerance is a failed check, not an error.
 */
export async function verifyReference(dir: string, suites: readonly ReferenceSuite[], opts: VerifyOptions = {}): Promise<VerifyResult> {
  const root = path.resolve(dir);
  const log = opts.log ?? (() => {});
  const folders = (await hasExpected(root, suites)) ? [root] : await caseFolders(root, suites);
  const chosen = opts.cases ? folders.filter((f) => opts.cases!.includes(path.basename(f))) : folders;
  if (!chosen.length) {
    const want = suites.map((s) => `${s.expected}.safetensors`).join(' or ');
    throw new DataError(root, undefined, `no case folder${opts.cases ? ` named ${opts.cases.join(', ')}` : ''} with ${want}`);
  }
  const result: VerifyResult = { checks: [], cases: [], unchecked: [], pass: true };
  for (const folder of chosen) {
    const ran: string[] = [];
    for (const suite of suites) {
      const file = path.join(folder, `${suite.expected}.safetensors`);
      if (!(await exists(file))) continue;
      const c = await readCase(folder, suite, opts.checkpoint);
      log(`verify-reference: ${c.name}: ${suite.name} (checkpoint ${c.checkpoint})`);
      const used = trackUse(c.tensors);
      const checks = await suite.run({ ...c, tensors: used.tensors }, { device: opts.device ?? 'cpu', only: opts.only, log, typesDirs: opts.typesDirs });
      result.checks.push(...checks);
      const names = [...c.tensors.keys()].filter((n) => !used.seen.has(n));
      if (names.length && !opts.only) result.unchecked.push({ case: c.name, file: path.basename(file), names });
      ran.push(suite.name);
    }
    result.cases.push({ name: path.basename(folder), suites: ran });
  }
  result.pass = result.checks.every((c) => c.pass);
  return result;
}

async function exists(file: string): Promise<boolean> {
  return fs.stat(file).then(
    () => true,
    () => false,
  );
}

async function hasExpected(dir: string, suites: readonly ReferenceSuite[]): Promise<boolean> {
  for (const s of suites) if (await exists(path.join(dir, `${s.expected}.safetensors`))) return true;
  return false;
}

async function caseFolders(root: string, suites: readonly ReferenceSuite[]): Promise<string[]> {
  let entries: import('node:fs').Dirent[];
  try {
    entries = await fs.readdir(root, { withFileTypes: true });
  } catch (err) {
    throw new DataError(root, undefined, `cannot read the reference folder: ${(err as Error).message}`);
  }
  const out: string[] = [];
  for (const e of entries.filter((d) => d.isDirectory()).sort((a, b) => (a.name < b.name ? -1 : 1))) {
    if (await hasExpected(path.join(root, e.name), suites)) out.push(path.join(root, e.name));
  }
  return out;
}

async function readCase(folder: string, suite: ReferenceSuite, checkpoint: string | undefined): Promise<ReferenceCase> {
  const jsonFile = path.join(folder, `${suite.expected}.json`);
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(await fs.readFile(jsonFile, 'utf8')) as Record<string, unknown>;
  } catch (err) {
    throw new DataError(jsonFile, undefined, `cannot read ${suite.expected}.json beside ${suite.expected}.safetensors: ${(err as Error).message}`);
  }
  const named = (json.checkpoint as { path?: unknown } | undefined)?.path;
  let ckpt = checkpoint;
  if (!ckpt) {
    if (typeof named !== 'string') throw new DataError(jsonFile, 'checkpoint.path', 'names no checkpoint (give one with --checkpoint)', named);
    ckpt = path.resolve(folder, named);
  }
  if (!(await exists(ckpt))) throw new DataError(jsonFile, 'checkpoint.path', `the checkpoint ${ckpt} does not exist`, named);
  const { tensors } = await readSafetensors(path.join(folder, `${suite.expected}.safetensors`));
  return { name: path.basename(folder), dir: folder, tensors, json, checkpoint: path.resolve(ckpt) };
}

/** The tensors, recording which names a suite read (so unread ones can be reported). */
function trackUse(tensors: Map<string, SafeTensor>): { tensors: Map<string, SafeTensor>; seen: Set<string> } {
  const seen = new Set<string>();
  const proxy = new Map(tensors);
  const get = proxy.get.bind(proxy);
  const has = proxy.has.bind(proxy);
  proxy.get = (k: string) => {
    seen.add(k);
    return get(k);
  };
  proxy.has = (k: string) => {
    if (has(k)) seen.add(k);
    return has(k);
  };
  return { tensors: proxy, seen };
}

// ---- comparisons, shared by the suites ----------------------------------------------------------

/** max |a − b| (∞ for a NaN, or when the lengths differ). */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    m = Number.isNaN(d) ? Infinity : Math.max(m, d);
  }
  return m;
}

/** float64 sums over each channel of an [N, C, ...] map, flattened [N·C]. */
export function channelSums(t: HostTensor): Float64Array {
  const [n, c] = t.shape;
  const plane = t.data.length / (n * c);
  const out = new Float64Array(n * c);
  for (let i = 0; i < n * c; i++) {
    let s = 0;
    for (let k = 0; k < plane; k++) s += t.data[i * plane + k];
    out[i] = s;
  }
  return out;
}

/** max |a − b| / max |b| over channel sums: maps too big to store are compared by their sums. */
export function sumRel(ours: ArrayLike<number>, ref: ArrayLike<number>): number {
  let den = 0;
  for (let i = 0; i < ref.length; i++) den = Math.max(den, Math.abs(ref[i]));
  return maxAbsDiff(ours, ref) / (den || 1);
}

/** The size×size window at (row0, col0) of every channel of an [N, C, H, W] map, as [N, C, size, size]. */
export function crop(t: HostTensor, row0: number, col0: number, size: number): Float32Array {
  const [n, c, h, w] = t.shape;
  const out = new Float32Array(n * c * size * size);
  for (let i = 0; i < n * c; i++) {
    for (let r = 0; r < size; r++) {
      const from = (i * h + row0 + r) * w + col0;
      out.set(t.data.subarray(from, from + size), (i * size + r) * size);
    }
  }
  return out;
}

/** A check of one stage: pushed onto the run's list by caseReader's `row`. */
export type Row = (stage: string, kind: StageCheck['kind'], diff: number, tolerance: number, note?: string) => void;

/**
 * What a suite's run reads a case with: the checks so far and `row` to add one, the case's
 * expected tensors by name (a missing one is an error naming `tensorsFile`), and whether the
 * user asked for a group of stages (--only).
 */
export function caseReader(c: ReferenceCase, suite: string, opts: SuiteOptions, tensorsFile: string) {
  const checks: StageCheck[] = [];
  const row: Row = (stage, kind, diff, tolerance, note) => checks.push(check({ case: c.name, suite, stage, kind, diff, tolerance, note }));
  const has = (...names: string[]) => names.every((n) => c.tensors.has(n));
  const tensor = (name: string): SafeTensor => {
    const t = c.tensors.get(name);
    if (!t) throw new DataError(c.dir, name, `is not in ${tensorsFile}`);
    return t;
  };
  const floats = (name: string) => tensor(name).data as Float32Array;
  const wants = (group: string) => !opts.only || opts.only.includes(group);
  return { checks, row, has, tensor, floats, wants };
}

/** A check row from a measured difference. */
export function check(c: Pick<StageCheck, 'case' | 'suite' | 'stage' | 'kind' | 'diff' | 'tolerance'> & { note?: string }): StageCheck {
  // Within tolerance, bounds included for exact (count) stages.
  const pass = c.kind === 'count' ? c.diff <= c.tolerance : c.diff < c.tolerance || (c.diff === 0 && c.tolerance === 0);
  return { ...c, pass };
}

function formatNumber(v: number, kind: StageCheck['kind']): string {
  if (kind === 'count') return String(v);
  if (!Number.isFinite(v)) return String(v);
  return v === 0 ? '0' : v.toExponential(2);
}

/** The table verify-reference prints: one row per stage. */
export function formatChecks(checks: readonly StageCheck[]): string {
  const head = ['case', 'stage', 'max |diff|', 'tolerance', 'result', 'note'];
  const body = checks.map((c) => [
    c.case,
    c.stage,
    `${formatNumber(c.diff, c.kind)}${c.kind === 'rel' ? ' rel' : c.kind === 'count' ? ' differ' : ''}`,
    formatNumber(c.tolerance, c.kind),
    c.pass ? 'pass' : 'FAIL',
    c.note ?? '',
  ]);
  return alignTable(head, body, [2, 3]);
}

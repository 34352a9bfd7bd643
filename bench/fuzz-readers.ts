// `heal bench fuzz-readers`: mutational and structure-aware fuzzing of the dataset readers (PCD,
// OPV2V frame YAML, DAIR-V2X-C JSON), plus the bad-file survey: every case of
// bench/reader-corpus.ts through `heal inspect` and `heal eval` as a user runs them.
//
// A fuzz case is accepted (the reader returned), rejected (a DataError naming the file), crashed
// (any other error, or a DataError that does not name the file) or hung (slower than HANG_MS).
// The seeded small run in test/datasets/fuzz-readers.test.ts fails on any crash or hang.

import { promises as fs, readFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DataError } from '../datasets/io.ts';
import { type Rng, rngFor } from '../datasets/rng.ts';
import { decodePcd, encodePcd } from '../datasets/pcd.ts';
import { parseFrameYaml } from '../datasets/yaml.ts';
import { DAIR_VEHICLE, badCases, dairFiles, frameYaml, ringCloud, writeCase, writeTree } from './reader-corpus.ts';
import { openDair, RSU_AGENT, VEHICLE_AGENT } from '../datasets/dair.ts';
import type { FuzzCounts as MessageFuzzCounts } from './fuzz.ts';

export const HANG_MS = 2000;
export type Outcome = 'accepted' | 'rejected' | 'crashed' | 'hung';
export type ReaderKind = 'pcd' | 'yaml' | 'dair';
/** The message fuzzer's counts (bench/fuzz.ts) but forgeries and rejection reasons; up to 5 crashes, each the case and the error. */
export type FuzzCounts = Omit<MessageFuzzCounts, 'forged' | 'reasons'>;

const INTERESTING_INTS = ['0', '-1', '1', '255', '65535', '2147483647', '2147483648', '4294967296', '99999999999999999999', '1e9', 'nan', '', 'x'];
const INTERESTING_NUMBERS = ['inf', '-inf', 'nan', '.inf', '.nan', '1e39', '1e999', '-1e308', '1e6', '-0', '"1"', 'null', '[]', '{}', '0x10'];

function pick<T>(r: Rng, a: readonly T[]): T {
  return a[Math.floor(r.next() * a.length)];
}

function randomBytes(r: Rng, n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = Math.floor(r.next() * 256);
  return b;
}

/** One generic byte-level mutation. */
function mutateBytes(r: Rng, src: Uint8Array): Uint8Array {
  const b = Buffer.from(src);
  const at = Math.floor(r.next() * Math.max(1, b.length));
  switch (Math.floor(r.next() * 6)) {
    case 0: {
      const out = Buffer.from(b);
      for (let k = 1 + Math.floor(r.next() * 8); k > 0; k--) out[Math.floor(r.next() * out.length)] ^= 1 << Math.floor(r.next() * 8);
      return out;
    }
    case 1:
      return b.subarray(0, at);
    case 2:
      return Buffer.concat([b.subarray(0, at), randomBytes(r, 1 + Math.floor(r.next() * 64)), b.subarray(at)]);
    case 3:
      return Buffer.concat([b.subarray(0, at), b.subarray(Math.min(b.length, at + 1 + Math.floor(r.next() * 256)))]);
    case 4:
      return Buffer.concat([b, b.subarray(at)]);
    default: {
      const out = Buffer.from(b);
      out.set(randomBytes(r, Math.min(out.length - at, 1 + Math.floor(r.next() * 512))), at);
      return out;
    }
  }
}

/** Replaces one number of a text with an interesting value. */
function mutateNumber(r: Rng, text: string): string {
  const nums = [...text.matchAll(/-?\d+(\.\d+)?(e[+-]?\d+)?/g)];
  if (!nums.length) return text;
  const m = pick(r, nums);
  return text.slice(0, m.index) + pick(r, INTERESTING_NUMBERS) + text.slice(m.index! + m[0].length);
}

function pcdSeeds(): Uint8Array[] {
  const cloud = ringCloud(64);
  // DAIR's vehicle layout: uint8 intensity and a float64 timestamp, binary.
  const n = 16;
  const head = `VERSION 0.7\nFIELDS x y z intensity timestamp\nSIZE 4 4 4 1 8\nTYPE F F F U F\nCOUNT 1 1 1 1 1\nWIDTH ${n}\nHEIGHT 1\nVIEWPOINT 0 0 0 1 0 0 0\nPOINTS ${n}\nDATA binary\n`;
  const body = Buffer.alloc(n * 21);
  for (let i = 0; i < n; i++) {
    body.writeFloatLE(i, i * 21);
    body.writeFloatLE(-i, i * 21 + 4);
    body.writeFloatLE(0.5, i * 21 + 8);
    body.writeUInt8(i * 9, i * 21 + 12);
    body.writeDoubleLE(1.6e9 + i, i * 21 + 13);
  }
  return [encodePcd(cloud, 'ascii'), encodePcd(cloud, 'binary'), encodePcd(cloud, 'binary_compressed'), Buffer.concat([Buffer.from(head, 'latin1'), body])];
}

function mutatePcd(r: Rng, seed: Uint8Array): Uint8Array {
  const s = Buffer.from(seed);
  const dataAt = s.indexOf('\nDATA ') + 1;
  const end = s.indexOf(10, dataAt) + 1;
  const header = s.subarray(0, end).toString('latin1');
  const body = s.subarray(end);
  switch (Math.floor(r.next() * 5)) {
    case 0: {
      // A header value replaced: sizes, counts and types are what readers trust.
      const lines = header.split('\n');
      const k = Math.floor(r.next() * (lines.length - 1));
      const parts = lines[k].split(' ');
      if (parts.length > 1) parts[1 + Math.floor(r.next() * (parts.length - 1))] = pick(r, INTERESTING_INTS);
      lines[k] = parts.join(' ');
      return Buffer.concat([Buffer.from(lines.join('\n'), 'latin1'), body]);
    }
    case 1:
      // The body replaced by random bytes of the same length.
      return Buffer.concat([Buffer.from(header, 'latin1'), randomBytes(r, body.length)]);
    case 2:
      return Buffer.from(mutateNumber(r, s.toString('latin1')), 'latin1');
    default:
      return mutateBytes(r, s);
  }
}

function mutateYaml(r: Rng, text: string): string {
  switch (Math.floor(r.next() * 6)) {
    case 0:
      return mutateNumber(r, text);
    case 1: {
      const n = 1 + Math.floor(r.next() * 9);
      const bomb = [
        'a0: &a0 [x, x, x, x, x, x, x, x, x]',
        ...Array.from({ length: n }, (_, k) => `a${k + 1}: &a${k + 1} [${Array(9).fill(`*a${k}`).join(', ')}]`),
      ];
      return `${bomb.join('\n')}\n${text}`;
    }
    case 2: {
      const d = Math.floor(r.next() * 2000);
      return `deep: ${'['.repeat(d)}${']'.repeat(r.next() < 0.5 ? d : 0)}\n${text}`;
    }
    case 3: {
      const lines = text.split('\n');
      lines.splice(Math.floor(r.next() * lines.length), 1 + Math.floor(r.next() * 4));
      return lines.join('\n');
    }
    default:
      return Buffer.from(mutateBytes(r, Buffer.from(text))).toString('utf8');
  }
}

function mutateJson(r: Rng, text: string): string {
  switch (Math.floor(r.next() * 5)) {
    case 0:
      return mutateNumber(r, text);
    case 1: {
      // A string value (a path, a class name) replaced.
      const strs = [...text.matchAll(/"[^"]*"/g)];
      if (!strs.length) return text;
      const m = pick(r, strs);
      const by = pick(r, ['"../../../../etc/passwd"', '"/etc/passwd"', '""', '"NaN"', '"Infinity"', '1', 'null', '{}']);
      return text.slice(0, m.index) + by + text.slice(m.index! + m[0].length);
    }
    case 2: {
      const d = Math.floor(r.next() * 20000);
      return text.replace(/\[/, `[${'['.repeat(d)}${']'.repeat(d)},`);
    }
    default:
      return Buffer.from(mutateBytes(r, Buffer.from(text))).toString('utf8');
  }
}

/** A DataError names its file by construction (which may be another file the mutation pointed to); anything else is a crash. */
function classify(err: unknown): Outcome {
  return err instanceof DataError && err.file !== '' ? 'rejected' : 'crashed';
}

function tally(): FuzzCounts {
  return { cases: 0, accepted: 0, rejected: 0, crashed: 0, hung: 0, slowestMs: 0, slowest: '', crashes: [] };
}

async function runCase(counts: FuzzCounts, name: string, body: () => unknown): Promise<void> {
  const t = performance.now();
  let outcome: Outcome = 'accepted';
  let error: unknown;
  try {
    await body();
  } catch (err) {
    outcome = classify(err);
    error = err;
  }
  const ms = performance.now() - t;
  if (ms > HANG_MS) outcome = 'hung';
  counts.cases++;
  counts[outcome]++;
  if (ms > counts.slowestMs) {
    counts.slowestMs = ms;
    counts.slowest = name;
  }
  if (outcome === 'crashed' && counts.crashes.length < 5)
    counts.crashes.push(`${name}: ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}`.slice(0, 300));
}

/** Fuzzes one reader kind with n cases; deterministic in (kind, n, seed). */
export async function fuzzReader(kind: ReaderKind, n: number, seed = 0): Promise<FuzzCounts> {
  const counts = tally();
  if (kind === 'pcd') {
    const seeds = pcdSeeds();
    for (let i = 0; i < n; i++) {
      const r = rngFor('fuzz-readers', kind, seed, i);
      const bytes = mutatePcd(r, pick(r, seeds));
      await runCase(counts, `pcd #${i}`, () => decodePcd(bytes, 'fuzz.pcd'));
    }
    return counts;
  }
  if (kind === 'yaml') {
    const seedText = frameYaml(3);
    for (let i = 0; i < n; i++) {
      const r = rngFor('fuzz-readers', kind, seed, i);
      const text = mutateYaml(r, seedText);
      await runCase(counts, `yaml #${i}`, () => parseFrameYaml(text, 'fuzz.yaml'));
    }
    return counts;
  }
  // DAIR: one JSON file of a valid tree mutated per case, then the whole pair read as heal does.
  const root = await fs.mkdtemp(path.join(os.tmpdir(), 'heal-fuzz-dair-'));
  try {
    const files = dairFiles();
    await writeTree(root, files);
    const jsonFiles = Object.keys(files).filter((f) => f.endsWith('.json'));
    const ref = { split: 'train', scenario: DAIR_VEHICLE, timestamp: DAIR_VEHICLE, agentIds: [VEHICLE_AGENT, RSU_AGENT] };
    for (let i = 0; i < n; i++) {
      const r = rngFor('fuzz-readers', kind, seed, i);
      const rel = pick(r, jsonFiles);
      const text = mutateJson(r, files[rel] as string);
      await fs.writeFile(path.join(root, rel), text);
      await runCase(counts, `dair #${i} (${rel})`, async () => {
        const ds = await openDair(root);
        if (!ds.pairs.length) return;
        const use = ds.frames()[0] ?? ref;
        for (const id of use.agentIds) await ds.readAgentFrame(use, id);
        await ds.cooperativeBoxes(use, VEHICLE_AGENT);
      });
      await fs.writeFile(path.join(root, rel), files[rel]);
    }
  } finally {
    await fs.rm(root, { recursive: true, force: true });
  }
  return counts;
}

// ---- the bad-file survey ------------------------------------------------------------------------

function readFileSyncSafe(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

export type SurveyOutcome =
  | 'hung'
  | 'crashed'
  | 'aborted, no file named'
  | 'refused, file named'
  | 'skipped, file named'
  | 'skipped, file not named'
  | 'accepted silently';

const HEAL_JS = fileURLToPath(new URL('../cli/heal.js', import.meta.url));

function runHeal(heal: string, args: string[], timeoutMs: number): Promise<{ code: number | null; out: string; timedOut: boolean }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [heal, ...args], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    let timedOut = false;
    const kill = () => {
      timedOut = true;
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // already gone
      }
    };
    const timer = setTimeout(kill, timeoutMs);
    // An unbounded read (of /dev/zero, in old versions) counts as hung once it holds 4 GB,
    // before it takes the machine's memory.
    const watch = setInterval(() => {
      const status = readFileSyncSafe(`/proc/${child.pid}/status`);
      const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
      if (kb > 4 * 2 ** 20) kill();
    }, 200);
    child.on('close', (code) => {
      clearTimeout(timer);
      clearInterval(watch);
      resolve({ code, out, timedOut });
    });
  });
}

export function surveyOutcome(r: { code: number | null; out: string; timedOut: boolean }, file: string, command: 'inspect' | 'eval'): SurveyOutcome {
  if (r.timedOut) return 'hung';
  const named = r.out.includes(path.basename(file));
  if (/\n\s+at .+:\d+:\d+\)?\n/.test(r.out) || (r.code !== 0 && r.code !== 1 && r.code !== 3)) return 'crashed';
  const skipped = command === 'inspect' ? /bad frame|could not be read/.test(r.out) : /\d+ skipped/.test(r.out) && !/ 0 skipped/.test(r.out);
  if (skipped) return named ? 'skipped, file named' : 'skipped, file not named';
  if (r.code === 1) return named ? 'refused, file named' : 'aborted, no file named';
  return 'accepted silently';
}

export interface SurveyRow {
  name: string;
  inspect: SurveyOutcome;
  eval?: SurveyOutcome;
}

/** Runs `heal inspect` (and `heal eval` unless `evalToo` is false) on each bad-file case. */
export async function survey(opts: { heal?: string; evalToo?: boolean; log?: (s: string) => void } = {}): Promise<SurveyRow[]> {
  const heal = opts.heal ?? HEAL_JS;
  const rows: SurveyRow[] = [];
  const top = await fs.mkdtemp(path.join(os.tmpdir(), 'heal-survey-'));
  try {
    for (const [k, c] of badCases().entries()) {
      const root = path.join(top, String(k));
      await writeCase(root, c);
      const ins = await runHeal(heal, ['inspect', root], 30_000);
      const row: SurveyRow = { name: c.name, inspect: surveyOutcome(ins, c.file, 'inspect') };
      if (opts.evalToo !== false) {
        const args = [
          'eval',
          '--data',
          root,
          '--split',
          'all',
          '--types',
          'm1',
          '--fusion',
          'none',
          '--random-weights',
          '--device',
          'cpu',
          '--out',
          path.join(top, `run-${k}`),
        ];
        row.eval = surveyOutcome(await runHeal(heal, args, 90_000), c.file, 'eval');
      }
      opts.log?.(`${c.name}: inspect ${row.inspect}${row.eval ? `, eval ${row.eval}` : ''}`);
      rows.push(row);
    }
  } finally {
    await fs.rm(top, { recursive: true, force: true });
  }
  return rows;
}

function countBy(rows: SurveyRow[], key: 'inspect' | 'eval'): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of rows) {
    const v = r[key];
    if (v) out[v] = (out[v] ?? 0) + 1;
  }
  return out;
}

/** `heal bench fuzz-readers`: HEAL_FUZZ_N cases per reader (default 10 000), then the survey (HEAL_SURVEY_HEAL: another heal.js to survey, e.g. an older checkout). */
export async function run(): Promise<Record<string, unknown>> {
  const n = Number(process.env.HEAL_FUZZ_N ?? 10_000);
  const figures: Record<string, unknown> = { 'cases per reader': n, 'hang threshold ms': HANG_MS };
  let peak = process.memoryUsage().rss;
  for (const kind of ['pcd', 'yaml', 'dair'] as const) {
    const t = performance.now();
    const c = await fuzzReader(kind, n, 1);
    peak = Math.max(peak, process.memoryUsage().rss);
    figures[`${kind} accepted`] = c.accepted;
    figures[`${kind} rejected`] = c.rejected;
    figures[`${kind} crashed`] = c.crashed;
    figures[`${kind} hung`] = c.hung;
    figures[`${kind} slowest ms`] = +c.slowestMs.toFixed(1);
    figures[`${kind} seconds`] = +((performance.now() - t) / 1000).toFixed(1);
    for (const e of c.crashes) process.stderr.write(`crash: ${e}\n`);
  }
  figures['peak RSS MB'] = Math.round(peak / 2 ** 20);
  if (process.env.HEAL_SURVEY !== '0') {
    const rows = await survey({ heal: process.env.HEAL_SURVEY_HEAL, log: (s) => process.stderr.write(`${s}\n`) });
    figures['survey bad files'] = rows.length;
    for (const [k, v] of Object.entries(countBy(rows, 'inspect'))) figures[`survey inspect: ${k}`] = v;
    for (const [k, v] of Object.entries(countBy(rows, 'eval'))) figures[`survey eval: ${k}`] = v;
  }
  return figures;
}

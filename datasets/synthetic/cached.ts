// A synthetic world generated once and reused: `npm start`, the benchmarks and the tests ask for
// a world by its options and get a folder under .cache/ that holds exactly those options' output.
//
// Reuse is decided by a stamp beside the folder (<name>.json): the options, GENERATOR_VERSION and
// a digest of the generator's sources, so an edit to the generator that forgets to bump the
// version still regenerates instead of serving a stale world. Concurrent callers (vitest runs
// test files in several processes) share one generation: a lock file lets one process generate
// into a temporary folder while the others wait, and the folder appears under its name by a
// rename, so no reader ever sees half a world.

import { createHash, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CACHE_ROOT, exists, sha256Hex, writeFileAtomic } from '../io.ts';
import { GENERATOR_VERSION, type GenerateOptions, type ProgressEvent, SPLITS, defaultJobs, generateDataset } from './generate.ts';

const here = path.dirname(fileURLToPath(import.meta.url));

/** What decides a world's content: everything but where it goes and how many threads write it. */
export type WorldOptions = Omit<GenerateOptions, 'out' | 'jobs'>;

export interface CachedWorldOptions {
  /** Folder name under `root`; by default one derived from the options, so different worlds coexist. */
  name?: string;
  root?: string;
  /** Worker threads when it has to generate (default: defaultJobs()). */
  jobs?: number;
  onProgress?: (done: number, total: number, ev: ProgressEvent) => void;
}

/** How long a lock may stand before it is taken for one left by a process that hung. */
const LOCK_MAX_AGE_MS = 30 * 60_000;
const POLL_MS = 250;

/** The world folder for these options, generated unless an identical one is already there. */
export async function cachedWorld(world: WorldOptions, opts: CachedWorldOptions = {}): Promise<{ dir: string; reused: boolean }> {
  const root = opts.root ?? CACHE_ROOT;
  const options = canonical(world);
  const name = opts.name ?? `world-${sha256Hex(JSON.stringify(options)).slice(0, 12)}`;
  const dir = path.join(root, name);
  const stampFile = path.join(root, `${name}.json`);
  const stamp = `${JSON.stringify({ generator: GENERATOR_VERSION, sources: await sourcesDigest(), options }, null, 2)}\n`;
  const current = async () => (await fs.readFile(stampFile, 'utf8').catch(() => '')) === stamp && (await exists(dir));
  if (await current()) return { dir, reused: true };

  await fs.mkdir(root, { recursive: true });
  const lock = path.join(root, `${name}.lock`);
  while (!(await takeLock(lock))) {
    await new Promise((r) => setTimeout(r, POLL_MS));
    if (await current()) return { dir, reused: true };
  }
  try {
    if (await current()) return { dir, reused: true };
    // Holding the lock, anything temporary of this name was left by a process that died.
    for (const e of await fs.readdir(root)) {
      if (e.startsWith(`${name}.tmp-`) || e.startsWith(`${name}.old-`)) await fs.rm(path.join(root, e), { recursive: true, force: true });
    }
    const suffix = `${process.pid}-${randomBytes(4).toString('hex')}`;
    const tmp = path.join(root, `${name}.tmp-${suffix}`);
    try {
      await generateDataset({ ...world, out: tmp, jobs: opts.jobs ?? defaultJobs() }, opts.onProgress);
      // The old stamp goes first, so a crash part way leaves a world that is regenerated, never a
      // world under a stamp that is not its own.
      await fs.rm(stampFile, { force: true });
      const old = path.join(root, `${name}.old-${suffix}`);
      if (await exists(dir)) await fs.rename(dir, old);
      await fs.rename(tmp, dir);
      await writeFileAtomic(stampFile, stamp);
      await fs.rm(old, { recursive: true, force: true });
    } finally {
      await fs.rm(tmp, { recursive: true, force: true });
    }
    return { dir, reused: false };
  } finally {
    await releaseLock(lock);
  }
}

/** The options in a fixed key order, splits in generation order: the same world gives the same text. */
function canonical(w: WorldOptions): WorldOptions {
  return {
    scenarios: w.scenarios,
    frames: w.frames,
    seed: w.seed,
    camera: w.camera ? { width: w.camera.width, height: w.camera.height } : null,
    splits: SPLITS.filter((s) => w.splits.includes(s)),
    pcdFormat: w.pcdFormat,
    shadows: w.shadows,
  };
}

let digest: Promise<string> | undefined;

/**
 * A digest of every .ts file under datasets/: the generator is in layer L0, so it can import
 * nothing else, and these files are the whole of what decides its output.
 */
function sourcesDigest(): Promise<string> {
  digest ??= (async () => {
    const top = path.join(here, '..');
    const files = (await fs.readdir(top, { recursive: true })).filter((f) => f.endsWith('.ts')).sort();
    const h = createHash('sha256');
    for (const f of files) h.update(`${f.split(path.sep).join('/')}\0`).update(await fs.readFile(path.join(top, f)));
    return h.digest('hex');
  })();
  return digest;
}

const token = `${process.pid}`;

/** Creates the lock file, or clears a stale one and says false; false too while another process holds it. */
async function takeLock(lock: string): Promise<boolean> {
  try {
    await fs.writeFile(lock, token, { flag: 'wx' });
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  const [text, st] = await Promise.all([fs.readFile(lock, 'utf8').catch(() => ''), fs.stat(lock).catch(() => undefined)]);
  const pid = Number(text);
  // An empty file is a lock being written this instant, not a stale one.
  const dead = Number.isInteger(pid) && pid > 0 && !alive(pid);
  if (dead || (st && Date.now() - st.mtimeMs > LOCK_MAX_AGE_MS)) await fs.rm(lock, { force: true });
  return false;
}

async function releaseLock(lock: string): Promise<void> {
  if ((await fs.readFile(lock, 'utf8').catch(() => '')) === token) await fs.rm(lock, { force: true });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

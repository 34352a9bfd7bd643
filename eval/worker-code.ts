// What an evaluation worker (eval/pool.ts) loads: eval/worker.ts and everything it imports, as one
// plain-JS file that esbuild builds and .cache/ keeps. Through tsx's loader a worker spends ~0.75 s
// of CPU compiling and loading heal's TypeScript before it can take a frame; from the built file
// ~0.17 s (this 2-core machine), and a pool of N workers pays it N times. The file is rebuilt when
// a source it was built from changes (their SHA-256 are kept beside it). Where it cannot be built
// or written (a read-only install), workers load the TypeScript through tsx: the same code, slower.

import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { CACHE_ROOT, sha256OfFile, writeFileAtomic } from '../datasets/io.ts';

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const DIR = path.join(CACHE_ROOT, 'eval-worker');
const CODE = path.join(DIR, 'worker.mjs');
const STAMP = path.join(DIR, 'sources.json');
/** The TypeScript entry, through tsx: the fallback. */
export const TSX_ENTRY = fileURLToPath(new URL('./worker-entry.js', import.meta.url));
/** Bumped when the build's options change. */
const BUILD_VERSION = 1;

interface Stamp {
  build: number;
  esbuild: string;
  /** Repository-relative path → SHA-256 of every source in the file. */
  sources: Record<string, string>;
}

async function esbuildVersion(): Promise<string> {
  const pkg = JSON.parse(await fs.readFile(path.join(ROOT, 'node_modules', 'esbuild', 'package.json'), 'utf8')) as { version: string };
  return pkg.version;
}

async function upToDate(): Promise<boolean> {
  try {
    const stamp = JSON.parse(await fs.readFile(STAMP, 'utf8')) as Stamp;
    if (stamp.build !== BUILD_VERSION || stamp.esbuild !== (await esbuildVersion())) return false;
    await fs.access(CODE);
    for (const [rel, hash] of Object.entries(stamp.sources)) if ((await sha256OfFile(path.join(ROOT, rel))) !== hash) return false;
    return true;
  } catch {
    return false;
  }
}

async function build(): Promise<void> {
  const esbuild = await import('esbuild');
  const result = await esbuild.build({
    absWorkingDir: ROOT,
    entryPoints: ['eval/worker.ts'],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external',
    write: false,
    outfile: CODE,
    metafile: true,
    logLevel: 'silent',
    plugins: [
      {
        // Each module keeps its own import.meta.url (the files it finds beside itself: .proto, weights).
        name: 'own-import-meta-url',
        setup(b) {
          b.onLoad({ filter: /\.ts$/ }, async (args) => ({
            contents: (await fs.readFile(args.path, 'utf8')).replaceAll('import.meta.url', JSON.stringify(pathToFileURL(args.path).href)),
            loader: 'ts',
          }));
        },
      },
    ],
  });
  const sources: Record<string, string> = {};
  for (const rel of Object.keys(result.metafile.inputs)) sources[rel] = await sha256OfFile(path.join(ROOT, rel));
  await writeFileAtomic(CODE, result.outputFiles[0].contents);
  const stamp: Stamp = { build: BUILD_VERSION, esbuild: await esbuildVersion(), sources };
  await writeFileAtomic(STAMP, JSON.stringify(stamp, null, 1) + '\n');
}

/** The file a worker runs: the built code, (re)built here if needed, else the tsx entry and why. */
export async function workerCode(): Promise<{ file: string; fallback?: string }> {
  try {
    if (!(await upToDate())) await build();
    return { file: CODE };
  } catch (err) {
    return {
      file: TSX_ENTRY,
      fallback: `evaluation workers load heal's TypeScript through tsx (their built code could not be made: ${(err as Error).message})`,
    };
  }
}

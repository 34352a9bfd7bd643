import { promises as fs } from 'node:fs';
import { createRequire } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeFileAtomic } from '../../datasets/io.ts';

let dir: string;
beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'heal-io-'));
});
afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

const SIZE = 256 * 1024;
const ROUNDS = 40;

/**
 * A worker thread that waits at a shared barrier, then writes ROUNDS payloads of SIZE bytes, every
 * byte its own mark, to one file. tsx is registered in the worker itself: the test runner's loader
 * does not reach worker threads.
 */
function writer(target: string, mark: number, barrier: Int32Array): Worker {
  const tsx = pathToFileURL(path.join(path.dirname(createRequire(import.meta.url).resolve('tsx/package.json')), 'dist', 'esm', 'api', 'index.mjs')).href;
  const io = new URL('../../datasets/io.ts', import.meta.url).href;
  const code = `
    import { register } from ${JSON.stringify(tsx)};
    import { workerData, parentPort } from 'node:worker_threads';
    register();
    const { writeFileAtomic } = await import(${JSON.stringify(io)});
    const { target, mark, barrier, size, rounds } = workerData;
    Atomics.add(barrier, 0, 1);
    while (Atomics.load(barrier, 0) < 2) Atomics.wait(barrier, 0, 1, 5);
    for (let i = 0; i < rounds; i++) await writeFileAtomic(target, new Uint8Array(size).fill(mark));
    parentPort.postMessage('done');`;
  return new Worker(new URL(`data:text/javascript,${encodeURIComponent(code)}`), {
    workerData: { target, mark, barrier, size: SIZE, rounds: ROUNDS },
  });
}

function finished(w: Worker): Promise<void> {
  return new Promise((resolve, reject) => {
    w.on('message', () => resolve());
    w.on('error', reject);
    w.on('exit', (code) => (code ? reject(new Error(`worker exited with ${code}`)) : resolve()));
  });
}

/** Undefined when `bytes` is SIZE bytes of one writer's mark, else what is wrong with it. */
function problem(bytes: Uint8Array): string | undefined {
  if (bytes.length !== SIZE) return `${bytes.length} bytes, expected ${SIZE}`;
  if (bytes[0] !== 1 && bytes[0] !== 2) return `starts with ${bytes[0]}`;
  const mixed = bytes.findIndex((b) => b !== bytes[0]);
  return mixed < 0 ? undefined : `byte ${mixed} is ${bytes[mixed]}, byte 0 is ${bytes[0]}`;
}

describe('writeFileAtomic', () => {
  it('two worker threads writing one file never clash, and every read sees one complete file', async () => {
    const target = path.join(dir, 'shared', 'weights.bin');
    const barrier = new Int32Array(new SharedArrayBuffer(4));
    const workers = [writer(target, 1, barrier), writer(target, 2, barrier)];
    let running = true;
    const done = Promise.all(workers.map(finished)).finally(() => {
      running = false;
    });
    // On a failure the other writer would go on writing into the folder afterAll removes.
    done.catch(() => workers.forEach((w) => w.terminate()));
    // Read while they write: a rename replaces the file whole, so no read may see a partial one.
    let reads = 0;
    const seen: string[] = [];
    while (running) {
      const bytes = await fs.readFile(target).catch(() => undefined);
      if (bytes) {
        reads++;
        const p = problem(bytes);
        if (p) seen.push(p);
      }
      await new Promise((r) => setTimeout(r, 1));
    }
    await done;
    expect(seen).toEqual([]);
    expect(problem(await fs.readFile(target))).toBeUndefined();
    expect(await fs.readdir(path.dirname(target))).toEqual(['weights.bin']);
    expect(reads).toBeGreaterThan(0);
  });

  it('leaves no temporary file when the write fails', async () => {
    const target = path.join(dir, 'occupied');
    await fs.mkdir(target);
    await expect(writeFileAtomic(target, 'x')).rejects.toThrow();
    expect(await fs.readdir(dir)).not.toContainEqual(expect.stringMatching(/\.tmp$/));
  });

  it('creates missing folders and replaces an existing file', async () => {
    const target = path.join(dir, 'a', 'b', 'c.json');
    await writeFileAtomic(target, 'first');
    await writeFileAtomic(target, new Uint8Array([115, 101, 99]));
    expect(await fs.readFile(target, 'utf8')).toBe('sec');
  });
});

// The evaluation workers' built code (eval/worker-code.ts): made from the sources, reused while
// they hash the same, made again when one changes.

import { describe, expect, it } from 'vitest';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { CACHE_ROOT } from '../../datasets/io.ts';
import { TSX_ENTRY, workerCode } from '../../eval/worker-code.ts';

const stampFile = path.join(CACHE_ROOT, 'eval-worker', 'sources.json');

describe('evaluation workers’ code', () => {
  it('is built from eval/worker.ts and its imports, reused while they are unchanged, rebuilt when one changes', async () => {
    const first = await workerCode();
    expect(first.fallback).toBeUndefined();
    expect(first.file).not.toBe(TSX_ENTRY);
    const stamp = JSON.parse(await fs.readFile(stampFile, 'utf8')) as { sources: Record<string, string> };
    expect(Object.keys(stamp.sources)).toEqual(expect.arrayContaining(['eval/worker.ts', 'eval/evaluate.ts', 'fusion/pipeline.ts']));
    const built = (await fs.stat(first.file)).mtimeMs;

    await workerCode();
    expect((await fs.stat(first.file)).mtimeMs).toBe(built);

    // A source whose hash no longer matches (as after an edit) makes it build again.
    stamp.sources['eval/worker.ts'] = '0'.repeat(64);
    await fs.writeFile(stampFile, JSON.stringify(stamp));
    await new Promise((r) => setTimeout(r, 20));
    await workerCode();
    expect((await fs.stat(first.file)).mtimeMs).toBeGreaterThan(built);
    const again = JSON.parse(await fs.readFile(stampFile, 'utf8')) as { sources: Record<string, string> };
    expect(again.sources['eval/worker.ts']).not.toBe('0'.repeat(64));
  });
});

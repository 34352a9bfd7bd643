// heal generate --shard I/N: shards written one after another into one folder give the files of
// the unsharded run, byte for byte, and each shard writes only its own scenarios.

import { describe, it, expect, afterAll } from 'vitest';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { generateDataset, type GenerateOptions } from '../../datasets/synthetic/generate.ts';

const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'heal-gen-shards-'));
afterAll(() => fs.rm(dir, { recursive: true, force: true }));

async function tree(root: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  for (const e of await fs.readdir(root, { recursive: true, withFileTypes: true })) {
    if (!e.isFile()) continue;
    const file = path.join(e.parentPath, e.name);
    out.set(path.relative(root, file), await fs.readFile(file));
  }
  return out;
}

describe('heal generate --shard', () => {
  it('2 shards into one folder write the unsharded world, each only its scenarios', async () => {
    const opts: GenerateOptions = {
      out: path.join(dir, 'whole'),
      scenarios: 3,
      frames: 1,
      seed: 5,
      camera: null,
      splits: ['train', 'validate', 'test'],
      jobs: 1,
      pcdFormat: 'binary_compressed',
      shadows: false,
    };
    const whole = await generateDataset(opts);
    const shards = [];
    for (const index of [0, 1]) shards.push(await generateDataset({ ...opts, out: path.join(dir, 'sharded'), shard: { index, count: 2 } }));
    expect(shards.map((s) => s.scenarios.map((x) => x.split))).toEqual([['train', 'test'], ['validate']]);
    expect(shards.flatMap((s) => s.scenarios).sort((a, b) => a.name.localeCompare(b.name))).toEqual(
      [...whole.scenarios].sort((a, b) => a.name.localeCompare(b.name)),
    );
    const a = await tree(opts.out);
    const b = await tree(path.join(dir, 'sharded'));
    expect([...b.keys()].sort()).toEqual([...a.keys()].sort());
    for (const [f, bytes] of a) expect(b.get(f)!.equals(bytes), f).toBe(true);
  }, 120_000);
});

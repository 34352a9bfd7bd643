// `npm start`: the main job on an embedded default. For now: generate a small synthetic
// OPV2V-H world (deterministic, cached after the first run), then inspect it and draw one frame.

import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promises as fs } from 'node:fs';
import { exists, writeFileAtomic } from '../datasets/io.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
export const DEFAULT_WORLD = {
  dir: path.join(here, '..', '.cache', 'default-world'),
  args: ['--scenarios', '3', '--frames', '6', '--seed', '7'],
};

/** Generates the default world unless an identical one is already cached. */
export async function ensureDefaultWorld(): Promise<string> {
  const { dir, args } = DEFAULT_WORLD;
  const stamp = path.join(dir, '.heal-generate.json');
  const wanted = JSON.stringify(args);
  if ((await exists(stamp)) && (await fs.readFile(stamp, 'utf8')) === wanted) {
    console.log(`using the cached synthetic world in ${path.relative(process.cwd(), dir)} (delete it to regenerate)`);
    return dir;
  }
  await fs.rm(dir, { recursive: true, force: true });
  const generate = await import('./generate.ts');
  const code = await generate.run(['--out', dir, ...args]);
  if (code) throw new Error(`generate failed with exit code ${code}`);
  await writeFileAtomic(stamp, wanted);
  return dir;
}

export async function run(args: string[]): Promise<number> {
  if (args.includes('--help')) {
    console.log('usage: heal start\n\nGenerates (once) a small synthetic world in .cache/default-world, inspects it and draws one frame.');
    return 0;
  }
  const dir = await ensureDefaultWorld();
  const inspect = await import('./inspect.ts');
  const testSplit = path.join(dir, 'test');
  const code = await inspect.run([testSplit]);
  if (code) return code;
  const png = path.join(dir, 'topdown.png');
  return (await inspect.run([testSplit, '--png', png])) ?? 0;
}

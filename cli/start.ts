// `npm start`: the main job on an embedded default. Generates a small synthetic OPV2V-H world
// (deterministic, cached after the first run) and evaluates its test split with the shipped
// weights: AP per agent-type combination and fusion mode, bandwidth per dtype, latency per stage,
// a self-contained HTML report, and the command that opens the run in the viewer.

import * as path from 'node:path';
import { cachedWorld, type WorldOptions } from '../datasets/synthetic/cached.ts';
import { SPLITS } from '../datasets/synthetic/generate.ts';
import { command, helpText } from './args.ts';

/** What `heal generate --scenarios 3 --frames 6 --seed 7` writes, kept in .cache/default-world. */
export const DEFAULT_WORLD: { name: string; options: WorldOptions } = {
  name: 'default-world',
  options: { scenarios: 3, frames: 6, seed: 7, camera: { width: 400, height: 300 }, splits: [...SPLITS], pcdFormat: 'ascii', shadows: true },
};

/** Generates the default world unless an identical one is already cached. */
export async function ensureDefaultWorld(): Promise<string> {
  const { progress } = await import('./progress.ts');
  let bar: ReturnType<typeof progress> | undefined;
  const { dir, reused } = await cachedWorld(DEFAULT_WORLD.options, {
    name: DEFAULT_WORLD.name,
    onProgress: (_done, total, ev) => {
      bar ??= progress('generate', total);
      bar.tick(1, { scenario: `${ev.split}/${ev.scenario}`, agent: ev.agent });
    },
  });
  bar?.stop();
  const shown = path.relative(process.cwd(), dir);
  console.log(reused ? `using the cached synthetic world in ${shown} (delete it to regenerate)` : `generated the synthetic world in ${shown}`);
  return dir;
}

/** What `npm start` evaluates: small enough for about a minute on a 2-core CPU. */
export const START_EVAL = {
  combos: 'm1;m1,m2,m3,m4',
  fusion: 'pyramid,late,none',
  dtypes: 'float32,float16,int8',
  sparsity: '1,0.25',
};

/** Stands for the default world until it is generated. */
const DEFAULT_DATA = '(the default world)';

export const START = command({
  name: 'start',
  usage: '[heal eval options]',
  about: `Generates (once) a small synthetic world in .cache/default-world and evaluates its test split
with the shipped weights (seeded random ones, with a warning, when none are shipped):
  heal eval --data .cache/default-world --split test --combos "${START_EVAL.combos}" \\
    --fusion ${START_EVAL.fusion} --dtypes ${START_EVAL.dtypes} --sparsity ${START_EVAL.sparsity}
It prints the AP table and where the HTML report is, and how to open the run in the viewer.
Any heal eval option (heal eval --help) may follow and overrides these, e.g. --device cpu.`,
  options: {},
});

export async function run(args: string[]): Promise<number> {
  const { parseEvalArgs, printSummary, shownPath } = await import('./eval.ts');
  // Checked before the world is generated, so that a mistake costs nothing. A UsageError goes on
  // to cli/main.ts, which prints it as heal start's. The last value of an option wins, so the
  // user's arguments override these.
  const parsed = parseEvalArgs([
    '--data',
    DEFAULT_DATA,
    '--split',
    'test',
    '--combos',
    START_EVAL.combos,
    '--fusion',
    START_EVAL.fusion,
    '--dtypes',
    START_EVAL.dtypes,
    '--sparsity',
    START_EVAL.sparsity,
    ...args,
  ]);
  if (parsed === 'help') {
    console.log(helpText(START));
    return 0;
  }
  const data = parsed.options.data === DEFAULT_DATA ? await ensureDefaultWorld() : parsed.options.data;
  const { evaluate } = await import('../eval/evaluate.ts');
  const { progress } = await import('./progress.ts');
  if (parsed.randomWeightsReason) {
    console.warn(`warning: no trained weights: running on seeded random weights (${parsed.randomWeightsReason}); the AP values mean nothing`);
  }
  const report = await evaluate({ ...parsed.options, data, log: (l) => console.error(l), progress: (n) => progress('eval', n) });
  printSummary(report);
  const runDir = shownPath(path.dirname(report.files.run));
  console.log(`\nopen the report: ${shownPath(report.files.html)}`);
  console.log(`open the viewer: npx heal view ${runDir}`);
  return report.frames.evaluated > 0 ? 0 : 1;
}

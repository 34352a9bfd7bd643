// The command-line cases of issue 15: an existing --out was overwritten without a word, and an
// interrupted re-run looked complete; --score-threshold 2 was accepted; --types-dir /nonexistent
// was ignored; --mcap, --json and --png created missing folders anywhere.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { type CommandSpec, type Options, UsageError, parseCommand } from '../../cli/args.ts';
import { EVAL, parseEvalArgs } from '../../cli/eval.ts';
import { INSPECT } from '../../cli/inspect.ts';
import { DETECT } from '../../cli/detect.ts';
import { VIEW } from '../../cli/view.ts';
import { TRAIN } from '../../cli/train.ts';
import { ALIGN } from '../../cli/align.ts';
import { CALIBRATE } from '../../cli/calibrate.ts';
import { EXPORT } from '../../cli/export.ts';
import { GENERATE } from '../../cli/generate.ts';
import { IMPORT } from '../../cli/import.ts';
import { BENCH } from '../../cli/bench.ts';
import { ADAPT } from '../../cli/adapt.ts';
import { VERIFY_REFERENCE } from '../../cli/verify-reference.ts';
import { START } from '../../cli/start.ts';
import { KEYS } from '../../cli/keys.ts';
import { INCOMPLETE_MARKER, finishRunFolder, isIncompleteRun, startRunFolder } from '../../eval/runfolder.ts';
import { readRun } from '../../viewer/run.ts';

// biome-ignore lint/suspicious/noExplicitAny: specs of every command, read generically
const COMMANDS: CommandSpec<any>[] = [
  EVAL,
  INSPECT,
  DETECT,
  VIEW,
  TRAIN,
  ALIGN,
  ADAPT,
  CALIBRATE,
  EXPORT,
  GENERATE,
  IMPORT,
  BENCH,
  VERIFY_REFERENCE,
  START,
  KEYS,
];

let tmp = '';
beforeAll(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'heal-cli-harden-'));
});
afterAll(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

function usage(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof UsageError) return err.message;
    throw err;
  }
  return '(accepted)';
}

describe('heal eval --out', () => {
  it('refuses a folder that holds anything unless --overwrite; an empty or new folder is fine', async () => {
    const used = path.join(tmp, 'used');
    await fs.mkdir(used);
    await fs.writeFile(path.join(used, 'run.json'), '{}');
    expect(usage(() => parseEvalArgs(['--data', 'd', '--out', used]))).toBe(
      `--out ${used} is not empty; give --overwrite to replace the run there, or another --out`,
    );
    expect(usage(() => parseEvalArgs(['--data', 'd', '--out', used, '--overwrite']))).toBe('(accepted)');
    const empty = path.join(tmp, 'empty');
    await fs.mkdir(empty);
    expect(usage(() => parseEvalArgs(['--data', 'd', '--out', empty]))).toBe('(accepted)');
    expect(usage(() => parseEvalArgs(['--data', 'd', '--out', path.join(tmp, 'new')]))).toBe('(accepted)');
  });

  it('a run folder is marked INCOMPLETE first and unmarked last; a re-run removes the old run files first', async () => {
    const dir = path.join(tmp, 'run');
    await fs.mkdir(dir);
    for (const f of ['run.json', 'frames.jsonl', 'report.json', 'report.html', 'notes.txt']) await fs.writeFile(path.join(dir, f), 'old');
    await startRunFolder(dir);
    expect(await isIncompleteRun(dir)).toBe(true);
    // The old run's files are gone, so an interrupted re-run cannot mix two runs; other files stay.
    expect((await fs.readdir(dir)).sort()).toEqual([INCOMPLETE_MARKER, 'notes.txt']);
    await finishRunFolder(dir);
    expect(await isIncompleteRun(dir)).toBe(false);
  });

  it('heal view (readRun) says a run is incomplete', async () => {
    const dir = path.join(tmp, 'partial');
    await startRunFolder(dir);
    const meta = { version: 1, data: '.', split: 'test', profile: 'small', types: ['m1'], combos: [['m1']], fusion: ['pyramid'], weights: null };
    await fs.writeFile(path.join(dir, 'run.json'), JSON.stringify(meta));
    const run = await readRun(dir);
    expect(run.incomplete).toBe(true);
    expect(run.warnings.join('\n')).toMatch(/did not finish/);
    await finishRunFolder(dir);
    expect((await readRun(dir)).incomplete).toBe(false);
  });
});

describe('numeric options', () => {
  it('--score-threshold 2 is refused wherever it is an option', () => {
    for (const spec of [EVAL, VIEW, CALIBRATE] as CommandSpec<Options>[]) {
      const args = spec === VIEW ? ['d'] : spec === CALIBRATE ? ['--data', 'd', '--weights', 'w', '--out', 'o'] : ['--data', 'd'];
      expect(usage(() => parseCommand(spec, [...args, '--score-threshold', '2']))).toBe('--score-threshold must be a number in [0, 1) (got "2")');
    }
  });

  it('every numeric option of every command declares its bounds: integers a lower one (seeds and agent ids: any), reals both', () => {
    const unbounded: string[] = [];
    for (const spec of COMMANDS) {
      for (const [name, o] of Object.entries(spec.options as Options)) {
        const b = o.bounds;
        if (!b || name === 'seed' || name === 'ego') continue;
        const lower = b.min !== undefined || b.above !== undefined;
        const upper = b.max !== undefined || b.below !== undefined;
        if (!lower || (!b.integer && !upper)) unbounded.push(`heal ${spec.name} --${name}`);
      }
    }
    expect(unbounded).toEqual([]);
  });
});

describe('paths on the command line', () => {
  it('--types-dir must be an existing folder, for every command that has it', () => {
    const missing = path.join(tmp, 'no-such-dir');
    const base: Record<string, string[]> = {
      eval: ['--data', 'd'],
      detect: ['d'],
      view: ['d'],
      align: ['--type', 'm2', '--data', 'd', '--out', 'o', '--base', 'b'],
      train: ['--single', '--type', 'm5', '--data', 'd', '--out', 'o'],
      adapt: ['--type', 'm5', '--base', 'b', '--encoder', 'e', '--data', 'd', '--out', 'o'],
      calibrate: ['--data', 'd', '--weights', 'w', '--out', 'o'],
      export: ['--weights', 'w', '--out', 'o'],
      import: ['x.pth', '--out', 'o'],
      'verify-reference': ['d'],
    };
    for (const spec of COMMANDS.filter((c) => 'types-dir' in c.options)) {
      const args = base[spec.name];
      expect(args, `${spec.name}: add its required arguments here`).toBeDefined();
      expect(
        usage(() => parseCommand(spec, [...args, '--types-dir', missing])),
        spec.name,
      ).toBe(`--types-dir must be an existing folder (got "${missing}")`);
      expect(
        usage(() => parseCommand(spec, [...args, '--types-dir', tmp])),
        spec.name,
      ).toBe('(accepted)');
    }
  });

  it('--mcap, --json, --png and bench --out need their folder to exist', () => {
    const nowhere = path.join(tmp, 'no', 'such', 'folder', 'out.x');
    // biome-ignore lint/suspicious/noExplicitAny: specs of several commands
    const cases: [CommandSpec<any>, string[], string][] = [
      [EVAL, ['--data', 'd'], '--mcap'],
      [DETECT, ['d'], '--json'],
      [INSPECT, ['d'], '--png'],
      [BENCH, [], '--out'],
    ];
    for (const [spec, args, flag] of cases) {
      expect(usage(() => parseCommand(spec, [...args, flag, nowhere]))).toBe(`${flag} must be a file path in an existing folder (got "${nowhere}")`);
      expect(usage(() => parseCommand(spec, [...args, flag, path.join(tmp, 'out.x')]))).toBe('(accepted)');
      // A folder is not a file to write.
      expect(usage(() => parseCommand(spec, [...args, flag, tmp]))).toMatch(/must be a file path/);
    }
  });
});

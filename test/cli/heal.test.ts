// The commands and the `heal` executable: every command's --help runs, a usage error is one line
// on stderr and exit status 2, and the command lines in README.md parse.

import { describe, expect, it, vi } from 'vitest';
import { promises as fs } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as os from 'node:os';
import * as path from 'node:path';
import { type CommandSpec, type Options, parseCommand } from '../../cli/args.ts';
import * as evalCmd from '../../cli/eval.ts';
import { MERGE } from '../../cli/eval-merge.ts';
import * as generate from '../../cli/generate.ts';
import * as inspect from '../../cli/inspect.ts';
import * as detect from '../../cli/detect.ts';
import * as view from '../../cli/view.ts';
import * as train from '../../cli/train.ts';
import * as align from '../../cli/align.ts';
import * as adaptCmd from '../../cli/adapt.ts';
import * as calibrate from '../../cli/calibrate.ts';
import * as exportCmd from '../../cli/export.ts';
import * as start from '../../cli/start.ts';
import * as bench from '../../cli/bench.ts';
import * as importCmd from '../../cli/import.ts';
import * as verifyReference from '../../cli/verify-reference.ts';
import * as keys from '../../cli/keys.ts';
import * as trainCodec from '../../cli/train-codec.ts';
import { runHeal } from '../helpers/cli.ts';

const SPECS: CommandSpec<Options>[] = [
  generate.GENERATE,
  inspect.INSPECT,
  detect.DETECT,
  evalCmd.EVAL,
  view.VIEW,
  train.TRAIN,
  align.ALIGN,
  adaptCmd.ADAPT,
  calibrate.CALIBRATE,
  exportCmd.EXPORT,
  start.START,
  bench.BENCH,
  importCmd.IMPORT,
  verifyReference.VERIFY_REFERENCE,
  keys.KEYS,
  trainCodec.TRAIN_CODEC,
];

type Run = (args: string[]) => Promise<number>;
const RUNS: Record<string, Run> = {
  generate: generate.run,
  inspect: (args) => inspect.run(args),
  detect: detect.run,
  eval: evalCmd.run,
  view: view.run,
  train: train.run,
  align: align.run,
  adapt: adaptCmd.run,
  calibrate: calibrate.run,
  export: exportCmd.run,
  start: start.run,
  bench: bench.run,
  import: importCmd.run,
  'verify-reference': verifyReference.run,
  keys: keys.run,
  'train-codec': trainCodec.run,
};

/** Runs a command in this process, with what it writes to stdout and stderr. */
async function runHere(name: string, args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const o = vi.spyOn(process.stdout, 'write').mockImplementation((t) => {
    out += String(t);
    return true;
  });
  const e = vi.spyOn(process.stderr, 'write').mockImplementation((t) => {
    err += String(t);
    return true;
  });
  const c = vi.spyOn(console, 'log').mockImplementation((...t) => void (out += `${t.join(' ')}\n`));
  const ce = vi.spyOn(console, 'error').mockImplementation((...t) => void (err += `${t.join(' ')}\n`));
  try {
    return { code: await RUNS[name](args), out, err };
  } finally {
    o.mockRestore();
    e.mockRestore();
    c.mockRestore();
    ce.mockRestore();
  }
}

describe('heal', () => {
  it("every command's --help prints its usage and gives 0", async () => {
    expect(Object.keys(RUNS).sort()).toEqual(SPECS.map((s) => s.name).sort());
    for (const spec of SPECS) {
      const r = await runHere(spec.name, ['--help']);
      expect(r.code, `heal ${spec.name} --help: ${r.err}`).toBe(0);
      expect(r.out.startsWith(`usage: heal ${spec.name} `)).toBe(true);
      expect(r.out).toMatch(/-h, --help +this text/);
    }
  });

  it('a usage error is one line naming the option and the value, and status 2', async () => {
    const cases: [string, string[], string][] = [
      ['eval', ['--data', 'x', '--latency', '1.5'], '--latency must be an integer in [0, 1000] (got "1.5")'],
      ['eval', ['x', '--fusion', 'pyramid,early'], '--fusion: "early" is not one of pyramid, late, none (in "pyramid,early")'],
      ['detect', ['x', '--limit', 'many'], '--limit must be an integer >= 1 (got "many")'],
      ['inspect', ['x', '--bogus'], 'unknown option --bogus (heal inspect --help lists the options)'],
      ['generate', ['--out', 'x', '--splits', 'train,bogus'], '--splits: "bogus" is not one of train, validate, test (in "train,bogus")'],
      ['train', ['--data', 'x', '--out', 'y', '--steps=-1'], '--steps must be an integer >= 1 (got "-1")'],
      ['align', ['--type', 'm2', '--data', 'x', '--out', 'y'], 'missing --base WEIGHTS'],
      ['calibrate', ['--data', 'x', '--weights', 'w', '--out', 'o', '--grid', '1,x'], '--grid: "x" is not a number in [0, 100] (in "1,x")'],
      ['view', ['x', '--port', '70000'], '--port must be an integer in [0, 65535] (got "70000")'],
      ['export', ['--out', 'x'], 'missing --weights FILE'],
      ['keys', ['sign', 'dir'], 'unknown action "sign" (have: init, issue, revoke)'],
      ['keys', ['issue', 'dir', '--id', '641'], 'issue needs --type T'],
      ['eval', ['x', '--insecure', '--keys', 'k'], 'give --insecure or --keys, not both'],
      ['detect', ['x', '--keys', '/nonexistent-heal-keys'], '--keys must be an existing folder (got "/nonexistent-heal-keys")'],
      [
        'eval',
        ['x', '--link', 'dsrc', '--jobs', '2'],
        '--link and link sweeps run with --jobs 1 and no --shard: a late message is used in the next frame of its scenario, which another worker may hold',
      ],
      [
        'bench',
        ['nope'],
        'unknown benchmark "nope" (have: synthetic, pillars, camera, inference, train, codec, fuzz, signing, hostile, fuzz-readers, eval-jobs)',
      ],
      ['train-codec', ['--ratio', '12', '--base', 'w', '--data', 'x', '--out', 'y'], '--ratio must be one of 8, 16, 32, 64 (got "12")'],
      ['eval', ['x', '--link', 'dsrc,speed=3'], '--link: link "dsrc,speed=3": unknown key "speed" (have bandwidth, latency, loss, mtu, deadline, late)'],
      ['bench', ['train', '--profile', 'heal'], 'benchmark "train" has no heal profile (only inference)'],
      ['import', ['weights.bin', '--out', 'x'], 'FILE must be a HEAL checkpoint (.pth or .pt), got "weights.bin"'],
      ['verify-reference', ['x', '--only', 'boxes'], '--only: "boxes" is not one of voxels, networks, postprocess, detect, inputs'],
    ];
    for (const [name, args, message] of cases) {
      const r = await runHere(name, args);
      expect([r.code, r.out, r.err], `heal ${name} ${args.join(' ')}`).toEqual([2, '', `heal ${name}: ${message}\n`]);
    }
    // heal eval merge, like heal eval, does not write over an earlier run without --overwrite.
    const merge = await runHere('eval', ['merge', 'x', '--out', 'test']);
    expect([merge.code, merge.out, merge.err]).toEqual([
      2,
      '',
      'heal eval merge: --out test is not empty; give --overwrite to replace the run there, or another --out\n',
    ]);
  });

  it('node cli/heal.js: --help exits 0; a usage error exits 2 with one line, also when it reaches cli/main.ts', async () => {
    const [help, bad, viaMain, unknown] = await Promise.all([
      runHeal(['eval', '--help']),
      runHeal(['inspect', 'x', '--range', '0']),
      // heal start hands its arguments to heal eval's parser and lets the error go to cli/main.ts.
      runHeal(['start', '--trust', 'm2=x']),
      runHeal(['frobnicate']),
    ]);
    expect(help.code).toBe(0);
    expect(help.out.startsWith('usage: heal eval --data DIR [options]')).toBe(true);
    expect([bad.code, bad.out, bad.err]).toEqual([2, '', 'heal inspect: --range must be a number in (0, 1000] (got "0")\n']);
    expect([viaMain.code, viaMain.out, viaMain.err]).toEqual([2, '', 'heal start: --trust: expected TYPE=T, T a number >= 0 (got "m2=x")\n']);
    expect(unknown.code).toBe(2);
    expect(unknown.err.split('\n')[0]).toBe('heal: unknown command "frobnicate"');
  }, 60_000);

  it("README.md's heal command lines parse", async () => {
    const readme = await fs.readFile(fileURLToPath(new URL('../../README.md', import.meta.url)), 'utf8');
    const commands = readmeCommands(readme);
    expect(commands.length).toBeGreaterThanOrEqual(20);
    const byName = new Map(SPECS.map((s) => [s.name, s]));
    const seen = new Set<string>();
    // A README flow makes the folders it later reads (heal adapt writes the --types-dir of the next
    // heal eval, heal keys init the --keys folder); whether a folder exists is the run's business, so
    // those parse against one that does.
    const madeDir = await fs.mkdtemp(path.join(os.tmpdir(), 'heal-readme-dir-'));
    for (const line of commands) {
      const argv = line.map((a, i) => (line[i - 1] === '--types-dir' || line[i - 1] === '--keys' ? madeDir : a));
      const [name, ...args] = argv;
      const spec = byName.get(name);
      expect(spec, `README: heal ${argv.join(' ')}`).toBeDefined();
      seen.add(name);
      const parsed =
        name === 'eval' && args[0] === 'merge' ? parseCommand(MERGE, args.slice(1)) : name === 'eval' ? evalCmd.parseEvalArgs(args) : parseCommand(spec!, args);
      expect(parsed, `README: heal ${argv.join(' ')}`).not.toBe('help');
    }
    expect([...seen].sort()).toEqual([
      'adapt',
      'align',
      'bench',
      'calibrate',
      'detect',
      'eval',
      'export',
      'generate',
      'import',
      'inspect',
      'keys',
      'train',
      'train-codec',
      'verify-reference',
      'view',
    ]);
  });
});

/**
 * The arguments of every `npx heal ...` line in README's code blocks: continuation lines joined,
 * comments, redirections and `&`/`&&` dropped, the loop variable $t set to m2.
 */
function readmeCommands(readme: string): string[][] {
  const blocks = [...readme.matchAll(/^```[a-z]*\n([\s\S]*?)^```/gm)].map((m) => m[1]);
  const out: string[][] = [];
  for (const block of blocks) {
    const joined = block.replace(/\\\n\s*/g, ' ');
    for (const raw of joined.split('\n')) {
      const at = raw.indexOf('npx heal ');
      if (at < 0) continue;
      const line = raw
        .slice(at + 'npx heal '.length)
        .replace(/\s#.*$/, '')
        .replace(/\s*&&?\s*$/, '')
        .replace(/\s*>\s*\S+/, '')
        .replaceAll('$t', 'm2');
      out.push([...line.matchAll(/"([^"]*)"|(\S+)/g)].map((m) => m[1] ?? m[2]));
    }
  }
  return out;
}

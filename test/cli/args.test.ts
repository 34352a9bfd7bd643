// The shared command-line module: values are checked by one set of helpers whose errors name the
// option and the value, unknown options are refused, and the help comes from the declarations.

import { describe, expect, it } from 'vitest';
import {
  UsageError,
  choice,
  choices,
  command,
  flag,
  helpText,
  int,
  map,
  number,
  numbers,
  parseCommand,
  real,
  repeat,
  runCommand,
  string,
} from '../../cli/args.ts';
import { EVAL, parseEvalArgs } from '../../cli/eval.ts';
import { GENERATE } from '../../cli/generate.ts';
import { INSPECT } from '../../cli/inspect.ts';
import { DETECT } from '../../cli/detect.ts';
import { VIEW } from '../../cli/view.ts';
import { TRAIN } from '../../cli/train.ts';
import { ALIGN } from '../../cli/align.ts';
import { CALIBRATE } from '../../cli/calibrate.ts';
import { EXPORT } from '../../cli/export.ts';
import { START } from '../../cli/start.ts';
import { BENCH } from '../../cli/bench.ts';

const SPEC = command({
  name: 'demo',
  usage: 'DIR [options]',
  about: 'Demonstrates the declarations.',
  positionals: { name: 'DIR', min: 1, max: 1 },
  options: {
    out: string({ arg: 'FILE', help: 'where to write' }),
    steps: int({ min: 1, default: 400, help: 'optimisation steps' }),
    seed: int({ default: 0, help: 'seed' }),
    rate: number({ above: 0, max: 1, help: 'a rate' }),
    mode: choice(['a', 'b'], { arg: 'M', default: 'a', help: 'the mode' }),
    modes: choices(['x', 'y', 'z'], { default: ['x'], help: 'modes swept' }),
    noise: numbers({ arg: 'SX,SY', min: 0, count: 2, help: 'noise' }),
    trust: map(real({ min: 0 }), { entry: ['TYPE', 'T'], help: 'trust per type' }),
    'types-dir': repeat({ arg: 'DIR', help: 'declarations' }),
    fast: flag({ help: 'go fast' }),
    slow: flag({ help: 'go slow' }),
    name: string({ arg: 'NAME', required: true, help: 'a name' }),
  },
  exclusive: [['fast', 'slow']],
});

function parse(args: string[]) {
  const p = parseCommand(SPEC, ['dir', '--name', 'n', ...args]);
  if (p === 'help') throw new Error('unexpected help');
  return p;
}

/** The UsageError message of parsing args, or a failure when they parse. */
function usageError(args: string[], base = ['dir', '--name', 'n']): string {
  try {
    parseCommand(SPEC, [...base, ...args]);
  } catch (err) {
    expect(err).toBeInstanceOf(UsageError);
    return (err as Error).message;
  }
  throw new Error(`${args.join(' ')} parsed`);
}

describe('cli/args', () => {
  it('fills in defaults and converts values', () => {
    const { values, positionals, given } = parse(['--steps', '7', '--rate=0.5', '--modes', 'y,z,', '--noise', '0.1, 0.2', '--trust', 'm2=0.3,m4=0']);
    expect(positionals).toEqual(['dir']);
    expect(values.steps).toBe(7);
    expect(values.seed).toBe(0);
    expect(values.rate).toBe(0.5);
    expect(values.mode).toBe('a');
    expect(values.modes).toEqual(['y', 'z']);
    expect(values.noise).toEqual([0.1, 0.2]);
    expect(values.trust).toEqual({ m2: 0.3, m4: 0 });
    expect(values['types-dir']).toEqual([]);
    expect(values.fast).toBe(false);
    expect(values.out).toBeUndefined();
    expect([...given].sort()).toEqual(['modes', 'name', 'noise', 'rate', 'steps', 'trust']);
  });

  it('takes negative numbers as values, repeats repeatable options, and keeps the last of others', () => {
    const { values } = parse(['--seed', '-5', '--types-dir', 'a', '--types-dir', 'b', '--steps', '3', '--steps', '4']);
    expect(values.seed).toBe(-5);
    expect(values['types-dir']).toEqual(['a', 'b']);
    expect(values.steps).toBe(4);
  });

  it('names the option and the value of a bad number, list, enum or map', () => {
    expect(usageError(['--steps', '0'])).toBe('--steps must be an integer >= 1 (got "0")');
    expect(usageError(['--steps', '1.5'])).toBe('--steps must be an integer >= 1 (got "1.5")');
    expect(usageError(['--seed', '12abc'])).toBe('--seed must be an integer (got "12abc")');
    expect(usageError(['--rate', '0'])).toBe('--rate must be a number in (0, 1] (got "0")');
    expect(usageError(['--rate', ''])).toBe('--rate must be a number in (0, 1] (got "")');
    expect(usageError(['--mode', 'c'])).toBe('--mode must be one of a, b (got "c")');
    expect(usageError(['--modes', 'x,w'])).toBe('--modes: "w" is not one of x, y, z (in "x,w")');
    expect(usageError(['--modes', ','])).toBe('--modes needs at least one value, one of x, y, z (got ",")');
    expect(usageError(['--noise', '0.1,a'])).toBe('--noise: "a" is not a number >= 0 (in "0.1,a")');
    expect(usageError(['--noise', '0.1,-1'])).toBe('--noise: "-1" is not a number >= 0 (in "0.1,-1")');
    expect(usageError(['--noise', '0.1'])).toBe('--noise needs 2 values (got 1: "0.1")');
    expect(usageError(['--trust', 'm2=-1'])).toBe('--trust: expected TYPE=T, T a number >= 0 (got "m2=-1")');
    expect(usageError(['--trust', 'm2'])).toBe('--trust: expected TYPE=T, T a number >= 0 (got "m2")');
    expect(usageError(['--trust', ','])).toBe('--trust: expected TYPE=T[,TYPE=T...] (got ",")');
  });

  it('refuses unknown options, missing values, missing options and arguments, and conflicts', () => {
    expect(usageError(['--bogus'])).toBe('unknown option --bogus (heal demo --help lists the options)');
    expect(usageError(['-x'])).toBe('unknown option -x (heal demo --help lists the options)');
    expect(usageError(['--fast=yes'])).toBe('--fast takes no value (got "yes")');
    expect(usageError(['--steps'])).toBe('--steps needs a value: --steps N');
    expect(usageError(['--steps', '--fast'])).toBe('--steps needs a value: --steps N');
    expect(usageError(['--out', '-o'])).toBe('--out needs a value: --out FILE (write --out=-o for a value that starts with "-")');
    expect(usageError(['--fast', '--slow'])).toBe('give --fast or --slow, not both');
    expect(usageError([], ['dir'])).toBe('missing --name NAME');
    expect(usageError([], ['--name', 'n'])).toBe('missing DIR');
    expect(usageError(['other'])).toBe('unexpected argument "other"');
    // --help wins over everything else on the line.
    expect(parseCommand(SPEC, ['--bogus', '--help'])).toBe('help');
    expect(parseCommand(SPEC, ['-h'])).toBe('help');
  });

  it('generates the help from the declarations', () => {
    const help = helpText(SPEC);
    const lines = help.split('\n');
    expect(lines[0]).toBe('usage: heal demo DIR [options]');
    expect(lines).toContain('Demonstrates the declarations.');
    const line = (label: string) => lines.find((l) => l.trimStart().startsWith(label)) ?? '';
    expect(line('--steps N')).toMatch(/^ {2}--steps N +optimisation steps \(default 400\)$/);
    expect(line('--mode M')).toMatch(/the mode \(a \| b; default a\)$/);
    expect(line('--modes LIST')).toMatch(/modes swept \(x \| y \| z; default x\)$/);
    expect(line('--noise SX,SY')).toMatch(/noise$/);
    expect(line('--trust TYPE=T,...')).toMatch(/trust per type$/);
    expect(line('--types-dir DIR')).toMatch(/declarations \(repeatable\)$/);
    expect(line('--name NAME')).toMatch(/a name \(required\)$/);
    expect(line('--fast')).toMatch(/^ {2}--fast +go fast$/);
    expect(line('-h, --help')).toMatch(/this text$/);
    // Every option is listed once, in declaration order, and descriptions start in one column.
    const labels = lines.filter((l) => /^ {2}-/.test(l));
    expect(labels.map((l) => /--([a-z-]+)/.exec(l)?.[1])).toEqual([...Object.keys(SPEC.options), 'help']);
    expect(new Set(labels.map((l) => l.search(/(?<=\S {2,})\S/))).size).toBe(1);
    expect(Math.max(...lines.map((l) => l.length))).toBeLessThanOrEqual(100);
  });

  it("lists every option of every command in that command's help", () => {
    for (const spec of [GENERATE, INSPECT, DETECT, EVAL, VIEW, TRAIN, ALIGN, CALIBRATE, EXPORT, START, BENCH]) {
      const help = helpText(spec);
      expect(help.startsWith(`usage: heal ${spec.name} `)).toBe(true);
      for (const name of Object.keys(spec.options)) expect(help, `${spec.name} --${name}`).toMatch(new RegExp(`^ {2}--${name}\\b`, 'm'));
      expect(help).toMatch(/^ {2}-h, --help +this text$/m);
    }
  });

  it('runCommand prints the help, or one line and status 2 for a usage error', async () => {
    const io = () => {
      const o = { out: '', err: '', io: { out: (t: string) => void (o.out += t), err: (t: string) => void (o.err += t) } };
      return o;
    };
    const h = io();
    expect(await runCommand(SPEC, ['--help'], async () => 0, h.io)).toBe(0);
    expect(h.out).toBe(`${helpText(SPEC)}\n`);
    const bad = io();
    expect(await runCommand(SPEC, ['d', '--name', 'n', '--steps', 'x'], async () => 0, bad.io)).toBe(2);
    expect(bad.err).toBe('heal demo: --steps must be an integer >= 1 (got "x")\n');
    const later = io();
    const code = await runCommand(
      SPEC,
      ['d', '--name', 'n'],
      async () => {
        throw new UsageError('found out late');
      },
      later.io,
    );
    expect([code, later.err]).toEqual([2, 'heal demo: found out late\n']);
    // Other errors are not usage errors: they go on (heal exits 1 for them).
    await expect(runCommand(SPEC, ['d', '--name', 'n'], async () => Promise.reject(new Error('disk full')), io().io)).rejects.toThrow('disk full');
  });

  it('heal eval reads --trust as TYPE=T pairs or "none", and its lists', () => {
    const p = parseEvalArgs(['x', '--trust', 'm2=0.3, m4=0', '--combos', 'm1;;m1,m2;', '--dtype', 'int8', '--sparsity', '1,0.5']);
    if (p === 'help') throw new Error('unexpected help');
    expect(p.options.data).toBe('x');
    expect(p.options.trust).toEqual({ m2: 0.3, m4: 0 });
    expect(p.options.combos).toEqual([['m1'], ['m1', 'm2']]);
    expect(p.options.dtypes).toEqual(['int8']);
    expect(p.options.keep).toEqual([1, 0.5]);
    const none = parseEvalArgs(['x', '--trust', 'none']);
    expect(none !== 'help' && none.options.trust).toBeNull();
    expect(() => parseEvalArgs(['x', '--trust', 'm2=-1'])).toThrow('--trust: expected TYPE=T, T a number >= 0 (got "m2=-1")');
    expect(() => parseEvalArgs(['x', '--sparsity', '1,0'])).toThrow('--sparsity: "0" is not a number in (0, 1] (in "1,0")');
    expect(() => parseEvalArgs(['x', '--fusion', 'pyramid,early'])).toThrow('--fusion: "early" is not one of pyramid, late, none (in "pyramid,early")');
    expect(() => parseEvalArgs(['x', '--dtype', 'int8', '--dtypes', 'int8'])).toThrow('give --dtype or --dtypes, not both');
    expect(() => parseEvalArgs(['--data', 'x', 'y'])).toThrow('unexpected argument "y"');
  });
});

// `heal calibrate`: fits each agent type's fusion trust on a training split (fusion/calibrate.ts).

import * as path from 'node:path';
import { DEVICES } from '../models/runtime.ts';
import { SPACES } from '../perception/space.ts';
import { calibrate, formatCalibration, DEFAULT_TRUST_GRID, type CalibrateOptions } from '../train/calibrate.ts';
import { formatTrust } from '../fusion/trust.ts';
import { progress } from './progress.ts';
import { choice, command, int, list, number, numbers, parseCommand, repeat, runCommand, string, type Parsed, dirs } from './args.ts';

export const CALIBRATE = command({
  name: 'calibrate',
  usage: '--data DIR --weights FILE [--weights FILE ...] --out RUNDIR [options]',
  about: `Fits each agent type's fusion trust: the factor on its weight in the pyramid's softmax over
agents (1 is HEAL's rule, 0 leaves the type out). HEAL's weights let an agent that is sure of a
car outweigh one that sees nothing by at most e : 1, so weak partners dilute what the ego sees;
a trust below 1 stops that. Nothing else changes: encoders, fusion and head stay frozen.
For each type T, every scene of the split is run with a BASE ego and T partners under each trust
of the grid; T gets the trust with the best AP@0.5 (ties: the larger). Writes RUNDIR/weights.bin
(the weights with the trusts; give it to heal export), RUNDIR/calibrate.json (every AP, for
heal export --record) and RUNDIR/calibrate.html (AP@0.5 against trust, per type).`,
  options: {
    data: string({ arg: 'DIR', required: true, help: 'dataset folder' }),
    weights: repeat({
      arg: 'FILE',
      required: true,
      help: "weight file(s), heal's or HEAL checkpoints (.pth); several alignments of one base are merged as heal export does",
    }),
    out: string({ arg: 'RUNDIR', required: true, help: 'output folder' }),
    types: list({ default: ['m2', 'm3', 'm4'], help: 'types to calibrate' }),
    base: string({ arg: 'TYPE', default: 'm1', help: "the ego's type" }),
    split: string({ arg: 'NAME', default: 'train', help: 'split to fit on (validate and test stay held out)' }),
    grid: numbers({ min: 0, max: 100, default: DEFAULT_TRUST_GRID, help: 'trust values tried' }),
    limit: int({ min: 1, help: 'only the first N frames of the split' }),
    device: choice(DEVICES, { arg: 'D', default: 'auto', help: 'where the networks run' }),
    profile: choice(Object.keys(SPACES), { arg: 'P', default: 'small', help: 'shared-space profile' }),
    'types-dir': dirs({ help: 'extra agent-type declarations (*.json)' }),
    'score-threshold': number({ arg: 'S', min: 0, below: 1, defaultText: "0.2, HEAL's", help: 'detection score threshold' }),
  },
});

function calibrateOptions({ values, argv }: Parsed<typeof CALIBRATE.options>): Omit<CalibrateOptions, 'log' | 'progress'> {
  return {
    data: values.data,
    weightsFiles: values.weights.map((w) => path.resolve(w)),
    out: values.out,
    types: values.types,
    base: values.base,
    split: values.split,
    grid: values.grid,
    limit: values.limit,
    device: values.device,
    profile: values.profile,
    typesDirs: values['types-dir'],
    scoreThreshold: values['score-threshold'],
    command: ['heal', 'calibrate', ...argv].join(' '),
  };
}

/** Parses heal calibrate's arguments (UsageError on a mistake); 'help' for -h/--help. */
export function parseCalibrateArgs(args: readonly string[]): Omit<CalibrateOptions, 'log' | 'progress'> | 'help' {
  const parsed = parseCommand(CALIBRATE, args);
  return parsed === 'help' ? 'help' : calibrateOptions(parsed);
}

export function run(args: string[]): Promise<number> {
  return runCommand(CALIBRATE, args, async (parsed) => {
    const { record, weightsFile, recordFile, pageFile } = await calibrate({
      ...calibrateOptions(parsed),
      log: (line) => console.error(line),
      progress: (total) => progress('calibrate', total),
    });
    console.log(`\nAP@0.5 on ${record.frames.evaluated} frames of split "${record.split}" (${record.base} ego, the type's partners; * chosen):`);
    console.log(formatCalibration(record));
    for (const f of record.failures) console.log(`  skipped ${f.scenario} ${f.timestamp}: ${f.reason}`);
    console.log(`\nfusion trust: ${formatTrust(record.fusionTrust)}`);
    console.log(`execution provider: ${record.provider}; ${record.wallSeconds.toFixed(0)} s`);
    console.log(`weights: ${weightsFile}`);
    console.log(`record: ${recordFile}`);
    console.log(`plot: ${pageFile}`);
    return 0;
  });
}

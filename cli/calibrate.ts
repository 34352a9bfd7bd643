// `heal calibrate`: fits each agent type's fusion trust on a training split (fusion/calibrate.ts).

import { parseArgs } from 'node:util';
import * as path from 'node:path';
import { DEVICES, type Device } from '../models/runtime.ts';
import { calibrate, formatCalibration, DEFAULT_TRUST_GRID, type CalibrateOptions } from '../train/calibrate.ts';
import { formatTrust } from '../fusion/trust.ts';
import { progress } from './progress.ts';
import { list, numberList } from './eval.ts';

const USAGE = `usage: heal calibrate --data DIR --weights FILE [--weights FILE ...] --out RUNDIR [options]

Fits each agent type's fusion trust: the factor on its weight in the pyramid's softmax over
agents (1 is HEAL's rule, 0 leaves the type out). HEAL's weights let an agent that is sure of a
car outweigh one that sees nothing by at most e : 1, so weak partners dilute what the ego sees;
a trust below 1 stops that. Nothing else changes: encoders, fusion and head stay frozen.
For each type T, every scene of the split is run with a BASE ego and T partners under each trust
of the grid; T gets the trust with the best AP@0.5 (ties: the larger). Writes RUNDIR/weights.bin
(the weights with the trusts; give it to heal export), RUNDIR/calibrate.json (every AP, for
heal export --record) and RUNDIR/calibrate.html (AP@0.5 against trust, per type).

options:
  --data DIR          dataset folder (required)
  --weights FILE      weight file(s); several alignments of one base are merged as heal export does
  --out RUNDIR        output folder (required)
  --types LIST        types to calibrate (default m2,m3,m4)
  --base TYPE         the ego's type (default m1)
  --split NAME        split to fit on (default train: validate and test stay held out)
  --grid LIST         trust values tried (default ${DEFAULT_TRUST_GRID.join(',')})
  --limit N           only the first N frames of the split
  --device D          auto (default) | cuda | webgpu | cpu
  --profile P         shared-space profile (default small)
  --types-dir DIR     extra agent-type declarations (*.json)
  --score-threshold S detection score threshold (default 0.2, HEAL's)
  -h, --help          this text`;

export function parseCalibrateArgs(args: string[]): Omit<CalibrateOptions, 'log' | 'progress'> | 'help' {
  const { values } = parseArgs({
    args,
    options: {
      data: { type: 'string' },
      weights: { type: 'string', multiple: true },
      out: { type: 'string' },
      types: { type: 'string' },
      base: { type: 'string' },
      split: { type: 'string' },
      grid: { type: 'string' },
      limit: { type: 'string' },
      device: { type: 'string' },
      profile: { type: 'string' },
      'types-dir': { type: 'string', multiple: true },
      'score-threshold': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return 'help';
  if (!values.data) throw new Error('--data DIR is required; see heal calibrate --help');
  if (!values.weights?.length) throw new Error('--weights FILE is required; see heal calibrate --help');
  if (!values.out) throw new Error('--out RUNDIR is required; see heal calibrate --help');
  const device = (values.device ?? 'auto') as Device;
  if (!DEVICES.includes(device)) throw new Error(`--device must be one of ${DEVICES.join(', ')} (got "${values.device}")`);
  const num = (v: string, flag: string) => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n)) throw new Error(`${flag}: "${v}" is not a number`);
    return n;
  };
  return {
    data: values.data,
    weightsFiles: values.weights.map((w) => path.resolve(w)),
    out: values.out,
    types: list(values.types ?? 'm2,m3,m4'),
    base: values.base ?? 'm1',
    split: values.split ?? 'train',
    grid: values.grid ? numberList(values.grid, '--grid') : DEFAULT_TRUST_GRID,
    limit: values.limit === undefined ? undefined : num(values.limit, '--limit'),
    device,
    profile: values.profile ?? 'small',
    typesDirs: values['types-dir'] ?? [],
    scoreThreshold: values['score-threshold'] === undefined ? undefined : num(values['score-threshold'], '--score-threshold'),
    command: ['heal', 'calibrate', ...args].join(' '),
  };
}

export async function run(args: string[]): Promise<number> {
  const parsed = parseCalibrateArgs(args);
  if (parsed === 'help') {
    console.log(USAGE);
    return 0;
  }
  const { record, weightsFile, recordFile, pageFile } = await calibrate({
    ...parsed,
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
}

// `heal eval merge SHARD... --out RUN`: the shard folders of `heal eval --shard I/N` into the run
// one process would have written (eval/shards.ts checks that they belong together).

import * as path from 'node:path';
import { defaultRunDir } from '../eval/contracts.ts';
import { mergeShards } from '../eval/shards.ts';
import { command, runCommand, string } from './args.ts';
import type { EvalReport } from '../eval/contracts.ts';

export const MERGE = command({
  name: 'eval merge',
  usage: 'SHARD... [--out RUNDIR]',
  about: `Merges the shard folders of \`heal eval --shard I/N\` (or folders holding them) into one run
folder: run.json, frames.jsonl, report.json and report.html, the same as an unsharded run's apart
from timings. Refuses shards of different evaluations (data, split, options, weights, agent types
or N), a shard given twice and a missing one, naming each. AP is computed from the merged frames.`,
  positionals: { name: 'SHARD', min: 1, max: Number.POSITIVE_INFINITY },
  options: {
    out: string({ arg: 'RUNDIR', defaultText: 'runs/eval-<YYYYMMDD-HHMMSS>', help: 'run folder' }),
  },
});

/** `heal eval` hands its own summary printer in (cli/eval.ts imports this file). */
export interface Printing {
  printSummary(report: EvalReport): void;
  shownPath(p: string): string;
}

export function run(args: string[], print: Printing): Promise<number> {
  return runCommand(MERGE, args, async ({ values, positionals }) => {
    const report = await mergeShards(positionals, values.out ?? defaultRunDir());
    print.printSummary(report);
    console.log(`view it: heal view ${print.shownPath(path.dirname(report.files.run))}`);
    return report.frames.evaluated > 0 ? 0 : 1;
  });
}

// `heal eval merge SHARD... --out RUN`: the shard folders of `heal eval --shard I/N` into the run
// one process would have written (eval/shards.ts checks that they belong together).

import * as path from 'node:path';
import { defaultRunDir } from '../eval/contracts.ts';
import { mergeShards } from '../eval/shards.ts';
import { UsageError, command, flag, runCommand, string } from './args.ts';
import { folderInUse } from '../eval/runfolder.ts';
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
    out: string({ arg: 'RUNDIR', defaultText: 'runs/eval-<YYYYMMDD-HHMMSS>', help: 'run folder; one that is not empty needs --overwrite' }),
    overwrite: flag({ help: "write into a --out folder that is not empty, replacing an earlier run's files" }),
  },
});

/** `heal eval` hands its own summary printer in (cli/eval.ts imports this file). */
export interface Printing {
  printSummary(report: EvalReport): void;
  shownPath(p: string): string;
}

export function run(args: string[], print: Printing): Promise<number> {
  return runCommand(MERGE, args, async ({ values, positionals }) => {
    // As heal eval: an earlier run in --out is not replaced without a word.
    if (values.out !== undefined && !values.overwrite && (await folderInUse(values.out))) {
      throw new UsageError(`--out ${values.out} is not empty; give --overwrite to replace the run there, or another --out`);
    }
    const report = await mergeShards(positionals, values.out ?? defaultRunDir());
    print.printSummary(report);
    console.log(`view it: heal view ${print.shownPath(path.dirname(report.files.run))}`);
    return report.frames.evaluated > 0 ? 0 : 1;
  });
}

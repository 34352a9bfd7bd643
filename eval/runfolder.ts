// A run folder is either complete or says it is not. `heal eval` writes INCOMPLETE first and
// removes it last, so a run that was interrupted (Ctrl-C, a crash, a full disk) can never pass
// for a finished one, and readers of runs (heal view) say so.

import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomic } from '../datasets/io.ts';

export const INCOMPLETE_MARKER = 'INCOMPLETE';
/** The files of eval/contracts.ts that a run folder holds; a new run removes an old run's. */
export const RUN_FILES = ['run.json', 'frames.jsonl', 'report.json', 'report.html'] as const;

/** Whether `dir` holds anything: a run folder given by the user must not silently mix two runs. */
export async function folderInUse(dir: string): Promise<boolean> {
  const entries = await fs.readdir(dir).catch(() => undefined);
  return entries !== undefined && entries.length > 0;
}

/** Marks `dir` incomplete, then removes an earlier run's files from it. */
export async function startRunFolder(dir: string): Promise<void> {
  await writeFileAtomic(
    path.join(dir, INCOMPLETE_MARKER),
    `heal eval started this run at ${new Date().toISOString()} (pid ${process.pid}) and has not finished it: it is still running, or it was interrupted.\n`,
  );
  for (const f of RUN_FILES) await fs.rm(path.join(dir, f), { force: true });
}

/** The last step of a run: everything else is written. */
export async function finishRunFolder(dir: string): Promise<void> {
  await fs.rm(path.join(dir, INCOMPLETE_MARKER), { force: true });
}

export async function isIncompleteRun(dir: string): Promise<boolean> {
  return fs.stat(path.join(dir, INCOMPLETE_MARKER)).then(
    () => true,
    () => false,
  );
}

// File helpers shared by every reader and writer: atomic writes and errors that name the file and field.

import { promises as fs } from 'node:fs';
import * as path from 'node:path';

/** A problem with input data. The message always names the file, and the field and value when known. */
export class DataError extends Error {
  constructor(
    readonly file: string,
    readonly field: string | undefined,
    readonly detail: string,
    readonly value?: unknown,
  ) {
    const where = field ? `${file}: field "${field}"` : file;
    const shown = value === undefined ? '' : ` (value: ${formatValue(value)})`;
    super(`${where}: ${detail}${shown}`);
    this.name = 'DataError';
  }
}

function formatValue(v: unknown): string {
  let s: string;
  try {
    s = typeof v === 'string' ? JSON.stringify(v) : (JSON.stringify(v) ?? String(v));
  } catch {
    s = String(v);
  }
  return s.length > 120 ? `${s.slice(0, 117)}...` : s;
}

let tmpCounter = 0;

/**
 * Writes to `<file>.<pid>.<n>.tmp` and renames over `file`, so a crash or Ctrl-C never leaves a
 * half-written file under the final name.
 */
export async function writeFileAtomic(file: string, data: string | Uint8Array): Promise<void> {
  await fs.mkdir(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.${tmpCounter++}.tmp`;
  try {
    await fs.writeFile(tmp, data);
    await fs.rename(tmp, file);
  } catch (err) {
    await fs.rm(tmp, { force: true });
    throw err;
  }
}

/** Reads a file, turning "not found" into a DataError that names it. */
export async function readFileChecked(file: string, what = 'file'): Promise<Buffer> {
  try {
    return await fs.readFile(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new DataError(file, undefined, `${what} is missing`);
    throw new DataError(file, undefined, `cannot read ${what}: ${(err as Error).message}`);
  }
}

export async function exists(p: string): Promise<boolean> {
  try {
    await fs.access(p);
    return true;
  } catch {
    return false;
  }
}

// File helpers shared by every reader and writer: atomic writes and errors that name the file and field.

import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { threadId } from 'node:worker_threads';

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
 * Writes to `<file>.<pid>.<thread>.<n>.tmp`, fsyncs it and renames it over `file`, so a crash,
 * Ctrl-C or power loss never leaves a half-written file under the final name. The thread id keeps
 * two worker threads (each with its own counter) from writing the same temporary file.
 */
export async function writeFileAtomic(file: string, data: string | Uint8Array): Promise<void> {
  const dir = path.dirname(file);
  await fs.mkdir(dir, { recursive: true });
  const tmp = `${file}.${process.pid}.${threadId}.${tmpCounter++}.tmp`;
  try {
    const handle = await fs.open(tmp, 'w');
    try {
      await handle.writeFile(data);
      // Without it the rename can reach the disk before the data, and a crash leaves an empty file.
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fs.rename(tmp, file);
  } catch (err) {
    await fs.rm(tmp, { force: true });
    throw err;
  }
  await syncDirectory(dir);
}

/** Makes a rename in `dir` durable. Best effort: Windows cannot open a directory, some filesystems refuse fsync on one. */
async function syncDirectory(dir: string): Promise<void> {
  let handle: fs.FileHandle | undefined;
  try {
    handle = await fs.open(dir, 'r');
    await handle.sync();
  } catch {
    // The file itself is complete under its final name; only the rename's durability is left to the OS.
  } finally {
    await handle?.close().catch(() => {});
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

// File helpers shared by every reader and writer: atomic writes and errors that name the file and field.

import { createHash } from 'node:crypto';
import { type Stats, constants, createReadStream, promises as fs } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { threadId } from 'node:worker_threads';

/** The repository's .cache folder (ignored by git): worlds, the evaluation workers' code. */
export const CACHE_ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '.cache');

/** SHA-256 of bytes or text, as hex: how heal names content (weight files, encoders, sources, options). */
export function sha256Hex(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** sha256Hex of a file, read in chunks (a weight file may be large). */
export async function sha256OfFile(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  return h.digest('hex');
}

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
    // A value nested thousands deep overflows the stack in JSON.stringify and in String alike.
    try {
      s = String(v);
    } catch {
      s = Array.isArray(v) ? '[a deeply nested list]' : `[${typeof v}]`;
    }
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

/**
 * Most bytes a reader takes from one file, by kind. Real files are far smaller (an OPV2V ascii
 * cloud is ~4 MB, a DAIR data_info.json ~5 MB, a per-frame YAML ~50 kB, a picture ~1 MB); the caps only stop a
 * hostile or broken file from taking the machine's memory.
 */
export const READ_CAPS = {
  pointCloud: 512 * 2 ** 20,
  yaml: 16 * 2 ** 20,
  json: 64 * 2 ** 20,
  png: 64 * 2 ** 20,
  /** Weight files and checkpoints: HEAL's largest are a few hundred MB. */
  other: 2 * 2 ** 30,
} as const;

/**
 * Reads a whole regular file, at most `maxBytes` of it. Opened non-blocking and checked on the
 * opened descriptor, so a FIFO (which would block forever), a device such as /dev/zero (which
 * never ends) or a folder behind a `.pcd` name, symlinked or not, is a DataError naming the file.
 */
export async function readFileChecked(file: string, what = 'file', maxBytes: number = READ_CAPS.other): Promise<Buffer> {
  let handle: fs.FileHandle;
  try {
    handle = await fs.open(file, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new DataError(file, undefined, `${what} is missing`);
    throw new DataError(file, undefined, `cannot read ${what}: ${(err as Error).message}`);
  }
  try {
    const st = await handle.stat();
    if (!st.isFile()) throw new DataError(file, undefined, `${what} is not a regular file (${fileKind(st)})`);
    if (st.size > maxBytes) throw new DataError(file, undefined, `${what} is ${st.size} bytes, over the ${maxBytes}-byte cap for this kind of file`, st.size);
    // Read one byte past the size seen, so that a file still growing is noticed rather than cut.
    const buf = Buffer.allocUnsafe(st.size + 1);
    let n = 0;
    while (n < buf.length) {
      const { bytesRead } = await handle.read(buf, n, buf.length - n, n);
      if (bytesRead === 0) break;
      n += bytesRead;
    }
    if (n > st.size) throw new DataError(file, undefined, `${what} grew while it was read`);
    return buf.subarray(0, n);
  } catch (err) {
    if (err instanceof DataError) throw err;
    throw new DataError(file, undefined, `cannot read ${what}: ${(err as Error).message}`);
  } finally {
    await handle.close().catch(() => {});
  }
}

function fileKind(st: Stats): string {
  if (st.isDirectory()) return 'a folder';
  if (st.isFIFO()) return 'a named pipe';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  if (st.isSocket()) return 'a socket';
  return 'not a plain file';
}

export async function exists(p: string): Promise<boolean> {
  try {
    await fs.access(p);
    return true;
  } catch {
    return false;
  }
}

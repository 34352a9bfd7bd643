// PyTorch checkpoints written by `torch.save(model.state_dict(), path)` (the zip format of torch
// >= 1.6), read without Python: HEAL's trained weights come as such files.
//
// The archive holds <archive>/data.pkl (the state dict as a pickle), <archive>/data/<key> (each
// storage's raw little-endian bytes), <archive>/version and maybe <archive>/byteorder. Loading a
// pickle in Python can run any code, so this is a small pickle machine of its own: it knows only the
// opcodes a state dict uses, builds nothing but dicts, lists, tuples, scalars and tensor references,
// and refuses every global outside a short allowlist. Sizes are checked against the file before
// anything is allocated, so a hostile file ends in a DataError, not in a huge allocation or a hang.

import * as zlib from 'node:zlib';
import { DataError, readFileChecked } from '../datasets/io.ts';
import { decodeValues } from './safetensors.ts';

export type TorchDtype = 'float32' | 'float64' | 'float16' | 'bfloat16' | 'int64' | 'int32' | 'int16' | 'int8' | 'uint8' | 'bool';

/** float16 and bfloat16 values are held as Float32Array; bool as 0/1 bytes. */
export interface TorchTensor {
  dtype: TorchDtype;
  shape: number[];
  data: Float32Array | Float64Array | BigInt64Array | Int32Array | Int16Array | Int8Array | Uint8Array;
}

export type StateDict = Map<string, TorchTensor>;

export async function readStateDict(file: string): Promise<StateDict> {
  return decodeStateDict(await readFileChecked(file, 'PyTorch checkpoint'), file);
}

export function decodeStateDict(bytes: Uint8Array, file = 'checkpoint'): StateDict {
  const zip = readZip(bytes, file);
  const pkls = [...zip.keys()].filter((name) => /^[^/]*\/data\.pkl$/.test(name));
  if (pkls.length !== 1) {
    throw new DataError(file, 'data.pkl', pkls.length ? 'appears more than once in the archive' : 'is missing: not a PyTorch zip checkpoint', pkls);
  }
  const prefix = pkls[0].slice(0, -'data.pkl'.length);
  const order = zip.get(`${prefix}byteorder`);
  if (order) {
    const text = Buffer.from(entryBytes(bytes, order, file))
      .toString('latin1')
      .trim();
    if (text !== 'little') throw new DataError(file, 'byteorder', 'only little-endian checkpoints are supported', text);
  }
  const top = unpickle(entryBytes(bytes, zip.get(pkls[0])!, file), file);
  const tensors = pickStateDict(top, file);

  const storages = new Map<string, Uint8Array>();
  // Tensors sharing a storage (tied weights) each get their own copy; this caps the total so a
  // file cannot make thousands of tensors view one big storage and multiply its size.
  const budget = 8 * bytes.length + (1 << 20);
  let used = 0;
  const out: StateDict = new Map();
  for (const [key, t] of tensors) {
    const { dtype, size: es, safe } = STORAGES[t.storage.type];
    let raw = storages.get(t.storage.key);
    if (!raw) {
      const entry = zip.get(`${prefix}data/${t.storage.key}`);
      if (!entry) throw new DataError(file, key, `storage data/${t.storage.key} is missing from the archive`);
      raw = entryBytes(bytes, entry, file);
      storages.set(t.storage.key, raw);
    }
    if (raw.length < t.storage.numel * es) {
      throw new DataError(file, key, `storage data/${t.storage.key} holds ${raw.length} bytes, fewer than the ${t.storage.numel} ${dtype} values it declares`);
    }
    const numel = t.shape.includes(0) ? 0 : t.shape.reduce((a, b) => a * b, 1);
    let last = t.offset;
    t.shape.forEach((d, i) => (last += (d - 1) * t.stride[i]));
    // Broadcast views (stride 0) could have more elements than their storage; state dicts have
    // none, and refusing them keeps every allocation below the file's own size.
    if (numel > 0 && (last >= t.storage.numel || numel > t.storage.numel)) {
      throw new DataError(
        file,
        key,
        `shape [${t.shape}] with stride [${t.stride}] at offset ${t.offset} runs past storage data/${t.storage.key} (${t.storage.numel} values)`,
      );
    }
    used += numel * es;
    if (used > budget) throw new DataError(file, key, `tensors add up to more than ${budget} bytes, over 8 times the file size`);
    out.set(key, { dtype, shape: [...t.shape], data: decodeValues(gather(raw, t, numel, es), safe) });
  }
  return out;
}

/** The tensor's elements in row-major order, honouring offset and strides. */
function gather(raw: Uint8Array, t: TensorRef, numel: number, es: number): Uint8Array {
  let expect = 1;
  let contiguous = true;
  for (let i = t.shape.length - 1; i >= 0; i--) {
    if (t.shape[i] !== 1 && t.stride[i] !== expect) contiguous = false;
    expect *= t.shape[i];
  }
  if (contiguous || numel === 0) return raw.subarray(t.offset * es, (t.offset + numel) * es);
  const out = new Uint8Array(numel * es);
  const index = new Array<number>(t.shape.length).fill(0);
  let src = t.offset;
  for (let i = 0; i < numel; i++) {
    for (let k = 0; k < es; k++) out[i * es + k] = raw[src * es + k];
    for (let d = t.shape.length - 1; d >= 0; d--) {
      src += t.stride[d];
      if (++index[d] < t.shape[d]) break;
      src -= t.stride[d] * t.shape[d];
      index[d] = 0;
    }
  }
  return out;
}

function pickStateDict(top: unknown, file: string): Map<string, TensorRef> {
  if (!(top instanceof Map)) throw new DataError(file, 'data.pkl', 'top-level object is not a dict', describe(top));
  const ofTensors = (m: Map<unknown, unknown>) => [...m.values()].every((v) => v instanceof TensorRef);
  let chosen: Map<unknown, unknown> | undefined = ofTensors(top) ? top : undefined;
  if (!chosen) {
    // Training scripts often wrap the weights: {'state_dict': ..., 'epoch': ...}.
    const nested = [...top.values()].filter((v): v is Map<unknown, unknown> => v instanceof Map && v.size > 0 && ofTensors(v));
    if (nested.length === 1) chosen = nested[0];
    else
      throw new DataError(
        file,
        'data.pkl',
        'is neither a dict of tensors nor a dict holding exactly one dict of tensors; top-level keys',
        [...top.keys()].map(String),
      );
  }
  for (const k of chosen.keys()) if (typeof k !== 'string') throw new DataError(file, 'data.pkl', 'state-dict key is not a string', describe(k));
  return chosen as Map<string, TensorRef>;
}

// ---- zip ----

interface ZipEntry {
  name: string;
  method: number;
  crc: number;
  compressed: number;
  size: number;
  header: number;
}

function readZip(bytes: Uint8Array, file: string): Map<string, ZipEntry> {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const bad = (detail: string, value?: unknown) => new DataError(file, 'zip', detail, value);
  let eocd = -1;
  for (let p = bytes.length - 22; p >= Math.max(0, bytes.length - 22 - 0xffff); p--) {
    if (view.getUint32(p, true) === 0x06054b50) {
      eocd = p;
      break;
    }
  }
  if (eocd < 0)
    throw bad('no end-of-central-directory record: not a zip archive or truncated (torch before 1.6 saved another format; re-save with a newer torch)');
  let count = view.getUint16(eocd + 10, true);
  let cdSize = view.getUint32(eocd + 12, true);
  let cdStart = view.getUint32(eocd + 16, true);
  if (count === 0xffff || cdSize === 0xffffffff || cdStart === 0xffffffff) {
    const loc = eocd - 20;
    if (loc < 0 || view.getUint32(loc, true) !== 0x07064b50) throw bad('zip64 end-of-central-directory locator is missing');
    const rec = safeU64(view, loc + 8, bad);
    if (rec + 56 > loc || view.getUint32(rec, true) !== 0x06064b50) throw bad('zip64 end-of-central-directory record is missing', rec);
    count = safeU64(view, rec + 32, bad);
    cdSize = safeU64(view, rec + 40, bad);
    cdStart = safeU64(view, rec + 48, bad);
  }
  if (cdStart + cdSize > bytes.length || count * 46 > cdSize) {
    throw bad(`central directory (${count} entries, ${cdSize} bytes at ${cdStart}) does not fit the ${bytes.length}-byte file`);
  }
  const entries = new Map<string, ZipEntry>();
  const end = cdStart + cdSize;
  let p = cdStart;
  for (let i = 0; i < count; i++) {
    if (p + 46 > end || view.getUint32(p, true) !== 0x02014b50) throw bad(`central directory entry ${i} is damaged`, p);
    const nameLen = view.getUint16(p + 28, true);
    const extraLen = view.getUint16(p + 30, true);
    const next = p + 46 + nameLen + extraLen + view.getUint16(p + 32, true);
    if (next > end) throw bad(`central directory entry ${i} runs past the directory`, p);
    const e: ZipEntry = {
      name: Buffer.from(bytes.subarray(p + 46, p + 46 + nameLen)).toString('utf8'),
      method: view.getUint16(p + 10, true),
      crc: view.getUint32(p + 16, true),
      compressed: view.getUint32(p + 20, true),
      size: view.getUint32(p + 24, true),
      header: view.getUint32(p + 42, true),
    };
    // Zip64 extra field: 8-byte values, in this order, for each field that is 0xffffffff above.
    const extraEnd = p + 46 + nameLen + extraLen;
    for (let x = p + 46 + nameLen; x + 4 <= extraEnd; ) {
      const id = view.getUint16(x, true);
      const len = view.getUint16(x + 2, true);
      if (x + 4 + len > extraEnd) throw bad(`extra field of "${e.name}" runs past its entry`);
      if (id === 1) {
        let at = x + 4;
        for (const f of ['size', 'compressed', 'header'] as const) {
          if (e[f] !== 0xffffffff) continue;
          if (at + 8 > x + 4 + len) throw bad(`zip64 field of "${e.name}" is too short`);
          e[f] = safeU64(view, at, bad);
          at += 8;
        }
      }
      x += 4 + len;
    }
    entries.set(e.name, e);
    p = next;
  }
  return entries;
}

function safeU64(view: DataView, at: number, bad: (detail: string, value?: unknown) => DataError): number {
  const v = view.getBigUint64(at, true);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw bad(`zip64 value at byte ${at} is out of range`, v.toString());
  return Number(v);
}

function entryBytes(bytes: Uint8Array, e: ZipEntry, file: string): Uint8Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const bad = (detail: string, value?: unknown) => new DataError(file, e.name, detail, value);
  if (e.header + 30 > bytes.length || view.getUint32(e.header, true) !== 0x04034b50) throw bad('local zip header is missing', e.header);
  // The local header's extra field differs from the central one (torch pads it to align data).
  const start = e.header + 30 + view.getUint16(e.header + 26, true) + view.getUint16(e.header + 28, true);
  if (start + e.compressed > bytes.length) throw bad(`data (${e.compressed} bytes at ${start}) runs past the end of the file: truncated`);
  const stored = bytes.subarray(start, start + e.compressed);
  let data: Uint8Array;
  if (e.method === 0) {
    if (e.compressed !== e.size) throw bad(`stored entry has compressed size ${e.compressed} but size ${e.size}`);
    data = stored;
  } else if (e.method === 8) {
    // DEFLATE cannot expand more than 1032:1; a larger claim is a lie, refused before inflating.
    if (e.size > e.compressed * 1032 + 1024) throw bad(`claims ${e.size} bytes from ${e.compressed} compressed`);
    try {
      data = zlib.inflateRawSync(stored, { maxOutputLength: Math.max(e.size, 1) });
    } catch (err) {
      throw bad(`cannot inflate: ${(err as Error).message}`);
    }
    if (data.length !== e.size) throw bad(`inflates to ${data.length} bytes, the directory says ${e.size}`);
  } else {
    throw bad('uses a zip compression method other than stored or deflate', e.method);
  }
  if (zlib.crc32(data) !== e.crc) throw bad('CRC does not match: the archive is corrupt');
  return data;
}

// ---- restricted unpickler ----

class Tuple {
  constructor(readonly items: unknown[]) {}
}

class Global {
  constructor(
    readonly module: string,
    readonly name: string,
  ) {}
}

class StorageRef {
  constructor(
    readonly type: string,
    readonly key: string,
    readonly numel: number,
  ) {}
}

class TensorRef {
  constructor(
    readonly storage: StorageRef,
    readonly offset: number,
    readonly shape: number[],
    readonly stride: number[],
  ) {}
}

// Storage classes by pickled name: their dtype, bytes per element and safetensors dtype name.
const STORAGES: Record<string, { dtype: TorchDtype; size: number; safe: string }> = {
  FloatStorage: { dtype: 'float32', size: 4, safe: 'F32' },
  DoubleStorage: { dtype: 'float64', size: 8, safe: 'F64' },
  HalfStorage: { dtype: 'float16', size: 2, safe: 'F16' },
  BFloat16Storage: { dtype: 'bfloat16', size: 2, safe: 'BF16' },
  LongStorage: { dtype: 'int64', size: 8, safe: 'I64' },
  IntStorage: { dtype: 'int32', size: 4, safe: 'I32' },
  ShortStorage: { dtype: 'int16', size: 2, safe: 'I16' },
  CharStorage: { dtype: 'int8', size: 1, safe: 'I8' },
  ByteStorage: { dtype: 'uint8', size: 1, safe: 'U8' },
  BoolStorage: { dtype: 'bool', size: 1, safe: 'BOOL' },
};

const ALLOWED = new Set([
  'collections.OrderedDict',
  'torch._utils._rebuild_tensor_v2',
  'torch._utils._rebuild_parameter',
  ...Object.keys(STORAGES).map((s) => `torch.${s}`),
]);

const MAX_STACK = 1 << 20;
const MAX_MARKS = 10_000;
const MAX_MEMO = 1 << 20;
const MAX_STRING = 1 << 20;

function unpickle(pkl: Uint8Array, file: string): unknown {
  const view = new DataView(pkl.buffer, pkl.byteOffset, pkl.byteLength);
  const fail = (detail: string, value?: unknown) => new DataError(file, 'data.pkl', detail, value);
  const utf8 = new TextDecoder('utf-8', { fatal: true });
  const stack: unknown[] = [];
  const marks: number[] = [];
  const memo = new Map<number, unknown>();
  let pos = 0;
  let op = 0;

  const take = (n: number): number => {
    if (n > pkl.length - pos) throw fail(`ends inside the opcode at byte ${op} (needs ${n} more bytes)`);
    pos += n;
    return pos - n;
  };
  const text = (n: number): string => {
    if (n > MAX_STRING) throw fail(`string at byte ${op} is longer than ${MAX_STRING} bytes`, n);
    const at = take(n);
    try {
      return utf8.decode(pkl.subarray(at, at + n));
    } catch {
      throw fail(`string at byte ${op} is not valid UTF-8`);
    }
  };
  const line = (): string => {
    const len = pkl.subarray(pos, pos + 257).indexOf(0x0a);
    if (len < 0) throw fail(`GLOBAL at byte ${op} has no name line`);
    const s = Buffer.from(pkl.subarray(pos, pos + len)).toString('latin1');
    pos += len + 1;
    return s;
  };
  const push = (v: unknown) => {
    if (stack.length >= MAX_STACK) throw fail(`stack grows past ${MAX_STACK} items`);
    stack.push(v);
  };
  // Like Python, items below the latest MARK cannot be popped until the mark is consumed.
  const fence = () => (marks.length ? marks[marks.length - 1] : 0);
  const pop = (): unknown => {
    if (stack.length <= fence()) throw fail(`stack underflow at byte ${op}`);
    return stack.pop();
  };
  const top = (): unknown => {
    if (stack.length <= fence()) throw fail(`stack underflow at byte ${op}`);
    return stack[stack.length - 1];
  };
  const popMark = (): unknown[] => {
    if (!marks.length) throw fail(`opcode at byte ${op} needs a MARK that is not there`);
    return stack.splice(marks.pop()!);
  };
  const put = (index: number) => {
    if (!memo.has(index) && memo.size >= MAX_MEMO) throw fail(`memo grows past ${MAX_MEMO} entries`);
    memo.set(index, top());
  };
  const get = (index: number) => {
    if (!memo.has(index)) throw fail(`memo has no entry ${index} (byte ${op})`);
    push(memo.get(index));
  };
  const topDict = (): Map<unknown, unknown> => {
    const d = top();
    if (!(d instanceof Map)) throw fail(`SETITEM at byte ${op} on something that is not a dict`, describe(d));
    return d;
  };
  const setItem = (d: Map<unknown, unknown>, k: unknown, v: unknown) => {
    if (k !== null && typeof k === 'object') throw fail(`dict key at byte ${op} is not a string or number`, describe(k));
    d.set(k, v);
  };

  for (;;) {
    op = pos;
    const code = pkl[take(1)];
    switch (code) {
      case 0x80: // PROTO
        if (pkl[take(1)] > 5) throw fail(`pickle protocol ${pkl[pos - 1]} is newer than 5`);
        break;
      case 0x95:
        take(8);
        break; // FRAME: only a read-ahead hint
      case 0x2e: // STOP
        if (stack.length !== 1 || marks.length) throw fail(`STOP at byte ${op} leaves ${stack.length} items on the stack`);
        return stack[0];
      case 0x28: // MARK
        if (marks.length >= MAX_MARKS) throw fail(`MARKs nest deeper than ${MAX_MARKS}`);
        marks.push(stack.length);
        break;
      case 0x7d:
        push(new Map());
        break; // EMPTY_DICT
      case 0x5d:
        push([]);
        break; // EMPTY_LIST
      case 0x29:
        push(new Tuple([]));
        break; // EMPTY_TUPLE
      case 0x58:
        push(text(view.getUint32(take(4), true)));
        break; // BINUNICODE
      case 0x8c:
        push(text(pkl[take(1)]));
        break; // SHORT_BINUNICODE
      case 0x8d: {
        // BINUNICODE8
        const n = view.getBigUint64(take(8), true);
        push(text(n > BigInt(MAX_STRING) ? MAX_STRING + 1 : Number(n)));
        break;
      }
      case 0x4a:
        push(view.getInt32(take(4), true));
        break; // BININT
      case 0x4b:
        push(pkl[take(1)]);
        break; // BININT1
      case 0x4d:
        push(view.getUint16(take(2), true));
        break; // BININT2
      case 0x8a: {
        // LONG1: little-endian two's complement of n bytes
        const n = pkl[take(1)];
        const at = take(n);
        let v = 0n;
        for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(pkl[at + i]);
        if (n && pkl[at + n - 1] & 0x80) v -= 1n << BigInt(8 * n);
        push(v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v);
        break;
      }
      case 0x47:
        push(view.getFloat64(take(8), false));
        break; // BINFLOAT, big-endian
      case 0x4e:
        push(null);
        break; // NONE
      case 0x88:
        push(true);
        break; // NEWTRUE
      case 0x89:
        push(false);
        break; // NEWFALSE
      case 0x74:
        push(new Tuple(popMark()));
        break; // TUPLE
      case 0x85: // TUPLE1
      case 0x86: // TUPLE2
      case 0x87: {
        // TUPLE3
        const items: unknown[] = [];
        for (let i = code - 0x84; i > 0; i--) items.unshift(pop());
        push(new Tuple(items));
        break;
      }
      case 0x71:
        put(pkl[take(1)]);
        break; // BINPUT
      case 0x72:
        put(view.getUint32(take(4), true));
        break; // LONG_BINPUT
      case 0x94:
        put(memo.size);
        break; // MEMOIZE
      case 0x68:
        get(pkl[take(1)]);
        break; // BINGET
      case 0x6a:
        get(view.getUint32(take(4), true));
        break; // LONG_BINGET
      case 0x73: {
        // SETITEM
        const v = pop();
        const k = pop();
        setItem(topDict(), k, v);
        break;
      }
      case 0x75: {
        // SETITEMS
        const items = popMark();
        if (items.length % 2) throw fail(`SETITEMS at byte ${op} has an odd number of items`);
        const d = topDict();
        for (let i = 0; i < items.length; i += 2) setItem(d, items[i], items[i + 1]);
        break;
      }
      case 0x61: // APPEND
      case 0x65: {
        // APPENDS
        const items = code === 0x61 ? [pop()] : popMark();
        const list = top();
        if (!Array.isArray(list)) throw fail(`APPEND at byte ${op} on something that is not a list`, describe(list));
        for (const v of items) list.push(v);
        break;
      }
      case 0x63:
        push(global(line(), line()));
        break; // GLOBAL
      case 0x93: {
        // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') throw fail(`STACK_GLOBAL at byte ${op} needs two strings`);
        push(global(module, name));
        break;
      }
      case 0x52: {
        // REDUCE
        const args = pop();
        const f = pop();
        if (!(f instanceof Global) || !(args instanceof Tuple)) throw fail(`REDUCE at byte ${op} needs a global and a tuple`, describe(f));
        push(call(f, args.items));
        break;
      }
      case 0x62: // BUILD: a state dict's state is its `_metadata` (module versions), not needed here
        pop();
        if (!(top() instanceof Map)) throw fail(`BUILD at byte ${op} on something that is not a dict`, describe(top()));
        break;
      case 0x51:
        push(storage(pop()));
        break; // BINPERSID
      default:
        throw fail(
          `unknown or unsupported pickle opcode 0x${code.toString(16).padStart(2, '0')}${code >= 0x21 && code < 0x7f ? ` ('${String.fromCharCode(code)}')` : ''} at byte ${op}`,
        );
    }
  }

  function global(module: string, name: string): Global {
    if (!ALLOWED.has(`${module}.${name}`)) throw fail(`refuses global ${module}.${name}: a state dict needs only tensors and dicts`, `${module}.${name}`);
    return new Global(module, name);
  }

  function call(f: Global, args: unknown[]): unknown {
    const what = `${f.module}.${f.name}`;
    if (what === 'collections.OrderedDict' && args.length === 0) return new Map();
    if (what === 'torch._utils._rebuild_parameter' && args[0] instanceof TensorRef) return args[0];
    if (what === 'torch._utils._rebuild_tensor_v2' && (args.length === 6 || args.length === 7)) {
      const [s, offset, size, stride] = args;
      const shape = size instanceof Tuple ? size.items : undefined;
      const strides = stride instanceof Tuple ? stride.items : undefined;
      if (s instanceof StorageRef && isCount(offset) && shape?.every(isCount) && strides?.every(isCount) && shape.length === strides.length) {
        return new TensorRef(s, offset, shape as number[], strides as number[]);
      }
    }
    throw fail(`call of ${what} at byte ${op} has arguments it does not take`, describe(new Tuple(args)));
  }

  // Persistent ids name the storages: ('storage', torch.FloatStorage, key, location, numel).
  function storage(pid: unknown): StorageRef {
    const [tag, type, key, , numel] = pid instanceof Tuple ? pid.items : [];
    if (
      !(pid instanceof Tuple) ||
      pid.items.length !== 5 ||
      tag !== 'storage' ||
      !(type instanceof Global && type.module === 'torch' && Object.hasOwn(STORAGES, type.name)) ||
      typeof key !== 'string' ||
      !isCount(numel)
    ) {
      throw fail(`persistent id at byte ${op} is not ('storage', torch.<T>Storage, key, location, numel)`, describe(pid));
    }
    return new StorageRef(type.name, key, numel);
  }
}

function isCount(v: unknown): v is number {
  return Number.isSafeInteger(v) && (v as number) >= 0;
}

// Shallow and short: a hostile pickle can nest tuples deeply or share one tuple many times over.
function describe(v: unknown, depth = 0): string {
  if (v instanceof Tuple) {
    if (depth > 2) return '(...)';
    const shown = v.items.slice(0, 8).map((x) => describe(x, depth + 1));
    return `(${shown.join(', ')}${v.items.length > 8 ? ', ...' : ''})`;
  }
  if (v instanceof Global) return `${v.module}.${v.name}`;
  if (v instanceof TensorRef) return `tensor[${v.shape}]`;
  if (v instanceof StorageRef) return `${v.type}(${v.key})`;
  if (v instanceof Map) return `dict(${v.size})`;
  if (Array.isArray(v)) return `list(${v.length})`;
  return typeof v === 'string' ? JSON.stringify(v) : String(v);
}

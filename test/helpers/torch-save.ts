// torch.save's file format written from TypeScript: a minimal pickle (protocol 2, the subset
// torch.save emits for a state dict) inside a zip, so tests need neither Python nor PyTorch to
// make a checkpoint (test/models/pth.test.ts builds hostile ones from the same parts).

import * as zlib from 'node:zlib';
import type { StateDict } from '../../models/pth.ts';

// ---- a pickle writer for the subset torch.save emits ----

export class Pickle {
  readonly out: number[] = [0x80, 2];
  private memo = new Map<string, number>();

  raw(...bytes: number[]): this {
    this.out.push(...bytes);
    return this;
  }
  u32(v: number): this {
    return this.raw(v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24);
  }
  str(s: string): this {
    const b = Buffer.from(s, 'utf8');
    return this.raw(0x58)
      .u32(b.length)
      .raw(...b);
  }
  int(v: number): this {
    if (v >= 0 && v < 256) return this.raw(0x4b, v);
    if (v >= 0 && v < 65536) return this.raw(0x4d, v & 0xff, v >> 8);
    if (v >= -(2 ** 31) && v < 2 ** 31) return this.raw(0x4a).u32(v >>> 0);
    // LONG1, 8 bytes two's complement
    const b = Buffer.alloc(8);
    b.writeBigInt64LE(BigInt(v));
    return this.raw(0x8a, 8, ...b);
  }
  // Globals go to the memo once and come back by BINGET, as torch.save writes them.
  global(module: string, name: string): this {
    const id = `${module}\n${name}\n`;
    const at = this.memo.get(id);
    if (at !== undefined) return this.raw(0x68, at);
    this.raw(0x63, ...Buffer.from(id, 'latin1'));
    this.memo.set(id, this.memo.size);
    return this.raw(0x71, this.memo.size - 1);
  }
  tuple(items: number[]): this {
    if (items.length === 0) return this.raw(0x29);
    if (items.length > 3) this.raw(0x28);
    for (const v of items) this.int(v);
    return this.raw(items.length > 3 ? 0x74 : 0x84 + items.length);
  }
  orderedDict(): this {
    return this.global('collections', 'OrderedDict').raw(0x29, 0x52);
  }
  tensor(t: TensorSpec): this {
    this.global('torch._utils', '_rebuild_tensor_v2').raw(0x28);
    this.raw(0x28)
      .str('storage')
      .global('torch', t.type)
      .str(t.key)
      .str(t.location ?? 'cpu')
      .int(t.numel)
      .raw(0x74, 0x51);
    this.int(t.offset ?? 0)
      .tuple(t.shape)
      .tuple(t.stride ?? rowMajor(t.shape))
      .raw(0x89)
      .orderedDict();
    return this.raw(0x74, 0x52);
  }
  stateDict(tensors: TensorSpec[]): this {
    this.orderedDict().raw(0x28);
    for (const t of tensors) this.str(t.name).tensor(t);
    return this.raw(0x75);
  }
  // torch.save's OrderedDict carries `_metadata` as BUILD state.
  metadata(): this {
    return this.raw(0x7d).str('_metadata').orderedDict().raw(0x73, 0x62);
  }
  bytes(): Uint8Array {
    return Uint8Array.from([...this.out, 0x2e]);
  }
}

export interface TensorSpec {
  name: string;
  type: string;
  key: string;
  numel: number;
  shape: number[];
  stride?: number[];
  offset?: number;
  location?: string;
}

export function rowMajor(shape: number[]): number[] {
  const s: number[] = [];
  let n = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s.unshift(n);
    n *= shape[i];
  }
  return s;
}

// ---- a zip writer: stored or deflated entries, optionally with zip64 end records ----

export function zip(files: [string, Uint8Array][], opts: { zip64?: boolean; deflate?: boolean } = {}): Uint8Array {
  const parts: Buffer[] = [];
  const central: Buffer[] = [];
  let offset = 0;
  for (const [name, data] of files) {
    const nameBytes = Buffer.from(name, 'utf8');
    const body = opts.deflate ? zlib.deflateRawSync(data) : Buffer.from(data);
    const crc = zlib.crc32(data);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(opts.deflate ? 8 : 0, 8);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(body.length, 18);
    local.writeUInt32LE(data.length, 22);
    local.writeUInt16LE(nameBytes.length, 26);
    const cd = Buffer.alloc(46);
    cd.writeUInt32LE(0x02014b50, 0);
    cd.writeUInt16LE(20, 4);
    cd.writeUInt16LE(20, 6);
    cd.writeUInt16LE(opts.deflate ? 8 : 0, 10);
    cd.writeUInt32LE(crc, 16);
    cd.writeUInt32LE(body.length, 20);
    cd.writeUInt32LE(data.length, 24);
    cd.writeUInt16LE(nameBytes.length, 28);
    cd.writeUInt32LE(offset, 42);
    parts.push(local, nameBytes, body);
    central.push(cd, nameBytes);
    offset += 30 + nameBytes.length + body.length;
  }
  const cdBytes = Buffer.concat(central);
  const tail: Buffer[] = [];
  if (opts.zip64) {
    const rec = Buffer.alloc(56);
    rec.writeUInt32LE(0x06064b50, 0);
    rec.writeBigUInt64LE(44n, 4);
    rec.writeBigUInt64LE(BigInt(files.length), 24);
    rec.writeBigUInt64LE(BigInt(files.length), 32);
    rec.writeBigUInt64LE(BigInt(cdBytes.length), 40);
    rec.writeBigUInt64LE(BigInt(offset), 48);
    const loc = Buffer.alloc(20);
    loc.writeUInt32LE(0x07064b50, 0);
    loc.writeBigUInt64LE(BigInt(offset + cdBytes.length), 8);
    loc.writeUInt32LE(1, 16);
    tail.push(rec, loc);
  }
  const eocd = Buffer.alloc(22);
  eocd.writeUInt32LE(0x06054b50, 0);
  eocd.writeUInt16LE(opts.zip64 ? 0xffff : files.length, 8);
  eocd.writeUInt16LE(opts.zip64 ? 0xffff : files.length, 10);
  eocd.writeUInt32LE(cdBytes.length, 12);
  eocd.writeUInt32LE(opts.zip64 ? 0xffffffff : offset, 16);
  return new Uint8Array(Buffer.concat([...parts, cdBytes, ...tail, eocd]));
}

export function bytesOf(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

const STORAGE: Record<string, string> = { float32: 'FloatStorage', int64: 'LongStorage' };

/** A state dict of float32 and int64 tensors as torch.save writes it (stored zip entries under `archive/`). */
export function torchSave(sd: StateDict, archive = 'archive'): Uint8Array {
  const specs: TensorSpec[] = [];
  const files: [string, Uint8Array][] = [];
  for (const [name, t] of sd) {
    const type = STORAGE[t.dtype];
    if (!type) throw new Error(`torchSave: ${name} is ${t.dtype}; only float32 and int64 are written`);
    const key = String(specs.length);
    specs.push({ name, type, key, numel: t.data.length, shape: t.shape });
    files.push([`${archive}/data/${key}`, bytesOf(t.data as ArrayBufferView)]);
  }
  const pkl = new Pickle().stateDict(specs).metadata().bytes();
  return zip([[`${archive}/data.pkl`, pkl], ...files, [`${archive}/version`, Buffer.from('3\n')]]);
}

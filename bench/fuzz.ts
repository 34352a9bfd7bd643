// Message fuzzing (`heal bench fuzz --n N`; `npm test` runs a seeded 5,000-case version in
// test/fusion/fuzz.test.ts). Inputs are valid messages of every dtype × dense/sparse/late, then
// mutated: byte-level (flips, interesting bytes, inserts, deletes, duplicated ranges, truncation,
// splices of two messages) and structure-aware (a field of the decoded message set to a hostile
// value and re-encoded: huge or negative dimensions, NaN/inf/1e38 values, resized arrays, long or
// control-character text, an unknown dtype, a mask of the wrong kind). Each input is decoded; the
// outcome is accepted, rejected (a MessageError naming the field), crashed (anything else thrown)
// or hung (took over HANG_MS; decoding is synchronous, so a true endless loop would stop the run
// itself, which the test's timeout catches).
//
// The signed variant wraps the same payloads in SignedCollabMessages and tampers with them: a
// flipped signature byte, certificate byte or payload byte, a sequence number re-encoded under the
// old signature, byte-level mutations of the envelope. A tampered message the verifier accepts
// is counted as forged when what it delivers differs from what the sender signed.

import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import { Rng } from '../datasets/rng.ts';
import { createAuthority, issueIdentity, signMessage, Verifier } from '../fusion/identity.ts';
import { type BevGrid, type CollabMessage, decodeMessage, encodeMessage, type FeatureDType, MessageError } from '../fusion/messages.ts';

export const HANG_MS = 1000;

const root = protobuf.loadSync(fileURLToPath(new URL('../proto/heal.proto', import.meta.url)));
const Wire = root.lookupType('heal.CollabMessage');

const GRID: BevGrid = { xMin: -6.4, xMax: 6.4, yMin: -4.8, yMax: 4.8, cellSize: 0.8, width: 16, height: 12, channels: 4 };
const POSE = Float64Array.from([0.8, -0.6, 0, 12, 0.6, 0.8, 0, -3, 0, 0, 1, 1.8, 0, 0, 0, 1]);

/** Valid messages of every dtype × dense/sparse (no, some, all cells) and a late-fusion one. */
export function seedMessages(): { name: string; bytes: Uint8Array }[] {
  const rng = new Rng(7);
  const cells = GRID.width * GRID.height;
  const features = Float32Array.from({ length: GRID.channels * cells }, () => (rng.next() < 0.7 ? 0 : rng.uniform(-5, 5)));
  const out: { name: string; bytes: Uint8Array }[] = [];
  const base: CollabMessage = { agentId: '641', agentType: 'm1', timestamp: '000068', sequence: 5, pose: POSE, grid: GRID, features };
  for (const dtype of ['float32', 'float16', 'int8'] as FeatureDType[]) {
    out.push({ name: `${dtype} dense`, bytes: encodeMessage(base, { dtype }) });
    for (const [k, keep] of [
      ['none', 0],
      ['few', 0.05],
      ['half', 0.5],
    ] as const) {
      const mask = new Uint8Array(cells).map((_, i) => (keep > 0 && (i * 7919) % 100 < keep * 100 ? 1 : 0));
      out.push({ name: `${dtype} sparse ${k}`, bytes: encodeMessage(base, { dtype, mask }) });
    }
  }
  const boxes = Float32Array.from({ length: 3 * 7 }, (_, i) => [5, 2, -1, 1.5, 1.8, 4.5, 0.3][i % 7] + Math.floor(i / 7));
  out.push({
    name: 'late',
    bytes: encodeMessage({ ...base, features: undefined, detections: { boxes, scores: Float32Array.of(0.9, 0.5, 0.3) } }, { dtype: 'float32' }),
  });
  return out.map((m) => ({ ...m, bytes: new Uint8Array(m.bytes) }));
}

const INTERESTING_BYTES = [0x00, 0xff, 0x7f, 0x80, 0x01, 0xfe];
const INTERESTING_NUMBERS = [0, -1, 1, 2 ** 31, 2 ** 32 - 1, 2 ** 53, -(2 ** 31), 1e38, -1e38, 65504, 3.4e38, Number.NaN, Infinity, -Infinity, 1e-45];

function pick<T>(rng: Rng, xs: readonly T[]): T {
  return xs[Math.floor(rng.next() * xs.length)];
}

/** One byte-level mutation of `b`, and what it was. */
export function mutateBytes(rng: Rng, b: Uint8Array, other: Uint8Array): { bytes: Uint8Array; how: string } {
  const pos = () => Math.floor(rng.next() * Math.max(1, b.length));
  const kind = Math.floor(rng.next() * 8);
  // A copy: protobufjs hands out Buffers, whose slice() is a view of the seed.
  const out = new Uint8Array(b);
  switch (kind) {
    case 0: {
      const n = 1 + Math.floor(rng.next() * 8);
      for (let i = 0; i < n; i++) out[pos()] ^= 1 << Math.floor(rng.next() * 8);
      return { bytes: out, how: `flip ${n} bit(s)` };
    }
    case 1: {
      const n = 1 + Math.floor(rng.next() * 4);
      for (let i = 0; i < n; i++) out[pos()] = pick(rng, INTERESTING_BYTES);
      return { bytes: out, how: `set ${n} byte(s)` };
    }
    case 2: {
      const at = pos();
      const n = 1 + Math.floor(rng.next() * 16);
      const ins = Uint8Array.from({ length: n }, () => rng.nextU32() & 0xff);
      return { bytes: concat(b.subarray(0, at), ins, b.subarray(at)), how: `insert ${n} byte(s) at ${at}` };
    }
    case 3: {
      const at = pos();
      const n = 1 + Math.floor(rng.next() * 64);
      return { bytes: concat(b.subarray(0, at), b.subarray(at + n)), how: `delete ${n} byte(s) at ${at}` };
    }
    case 4: {
      const at = pos();
      const n = 1 + Math.floor(rng.next() * 256);
      return { bytes: concat(b.subarray(0, at + n), b.subarray(at, at + n), b.subarray(at + n)), how: `duplicate ${n} byte(s) at ${at}` };
    }
    case 5: {
      const at = pos();
      return { bytes: new Uint8Array(b.subarray(0, at)), how: `truncate to ${at}` };
    }
    case 6: {
      const at = pos();
      const at2 = Math.floor(rng.next() * other.length);
      return { bytes: concat(b.subarray(0, at), other.subarray(at2)), how: `splice at ${at} with another message from ${at2}` };
    }
    default: {
      // A varint that claims a huge length, where a length prefix may be.
      const at = pos();
      out.set([0xff, 0xff, 0xff, 0xff, 0x0f].slice(0, Math.max(0, out.length - at)), at);
      return { bytes: out, how: `huge varint at ${at}` };
    }
  }
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** One structure-aware mutation: a field of the decoded message set to a hostile value, re-encoded. */
export function mutateStructure(rng: Rng, b: Uint8Array): { bytes: Uint8Array; how: string } {
  // biome-ignore lint/suspicious/noExplicitAny: a hostile sender writes any value into any field
  const m = Wire.toObject(Wire.decode(b), { defaults: false, arrays: true }) as any;
  const num = () => pick(rng, INTERESTING_NUMBERS);
  const choices: [string, () => void][] = [
    ['grid.width', () => (m.grid = { ...m.grid, width: num() })],
    ['grid.height', () => (m.grid = { ...m.grid, height: num() })],
    ['grid.channels', () => (m.grid = { ...m.grid, channels: num() })],
    ['grid.cellSize', () => (m.grid = { ...m.grid, cellSize: num() })],
    ['grid.xMin', () => (m.grid = { ...m.grid, xMin: num() })],
    ['grid', () => delete m.grid],
    ['header', () => delete m.header],
    ['header.agentId', () => (m.header = { ...m.header, agentId: pick(rng, ['', 'x'.repeat(5000), '\u0000ego', '641\n']) })],
    ['header.agentType', () => (m.header = { ...m.header, agentType: pick(rng, ['', '../m1', 'm1 ', 'x'.repeat(100)]) })],
    ['header.sequence', () => (m.header = { ...m.header, sequence: pick(rng, [-1, 2 ** 64 - 1, 2 ** 53 + 1, 0]) })],
    ['header.schemaVersion', () => (m.header = { ...m.header, schemaVersion: pick(rng, [0, 2, 2 ** 32 - 1]) })],
    ['pose.matrix', () => (m.pose = { matrix: Array.from({ length: pick(rng, [0, 15, 16, 17, 1000]) }, () => num()) })],
    ['pose.matrix[i]', () => m.pose?.matrix && (m.pose.matrix[Math.floor(rng.next() * 16)] = num())],
    ['features.shape', () => m.features && (m.features.shape = Array.from({ length: pick(rng, [0, 2, 3, 4]) }, () => num()))],
    ['features.dtype', () => m.features && (m.features.dtype = pick(rng, [0, 4, 99, -1]))],
    ['features.data', () => m.features && (m.features.data = new Uint8Array(Math.floor(rng.next() * 4096)).map(() => rng.nextU32() & 0xff))],
    ['features.scale', () => m.features && (m.features.scale = Array.from({ length: pick(rng, [0, 1, 3, 4, 5, 5000]) }, () => num()))],
    ['mask.bitmask', () => (m.mask = { bitmask: new Uint8Array(pick(rng, [0, 23, 24, 25, 1000])).fill(pick(rng, INTERESTING_BYTES)) })],
    [
      'mask.deltas',
      () => (m.mask = { deltas: { value: Array.from({ length: pick(rng, [0, 1, 5, 192, 193, 5000]) }, () => pick(rng, [0, 1, 2, 191, 2 ** 32 - 1])) } }),
    ],
    ['detections.boxes', () => (m.detections = { ...m.detections, boxes: Array.from({ length: pick(rng, [0, 7, 20, 21, 22]) }, () => num()) })],
    ['detections.scores', () => (m.detections = { ...m.detections, scores: Array.from({ length: pick(rng, [0, 1, 3, 4]) }, () => num()) })],
    ['features', () => delete m.features],
  ];
  const [field, apply] = pick(rng, choices);
  apply();
  let bytes: Uint8Array;
  try {
    bytes = Wire.encode(Wire.fromObject(m)).finish();
  } catch {
    // Some values cannot even be encoded (protobufjs refuses them); a hostile encoder would write
    // its own bytes, which the byte-level mutations cover.
    bytes = b;
  }
  return { bytes, how: `set ${field}` };
}

export interface FuzzCounts {
  cases: number;
  accepted: number;
  rejected: number;
  crashed: number;
  hung: number;
  /** Signed runs only: tampered messages accepted with content the sender did not sign. */
  forged: number;
  slowestMs: number;
  slowest: string;
  /** The first few crashes, to fix. */
  crashes: string[];
  /** Rejections by field (decoder) or reason (verifier). */
  reasons: Record<string, number>;
}

function tally(c: FuzzCounts, how: string, f: () => 'accepted' | 'forged'): void {
  c.cases++;
  const t0 = performance.now();
  try {
    const r = f();
    if (r === 'forged') c.forged++;
    else c.accepted++;
  } catch (err) {
    if (err instanceof MessageError) {
      c.rejected++;
      const key = 'code' in err ? String((err as { code: string }).code) : err.field;
      c.reasons[key] = (c.reasons[key] ?? 0) + 1;
    } else {
      c.crashed++;
      if (c.crashes.length < 10) c.crashes.push(`${how}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    }
  }
  const ms = performance.now() - t0;
  if (ms > HANG_MS) c.hung++;
  if (ms > c.slowestMs) {
    c.slowestMs = ms;
    c.slowest = how;
  }
}

const newCounts = (): FuzzCounts => ({
  cases: 0,
  accepted: 0,
  rejected: 0,
  crashed: 0,
  hung: 0,
  forged: 0,
  slowestMs: 0,
  slowest: '',
  crashes: [],
  reasons: {},
});

/** `n` mutated messages from `seed`: 70% byte-level, 30% structure-aware, each decoded. */
export function fuzzMessages(n: number, seed: number, onProgress?: (done: number) => void): FuzzCounts {
  const seeds = seedMessages();
  const rng = new Rng(seed);
  const c = newCounts();
  for (let i = 0; i < n; i++) {
    const s = pick(rng, seeds);
    let { bytes, how } = rng.next() < 0.7 ? mutateBytes(rng, s.bytes, pick(rng, seeds).bytes) : mutateStructure(rng, s.bytes);
    // Stacked mutations reach states one step cannot.
    while (rng.next() < 0.25) {
      const more = mutateBytes(rng, bytes, pick(rng, seeds).bytes);
      bytes = more.bytes;
      how += `, ${more.how}`;
    }
    tally(c, `${s.name}: ${how} (${bytes.length} bytes)`, () => {
      decodeMessage(bytes, i % 2 ? { grid: GRID } : {});
      return 'accepted';
    });
    if (onProgress && i % 1000 === 999) onProgress(i + 1);
  }
  return c;
}

/**
 * `n` tampered signed messages. Half are the structured tampering named above; the other half
 * byte-level mutations of the whole envelope. Every one goes through the verifier, then the decoder.
 */
export function fuzzSigned(n: number, seed: number, onProgress?: (done: number) => void): FuzzCounts {
  const rng = new Rng(seed);
  const authority = createAuthority();
  const now = Date.now();
  const id = issueIdentity(authority, '641', 'm1', now - 60_000, now + 3_600_000);
  const payloads = seedMessages();
  const time = now - 10;
  const signed = payloads.map((p) => ({ name: p.name, payload: p.bytes, bytes: signMessage(id, p.bytes, time) }));
  const digestOnly = payloads.map((p) => signMessage(id, p.bytes, time, true));
  const verifier = new Verifier({ authorities: [authority] });
  verifier.verify(signed[0].bytes, now); // the ego now holds the certificate, so digests resolve
  const Signed = root.lookupType('heal.SignedCollabMessage');
  const c = newCounts();
  for (let i = 0; i < n; i++) {
    const k = Math.floor(rng.next() * signed.length);
    const s = signed[k];
    let bytes: Uint8Array;
    let how: string;
    const kind = Math.floor(rng.next() * 6);
    // biome-ignore lint/suspicious/noExplicitAny: the envelope as a hostile sender rewrites it
    const env = () => Signed.toObject(Signed.decode(s.bytes), { defaults: false }) as any;
    if (kind === 0) {
      const e = env();
      e.signature[Math.floor(rng.next() * 64)] ^= 1 << Math.floor(rng.next() * 8);
      bytes = Signed.encode(Signed.fromObject(e)).finish();
      how = 'flipped a signature bit';
    } else if (kind === 1) {
      const e = env();
      const part = rng.next() < 0.5 ? 'body' : 'signature';
      const arr: Uint8Array = e.certificate[part];
      arr[Math.floor(rng.next() * arr.length)] ^= 1 << Math.floor(rng.next() * 8);
      bytes = Signed.encode(Signed.fromObject(e)).finish();
      how = `flipped a certificate ${part} bit`;
    } else if (kind === 2) {
      const e = env();
      const m = Wire.toObject(Wire.decode(e.payload), { defaults: false });
      m.header.sequence = pick(rng, [0, 4, 6, 1e6]);
      e.payload = Wire.encode(Wire.fromObject(m)).finish();
      bytes = Signed.encode(Signed.fromObject(e)).finish();
      how = `sequence ${m.header.sequence} under the old signature`;
    } else if (kind === 3) {
      const e = env();
      e.generationTimeMs = time + pick(rng, [1, -1, 1000, -100_000]);
      bytes = Signed.encode(Signed.fromObject(e)).finish();
      how = 'generation time changed under the old signature';
    } else {
      const base = kind === 4 ? s.bytes : digestOnly[k];
      ({ bytes, how } = mutateBytes(rng, base, pick(rng, signed).bytes));
      how = `${kind === 4 ? 'certificate' : 'digest'} envelope: ${how}`;
    }
    tally(c, `signed ${s.name}: ${how} (${bytes.length} bytes)`, () => {
      const v = verifier.verify(bytes, now);
      decodeMessage(v.payload);
      // Accepted: it must deliver exactly what the sender signed, from the sender it names.
      const same = signed.some((x) => Buffer.from(x.payload).equals(Buffer.from(v.payload))) && v.generationTimeMs === time && v.certificate.agentId === '641';
      return same ? 'accepted' : 'forged';
    });
    if (onProgress && i % 1000 === 999) onProgress(i + 1);
  }
  return c;
}

/**
 * Cap-sized hostile messages (64 MiB, DEFAULT_LIMITS.maxBytes): each declares far more than a
 * message may hold in one part. Milliseconds to rejection and the growth of the resident set.
 */
export function capSizedMessages(): { name: string; bytes: () => Uint8Array }[] {
  const valid = seedMessages()[0].bytes;
  // Room left under the cap after the valid message and up to three tag-and-length prefixes.
  const CAP = 64 * 1024 * 1024 - valid.length - 32;
  const field = (tag: number, body: Uint8Array) => {
    const w = protobuf.Writer.create();
    w.uint32((tag << 3) | 2).bytes(body);
    return w.finish();
  };
  const packedFloats = (n: number) => new Uint8Array(n * 4).fill(0x3f);
  return [
    // 16 Mi packed floats: a JS array of 16 Mi numbers after protobufjs, before any check.
    { name: 'detections: 16 Mi packed scores', bytes: () => concat(valid, field(6, field(2, packedFloats(Math.floor(CAP / 4))))) },
    { name: 'detections: 16 Mi packed box values', bytes: () => concat(valid, field(6, field(1, packedFloats(Math.floor(CAP / 4))))) },
    { name: 'mask: 64 Mi one-byte deltas', bytes: () => concat(valid, field(5, field(2, field(1, new Uint8Array(CAP).fill(1))))) },
    { name: 'features: 16 Mi int8 scales', bytes: () => concat(valid, field(4, field(4, packedFloats(Math.floor(CAP / 4))))) },
    { name: 'pose: 8 Mi packed doubles', bytes: () => concat(valid, field(2, field(1, new Uint8Array(CAP)))) },
    { name: 'header: a 64 MiB agent id', bytes: () => concat(valid, field(1, field(1, new Uint8Array(CAP).fill(0x41)))) },
    {
      name: 'detections: 13 Mi unpacked scores',
      bytes: () =>
        concat(
          valid,
          field(
            6,
            new Uint8Array(Math.floor(CAP / 5) * 5).map((_, i) => (i % 5 === 0 ? 0x15 : 0x3f)),
          ),
        ),
    },
    {
      name: 'mask: 32 Mi unpacked deltas',
      bytes: () =>
        concat(
          valid,
          field(
            5,
            field(
              2,
              new Uint8Array(Math.floor(CAP / 2) * 2).map((_, i) => (i % 2 === 0 ? 0x08 : 0x01)),
            ),
          ),
        ),
    },
    { name: 'features: 64 MiB of data for a 16×12×4 grid', bytes: () => concat(valid, field(4, field(3, new Uint8Array(CAP)))) },
  ];
}

export async function run(opts: { n?: number } = {}): Promise<Record<string, number | string>> {
  const n = opts.n ?? 100_000;
  const out: Record<string, number | string> = { cases: n };
  const t0 = performance.now();
  const say = (what: string) => (done: number) => {
    if (done % 10_000 === 0) process.stderr.write(`  ${what} ${done}/${n}\n`);
  };
  const plain = fuzzMessages(n, 1, say('messages'));
  const signed = fuzzSigned(n, 2, say('signed messages'));
  for (const [k, c] of [
    ['messages', plain],
    ['signed', signed],
  ] as const) {
    out[`${k}.accepted`] = c.accepted;
    out[`${k}.rejected`] = c.rejected;
    out[`${k}.crashed`] = c.crashed;
    out[`${k}.hung_over_${HANG_MS}ms`] = c.hung;
    if (k === 'signed') out[`${k}.forged`] = c.forged;
    out[`${k}.slowest_ms`] = c.slowestMs;
    out[`${k}.slowest_input`] = c.slowest;
    out[`${k}.rejections_by_reason`] = Object.entries(c.reasons)
      .sort((a, b) => b[1] - a[1])
      .map(([r, x]) => `${r} ${x}`)
      .join(', ');
    if (c.crashes.length) out[`${k}.first_crash`] = c.crashes[0];
  }
  out.fuzz_seconds = (performance.now() - t0) / 1000;
  out.peak_rss_after_fuzz_mib = process.resourceUsage().maxRSS / 1024;
  // Cap-sized messages last, each measured alone: how long until rejected, and how far the
  // resident set grew beyond the message itself.
  for (const m of capSizedMessages()) {
    const bytes = m.bytes();
    global.gc?.();
    const rss0 = process.memoryUsage().rss;
    const t = performance.now();
    let outcome = 'accepted';
    try {
      decodeMessage(bytes);
    } catch (err) {
      outcome = err instanceof MessageError ? `rejected (${err.field})` : `crashed: ${(err as Error).message}`;
    }
    out[`cap64MiB.${m.name}`] = `${outcome} in ${(performance.now() - t).toFixed(1)} ms, RSS +${((process.memoryUsage().rss - rss0) / 2 ** 20).toFixed(0)} MiB`;
  }
  out.peak_rss_mib = process.resourceUsage().maxRSS / 1024;
  return out;
}

import { describe, expect, it } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { decodePcd, encodePcd, parsePcdHeader, readPcd } from '../../datasets/pcd.ts';
import { lzfCompress, lzfDecompress, LzfError } from '../../datasets/lzf.ts';
import { DataError } from '../../datasets/io.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const fixtures = path.resolve(repoRoot, '../shared/fixtures/dair_v2x_c');
const vehiclePcd = path.join(fixtures, 'vehicle-side/velodyne/017314.pcd');
const infraPcd = path.join(fixtures, 'infrastructure-side/velodyne/001366.pcd');
const haveFixtures = existsSync(vehiclePcd) && existsSync(infraPcd);
if (!haveFixtures) console.warn(`pcd.test: skipping real DAIR-V2X-C fixtures, not found under ${fixtures}`);

/** Deterministic pseudo-random cloud; intensities on the 1/255 grid so ascii's 8-bit packing is lossless. */
function makeCloud(n: number, seed = 1): Float32Array {
  let s = seed;
  const rnd = () => (s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32;
  const p = new Float32Array(n * 4);
  for (let i = 0; i < n; i++) {
    p[i * 4] = (rnd() - 0.5) * 300;
    p[i * 4 + 1] = (rnd() - 0.5) * 1e-3; // tiny values exercise exponent formatting
    p[i * 4 + 2] = (rnd() - 0.5) * 8;
    p[i * 4 + 3] = Math.floor(rnd() * 256) / 255;
  }
  return p;
}

function headerText(lines: string[]): Uint8Array {
  return Buffer.from(lines.join('\n') + '\n', 'latin1');
}

function catBytes(...parts: Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(parts));
}

function expectDataError(fn: () => unknown, ...fragments: string[]): DataError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(DataError);
  for (const f of fragments) expect((caught as Error).message).toContain(f);
  return caught as DataError;
}

describe('lzf', () => {
  it('round-trips repetitive, random and empty data', () => {
    const rep = new Uint8Array(100_000);
    for (let i = 0; i < rep.length; i++) rep[i] = (i % 7) * 3 + (i % 1000 === 0 ? 1 : 0);
    const rnd = new Uint8Array(5000);
    let s = 7;
    for (let i = 0; i < rnd.length; i++) rnd[i] = (s = (s * 1103515245 + 12345) >>> 0) >>> 24;
    for (const data of [rep, rnd, new Uint8Array(0), Uint8Array.of(5), Uint8Array.of(1, 1, 1, 1, 1, 1)]) {
      const c = lzfCompress(data);
      expect(Array.from(lzfDecompress(c, data.length))).toEqual(Array.from(data));
    }
    expect(lzfCompress(rep).length).toBeLessThan(rep.length / 20);
    // Incompressible input grows by at most one control byte per 32 literals.
    expect(lzfCompress(rnd).length).toBeLessThanOrEqual(rnd.length + Math.ceil(rnd.length / 32));
  });

  it('rejects streams that disagree with the expected size or point outside the output', () => {
    const data = new Uint8Array(1000).fill(9);
    const c = lzfCompress(data);
    expect(() => lzfDecompress(c, 999)).toThrow(LzfError);
    expect(() => lzfDecompress(c, 1001)).toThrow(/decoded 1000 bytes, expected 1001/);
    expect(() => lzfDecompress(c.subarray(0, c.length - 1), 1000)).toThrow(LzfError);
    // A back reference as the very first chunk has nothing to refer to.
    expect(() => lzfDecompress(Uint8Array.of(0x20, 0x00), 3)).toThrow(/before the start/);
  });
});

describe('pcd round trip', () => {
  const cloud = makeCloud(2000);
  for (const format of ['ascii', 'binary', 'binary_compressed'] as const) {
    it(`${format}: decode(encode(points)) gives the same float32 values`, () => {
      const bytes = encodePcd(cloud, format);
      const back = decodePcd(bytes, `mem.${format}.pcd`);
      expect(back.count).toBe(2000);
      expect(back.header.data).toBe(format);
      expect(back.header.version).toBe('0.7');
      expect(back.header.viewpoint).toEqual([0, 0, 0, 1, 0, 0, 0]);
      expect(back.fields).toEqual(['x', 'y', 'z', format === 'ascii' ? 'rgb' : 'intensity']);
      expect(Array.from(back.points)).toEqual(Array.from(cloud));
    });
  }

  it('ascii quantizes intensity to the red byte and an empty cloud round-trips', () => {
    const p = Float32Array.of(1.5, -2.25, 3, 0.3, 0, 0, 0, 1);
    const back = decodePcd(encodePcd(p, 'ascii'), 'q.pcd');
    expect(back.points[3]).toBeCloseTo(Math.round(0.3 * 255) / 255, 7);
    expect(back.points[7]).toBe(1);
    for (const format of ['ascii', 'binary', 'binary_compressed'] as const) {
      expect(decodePcd(encodePcd(new Float32Array(0), format), 'e.pcd').count).toBe(0);
    }
  });
});

describe('pcd decoding', () => {
  it("decodes OPV2V's ascii rgb: 1.781608625e-38 is 0x00C20000, intensity 194/255", () => {
    const bytes = catBytes(
      headerText([
        '# .PCD v0.7 - Point Cloud Data file format',
        'VERSION 0.7',
        'FIELDS x y z rgb',
        'SIZE 4 4 4 4',
        'TYPE F F F F',
        'COUNT 1 1 1 1',
        'WIDTH 2',
        'HEIGHT 1',
        'VIEWPOINT 0 0 0 1 0 0 0',
        'POINTS 2',
        'DATA ascii',
        '-68.34235382 -1.954882282e-05 2.386561155 1.781608625e-38',
        'nan nan nan 0',
      ]),
    );
    const c = decodePcd(bytes, 'opv2v.pcd');
    expect(c.count).toBe(1); // the NaN row is dropped
    expect(c.points[0]).toBe(Math.fround(-68.34235382));
    expect(c.points[1]).toBe(Math.fround(-1.954882282e-5));
    expect(c.points[3]).toBe(Math.fround(194 / 255));
  });

  it('reads an integer-typed rgb column directly and accepts CRLF line ends', () => {
    const text = [
      'VERSION .7',
      'FIELDS x y z rgb',
      'SIZE 4 4 4 4',
      'TYPE F F F U',
      'WIDTH 1',
      'HEIGHT 1',
      'POINTS 1',
      'DATA ascii',
      `1 2 3 ${0x00400000}`,
    ].join('\r\n');
    const c = decodePcd(Buffer.from(text), 'crlf.pcd');
    expect(Array.from(c.points)).toEqual([1, 2, 3, Math.fround(64 / 255)]);
  });

  it('binary and binary_compressed with mixed sizes, types and COUNT > 1', () => {
    // x y z (F4), normal (I2 ×3), intensity (U1), t (F8): 25 bytes per point.
    const n = 5;
    const header = (data: string) =>
      headerText([
        'VERSION 0.7',
        'FIELDS x normal y intensity z t',
        'SIZE 4 2 4 1 4 8',
        'TYPE F I F U F F',
        'COUNT 1 3 1 1 1 1',
        `WIDTH ${n}`,
        'HEIGHT 1',
        `POINTS ${n}`,
        `DATA ${data}`,
      ]);
    const sizes = [4, 6, 4, 1, 4, 8];
    const row = sizes.reduce((a, b) => a + b, 0);
    const rowMajor = new DataView(new ArrayBuffer(n * row));
    const colMajor = new DataView(new ArrayBuffer(n * row));
    const colBase = sizes.map((_, f) => sizes.slice(0, f).reduce((a, b) => a + b, 0) * n);
    for (let i = 0; i < n; i++) {
      const put = (f: number, write: (dv: DataView, off: number) => void) => {
        write(rowMajor, i * row + sizes.slice(0, f).reduce((a, b) => a + b, 0));
        write(colMajor, colBase[f] + i * sizes[f]);
      };
      put(0, (dv, o) => dv.setFloat32(o, i + 0.5, true));
      put(1, (dv, o) => {
        dv.setInt16(o, -i, true);
        dv.setInt16(o + 2, 7, true);
        dv.setInt16(o + 4, 9, true);
      });
      put(2, (dv, o) => dv.setFloat32(o, -i, true));
      put(3, (dv, o) => dv.setUint8(o, i * 50));
      put(4, (dv, o) => dv.setFloat32(o, i === 2 ? NaN : 2 * i, true));
      put(5, (dv, o) => dv.setFloat64(o, 1.6e9 + i, true));
    }
    const expected = [0, 1, 3, 4].flatMap((i) => [i + 0.5, -i || 0, 2 * i, Math.fround((i * 50) / 255)]);

    const bin = decodePcd(catBytes(header('binary'), new Uint8Array(rowMajor.buffer)), 'mixed.pcd');
    expect(bin.count).toBe(4);
    expect(Array.from(bin.points).map((v) => v || 0)).toEqual(expected);

    const raw = new Uint8Array(colMajor.buffer);
    const packed = lzfCompress(raw);
    const sizeWords = new DataView(new ArrayBuffer(8));
    sizeWords.setUint32(0, packed.length, true);
    sizeWords.setUint32(4, raw.length, true);
    const comp = decodePcd(catBytes(header('binary_compressed'), new Uint8Array(sizeWords.buffer), packed), 'mixed_c.pcd');
    expect(Array.from(comp.points).map((v) => v || 0)).toEqual(expected);

    const rawIntensity = decodePcd(catBytes(header('binary'), new Uint8Array(rowMajor.buffer)), 'm.pcd', { intensity: 'raw' });
    expect(rawIntensity.points[7]).toBe(50);
  });

  it('ascii with COUNT > 1 and an integer intensity', () => {
    const c = decodePcd(
      headerText([
        'FIELDS x n y z intensity',
        'SIZE 4 4 4 4 1',
        'TYPE F F F F U',
        'COUNT 1 2 1 1 1',
        'WIDTH 2',
        'POINTS 2',
        'DATA ascii',
        '1 9 9 2 3 255',
        '-1 0 0 -2 -3 51',
      ]),
      'count.pcd',
    );
    expect(Array.from(c.points)).toEqual([1, 2, 3, 1, -1, -2, -3, Math.fround(51 / 255)]);
  });

  it('gives intensity 0 when the cloud has no intensity-like field', () => {
    const c = decodePcd(Buffer.from('FIELDS x y z\nWIDTH 1\nPOINTS 1\nDATA ascii\n1 2 3\n'), 'xyz.pcd');
    expect(Array.from(c.points)).toEqual([1, 2, 3, 0]);
  });
});

describe('pcd errors name the file, field and value', () => {
  const good = encodePcd(makeCloud(100), 'binary_compressed');
  const text = (lines: string[]) => headerText(lines);

  it('truncated binary_compressed and binary data', () => {
    expectDataError(() => decodePcd(good.subarray(0, good.length - 10), 'cut.pcd'), 'cut.pcd', 'truncated');
    const bin = encodePcd(makeCloud(100), 'binary');
    expectDataError(() => decodePcd(bin.subarray(0, bin.length - 1), 'cut.bin.pcd'), 'cut.bin.pcd', 'POINTS', 'shorter');
    const headerOnly = good.subarray(0, parsePcdHeader(good, 'x').dataOffset + 3);
    expectDataError(() => decodePcd(headerOnly, 'nosize.pcd'), 'nosize.pcd', 'size words');
    expectDataError(() => decodePcd(good.subarray(0, 40), 'head.pcd'), 'head.pcd', 'no DATA line');
  });

  it('garbage header', () => {
    const junk = Buffer.from('\x89PNG\r\n\x1a\n binary junk');
    expectDataError(() => decodePcd(junk, 'pic.pcd'), 'pic.pcd', 'header line 1');
  });

  it('inconsistent header fields', () => {
    expectDataError(() => decodePcd(text(['FIELDS x y z', 'WIDTH 3', 'HEIGHT 2', 'POINTS 5', 'DATA ascii']), 'p.pcd'), 'p.pcd', 'POINTS', '3 × 2', 'value: 5');
    expectDataError(
      () => decodePcd(text(['FIELDS x y z', 'SIZE 4 4', 'TYPE F F F', 'WIDTH 1', 'POINTS 1', 'DATA binary']), 's.pcd'),
      's.pcd',
      'SIZE',
      '2 entries',
    );
    expectDataError(() => decodePcd(text(['FIELDS x y z', 'SIZE 4 4 2', 'TYPE F F F', 'WIDTH 1', 'POINTS 1', 'DATA binary']), 't.pcd'), 't.pcd', 'TYPE', 'F2');
    expectDataError(() => decodePcd(text(['FIELDS x y z', 'WIDTH 1', 'POINTS 1', 'DATA packed']), 'd.pcd'), 'd.pcd', 'DATA', 'packed');
    expectDataError(() => decodePcd(text(['FIELDS a b c', 'WIDTH 1', 'POINTS 1', 'DATA ascii']), 'f.pcd'), 'f.pcd', 'FIELDS', '"x"');
    expectDataError(() => decodePcd(text(['FIELDS x y z', 'WIDTH -1', 'DATA ascii']), 'w.pcd'), 'w.pcd', 'WIDTH', '"-1"');
  });

  it('LZF sizes that disagree with the header or the block', () => {
    const offset = parsePcdHeader(good, 'x').dataOffset;
    const wrongTotal = good.slice();
    new DataView(wrongTotal.buffer).setUint32(offset + 4, 1234, true);
    expectDataError(() => decodePcd(wrongTotal, 'u.pcd'), 'u.pcd', 'uncompressed size', '1234');
    const shortBlock = good.slice();
    const dv = new DataView(shortBlock.buffer);
    dv.setUint32(offset, dv.getUint32(offset, true) - 5, true);
    expectDataError(() => decodePcd(shortBlock, 'c.pcd'), 'c.pcd', 'LZF block is corrupt');
  });

  it('ascii rows: unparseable numbers, short rows, missing rows', () => {
    const head = ['FIELDS x y z rgb', 'SIZE 4 4 4 4', 'TYPE F F F F', 'WIDTH 2', 'POINTS 2', 'DATA ascii'];
    expectDataError(() => decodePcd(text([...head, '1 2 3 0', '4 five 6 0']), 'a.pcd'), 'a.pcd', 'row 1, column 1 (y)', '"five"');
    expectDataError(() => decodePcd(text([...head, '1 2 3 0', '4 5 6']), 'b.pcd'), 'b.pcd', 'row 1', 'has 3 values, expected 4');
    expectDataError(() => decodePcd(text([...head, '1 2 3 0']), 'c.pcd'), 'c.pcd', 'POINTS', '1 rows');
  });

  it('readPcd names a missing file', async () => {
    await expect(readPcd('/nonexistent/000001.pcd')).rejects.toThrow(/000001\.pcd.*missing/);
  });
});

describe.skipIf(!haveFixtures)('real DAIR-V2X-C point clouds', () => {
  it('vehicle 017314: binary_compressed, uint8 intensity and float64 timestamp fields', async () => {
    const c = await readPcd(vehiclePcd);
    expect(c.count).toBe(62199);
    expect(c.fields).toEqual(['x', 'y', 'z', 'intensity', 'timestamp']);
    expect(c.header.size).toEqual([4, 4, 4, 1, 8]);
    let minI = Infinity,
      maxI = -Infinity,
      offGrid = 0;
    for (let i = 0; i < c.count; i++) {
      const v = c.points[i * 4 + 3];
      minI = Math.min(minI, v);
      maxI = Math.max(maxI, v);
      if (Math.abs(v * 255 - Math.round(v * 255)) > 1e-4) offGrid++;
    }
    // formats.md §2.5: uint8 intensity in 1..254, normalized by /255.
    expect(minI).toBeCloseTo(1 / 255, 6);
    expect(maxI).toBeCloseTo(254 / 255, 6);
    expect(offGrid).toBe(0);
    const raw = decodePcd(readFileSync(vehiclePcd), vehiclePcd, { intensity: 'raw' });
    expect(raw.points[3]).toBe(Math.round(c.points[3] * 255));
  });

  it('infrastructure 001366: binary_compressed, float intensity in [0, 1], x ≥ 0', async () => {
    const c = await readPcd(infraPcd);
    expect(c.count).toBe(53653);
    expect(c.fields).toEqual(['x', 'y', 'z', 'intensity']);
    let minX = Infinity,
      maxI = -Infinity,
      minI = Infinity;
    for (let i = 0; i < c.count; i++) {
      minX = Math.min(minX, c.points[i * 4]);
      minI = Math.min(minI, c.points[i * 4 + 3]);
      maxI = Math.max(maxI, c.points[i * 4 + 3]);
    }
    expect(minX).toBeGreaterThanOrEqual(0);
    expect(minI).toBeGreaterThanOrEqual(0);
    expect(maxI).toBeLessThanOrEqual(1);
    expect(maxI).toBeGreaterThan(0.5);
  });

  it('a truncated real file gives a DataError naming it', () => {
    const bytes = readFileSync(vehiclePcd);
    expectDataError(() => decodePcd(bytes.subarray(0, bytes.length / 2), vehiclePcd), '017314.pcd', 'truncated');
  });

  it('re-encodes the real cloud losslessly in binary_compressed', async () => {
    const c = await readPcd(infraPcd);
    const back = decodePcd(encodePcd(c.points, 'binary_compressed'), 'again.pcd');
    expect(back.count).toBe(c.count);
    expect(Buffer.from(back.points.buffer).equals(Buffer.from(c.points.buffer))).toBe(true);
  });
});

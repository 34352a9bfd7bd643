// PCD point clouds (PCL's format, v0.7): reader for `ascii`, `binary` and `binary_compressed`
// data, and a writer for all three.
//
// The datasets heal reads use two flavours (formats.md §1.6, §2.5):
//   OPV2V / V2XSet: ascii `x y z rgb`, where rgb is a float32 whose raw bits are 0x00RRGGBB and
//     the LiDAR intensity is R/255 (Open3D wrote the intensity as the red colour channel).
//   DAIR-V2X-C: binary_compressed (LZF, column-major) with `intensity` as uint8 (vehicle) or
//     float in [0, 1] (infrastructure), sometimes with extra fields such as a float64 timestamp.
// Whatever the flavour, the reader returns N×4 float32 [x, y, z, intensity].

import { DataError, READ_CAPS, readFileChecked } from './io.ts';
import { lzfCompress, lzfDecompress, LzfError } from './lzf.ts';

export type PcdDataFormat = 'ascii' | 'binary' | 'binary_compressed';
export type PcdType = 'F' | 'U' | 'I';

export interface PcdHeader {
  version: string;
  fields: string[];
  size: number[];
  type: PcdType[];
  count: number[];
  width: number;
  height: number;
  viewpoint: number[];
  points: number;
  data: PcdDataFormat;
  /** Byte offset of the first data byte, just after the DATA line. */
  dataOffset: number;
}

export interface PointCloud {
  /** N×4 [x, y, z, intensity]. */
  points: Float32Array;
  count: number;
  fields: string[];
  header: PcdHeader;
}

export interface DecodeOptions {
  /**
   * 'auto' (default): integer intensity fields are scaled to [0, 1] by their type's maximum
   * (uint8 → /255), float fields are kept. 'raw': the stored value, converted to float.
   * An rgb/rgba field always gives red byte / 255.
   */
  intensity?: 'auto' | 'raw';
}

const HEADER_KEYS = new Set(['VERSION', 'FIELDS', 'COLUMNS', 'SIZE', 'TYPE', 'COUNT', 'WIDTH', 'HEIGHT', 'VIEWPOINT', 'POINTS', 'DATA']);
/** The header is a few hundred bytes; anything without a DATA line this far in is not a PCD. */
const MAX_HEADER_BYTES = 64 * 1024;
/** A 128-beam scan has ~2.6 M points; WIDTH, HEIGHT and POINTS beyond this are not a LiDAR sweep. */
export const MAX_PCD_POINTS = 2 ** 25;
/** Values of COUNT beyond this are not a point cloud field (PCL's own histograms stop at 308). */
const MAX_PCD_COUNT = 4096;
/**
 * Largest |x|, |y|, |z| a reader accepts, in meters. LiDARs see a few hundred meters; a point
 * kilometers away (or at 1e39, infinity in float32) is a corrupt or hostile file, and one such
 * point is enough to wreck a voxel grid or a ground fit.
 */
export const MAX_POINT_COORD = 10_000;
/** LZF's longest back-reference (264 bytes from a 3-byte token) bounds how much a block can grow. */
const LZF_MAX_RATIO = 88;

export async function readPcd(file: string, opts?: DecodeOptions): Promise<PointCloud> {
  const bytes = await readFileChecked(file, 'point cloud', READ_CAPS.pointCloud);
  return decodePcd(bytes, file, opts);
}

export function parsePcdHeader(bytes: Uint8Array, file: string): PcdHeader {
  const values = new Map<string, string[]>();
  let pos = 0;
  let lineNo = 0;
  let dataOffset = -1;
  while (pos < bytes.length && pos < MAX_HEADER_BYTES) {
    let end = bytes.indexOf(10, pos);
    if (end < 0) end = bytes.length;
    const line = latin1(bytes, pos, end).replace(/\r$/, '').trim();
    pos = end + 1;
    lineNo++;
    if (line === '' || line.startsWith('#')) continue;
    const parts = line.split(/\s+/);
    const key = parts[0].toUpperCase();
    if (!HEADER_KEYS.has(key)) {
      throw new DataError(file, `header line ${lineNo}`, 'not a PCD header line (expected a key such as VERSION, FIELDS, SIZE, DATA)', line);
    }
    values.set(key === 'COLUMNS' ? 'FIELDS' : key, parts.slice(1));
    if (key === 'DATA') {
      dataOffset = Math.min(pos, bytes.length);
      break;
    }
  }
  if (dataOffset < 0) throw new DataError(file, 'DATA', 'header has no DATA line (truncated or not a PCD file)');

  const get = (key: string): string[] => {
    const v = values.get(key);
    if (!v || v.length === 0) throw new DataError(file, key, 'header field is missing');
    return v;
  };
  const int = (key: string, s: string, min: number, max: number): number => {
    const v = Number(s);
    if (!/^[+-]?\d+$/.test(s) || v < min || v > max) throw new DataError(file, key, `expected an integer in [${min}, ${max}]`, s);
    return v;
  };

  const fields = get('FIELDS');
  const nf = fields.length;
  const perField = (key: string, fallback: string | undefined): string[] => {
    const v = values.get(key) ?? (fallback === undefined ? get(key) : fields.map(() => fallback));
    if (v.length !== nf) throw new DataError(file, key, `has ${v.length} entries but FIELDS has ${nf}`, v.join(' '));
    return v;
  };
  const data = get('DATA')[0].toLowerCase();
  if (data !== 'ascii' && data !== 'binary' && data !== 'binary_compressed') {
    throw new DataError(file, 'DATA', 'expected ascii, binary or binary_compressed', get('DATA')[0]);
  }
  // SIZE and TYPE are required by the format; ascii readers can live without them (all floats).
  const size = perField('SIZE', data === 'ascii' ? '4' : undefined).map((s) => int('SIZE', s, 1, 8));
  const type = perField('TYPE', data === 'ascii' ? 'F' : undefined).map((t) => t.toUpperCase());
  const count = perField('COUNT', '1').map((s) => int('COUNT', s, 1, MAX_PCD_COUNT));
  for (let f = 0; f < nf; f++) {
    const t = type[f],
      s = size[f];
    const ok = (t === 'F' && (s === 4 || s === 8)) || ((t === 'U' || t === 'I') && (s === 1 || s === 2 || s === 4 || s === 8));
    if (!ok) throw new DataError(file, 'TYPE', `field "${fields[f]}" has an unsupported type/size`, `${t}${s}`);
  }

  const width = int('WIDTH', get('WIDTH')[0], 0, MAX_PCD_POINTS);
  const height = values.has('HEIGHT') ? int('HEIGHT', get('HEIGHT')[0], 0, MAX_PCD_POINTS) : 1;
  const points = values.has('POINTS') ? int('POINTS', get('POINTS')[0], 0, MAX_PCD_POINTS) : width * height;
  if (points !== width * height) {
    throw new DataError(file, 'POINTS', `does not match WIDTH × HEIGHT = ${width} × ${height} = ${width * height}`, points);
  }
  const viewpoint = (values.get('VIEWPOINT') ?? ['0', '0', '0', '1', '0', '0', '0']).map(Number);
  for (const name of ['x', 'y', 'z']) {
    const f = fields.indexOf(name);
    if (f < 0) throw new DataError(file, 'FIELDS', `has no "${name}" field`, fields.join(' '));
    if (count[f] !== 1) throw new DataError(file, 'COUNT', `field "${name}" must have COUNT 1`, count[f]);
  }
  return {
    version: values.get('VERSION')?.[0] ?? '',
    fields,
    size,
    type: type as PcdType[],
    count,
    width,
    height,
    viewpoint,
    points,
    data,
    dataOffset,
  };
}

export function decodePcd(bytes: Uint8Array, file: string, opts: DecodeOptions = {}): PointCloud {
  const header = parsePcdHeader(bytes, file);
  const n = header.points;
  const xi = header.fields.indexOf('x');
  const yi = header.fields.indexOf('y');
  const zi = header.fields.indexOf('z');
  const intensity = intensitySource(header, opts.intensity ?? 'auto');
  checkDeclaredSize(bytes, file, header);

  const out = new Float32Array(n * 4);
  let kept = 0;
  const keep = (x: number, y: number, z: number, i: number) => {
    // HEAL's reader drops rows whose xyz is NaN (organised clouds mark missing returns that way).
    if (Number.isNaN(x) || Number.isNaN(y) || Number.isNaN(z)) return;
    if (!(Math.abs(x) <= MAX_POINT_COORD && Math.abs(y) <= MAX_POINT_COORD && Math.abs(z) <= MAX_POINT_COORD)) {
      throw new DataError(file, `point ${kept}`, `x, y, z must be finite and within ±${MAX_POINT_COORD} m (corrupt data?)`, [x, y, z].map(shown));
    }
    if (!Number.isFinite(i)) throw new DataError(file, `point ${kept}`, 'intensity must be finite', shown(i));
    const o = kept * 4;
    out[o] = x;
    out[o + 1] = y;
    out[o + 2] = z;
    out[o + 3] = i;
    kept++;
  };

  if (header.data === 'ascii') {
    decodeAscii(bytes, file, header, xi, yi, zi, intensity, keep);
  } else {
    const { view, base, stride } = binaryLayout(bytes, file, header);
    const read = (f: number, i: number) => readValue(view, base[f] + i * stride[f], header.type[f], header.size[f]);
    for (let i = 0; i < n; i++) {
      let v = 0;
      if (intensity) {
        const raw = read(intensity.field, i);
        v = intensity.packed ? redByte(header.type[intensity.field] === 'F' ? floatBits(raw) : raw) : raw * intensity.scale;
      }
      keep(read(xi, i), read(yi, i), read(zi, i), v);
    }
  }
  return { points: kept === n ? out : out.slice(0, kept * 4), count: kept, fields: header.fields, header };
}

function shown(v: number): number | string {
  return Number.isFinite(v) ? v : String(v);
}

function rowBytesOf(h: PcdHeader): number {
  return h.size.reduce((s, sz, f) => s + sz * h.count[f], 0);
}

/**
 * The data a header declares must fit in the bytes there are, checked before anything is
 * allocated for it: a 40-byte file claiming 2^31 points is rejected here, not by a failed
 * allocation. Data longer than declared is rejected too (binary here, ascii after its last row):
 * reading only the first POINTS rows would silently drop the rest of the scan.
 */
function checkDeclaredSize(bytes: Uint8Array, file: string, h: PcdHeader): void {
  const have = bytes.length - h.dataOffset;
  const n = h.points;
  const rowBytes = rowBytesOf(h);
  if (h.data === 'ascii') {
    // Each row has one value per column, each at least one character (plus separators, not counted here).
    const columns = h.count.reduce((a, b) => a + b, 0);
    const least = n * columns;
    if (have < least) {
      throw new DataError(file, 'POINTS', `ascii data is ${have} bytes, too short for ${n} rows of ${columns} values (at least ${least} bytes)`, n);
    }
  } else if (h.data === 'binary') {
    if (have !== rowBytes * n) {
      throw new DataError(
        file,
        'POINTS',
        `binary data is ${have} bytes, ${have < rowBytes * n ? 'shorter' : 'longer'} than the ${rowBytes * n} bytes declared (${n} points × ${rowBytes} bytes)`,
        n,
      );
    }
  } else if (have >= 8) {
    const compressed = new DataView(bytes.buffer, bytes.byteOffset + h.dataOffset, 4).getUint32(0, true);
    if (rowBytes * n > Math.min(compressed, have - 8) * LZF_MAX_RATIO + 8) {
      throw new DataError(file, 'POINTS', `${n} points × ${rowBytes} bytes cannot come out of a ${compressed}-byte LZF block`, n);
    }
  }
}

interface IntensitySource {
  field: number;
  /** rgb/rgba: the value holds 0x00RRGGBB and the intensity is the red byte. */
  packed: boolean;
  scale: number;
}

function intensitySource(h: PcdHeader, mode: 'auto' | 'raw'): IntensitySource | undefined {
  let f = h.fields.indexOf('intensity');
  if (f >= 0) {
    const t = h.type[f];
    const scale = mode === 'auto' && t !== 'F' ? 1 / intMax(t, h.size[f]) : 1;
    return { field: f, packed: false, scale };
  }
  f = h.fields.indexOf('rgb');
  if (f < 0) f = h.fields.indexOf('rgba');
  return f >= 0 ? { field: f, packed: true, scale: 1 } : undefined;
}

function intMax(t: PcdType, size: number): number {
  const bits = size * 8 - (t === 'I' ? 1 : 0);
  return 2 ** bits - 1;
}

/** Where field f of point i lives: base[f] + i·stride[f] (first element when COUNT > 1). */
function binaryLayout(bytes: Uint8Array, file: string, h: PcdHeader) {
  const nf = h.fields.length;
  const n = h.points;
  const rowBytes = rowBytesOf(h);
  const need = rowBytes * n;
  let data: Uint8Array;
  const base: number[] = new Array(nf);
  const stride: number[] = new Array(nf);
  if (h.data === 'binary') {
    const have = bytes.length - h.dataOffset;
    if (have < need) {
      throw new DataError(file, 'POINTS', `binary data is ${have} bytes, shorter than the ${need} bytes declared (${n} points × ${rowBytes} bytes)`, n);
    }
    data = bytes.subarray(h.dataOffset, h.dataOffset + need);
    // Row-major: each point's fields one after the other.
    let off = 0;
    for (let f = 0; f < nf; f++) {
      base[f] = off;
      stride[f] = rowBytes;
      off += h.size[f] * h.count[f];
    }
  } else {
    if (bytes.length - h.dataOffset < 8) {
      throw new DataError(file, 'DATA', 'binary_compressed data is missing its compressed/uncompressed size words');
    }
    const sizes = new DataView(bytes.buffer, bytes.byteOffset + h.dataOffset, 8);
    const compressed = sizes.getUint32(0, true);
    const uncompressed = sizes.getUint32(4, true);
    if (uncompressed !== need) {
      throw new DataError(
        file,
        'DATA',
        `binary_compressed uncompressed size disagrees with the header's ${n} points × ${rowBytes} bytes = ${need}`,
        uncompressed,
      );
    }
    const start = h.dataOffset + 8;
    if (start + compressed > bytes.length) {
      throw new DataError(
        file,
        'DATA',
        `binary_compressed block is declared as ${compressed} bytes but only ${bytes.length - start} follow (truncated file)`,
        compressed,
      );
    }
    try {
      data = lzfDecompress(bytes.subarray(start, start + compressed), uncompressed);
    } catch (err) {
      if (err instanceof LzfError) throw new DataError(file, 'DATA', `binary_compressed LZF block is corrupt: ${err.message}`);
      throw err;
    }
    // Column-major: all of field 0 for every point, then all of field 1, ...
    let off = 0;
    for (let f = 0; f < nf; f++) {
      base[f] = off;
      stride[f] = h.size[f] * h.count[f];
      off += stride[f] * n;
    }
  }
  return { view: new DataView(data.buffer, data.byteOffset, data.byteLength), base, stride };
}

function readValue(v: DataView, off: number, t: PcdType, size: number): number {
  if (t === 'F') return size === 4 ? v.getFloat32(off, true) : v.getFloat64(off, true);
  if (t === 'U') {
    switch (size) {
      case 1:
        return v.getUint8(off);
      case 2:
        return v.getUint16(off, true);
      case 4:
        return v.getUint32(off, true);
      default:
        return Number(v.getBigUint64(off, true));
    }
  }
  switch (size) {
    case 1:
      return v.getInt8(off);
    case 2:
      return v.getInt16(off, true);
    case 4:
      return v.getInt32(off, true);
    default:
      return Number(v.getBigInt64(off, true));
  }
}

const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

function floatBits(v: number): number {
  scratchF32[0] = v;
  return scratchU32[0];
}

function bitsToFloat(u: number): number {
  scratchU32[0] = u;
  return scratchF32[0];
}

function redByte(packed: number): number {
  return ((packed >>> 16) & 255) / 255;
}

const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;
const SPECIAL: Record<string, number> = {
  nan: NaN,
  '-nan': NaN,
  '+nan': NaN,
  inf: Infinity,
  '+inf': Infinity,
  infinity: Infinity,
  '-inf': -Infinity,
  '-infinity': -Infinity,
};

/** A number as PCL or Open3D write it (including nan/inf), or undefined when it is not one. */
function parseAsciiNumber(tok: string): number | undefined {
  if (NUMBER.test(tok)) return Number(tok);
  return SPECIAL[tok.toLowerCase()];
}

function decodeAscii(
  bytes: Uint8Array,
  file: string,
  h: PcdHeader,
  xi: number,
  yi: number,
  zi: number,
  intensity: IntensitySource | undefined,
  keep: (x: number, y: number, z: number, i: number) => void,
): void {
  // Column of each field's first value within a row (fields with COUNT > 1 take several).
  const col: number[] = [];
  let c = 0;
  for (const k of h.count) {
    col.push(c);
    c += k;
  }
  const perRow = c;
  const n = h.points;
  const text = latin1(bytes, h.dataOffset, bytes.length);
  let pos = 0;
  let row = 0;
  const tokens: string[] = new Array(perRow);
  while (row < n && pos < text.length) {
    let end = text.indexOf('\n', pos);
    if (end < 0) end = text.length;
    const line = text.slice(pos, end).trim();
    pos = end + 1;
    if (line === '') continue;
    let t = 0;
    for (const tok of line.split(/\s+/)) {
      if (t < perRow) tokens[t] = tok;
      t++;
    }
    if (t !== perRow) {
      throw new DataError(file, `row ${row}`, `has ${t} values, expected ${perRow} (FIELDS ${h.fields.join(' ')})`, line);
    }
    const num = (f: number): number => {
      const tok = tokens[col[f]];
      const v = parseAsciiNumber(tok);
      if (v === undefined) {
        throw new DataError(file, `row ${row}, column ${col[f]} (${h.fields[f]})`, 'not a number', tok);
      }
      return v;
    };
    let iv = 0;
    if (intensity) {
      const raw = num(intensity.field);
      if (intensity.packed) {
        // A float-typed rgb holds the packed integer's bits; an integer-typed one holds it directly.
        iv = redByte(h.type[intensity.field] === 'F' ? floatBits(raw) : raw);
      } else {
        iv = raw * intensity.scale;
      }
    }
    keep(num(xi), num(yi), num(zi), iv);
    row++;
  }
  if (row < n) throw new DataError(file, 'POINTS', `ascii data has ${row} rows, fewer than declared`, n);
  if (text.slice(pos).trim() !== '') throw new DataError(file, 'POINTS', `ascii data has more rows than the ${n} declared`, n);
}

function latin1(bytes: Uint8Array, start: number, end: number): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset + start, Math.max(0, end - start)).toString('latin1');
}

// ---------------------------------------------------------------------------------------------
// Writer

/**
 * Encodes N×4 [x, y, z, intensity] points as a PCD file.
 * ascii: OPV2V style `FIELDS x y z rgb`, intensity stored as the red byte round(i·255) of a
 *   float-packed colour, numbers written with 9 significant digits so every float32 survives.
 * binary / binary_compressed: `FIELDS x y z intensity`, all float32.
 */
export function encodePcd(points: Float32Array, format: PcdDataFormat): Uint8Array {
  if (points.length % 4 !== 0) throw new Error(`encodePcd: points length ${points.length} is not a multiple of 4`);
  if (format !== 'ascii' && format !== 'binary' && format !== 'binary_compressed') {
    throw new Error(`encodePcd: unknown format ${JSON.stringify(format)} (expected ascii, binary or binary_compressed)`);
  }
  const n = points.length / 4;
  const last = format === 'ascii' ? 'rgb' : 'intensity';
  const header =
    '# .PCD v0.7 - Point Cloud Data file format\n' +
    'VERSION 0.7\n' +
    `FIELDS x y z ${last}\n` +
    'SIZE 4 4 4 4\n' +
    'TYPE F F F F\n' +
    'COUNT 1 1 1 1\n' +
    `WIDTH ${n}\n` +
    'HEIGHT 1\n' +
    'VIEWPOINT 0 0 0 1 0 0 0\n' +
    `POINTS ${n}\n` +
    `DATA ${format}\n`;
  const head = Buffer.from(header, 'latin1');

  if (format === 'ascii') {
    const lines: string[] = new Array(n);
    for (let i = 0; i < n; i++) {
      const o = i * 4;
      const r = Math.min(255, Math.max(0, Math.round(points[o + 3] * 255))) || 0;
      const rgb = bitsToFloat(r << 16);
      lines[i] = `${fmtFloat(points[o])} ${fmtFloat(points[o + 1])} ${fmtFloat(points[o + 2])} ${fmtFloat(rgb)}`;
    }
    return concat(head, Buffer.from(n > 0 ? lines.join('\n') + '\n' : '', 'latin1'));
  }

  // Explicit little-endian writes: PCD binary data is little-endian whatever the host.
  const raw = new Uint8Array(n * 16);
  const dv = new DataView(raw.buffer);
  for (let i = 0; i < n; i++) {
    for (let f = 0; f < 4; f++) {
      // binary is row-major; binary_compressed is column-major (all x, then all y, ...).
      const at = format === 'binary' ? (i * 4 + f) * 4 : (f * n + i) * 4;
      dv.setFloat32(at, points[i * 4 + f], true);
    }
  }
  let body = raw;
  if (format === 'binary_compressed') {
    const packed = lzfCompress(raw);
    body = new Uint8Array(8 + packed.length);
    const sizes = new DataView(body.buffer);
    sizes.setUint32(0, packed.length, true);
    sizes.setUint32(4, raw.length, true);
    body.set(packed, 8);
  }
  return concat(head, body);
}

/** Shortest-enough text for a float32: 9 significant digits always round-trip. */
function fmtFloat(v: number): string {
  if (Number.isInteger(v) && Math.abs(v) < 1e15) return String(v);
  if (Number.isNaN(v)) return 'nan';
  if (!Number.isFinite(v)) return v > 0 ? 'inf' : '-inf';
  const s = v.toPrecision(9);
  const e = s.indexOf('e');
  const mant = e < 0 ? s : s.slice(0, e);
  if (mant.indexOf('.') < 0) return s;
  let end = mant.length;
  while (mant.charCodeAt(end - 1) === 48) end--; // '0'
  if (mant.charCodeAt(end - 1) === 46) end--; // '.'
  return mant.slice(0, end) + (e < 0 ? '' : s.slice(e));
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

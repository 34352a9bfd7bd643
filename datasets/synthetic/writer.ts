// YAML text in the style OpenCDA's dumper produces with PyYAML (`yaml.dump`, block style, keys
// sorted, floats always with a decimal point), so the files read like the real ones.

export type YamlValue = number | boolean | string | YamlValue[] | { [key: string]: YamlValue };

/**
 * Python-repr-like text. Frame files hold Python floats, so whole numbers print as `12.0`;
 * with `ints` they print as `12` (configuration files, where whole numbers are Python ints).
 */
function scalar(v: YamlValue, ints = false): string {
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (typeof v === 'string') return /^[A-Za-z_][\w .\-/]*$/.test(v) && !/^(true|false|null|yes|no|on|off)$/i.test(v) ? v : JSON.stringify(v);
  if (typeof v !== 'number') throw new Error('scalar: not a scalar');
  if (!Number.isFinite(v)) throw new Error(`YAML writer: non-finite number ${v}`);
  if (Object.is(v, -0)) return '-0.0';
  if (Number.isInteger(v) && Math.abs(v) < 1e16) return ints ? String(v) : v.toFixed(1);
  const s = String(v);
  const e = s.indexOf('e');
  if (e >= 0 && s.lastIndexOf('.', e) < 0) return `${s.slice(0, e)}.0${s.slice(e)}`;
  return s;
}

function isMap(v: YamlValue): v is { [key: string]: YamlValue } {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Integer-looking keys (object ids) sort numerically and print bare, as PyYAML prints int keys. */
function sortedKeys(m: { [key: string]: YamlValue }): string[] {
  const keys = Object.keys(m);
  const numeric = keys.length > 0 && keys.every((k) => /^-?\d+$/.test(k));
  return numeric ? keys.sort((a, b) => Number(a) - Number(b)) : keys.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

function emptyText(v: YamlValue): string | undefined {
  if (Array.isArray(v) && v.length === 0) return '[]';
  if (isMap(v) && Object.keys(v).length === 0) return '{}';
  return undefined;
}

function seqLines(a: YamlValue[], ind: string, out: string[], ints: boolean): void {
  for (const v of a) {
    const empty = emptyText(v);
    if (empty !== undefined) out.push(`${ind}- ${empty}`);
    else if (Array.isArray(v)) {
      const inner: string[] = [];
      seqLines(v, ind + '  ', inner, ints);
      out.push(`${ind}- ${inner[0].trimStart()}`, ...inner.slice(1));
    } else if (isMap(v)) {
      const inner: string[] = [];
      mapLines(v, ind + '  ', inner, ints);
      out.push(`${ind}- ${inner[0].trimStart()}`, ...inner.slice(1));
    } else out.push(`${ind}- ${scalar(v, ints)}`);
  }
}

function mapLines(m: { [key: string]: YamlValue }, ind: string, out: string[], ints: boolean): void {
  for (const k of sortedKeys(m)) {
    const v = m[k];
    const key = /^-?\d+$/.test(k) ? k : scalar(k);
    const empty = emptyText(v);
    if (empty !== undefined) out.push(`${ind}${key}: ${empty}`);
    // PyYAML does not indent a list under its key.
    else if (Array.isArray(v)) {
      out.push(`${ind}${key}:`);
      seqLines(v, ind, out, ints);
    } else if (isMap(v)) {
      out.push(`${ind}${key}:`);
      mapLines(v, ind + '  ', out, ints);
    } else out.push(`${ind}${key}: ${scalar(v, ints)}`);
  }
}

export function toYaml(doc: { [key: string]: YamlValue }, opts: { ints?: boolean } = {}): string {
  const lines: string[] = [];
  mapLines(doc, '', lines, opts.ints ?? false);
  return lines.join('\n') + '\n';
}

// The command line of every heal command. A command declares its options once (name, value
// placeholder, default, description, validation); parsing, the checks and the `--help` text all
// come from that declaration, so the help cannot drift from what is accepted. Built on
// node:util parseArgs: long options, comma lists and k=v maps do not need a dependency.
//
// Every mistake on the command line is a UsageError: heal prints `heal <cmd>: <message>` (one
// line, naming the option and the value) and exits with 2. Other failures exit with 1.

import { statSync } from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';

export class UsageError extends Error {
  override name = 'UsageError';
}

/** The one line heal prints for a usage error. */
export function usageLine(command: string, err: UsageError): string {
  return `heal ${command}: ${err.message}`;
}

// ---- values: what one item of an option may be -------------------------------------------------

/** A kind of value: `what` completes "must be ..." in error messages; parse gives undefined when the text is not one. */
export interface Kind<T> {
  readonly what: string;
  readonly choices?: readonly string[];
  parse(text: string): T | undefined;
}

/** Bounds of a number: min and max are included, above and below are not. */
export interface Range {
  min?: number;
  max?: number;
  above?: number;
  below?: number;
}

function inRange(n: number, r: Range): boolean {
  return (
    (r.min === undefined || n >= r.min) &&
    (r.max === undefined || n <= r.max) &&
    (r.above === undefined || n > r.above) &&
    (r.below === undefined || n < r.below)
  );
}

function rangeText(r: Range): string {
  const lo = r.min ?? r.above;
  const hi = r.max ?? r.below;
  if (lo !== undefined && hi !== undefined) return ` in ${r.min !== undefined ? '[' : '('}${lo}, ${hi}${r.max !== undefined ? ']' : ')'}`;
  if (lo !== undefined) return ` ${r.min !== undefined ? '>=' : '>'} ${lo}`;
  if (hi !== undefined) return ` ${r.max !== undefined ? '<=' : '<'} ${hi}`;
  return '';
}

export function integer(r: Range = {}): Kind<number> {
  return {
    what: `an integer${rangeText(r)}`,
    parse(text) {
      const t = text.trim();
      const n = Number(t);
      return /^[-+]?\d+$/.test(t) && Number.isSafeInteger(n) && inRange(n, r) ? n : undefined;
    },
  };
}

export function real(r: Range = {}): Kind<number> {
  return {
    what: `a number${rangeText(r)}`,
    parse(text) {
      const n = Number(text.trim());
      return text.trim() !== '' && Number.isFinite(n) && inRange(n, r) ? n : undefined;
    },
  };
}

export function oneOf<T extends string>(values: readonly T[]): Kind<T> {
  return {
    what: `one of ${values.join(', ')}`,
    choices: values,
    parse: (text) => values.find((v) => v === text.trim()),
  };
}

/** Any text but the empty one. */
export const text: Kind<string> = { what: 'a non-empty text', parse: (t) => (t === '' ? undefined : t) };

const isDir = (p: string) => statSync(p, { throwIfNoEntry: false })?.isDirectory() === true;

/** A folder that exists (an input: a typo must not be silently read as "nothing there"). */
export const existingDir: Kind<string> = { what: 'an existing folder', parse: (t) => (t !== '' && isDir(t) ? t : undefined) };

/** A file to write, in a folder that exists: heal creates files, never the folders a typo would invent. */
export const outputFile: Kind<string> = {
  what: 'a file path in an existing folder',
  parse: (t) => (t !== '' && !t.endsWith('/') && isDir(path.dirname(path.resolve(t))) && !isDir(t) ? t : undefined),
};

// ---- readers: option text to value, with errors naming the option and the value ---------------

export function readOne<T>(kind: Kind<T>, given: string, flag: string): T {
  const v = kind.parse(given);
  if (v === undefined) throw new UsageError(`${flag} must be ${kind.what} (got "${given}")`);
  return v;
}

/** A comma list; blank items are dropped ("1,2," is 1,2), and it must keep at least one. */
export function readList<T>(kind: Kind<T>, given: string, flag: string, count?: number): T[] {
  const items = given
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (!items.length) throw new UsageError(`${flag} needs at least one value, ${kind.what} (got "${given}")`);
  const out = items.map((item) => {
    const v = kind.parse(item);
    if (v === undefined) throw new UsageError(`${flag}: "${item}" is not ${kind.what}${items.length > 1 ? ` (in "${given}")` : ''}`);
    return v;
  });
  if (count !== undefined && out.length !== count) throw new UsageError(`${flag} needs ${count} values (got ${out.length}: "${given}")`);
  return out;
}

/** "k=v,k=v"; a later key overrides an earlier one. `entry` names the two sides in errors, e.g. ['TYPE', 'T']. */
export function readMap<T>(kind: Kind<T>, given: string, flag: string, entry: readonly [string, string]): Record<string, T> {
  const [k, v] = entry;
  const out: Record<string, T> = {};
  const items = given
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (!items.length) throw new UsageError(`${flag}: expected ${k}=${v}[,${k}=${v}...] (got "${given}")`);
  for (const item of items) {
    const m = /^([^=\s]+)\s*=\s*(.+)$/.exec(item);
    const value = m ? kind.parse(m[2]) : undefined;
    if (!m || value === undefined) throw new UsageError(`${flag}: expected ${k}=${v}, ${v} ${kind.what} (got "${item}")`);
    out[m[1]] = value;
  }
  return out;
}

// ---- options ------------------------------------------------------------------------------------

type Given = string | string[] | true | undefined;

export interface Option<T> {
  readonly type: 'string' | 'boolean';
  readonly multiple: boolean;
  readonly short?: string;
  /** Placeholder of the value in the help, e.g. DIR. */
  readonly arg?: string;
  readonly help: string;
  readonly required: boolean;
  readonly choices?: readonly string[];
  /** The default as the help shows it. */
  readonly defaultText?: string;
  /** Numeric options: the bounds their values are checked against (test/cli/args.test.ts wants them declared). */
  readonly bounds?: Range & { integer: boolean };
  /** The option's value from what was given (undefined when it was not). */
  value(given: Given, flag: string): T;
}

interface Decl {
  help: string;
  arg?: string;
  short?: string;
  required?: boolean;
}

export interface Valued<T> extends Decl {
  default?: T;
  /** What the help says the default is, when printing `default` would not say it (e.g. "cores, at most 8"). */
  defaultText?: string;
}

/** T when the option has a default or is required, else T | undefined. */
export type Out<T, S> = S extends { default: unknown } ? T : S extends { required: true } ? T : T | undefined;

function shownDefault(d: unknown): string | undefined {
  if (d === undefined) return undefined;
  return Array.isArray(d) ? d.join(',') : String(d);
}

/** An option with one value, read by `read` (which throws UsageError naming the flag). */
export function option<T, S extends Valued<T>>(
  read: (given: string, flag: string) => T,
  s: S,
  shown: { arg?: string; choices?: readonly string[] } = {},
): Option<Out<T, S>> {
  return {
    type: 'string',
    multiple: false,
    short: s.short,
    arg: s.arg ?? shown.arg ?? 'VALUE',
    help: s.help,
    required: s.required ?? false,
    choices: shown.choices,
    defaultText: s.defaultText ?? shownDefault(s.default),
    // A copy of a list default, so that no caller can change the declaration's.
    value: (given, flag) => (given === undefined ? (Array.isArray(s.default) ? [...s.default] : s.default) : read(given as string, flag)) as Out<T, S>,
  };
}

export function string<S extends Valued<string>>(s: S): Option<Out<string, S>> {
  return option((g, f) => readOne(text, g, f), s);
}

function boundsOf(r: Range, integer: boolean): Range & { integer: boolean } {
  return { min: r.min, max: r.max, above: r.above, below: r.below, integer };
}

export function int<S extends Valued<number> & Range>(s: S): Option<Out<number, S>> {
  const kind = integer(s);
  return { ...option((g, f) => readOne(kind, g, f), s, { arg: 'N' }), bounds: boundsOf(s, true) };
}

export function number<S extends Valued<number> & Range>(s: S): Option<Out<number, S>> {
  const kind = real(s);
  return { ...option((g, f) => readOne(kind, g, f), s, { arg: 'X' }), bounds: boundsOf(s, false) };
}

/** A file heal writes; its folder must exist. */
export function outFile<S extends Valued<string>>(s: S): Option<Out<string, S>> {
  return option((g, f) => readOne(outputFile, g, f), { arg: 'FILE', ...s });
}

// The defaults of choice() and choices() are typed string (inferring them as T fails inside a
// command's option table), so they are checked here, when the command is declared.
function checkDefault(values: readonly string[], d: string | string[] | undefined): void {
  for (const v of d === undefined ? [] : Array.isArray(d) ? d : [d]) {
    if (!values.includes(v)) throw new Error(`default "${v}" is not one of ${values.join(', ')}`);
  }
}

export function choice<T extends string, S extends Valued<string>>(values: readonly T[], s: S): Option<Out<T, S>> {
  checkDefault(values, s.default);
  const kind = oneOf(values);
  return option((g, f) => readOne(kind, g, f), s as unknown as Valued<T>, { choices: values }) as Option<Out<T, S>>;
}

/** A comma list of `kind` (plain text when not given); `count` fixes its length. */
export function list<T = string, S extends Valued<T[]> & { count?: number } = Valued<T[]>>(s: S, kind?: Kind<T>): Option<Out<T[], S>> {
  const k = (kind ?? text) as Kind<T>;
  return option((g, f) => readList(k, g, f, s.count), s, { arg: 'LIST', choices: k.choices });
}

export function choices<T extends string, S extends Valued<string[]>>(values: readonly T[], s: S): Option<Out<T[], S>> {
  checkDefault(values, s.default);
  return list(s as unknown as Valued<T[]>, oneOf(values)) as Option<Out<T[], S>>;
}

export function numbers<S extends Valued<number[]> & Range & { count?: number }>(s: S): Option<Out<number[], S>> {
  return { ...list(s, real(s)), bounds: boundsOf(s, false) };
}

/** `k=v,k=v` with values of `kind`. */
export function map<T, S extends Valued<Record<string, T>> & { entry: readonly [string, string] }>(kind: Kind<T>, s: S): Option<Out<Record<string, T>, S>> {
  return option((g, f) => readMap(kind, g, f, s.entry), s, { arg: `${s.entry[0]}=${s.entry[1]},...` });
}

/** A switch: true when given. */
export function flag(s: Omit<Decl, 'arg' | 'required'>): Option<boolean> {
  return { type: 'boolean', multiple: false, short: s.short, help: s.help, required: false, value: (given) => given === true };
}

/** An option that may be given several times; its values in order ([] when never given), each one of `kind` when given. */
export function repeat(s: Decl, kind?: Kind<string>): Option<string[]> {
  return {
    type: 'string',
    multiple: true,
    short: s.short,
    arg: s.arg ?? 'VALUE',
    help: s.help,
    required: s.required ?? false,
    value: (given, flag) => (given === undefined ? [] : (given as string[]).map((g) => (kind ? readOne(kind, g, flag) : g))),
  };
}

/** A folder that must exist, such as --keys. */
export function dir<S extends Valued<string>>(s: S): Option<Out<string, S>> {
  return option((g, f) => readOne(existingDir, g, f), { arg: 'DIR', ...s });
}

/** A repeatable folder that must exist, such as --types-dir. */
export function dirs(s: Decl): Option<string[]> {
  return repeat({ arg: 'DIR', ...s }, existingDir);
}

// ---- commands -----------------------------------------------------------------------------------

// biome-ignore lint/suspicious/noExplicitAny: option tables hold options of every value type
export type Options = Record<string, Option<any>>;

export type Values<O extends Options> = { [K in keyof O]: O[K] extends Option<infer T> ? T : never };

export interface CommandSpec<O extends Options> {
  /** The command's name, as in `heal <name>`. */
  name: string;
  /** What follows `heal <name>` on the help's usage line, e.g. "--data DIR [options]". */
  usage: string;
  /** What the command does: the help's paragraph(s) before the options. */
  about: string;
  options: O;
  /** Arguments that are not options, e.g. { name: 'DIR', min: 1, max: 1 }; none when absent. */
  positionals?: { name: string; min: number; max: number };
  /** Pairs of options that exclude each other (checked against `options` by command()). */
  exclusive?: readonly (readonly [string, string])[];
  /** Text after the options in the help. */
  epilog?: string;
}

export interface Parsed<O extends Options> {
  values: Values<O>;
  positionals: string[];
  /** The options given on the command line (not defaulted). */
  given: ReadonlySet<string>;
  /** The arguments as given. */
  argv: readonly string[];
}

/** Checks a command's declaration and keeps its types; the help option is added by heal itself. */
export function command<O extends Options>(spec: CommandSpec<O>): CommandSpec<O> {
  if ('help' in spec.options) throw new Error(`heal ${spec.name}: --help is declared by cli/args.ts`);
  for (const name of (spec.exclusive ?? []).flat()) {
    if (!Object.hasOwn(spec.options, name)) throw new Error(`heal ${spec.name}: exclusive names --${name}, which is not an option`);
  }
  return spec;
}

const HELP: Option<boolean> = flag({ short: 'h', help: 'this text' });

function label(name: string, o: Option<unknown>): string {
  return `${o.short ? `-${o.short}, ` : ''}--${name}${o.type === 'string' ? ` ${o.arg}` : ''}`;
}

const WIDTH = 100;

/** Word-wraps one paragraph line to WIDTH, continuation lines indented by `indent`. */
function wrap(line: string, indent: number, first: number): string[] {
  const out: string[] = [];
  let cur = '';
  let room = WIDTH - first;
  for (const word of line.split(' ')) {
    if (cur && cur.length + 1 + word.length > room) {
      out.push(cur);
      cur = word;
      room = WIDTH - indent;
    } else cur = cur ? `${cur} ${word}` : word;
  }
  out.push(cur);
  return out;
}

/** The `--help` text, from the declaration. */
export function helpText<O extends Options>(spec: CommandSpec<O>): string {
  const entries: [string, Option<unknown>][] = [...Object.entries(spec.options), ['help', HELP]];
  const labels = entries.map(([name, o]) => label(name, o));
  const col = Math.min(26, Math.max(...labels.map((l) => l.length))) + 4;
  const lines: string[] = [];
  for (const [i, [, o]] of entries.entries()) {
    const notes = [
      o.choices ? o.choices.join(' | ') : '',
      o.required ? 'required' : '',
      o.defaultText !== undefined ? `default ${o.defaultText}` : '',
      o.multiple ? 'repeatable' : '',
    ].filter(Boolean);
    // "extra declarations (*.json)" + repeatable reads "extra declarations (*.json; repeatable)".
    const described = !notes.length ? o.help : o.help.endsWith(')') ? `${o.help.slice(0, -1)}; ${notes.join('; ')})` : `${o.help} (${notes.join('; ')})`;
    const head = `  ${labels[i]}`;
    const body = wrap(described, col, col);
    if (head.length + 2 > col) lines.push(head, ...body.map((b) => ' '.repeat(col) + b));
    else lines.push(head.padEnd(col) + body[0], ...body.slice(1).map((b) => ' '.repeat(col) + b));
  }
  const parts = [`usage: heal ${spec.name} ${spec.usage}`, spec.about, `options:\n${lines.join('\n')}`];
  if (spec.epilog) parts.push(spec.epilog);
  return parts.join('\n\n');
}

/**
 * Parses a command's arguments: 'help' when -h/--help is among them, else the values of every
 * declared option (defaults filled in) and the positionals. Throws UsageError on an unknown
 * option, a missing or malformed value, a missing required option or positional, or two options
 * that exclude each other. An option given twice keeps its last value (so `heal start` can put
 * its defaults before the user's arguments).
 */
export function parseCommand<O extends Options>(spec: CommandSpec<O>, argv: readonly string[]): Parsed<O> | 'help' {
  const decls: Options = { ...spec.options, help: HELP };
  const nodeOptions: Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }> = {};
  for (const [name, o] of Object.entries(decls))
    nodeOptions[name] = { type: o.type, ...(o.short ? { short: o.short } : {}), ...(o.multiple ? { multiple: true } : {}) };
  // Not strict: heal checks the tokens itself, so that every mistake gets one line naming it.
  const { tokens } = parseArgs({ args: [...argv], options: nodeOptions, strict: false, allowPositionals: true, tokens: true });
  if (tokens.some((t) => t.kind === 'option' && t.name === 'help')) return 'help';

  const given = new Map<string, Given>();
  const positionals: string[] = [];
  for (const t of tokens) {
    if (t.kind === 'positional') positionals.push(t.value);
    if (t.kind !== 'option') continue;
    const o = Object.hasOwn(decls, t.name) ? decls[t.name] : undefined;
    if (!o) {
      throw new UsageError(`unknown option ${t.rawName} (heal ${spec.name} --help lists the options)`);
    }
    if (o.type === 'boolean') {
      if (t.value !== undefined) throw new UsageError(`--${t.name} takes no value (got "${t.value}")`);
      given.set(t.name, true);
      continue;
    }
    // A value that looks like an option is one the user forgot; a negative number is a value.
    if (t.value === undefined || (!t.inlineValue && t.value.startsWith('-') && !/^-[\d.]/.test(t.value))) {
      const hint = t.value === undefined || t.value.startsWith('--') ? '' : ` (write --${t.name}=${t.value} for a value that starts with "-")`;
      throw new UsageError(`--${t.name} needs a value: --${t.name} ${o.arg}${hint}`);
    }
    if (o.multiple) given.set(t.name, [...((given.get(t.name) as string[] | undefined) ?? []), t.value]);
    else given.set(t.name, t.value);
  }

  for (const [a, b] of spec.exclusive ?? []) {
    if (given.has(a) && given.has(b)) throw new UsageError(`give --${a} or --${b}, not both`);
  }
  const missing = Object.entries(spec.options)
    .filter(([name, o]) => o.required && !given.has(name))
    .map(([name, o]) => label(name, o));
  if (missing.length) throw new UsageError(`missing ${missing.join(', ')}`);
  const pos = spec.positionals ?? { name: '', min: 0, max: 0 };
  if (positionals.length > pos.max) throw new UsageError(`unexpected argument "${positionals[pos.max]}"`);
  if (positionals.length < pos.min) throw new UsageError(`missing ${pos.name}`);

  const values: Record<string, unknown> = {};
  for (const [name, o] of Object.entries(spec.options)) values[name] = o.value(given.get(name), `--${name}`);
  return { values: values as Values<O>, positionals, given: new Set(given.keys()), argv };
}

/** Where a command writes; tests pass collectors. */
export interface Io {
  out(text: string): void;
  err(text: string): void;
}

/** Through console.log/error, as the rest of the CLI writes, so that what captures one captures all. */
export const processIo: Io = {
  out: (t) => console.log(t.endsWith('\n') ? t.slice(0, -1) : t),
  err: (t) => console.error(t.endsWith('\n') ? t.slice(0, -1) : t),
};

/**
 * Runs a command: --help prints the generated help; a UsageError, from the parse or from `body`,
 * prints its one line and gives exit status 2; `body`'s own status otherwise.
 */
export async function runCommand<O extends Options>(
  spec: CommandSpec<O>,
  argv: readonly string[],
  body: (parsed: Parsed<O>) => Promise<number>,
  io: Io = processIo,
): Promise<number> {
  try {
    const parsed = parseCommand(spec, argv);
    if (parsed === 'help') {
      io.out(`${helpText(spec)}\n`);
      return 0;
    }
    return await body(parsed);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    io.err(`${usageLine(spec.name, err)}\n`);
    return 2;
  }
}

// `heal bench` / `npm run bench`: runs every benchmark module side by side in one process and
// writes the figures to bench/results/latest.json (and a Markdown table beside it), so that
// numbers quoted in notes come from a file in the repo, not from memory.

import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeFileAtomic } from '../datasets/io.ts';
import { UsageError, choice, command, int, outFile, runCommand } from './args.ts';

const BENCHES: Record<string, string> = {
  synthetic: '../bench/synthetic.ts',
  pillars: '../bench/pillars.ts',
  camera: '../bench/camera.ts',
  inference: '../bench/inference.ts',
  train: '../bench/train.ts',
  codec: '../bench/codec.ts',
};

/** Benchmarks that run only when named (long, or about messages rather than speed of the pass). */
const ON_REQUEST: Record<string, string> = {
  fuzz: '../bench/fuzz.ts',
  signing: '../bench/signing.ts',
  hostile: '../bench/hostile.ts',
  'fuzz-readers': '../bench/fuzz-readers.ts',
  'eval-jobs': '../bench/eval-jobs.ts',
};

/** Benchmarks that also run on another profile than the default small one, and their module for it. */
const PROFILE_BENCHES: Record<string, Record<string, string>> = {
  heal: { inference: '../bench/heal-inference.ts' },
};

export const BENCH = command({
  name: 'bench',
  usage: '[NAME ...] [--profile P] [--out FILE]',
  about: `Runs benchmarks side by side in one process. Writes bench/results/latest.json (all) or
bench/results/NAME.json (some), and a Markdown table beside it.
benchmarks: ${Object.keys(BENCHES).join(', ')} (default: all of these)
on request: fuzz (messages and signed messages, --n cases each), signing (sign and verify cost per
message and share of a frame), hostile (AP with one hostile sender, on the synthetic test split),
fuzz-readers (HEAL_FUZZ_N cases, default 10000, each of PCD, frame YAML and DAIR JSON, then the
bad-file survey through heal inspect and heal eval; HEAL_SURVEY=0 skips the survey)
--profile heal: ${Object.keys(PROFILE_BENCHES.heal).join(', ')} on the heal profile (HEAL's m1 network, and its m4
camera agent with 4 pictures at 800×600; the figures go to NAME-heal.json)`,
  positionals: { name: 'NAME', min: 0, max: Number.POSITIVE_INFINITY },
  options: {
    out: outFile({ defaultText: 'bench/results/latest.json, or NAME.json for some', help: 'where the figures go' }),
    profile: choice(['small', ...Object.keys(PROFILE_BENCHES)], { arg: 'P', default: 'small', help: 'shared-space profile of the benchmarks that have one' }),
    n: int({ min: 1, max: 10_000_000, default: 100_000, help: 'fuzz: inputs per kind (messages, signed messages)' }),
  },
});

export function run(args: string[]): Promise<number> {
  return runCommand(BENCH, args, async ({ values, positionals: names }) => {
    const known = { ...BENCHES, ...ON_REQUEST };
    for (const name of names) {
      if (!Object.hasOwn(known, name)) throw new UsageError(`unknown benchmark "${name}" (have: ${Object.keys(known).join(', ')})`);
    }
    const here = path.dirname(fileURLToPath(import.meta.url));
    const profile = values.profile;
    if (profile !== 'small') {
      const have = PROFILE_BENCHES[profile];
      const selected = names.length ? names : Object.keys(have);
      for (const name of selected) {
        if (!Object.hasOwn(have, name)) throw new UsageError(`benchmark "${name}" has no ${profile} profile (only ${Object.keys(have).join(', ')})`);
      }
      // Never latest.json: that record is the small profile's.
      return bench(selected, have, values.out ?? path.join(here, '..', 'bench', 'results', `${selected.join('+')}-${profile}.json`));
    }
    const selected = names.length ? names : Object.keys(BENCHES);
    // A partial run must not overwrite the full record: it gets a file named after what ran.
    const defaultName = names.length ? `${selected.join('+')}.json` : 'latest.json';
    return bench(selected, known, values.out ?? path.join(here, '..', 'bench', 'results', defaultName), { n: values.n });
  });
}

async function bench(selected: string[], modules: Record<string, string>, out: string, opts: { n?: number } = {}): Promise<number> {
  const results: Record<string, unknown> = {
    date: new Date().toISOString(),
    node: process.version,
    cpus: (await import('node:os')).cpus().map((c) => c.model)[0],
    cores: (await import('node:os')).cpus().length,
  };
  for (const name of selected) {
    const file = modules[name];
    process.stderr.write(`bench ${name} ...\n`);
    const mod = (await import(file)) as { run(opts: { n?: number }): Promise<Record<string, unknown>> };
    const figures = await mod.run(opts);
    results[name] = figures;
    console.log(`\n## ${name}`);
    for (const [k, v] of Object.entries(figures)) console.log(`  ${k.padEnd(36)} ${typeof v === 'number' ? +v.toFixed(3) : v}`);
  }
  await writeFileAtomic(out, JSON.stringify(results, null, 2) + '\n');
  const md = [`# heal benchmarks (${results.date}, ${results.cores} × ${results.cpus}, node ${results.node})`, ''];
  for (const name of selected) {
    md.push(`## ${name}`, '', '| figure | value |', '|---|---|');
    for (const [k, v] of Object.entries(results[name] as Record<string, unknown>)) md.push(`| ${k} | ${typeof v === 'number' ? +v.toFixed(3) : v} |`);
    md.push('');
  }
  await writeFileAtomic(out.replace(/\.json$/, '.md'), md.join('\n'));
  console.log(`\nwrote ${out}`);
  return 0;
}

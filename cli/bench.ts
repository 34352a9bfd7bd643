// `heal bench` / `npm run bench`: runs every benchmark module side by side in one process and
// writes the figures to bench/results/latest.json (and a Markdown table beside it), so that
// numbers quoted in notes come from a file in the repo, not from memory.

import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeFileAtomic } from '../datasets/io.ts';

const BENCHES: Record<string, string> = {
  synthetic: '../bench/synthetic.ts',
  pillars: '../bench/pillars.ts',
  camera: '../bench/camera.ts',
  inference: '../bench/inference.ts',
  train: '../bench/train.ts',
};

export async function run(args: string[]): Promise<number> {
  if (args.includes('--help')) {
    console.log(
      `usage: heal bench [NAME ...] [--out FILE]\n\nWrites bench/results/latest.json (all) or bench/results/NAME.json (some).\nbenchmarks: ${Object.keys(BENCHES).join(', ')} (default: all)`,
    );
    return 0;
  }
  const outIdx = args.indexOf('--out');
  const here = path.dirname(fileURLToPath(import.meta.url));
  const names = args.filter((a, i) => !a.startsWith('--') && (outIdx < 0 || i !== outIdx + 1));
  const selected = names.length ? names : Object.keys(BENCHES);
  // A partial run must not overwrite the full record: it gets a file named after what ran.
  const defaultName = names.length ? `${selected.join('+')}.json` : 'latest.json';
  const out = outIdx >= 0 ? args[outIdx + 1] : path.join(here, '..', 'bench', 'results', defaultName);
  const results: Record<string, unknown> = {
    date: new Date().toISOString(),
    node: process.version,
    cpus: (await import('node:os')).cpus().map((c) => c.model)[0],
    cores: (await import('node:os')).cpus().length,
  };
  for (const name of selected) {
    const file = BENCHES[name];
    if (!file) throw new Error(`unknown benchmark "${name}" (have: ${Object.keys(BENCHES).join(', ')})`);
    process.stderr.write(`bench ${name} ...\n`);
    const mod = (await import(file)) as { run(): Promise<Record<string, unknown>> };
    const figures = await mod.run();
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

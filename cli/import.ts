// `heal import FILE.pth --out DIR`: a HEAL checkpoint as heal's own weight file. The mapping is
// the one every --weights uses (fusion/pipeline.ts readWeightFile); this command writes its result
// once, with a manifest saying where each HEAL key went and what was left out, so that a checkpoint
// is checked and converted once and the weight file then loads without PyTorch's zip and pickle.

import * as path from 'node:path';
import { promises as fs } from 'node:fs';
import { writeFileAtomic } from '../datasets/io.ts';
import { saveWeights } from '../models/weights.ts';
import { loadRegistry } from '../perception/registry.ts';
import { SPACES, spaceByName } from '../perception/space.ts';
import { readWeightFile, isHealCheckpoint } from '../fusion/pipeline.ts';
import { describeImport } from '../fusion/heal-checkpoint.ts';
import { leftOutLines } from '../fusion/heal-import.ts';
import { UsageError, choice, command, runCommand, string, dirs } from './args.ts';

export const IMPORT = command({
  name: 'import',
  usage: 'FILE.pth --out DIR [options]',
  about: `Converts a HEAL checkpoint (a PyTorch state dict, e.g. HEAL's net_epoch_bestval_at*.pth) into heal's
weight file: DIR/weights.bin (safetensors layout; its meta names the source file, its SHA-256 and this
command) and DIR/manifest.json (which HEAL key went to which heal parameter, which keys were left out
and why, the agent types loaded). A checkpoint merging several modalities loads those heal supports and
names the others. Every --weights also takes the .pth directly; this does the mapping once.`,
  positionals: { name: 'FILE.pth', min: 1, max: 1 },
  options: {
    out: string({ arg: 'DIR', required: true, help: 'folder for weights.bin and manifest.json' }),
    profile: choice(Object.keys(SPACES), {
      arg: 'P',
      default: 'heal',
      help: "shared-space profile whose networks the checkpoint fills (HEAL's are the heal profile's)",
    }),
    'types-dir': dirs({ help: 'extra agent-type declarations (*.json)' }),
  },
});

export function run(args: string[]): Promise<number> {
  return runCommand(IMPORT, args, async ({ values, positionals }) => {
    const t0 = performance.now();
    const file = positionals[0];
    if (!isHealCheckpoint(file)) throw new UsageError(`FILE must be a HEAL checkpoint (.pth or .pt), got "${file}"`);
    const space = spaceByName(values.profile);
    const registry = await loadRegistry(values['types-dir']);
    const loaded = await readWeightFile(file, space, registry);
    const imp = loaded.heal!;
    const out = path.resolve(values.out);
    await fs.mkdir(out, { recursive: true });
    const commandLine = ['heal', 'import', ...args].join(' ');
    const weightsFile = path.join(out, 'weights.bin');
    await saveWeights(weightsFile, loaded.weights, { ...loaded.meta, command: commandLine });
    const manifest = {
      version: 1,
      createdAt: new Date().toISOString(),
      command: commandLine,
      source: { file: imp.file, sha256: imp.sha256, bytes: imp.bytes, format: 'HEAL state dict (PyTorch zip)' },
      profile: space.name,
      types: imp.types,
      weights: {
        file: 'weights.bin',
        tensors: loaded.weights.size,
        values: [...loaded.weights.values()].reduce((s, w) => s + w.data.length, 0),
      },
      mapped: imp.mapped,
      skipped: imp.skipped.map((key) => ({ key, reason: "batch norm's num_batches_tracked, a training counter" })),
      leftOut: imp.leftOut,
    };
    await writeFileAtomic(path.join(out, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
    const seconds = (performance.now() - t0) / 1000;
    console.log(
      `heal import: ${imp.file} (sha256 ${imp.sha256.slice(0, 16)}…) → the ${space.name} profile's ego network and ${imp.types.join(', ') || 'no agent type'}`,
    );
    for (const line of [...describeImport(imp), ...leftOutLines(imp)]) console.log(`  ${line}`);
    console.log(
      `wrote ${weightsFile} (${manifest.weights.tensors} tensors, ${manifest.weights.values.toLocaleString('en')} values) and ${path.join(out, 'manifest.json')}`,
    );
    console.log(`time: ${seconds.toFixed(2)} s`);
    return 0;
  });
}

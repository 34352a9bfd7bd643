// `heal export`: ONNX files and a manifest from trained weights.

import * as path from 'node:path';
import { exportModels } from '../train/export.ts';
import { loadRegistry } from '../perception/registry.ts';
import { SPACES, spaceByName } from '../perception/space.ts';
import { choice, command, list, repeat, runCommand, string, dirs } from './args.ts';

export const EXPORT = command({
  name: 'export',
  usage: '--weights FILE [--weights FILE ...] --out DIR [options]',
  about: `Writes DIR/<type>.onnx (each agent type's encoder and aligner; a type declaration's "model"
can point at it), DIR/ego.onnx (pyramid fusion and detection head), DIR/weights.bin and
DIR/manifest.json: agent types, the shared space, the training commands, seeds and dataset
seeds, step counts, wall times and validation metrics.`,
  options: {
    weights: repeat({
      arg: 'FILE',
      required: true,
      help: 'a checkpoint.bin of heal train / heal align, or a HEAL checkpoint (.pth, with --profile heal); repeat it to merge alignments run in parallel from one base (shared parameters must be identical)',
    }),
    out: string({ arg: 'DIR', required: true, help: 'output folder (models/shipped/small is what npm start uses)' }),
    types: list({ default: ['m1', 'm2', 'm3', 'm4'], help: 'agent types to export' }),
    profile: choice(Object.keys(SPACES), { arg: 'P', default: 'small', help: 'shared-space profile' }),
    record: repeat({ arg: 'FILE', help: 'a train.json / align.json of a run that made the weights' }),
    eval: string({ arg: 'FILE', help: 'report.json of a heal eval run on held-out data, copied into the manifest' }),
    'types-dir': dirs({ help: 'extra agent-type declarations (*.json)' }),
  },
});

export function run(args: string[]): Promise<number> {
  return runCommand(EXPORT, args, async ({ values }) => {
    const registry = await loadRegistry(values['types-dir']);
    const result = await exportModels({
      weightsFiles: values.weights.map((w) => path.resolve(w)),
      out: path.resolve(values.out),
      space: spaceByName(values.profile),
      registry,
      types: values.types,
      records: values.record.map((r) => path.resolve(r)),
      evalReport: values.eval ? path.resolve(values.eval) : undefined,
    });
    for (const f of result.files) console.log(`  ${f.file.padEnd(12)} ${(f.bytes / 1024).toFixed(0).padStart(7)} KiB`);
    console.log(`wrote ${result.manifest}`);
    return 0;
  });
}

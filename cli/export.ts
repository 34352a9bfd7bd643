// `heal export`: ONNX files and a manifest from trained weights.

import { parseArgs } from 'node:util';
import * as path from 'node:path';
import { exportModels } from '../train/export.ts';
import { loadRegistry } from '../perception/registry.ts';
import { spaceByName } from '../perception/space.ts';

const USAGE = `usage: heal export --weights FILE [--weights FILE ...] --out DIR [options]

Writes DIR/<type>.onnx (each agent type's encoder and aligner; a type declaration's "model"
can point at it), DIR/ego.onnx (pyramid fusion and detection head), DIR/weights.bin and
DIR/manifest.json: agent types, the shared space, the training commands, seeds and dataset
seeds, step counts, wall times and validation metrics.

options:
  --weights FILE      a checkpoint.bin of heal train / heal align; repeat it to merge alignments
                      run in parallel from one base (shared parameters must be identical)
  --out DIR           output folder (models/shipped/small is what npm start uses)
  --types LIST        agent types to export (default m1,m2,m3,m4)
  --profile P         shared-space profile (default small)
  --record FILE       a train.json / align.json of a run that made the weights (repeatable)
  --eval FILE         report.json of a heal eval run on held-out data, copied into the manifest
  --types-dir DIR     extra agent-type declarations (*.json)
  -h, --help          this text`;

export async function run(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      weights: { type: 'string', multiple: true },
      out: { type: 'string' },
      types: { type: 'string' },
      profile: { type: 'string' },
      record: { type: 'string', multiple: true },
      eval: { type: 'string' },
      'types-dir': { type: 'string', multiple: true },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (!values.weights?.length || !values.out) {
    console.error(USAGE);
    return 2;
  }
  const registry = await loadRegistry(values['types-dir'] ?? []);
  const types = (values.types ?? 'm1,m2,m3,m4')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const result = await exportModels({
    weightsFiles: values.weights.map((w) => path.resolve(w)),
    out: path.resolve(values.out),
    space: spaceByName(values.profile ?? 'small'),
    registry,
    types,
    records: (values.record ?? []).map((r) => path.resolve(r)),
    evalReport: values.eval ? path.resolve(values.eval) : undefined,
  });
  for (const f of result.files) console.log(`  ${f.file.padEnd(12)} ${(f.bytes / 1024).toFixed(0).padStart(7)} KiB`);
  console.log(`wrote ${result.manifest}`);
  return 0;
}

// `heal align --type NEW`: stage 2 of HEAL's training, backward alignment. Only the new type's
// encoder and aligner train, against the frozen pyramid fusion and head of a stage-1 model, so no
// agent type that already collaborates has to retrain.

import * as path from 'node:path';
import { DEFAULT_LOSS_WEIGHTS } from '../train/losses.ts';
import { command, number, runCommand, string, dirs } from './args.ts';
import { runTraining, trainingOptions } from './train.ts';

export const ALIGN = command({
  name: 'align',
  usage: '--type NEW --base WEIGHTS --data DIR --out RUNDIR [options]',
  about: `Stage 2, backward alignment: trains only agent type NEW's encoder and aligner, on NEW's
single-agent frames of DIR's train split (its own sensor, its own visible GT), against the
frozen pyramid fusion and detection head in WEIGHTS (a stage-1 checkpoint.bin, or any weight
file holding fusion.* and head.*). RUNDIR/checkpoint.bin holds WEIGHTS plus NEW's parameters,
so it serves every type at once. Align more types either one after another (pass it as the
next --base) or in parallel from the same base, then give every checkpoint to heal export
(--weights repeated), which merges them.
Prints the parameters trained against end-to-end training of all types, and the time per step.`,
  options: {
    type: string({ arg: 'NEW', required: true, help: 'agent type to align (built-in m1..m4 or one declared in --types-dir)' }),
    base: string({ arg: 'WEIGHTS', required: true, help: "weight file with the frozen fusion and head (heal's, or a HEAL checkpoint .pth)" }),
    'types-dir': dirs({ help: 'extra agent-type declarations (*.json)' }),
    'depth-weight': number({
      arg: 'W',
      min: 0,
      max: 1000,
      default: DEFAULT_LOSS_WEIGHTS.depth,
      help: "camera types: weight of the depth supervision from the dataset's depth maps (<ts>_depth<i>.png, OPV2V-H); 0 turns it off",
    }),
    ...trainingOptions(200),
  },
});

export function run(args: string[]): Promise<number> {
  return runCommand(ALIGN, args, ({ values }) =>
    runTraining('align', args, values, values['depth-weight'], { type: values.type, base: path.resolve(values.base), typesDirs: values['types-dir'] }),
  );
}

// `heal align --type NEW`: stage 2 of HEAL's training, backward alignment. Only the new type's
// encoder and aligner train, against the frozen pyramid fusion and head of a stage-1 model, so no
// agent type that already collaborates has to retrain.

import { runTraining } from './train.ts';

const USAGE = `usage: heal align --type NEW --base WEIGHTS --data DIR --out RUNDIR [options]

Stage 2, backward alignment: trains only agent type NEW's encoder and aligner, on NEW's
single-agent frames of DIR's train split (its own sensor, its own visible GT), against the
frozen pyramid fusion and detection head in WEIGHTS (a stage-1 checkpoint.bin, or any weight
file holding fusion.* and head.*). RUNDIR/checkpoint.bin holds WEIGHTS plus NEW's parameters,
so it serves every type at once. Align more types either one after another (pass it as the
next --base) or in parallel from the same base, then give every checkpoint to heal export
(--weights repeated), which merges them.
Prints the parameters trained against end-to-end training of all types, and the time per step.

options:
  --type NEW          agent type to align (built-in m1..m4 or one declared in --types-dir)
  --base WEIGHTS      weight file with the frozen fusion and head
  --types-dir DIR     extra agent-type declarations (*.json)
  --depth-weight W    camera types: weight of the depth supervision from the dataset's depth maps
                      (<ts>_depth<i>.png, OPV2V-H); default 1, 0 turns it off
  --data, --out, --steps (default 200), --lr, --seed, --no-augment, --val-every, --val-frames,
  --checkpoint-every, --resume, --backend: as for heal train
  -h, --help          this text`;

export function run(args: string[]): Promise<number> {
  return runTraining('align', USAGE, args);
}

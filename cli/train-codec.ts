// `heal train-codec --ratio R --base W`: the learned channel compressor of messages (a 1×1 conv
// C→C/R at the sender, C/R→C at the receiver; fusion/codec.ts), trained like an alignment with the
// encoder, the pyramid fusion and the head of W frozen, on cooperative frames of the train split.

import * as path from 'node:path';
import { CODEC_RATIOS } from '../fusion/codec.ts';
import { choice, command, runCommand, string } from './args.ts';
import { runTraining, trainingOptions } from './train.ts';

export const TRAIN_CODEC = command({
  name: 'train-codec',
  usage: '--ratio R --base WEIGHTS --data DIR --out RUNDIR [options]',
  about: `Trains the learned channel compressor of collaboration messages: a 1×1 convolution from the
shared space's C channels to C/R at the sender and back to C at the receiver, between the partners'
frozen encoders and the frozen pyramid fusion and head of WEIGHTS, on cooperative frames of DIR's
train split (validation AP on the validate split). Only the codec's parameters train.
RUNDIR/checkpoint.bin holds WEIGHTS plus codec.r<R>.*; train-codec.json records the command, seed,
data, wall time and the codec's parameters. heal eval --codecs learnedR... uses it.`,
  options: {
    ratio: choice(CODEC_RATIOS.map(String) as [string, ...string[]], { arg: 'R', required: true, help: 'channel compression ratio' }),
    base: string({ arg: 'WEIGHTS', required: true, help: 'weight file with the frozen encoder, fusion and head' }),
    ...trainingOptions(300),
  },
});

export function run(args: string[]): Promise<number> {
  return runCommand(TRAIN_CODEC, args, ({ values }) =>
    runTraining('train-codec', args, values, 0, undefined, { ratio: Number(values.ratio), base: path.resolve(values.base) }),
  );
}

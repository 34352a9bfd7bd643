// `heal adapt --type NEW --base W --encoder NEW.onnx`: adapter mode. NEW's encoder is a black box
// heal runs and never changes; only a small adapter into the shared space trains, against the
// frozen fusion and head (train/adapt.ts). Backward alignment (`heal align`) is the other mode.

import * as path from 'node:path';
import { selectTrainingBackend, TRAINING_BACKENDS } from '../train/backend.ts';
import { adapt, LR_SCHEDULES, type LrSchedule } from '../train/adapt.ts';
import { spaceByName, trainingSpace } from '../perception/space.ts';
import { choice, command, dirs, int, number, runCommand, string } from './args.ts';
import { progress } from './progress.ts';

export const ADAPT = command({
  name: 'adapt',
  usage: '--type NEW --base WEIGHTS --encoder NEW.onnx --data DIR --out DIR [options]',
  about: `Adapter mode: NEW joins without retraining its encoder. The encoder (an ONNX file whose
inputs are NEW's declared preprocessing and whose output is its BEV map) runs in onnxruntime once
per train agent-frame; its maps are cached, and only a small adapter (1×1 and 3×3 convolutions)
from its feature space into the shared space trains, against the frozen pyramid fusion and head
in WEIGHTS. With --head (a weight file holding NEW's own head, as heal train --single writes) it
also trains the reverter, which maps the fused shared map back into NEW's space so that NEW as
the ego detects with its own head.

DIR gets NEW.adapter.onnx (and NEW.reverter.onnx, NEW.head.onnx), adapter.bin, a declaration
types/NEW.json that joins NEW by its adapter (give DIR/types to --types-dir), and manifest.json: the
encoder's SHA-256 before and after, whether the fusion stayed bit-identical, the trainable
parameters, the wall time, and AP on the validate split.`,
  options: {
    type: string({ arg: 'NEW', required: true, help: 'agent type joining (built-in or declared in --types-dir): its sensor and preprocessing' }),
    base: string({ arg: 'WEIGHTS', required: true, help: 'weight file with the frozen fusion and head' }),
    encoder: string({ arg: 'FILE', required: true, help: "NEW's encoder, an ONNX file (never changed)" }),
    head: string({ arg: 'FILE', help: "weight file with NEW's own head (ownhead.NEW.*): also train the reverter" }),
    data: string({ arg: 'DIR', required: true, help: 'dataset with a train split (and a validate split for validation AP)' }),
    out: string({ arg: 'DIR', required: true, help: 'where the adapter, its declaration and manifest go' }),
    'types-dir': dirs({ help: 'extra agent-type declarations (*.json)' }),
    profile: choice(['small', 'heal'], { arg: 'P', default: 'small', help: 'shared-space profile' }),
    teacher: string({
      arg: 'T',
      default: 'm1',
      help: "first align the adapter's map with type T's shared map of the same agent-frame (needs T's sensor in the data); 'none' skips it",
    }),
    'agents-per-frame': int({ min: 0, default: 1, help: 'agents of each train frame whose maps are cached, drawn by the seed (0: all)' }),
    'feature-steps': int({ min: 0, default: 1000, help: 'feature-alignment steps (adapter only, no fusion in the loop)' }),
    'feature-crop': int({
      arg: 'N',
      min: 0,
      default: 32,
      help: 'each feature-alignment step learns on a random N×N window of cells (cheaper steps; 0: the whole map)',
    }),
    steps: int({ min: 0, default: 50, help: 'detection-loss steps through the frozen fusion and head' }),
    'reverter-steps': int({ min: 0, default: 300, help: 'reverter steps (with --head), on fused maps computed once' }),
    'reverter-maps': int({ min: 1, default: 60, help: 'train frames whose fused maps the reverter learns from' }),
    lr: number({ above: 0, max: 1, defaultText: '0.002', help: 'Adam learning rate' }),
    'lr-schedule': choice(LR_SCHEDULES, { arg: 'S', default: 'cosine', help: 'within each phase: cosine (lr falls to 0) or constant' }),
    seed: int({ arg: 'S', default: 0, help: 'initialisation and sampling seed' }),
    hidden: int({ min: 1, default: 32, help: 'hidden width of the adapter and reverter' }),
    convs: int({ min: 0, default: 2, help: "3×3 convolutions in the adapter's hidden width" }),
    'val-frames': int({ min: 1, default: 40, help: 'validate frames used' }),
    backend: choice(['auto', ...TRAINING_BACKENDS], { arg: 'B', default: 'auto', help: 'training backend' }),
  },
});

export function run(args: string[]): Promise<number> {
  return runCommand(ADAPT, args, async ({ values }) => {
    const backend = await selectTrainingBackend(values.backend as Parameters<typeof selectTrainingBackend>[0], (l) => console.log(l));
    let cacheBar: ReturnType<typeof progress> | undefined;
    let stepBar: ReturnType<typeof progress> | undefined;
    let phase = '';
    const record = await adapt({
      data: values.data,
      out: values.out,
      type: values.type,
      typesDirs: values['types-dir'],
      space: trainingSpace(spaceByName(values.profile)),
      base: path.resolve(values.base),
      encoder: path.resolve(values.encoder),
      head: values.head && path.resolve(values.head),
      steps: values.steps,
      teacher: values.teacher === 'none' ? null : values.teacher,
      featureSteps: values['feature-steps'],
      featureCrop: values['feature-crop'],
      agentsPerFrame: values['agents-per-frame'],
      reverterSteps: values['reverter-steps'],
      reverterMaps: values['reverter-maps'],
      lr: values.lr,
      schedule: values['lr-schedule'] as LrSchedule,
      seed: values.seed,
      hidden: values.hidden,
      convs: values.convs,
      valFrames: values['val-frames'],
      command: `heal adapt ${args.join(' ')}`,
      log: (l) => {
        if (cacheBar || stepBar) process.stderr.write('\n');
        console.log(l);
      },
      onCache: (done, total) => {
        cacheBar ??= progress('encode once', total);
        cacheBar.tick(1);
        if (done === total) cacheBar.stop();
      },
      onStep: (info) => {
        if (info.phase !== phase) {
          stepBar?.stop();
          phase = info.phase;
          stepBar = progress(info.phase, info.steps);
        }
        stepBar ??= progress(info.phase, info.steps);
        stepBar.tick(1, { loss: info.loss.toFixed(3), ...Object.fromEntries(Object.entries(info.parts).map(([k, v]) => [k, v.toFixed(3)])) });
      },
    });
    stepBar?.stop();
    const ap = (r: Record<string, number> | undefined) =>
      r
        ? Object.entries(r)
            .map(([k, v]) => `${k} ${v.toFixed(3)}`)
            .join(' ')
        : '-';
    console.log(
      `heal adapt: ${record.type} joined by its adapter on ${backend.backend}: ${record.trainableParams.toLocaleString('en')} trainable parameters (adapter ${record.adapter.parameters.toLocaleString('en')}${record.reverter ? `, reverter ${record.reverter.parameters.toLocaleString('en')}` : ''}), ${record.steps.feature} feature-alignment + ${record.steps.task} detection + ${record.steps.reverter} reverter steps, ${record.wallSeconds.toFixed(0)} s (encoding ${record.cacheSeconds.toFixed(0)} s, training ${record.trainSeconds.toFixed(0)} s: ${record.phaseSeconds.feature.toFixed(0)} + ${record.phaseSeconds.task.toFixed(0)} + ${record.phaseSeconds.reverter.toFixed(0)})`,
    );
    console.log(
      `heal adapt: encoder ${record.encoder.unchanged ? 'unchanged' : 'CHANGED'} (SHA-256 ${record.encoder.sha256After}); fusion and head ${record.fusionUnchanged ? 'bit-identical' : 'CHANGED'}`,
    );
    console.log(
      `heal adapt: validate split (${record.validation.frames} frames, ${record.type} alone): shared head ${ap(record.validation.shared)}; own head via reverter ${ap(record.validation.own)}`,
    );
    console.log(
      `heal adapt: declaration ${path.join(path.resolve(values.out), record.declaration)}; use it with --types-dir ${path.join(values.out, 'types')}`,
    );
    return record.encoder.unchanged && record.fusionUnchanged ? 0 : 1;
  });
}

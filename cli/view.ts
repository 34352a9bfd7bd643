// `heal view DIR`: a local web server and a three.js page for looking at fused scenes.

import { DEVICES } from '../models/runtime.ts';
import { startServer } from '../viewer/server.ts';
import { choice, command, flag, int, number, runCommand, string, type Values, dirs } from './args.ts';

export const VIEW = command({
  name: 'view',
  usage: 'DIR [options]',
  about: `Serves a three.js viewer of cooperative frames: every agent's points in the ego frame, agent poses,
types and links, GT and predicted boxes (true positives, false positives and misses at BEV IoU 0.5),
the pyramid's foreground maps per level, and each agent's camera pictures.

DIR is a dataset (anything \`heal inspect\` reads) or a run folder written by \`heal eval\`
(recognised by its run.json; the run's data, profile, types, weights and detections are used).
Frames the run did not evaluate, and every frame of a dataset, are computed on demand.`,
  positionals: { name: 'DIR', min: 1, max: 1 },
  options: {
    port: int({ min: 0, max: 65535, default: 8080, help: 'port; 0 picks a free one' }),
    host: string({ arg: 'H', defaultText: '127.0.0.1', help: 'address to listen on' }),
    device: choice(DEVICES, { arg: 'D', default: 'auto', help: 'where the networks run' }),
    weights: string({
      arg: 'FILE',
      defaultText: "the run's, else the shipped small weights, else seeded random: the page then says the predictions mean nothing",
      help: "weight file: heal's or a HEAL checkpoint (.pth; a run's profile applies)",
    }),
    'random-weights': flag({ help: 'use seeded random weights even when a weight file is available' }),
    'score-threshold': number({ arg: 'S', min: 0, below: 1, defaultText: '0.2', help: 'score threshold of on-demand detections' }),
    'max-points': int({ min: 1, defaultText: '300000', help: 'most points drawn per frame, all agents together' }),
    'types-dir': dirs({ help: 'extra agent-type declarations (*.json)' }),
  },
  exclusive: [['weights', 'random-weights']],
});

export function run(args: string[]): Promise<number> {
  return runCommand(VIEW, args, async ({ values, positionals }) => serve(positionals[0], values));
}

async function serve(dir: string, values: Values<typeof VIEW.options>): Promise<number> {
  console.log(`heal view: opening ${dir} ...`);
  const server = await startServer(dir, {
    port: values.port,
    host: values.host,
    device: values.device,
    weights: values.weights,
    randomWeights: values['random-weights'],
    scoreThreshold: values['score-threshold'],
    maxPoints: values['max-points'],
    typesDir: values['types-dir'],
    log: (line) => console.error(line),
  });
  const ix = server.source.index;
  const frames = ix.scenarios.reduce((n, s) => n + s.frames.length, 0);
  console.log(`${ix.source === 'run' ? `run ${ix.input}, data` : 'data'} ${ix.data}: ${ix.scenarios.length} scenarios, ${frames} frames`);
  console.log(`execution provider: ${ix.provider}; weights: ${ix.randomWeights ? 'seeded random (the predictions mean nothing)' : ix.weights}`);
  for (const n of ix.notes) console.log(`note: ${n}`);
  console.log(`\n  ${server.url}\n\nCtrl-C stops the server.`);
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  await server.close();
  return 0;
}

// `heal view DIR`: a local web server and a three.js page for looking at fused scenes.

import { parseArgs } from 'node:util';
import { DEVICES, type Device } from '../models/runtime.ts';
import { startServer } from '../viewer/server.ts';

const USAGE = `usage: heal view DIR [options]

Serves a three.js viewer of cooperative frames: every agent's points in the ego frame, agent poses,
types and links, GT and predicted boxes (true positives, false positives and misses at BEV IoU 0.5),
the pyramid's foreground maps per level, and each agent's camera pictures.

DIR is a dataset (anything \`heal inspect\` reads) or a run folder written by \`heal eval\`
(recognised by its run.json; the run's data, profile, types, weights and detections are used).
Frames the run did not evaluate, and every frame of a dataset, are computed on demand.

options:
  --port N             port (default 8080; 0 picks a free one)
  --host H             address to listen on (default 127.0.0.1)
  --device D           auto (default) | cuda | webgpu | cpu
  --weights FILE       weight file (default: the run's, else the shipped small weights, else
                       seeded random: the page then says the predictions mean nothing)
  --random-weights     use seeded random weights even when a weight file is available
  --score-threshold S  score threshold of on-demand detections (default 0.2)
  --max-points N       most points drawn per frame, all agents together (default 300000)
  --types-dir DIR      extra agent-type declarations (*.json)
  -h, --help           this text`;

export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      port: { type: 'string' },
      host: { type: 'string' },
      device: { type: 'string' },
      weights: { type: 'string' },
      'score-threshold': { type: 'string' },
      'max-points': { type: 'string' },
      'random-weights': { type: 'boolean' },
      'types-dir': { type: 'string', multiple: true },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (positionals.length !== 1) {
    console.error(USAGE);
    return 2;
  }
  const port = values.port === undefined ? 8080 : Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`--port must be an integer 0-65535 (got "${values.port}")`);
  const device = (values.device ?? 'auto') as Device;
  if (!DEVICES.includes(device)) throw new Error(`--device must be one of ${DEVICES.join(', ')} (got "${values.device}")`);
  if (values.weights && values['random-weights']) throw new Error('--weights and --random-weights exclude each other');
  const scoreThreshold = values['score-threshold'] === undefined ? undefined : Number(values['score-threshold']);
  if (scoreThreshold !== undefined && !(scoreThreshold >= 0 && scoreThreshold < 1)) {
    throw new Error(`--score-threshold must be in [0, 1) (got "${values['score-threshold']}")`);
  }
  const maxPoints = values['max-points'] === undefined ? undefined : Number(values['max-points']);
  if (maxPoints !== undefined && !(Number.isInteger(maxPoints) && maxPoints > 0)) {
    throw new Error(`--max-points must be a positive integer (got "${values['max-points']}")`);
  }

  console.log(`heal view: opening ${positionals[0]} ...`);
  const server = await startServer(positionals[0], {
    port,
    host: values.host,
    device,
    weights: values.weights,
    randomWeights: values['random-weights'],
    scoreThreshold,
    maxPoints,
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

// Worker thread for `heal generate`: renders and writes the scenario frames it is sent.

import { parentPort, workerData } from 'node:worker_threads';
import { ScenarioCache, writeFrame } from './generate.ts';

const port = parentPort;
if (!port) throw new Error('datasets/synthetic/worker.ts must run as a worker thread');
const { seed, frames, settings } = workerData as { seed: number; frames: number; settings: Parameters<typeof writeFrame>[3] };
const cache = new ScenarioCache(seed, frames);

port.on('message', async (msg: { type: 'frame'; task: { split: string; index: number; frame: number; dir: string } }) => {
  try {
    const { task } = msg;
    await writeFrame(cache.get(task.split, task.index), task.frame, task.dir, settings, (agent, stats) => {
      port.postMessage({ type: 'agent', agent, stats });
    });
    port.postMessage({ type: 'done' });
  } catch (err) {
    port.postMessage({ type: 'error', message: err instanceof Error ? (err.stack ?? err.message) : String(err) });
  }
});

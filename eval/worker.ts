// One evaluation worker (eval/pool.ts): opens the dataset and builds its own onnxruntime sessions
// once, then evaluates the frames it is sent, one at a time, and sends each outcome back. It runs
// as a worker thread or as a child process; the messages are the same.

import { parentPort } from 'node:worker_threads';
import type { EvalOptions } from './contracts.ts';
import type { FromWorker, ToWorker } from './pool.ts';
import { createEvalPipeline, evaluateFrame, factsOf, prepareEval, type EvalSetup } from './evaluate.ts';
import type { CollabPipeline } from '../fusion/pipeline.ts';

const port = parentPort;
const send = (m: FromWorker) => (port ? port.postMessage(m) : process.send?.(m));
const close = () => (port ? port.close() : process.exit(0));

/**
 * For the tests of a worker that dies: HEAL_TEST_WORKER_EXIT=split/scenario/timestamp makes the
 * worker exit when it is handed that frame the first time; with ",always" on every attempt.
 */
function diesOn(index: number, attempt: number, setup: EvalSetup): boolean {
  const spec = process.env.HEAL_TEST_WORKER_EXIT;
  if (!spec) return false;
  const [key, when] = spec.split(',');
  const ref = setup.frames[index];
  return key === `${ref.split}/${ref.scenario}/${ref.timestamp}` && (attempt === 0 || when === 'always');
}

let setup: EvalSetup | undefined;
let pipeline: CollabPipeline | undefined;
let withScene = false;

async function handle(m: ToWorker): Promise<void> {
  if (m.type === 'close') return close();
  if (m.type === 'init') {
    try {
      const options: EvalOptions = { ...m.options, log: (line) => send({ type: 'log', line }) };
      setup = await prepareEval(options);
      pipeline = await createEvalPipeline(setup, m.threads);
      withScene = m.withScene;
      send({ type: 'ready', facts: factsOf(pipeline) });
    } catch (err) {
      send({ type: 'init-error', message: err instanceof Error ? err.message : String(err) });
    }
    return;
  }
  if (!setup || !pipeline) throw new Error('evaluation worker: frame before init');
  if (diesOn(m.index, m.attempt, setup)) process.exit(70);
  send({ type: 'outcome', outcome: await evaluateFrame(setup, pipeline, m.index, withScene) });
}

// Messages are handled one at a time: the pool sends the next frame only after an outcome.
let queue: Promise<void> = Promise.resolve();
const receive = (m: ToWorker) => {
  queue = queue.then(() => handle(m));
};
if (port) port.on('message', receive);
else {
  process.on('message', receive);
  // The parent is gone: nobody is left to send outcomes to.
  process.on('disconnect', () => process.exit(0));
}

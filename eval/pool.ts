// `heal eval --jobs N`: frames spread over N workers on this machine, each with its own dataset
// reader and onnxruntime sessions (eval/worker.ts). Workers take one frame at a time from a shared
// queue, so a slow frame never holds others back; the caller puts outcomes back in frame order.
//
// Processes or threads: both run the same worker. A process (the default) is isolated, so a native
// crash in onnxruntime (a segfault, the kernel's OOM killer) takes only that worker; threads share
// the process's memory and were a little faster in `heal bench eval-jobs` (2 workers on 2 quiet
// cores, 40 frames: 7.7 s against 8.2 s). In either case a worker that dies fails only the frame it
// was on: the frame is retried once on a fresh worker, and if that worker dies too it is reported
// as failed, named, and the run goes on.

import { fork, type ChildProcess } from 'node:child_process';
import { Worker } from 'node:worker_threads';
import { workerCode } from './worker-code.ts';
import type { EvalOptions, FrameFailure, FrameOutcome, PipelineFacts, WorkerKind } from './contracts.ts';

export type ToWorker =
  | { type: 'init'; options: EvalOptions; threads: number; withScene: boolean }
  | { type: 'frame'; index: number; attempt: number }
  | { type: 'close' };

export type FromWorker =
  | { type: 'ready'; facts: PipelineFacts }
  | { type: 'outcome'; outcome: FrameOutcome }
  | { type: 'log'; line: string }
  | { type: 'init-error'; message: string };

type Init = Extract<ToWorker, { type: 'init' }>;

/**
 * What every worker of an evaluation is sent first: the options (but the callbacks, which do not
 * cross), onnxruntime intra-op threads per session (1 unless given), and whether to keep scenes
 * (for --mcap).
 */
export function workerInit(o: EvalOptions, withScene = !!o.mcap): Init {
  const { log: _log, progress: _progress, ...options } = o;
  return { type: 'init', options, threads: o.threads ?? 1, withScene };
}

export interface PoolOptions {
  init: Init;
  /** Frame indices to evaluate. */
  indices: number[];
  jobs: number;
  kind: WorkerKind;
  /** How a frame is named in messages. */
  frameName: (index: number) => string;
  failureOf: (index: number, reason: string) => FrameFailure;
  log: (line: string) => void;
  /** Called once, when the first worker is ready, before any outcome. */
  onFacts: (facts: PipelineFacts) => Promise<void> | void;
  /** Each outcome as it arrives, in any order; awaited before the run ends. */
  onOutcome: (f: FrameOutcome) => Promise<void> | void;
}

interface Endpoint {
  send(m: ToWorker): void;
  stop(): Promise<void>;
  /** Where its messages and its exit go from now on; what came before is handed over at once. */
  attach(onMessage: (m: FromWorker) => void, onExit: (why: string) => void): void;
}

let code: ReturnType<typeof workerCode> | undefined;
/** The file workers run (eval/worker-code.ts), made once per process. */
const codeOnce = () => (code ??= workerCode());

function launch(kind: WorkerKind, file: string): Endpoint {
  let onMessage: ((m: FromWorker) => void) | undefined;
  let onExit: ((why: string) => void) | undefined;
  const early: FromWorker[] = [];
  let exitedWhy: string | undefined;
  const message = (m: FromWorker) => (onMessage ? onMessage(m) : early.push(m));
  const exit = (why: string) => (onExit ? onExit(why) : (exitedWhy = why));
  const attach: Endpoint['attach'] = (m, e) => {
    // Handed over after the caller has its endpoint in hand, as a live event would be.
    queueMicrotask(() => {
      onMessage = m;
      onExit = e;
      for (const x of early.splice(0)) m(x);
      if (exitedWhy !== undefined) e(exitedWhy);
    });
  };
  if (kind === 'thread') {
    const w = new Worker(file);
    let error = '';
    w.on('message', message);
    w.on('error', (err) => {
      error = err.message;
    });
    w.on('exit', (code) => exit(error ? `it threw: ${error}` : `exit code ${code}`));
    return {
      send: (m) => w.postMessage(m),
      stop: () => w.terminate().then(() => {}),
      attach,
    };
  }
  // 'advanced' serialization is the structured clone threads use: typed arrays and exact doubles.
  const p: ChildProcess = fork(file, [], { serialization: 'advanced', execArgv: [] });
  const exited = new Promise<void>((resolve) => p.once('exit', () => resolve()));
  p.on('message', (m) => message(m as FromWorker));
  p.on('error', (err) => exit(`it could not run: ${err.message}`));
  p.on('exit', (code, signal) => exit(signal ? `killed by ${signal}` : `exit code ${code}`));
  return {
    send: (m) => {
      if (p.connected) p.send(m);
    },
    stop: () => {
      if (p.exitCode === null && p.signalCode === null) p.kill();
      return exited;
    },
    attach,
  };
}

// A worker spends its start loading heal's code, opening the dataset and building its sessions.
// Started before the parent has loaded its own modules (prestartWorkers), with the evaluation's
// init message, it does all of that while the parent starts instead of after.
const spares: { kind: WorkerKind; ep: Endpoint; init: string }[] = [];

/** Starts N workers now and sends them `init`, for the next evaluateInWorkers of that kind to take. */
export async function prestartWorkers(jobs: number, kind: WorkerKind, init: Init): Promise<void> {
  const { file } = await codeOnce();
  for (let k = 0; k < jobs; k++) {
    const ep = launch(kind, file);
    ep.send(init);
    spares.push({ kind, ep, init: JSON.stringify(init) });
  }
}

/** How many prestarted workers wait for a pool. */
export function spareWorkers(): number {
  return spares.length;
}

/** Stops the prestarted workers no pool took (a run that failed before it needed them). */
export async function stopSpareWorkers(): Promise<void> {
  await Promise.all(spares.splice(0).map((s) => s.ep.stop()));
}

/** A prestarted worker already sent this init, else a new one, which is sent it here. */
function spawn(kind: WorkerKind, file: string, init: Init, onMessage: (m: FromWorker) => void, onExit: (why: string) => void): Endpoint {
  const k = spares.findIndex((s) => s.kind === kind && s.init === JSON.stringify(init));
  const ep = k >= 0 ? spares.splice(k, 1)[0].ep : launch(kind, file);
  ep.attach(onMessage, onExit);
  if (k < 0) ep.send(init);
  return ep;
}

interface Slot {
  ep: Endpoint;
  ready: boolean;
  /** The frame it is on. */
  task?: { index: number; attempt: number };
  gone: boolean;
}

export async function evaluateInWorkers(p: PoolOptions): Promise<void> {
  const { file, fallback } = await codeOnce();
  if (fallback) p.log(fallback);
  const queue = p.indices.map((index) => ({ index, attempt: 0 }));
  const slots = new Set<Slot>();
  const seenLogs = new Set<string>();
  let done = 0;
  let factsSent: Promise<void> | undefined;
  let settled = false;
  let outcomes: Promise<void> = Promise.resolve();

  return new Promise<void>((resolve, reject) => {
    const finish = (err?: Error) => {
      if (settled) return;
      settled = true;
      const stopped = Promise.all([...slots].map((s) => s.ep.stop()));
      // Outcomes handed on before the end are written before the run ends.
      Promise.all([stopped, outcomes]).then(() => (err ? reject(err) : resolve()), reject);
    };
    const deliver = (f: FrameOutcome) => {
      done++;
      outcomes = outcomes.then(() => p.onOutcome(f));
      outcomes.catch((err) => finish(err));
      if (done === p.indices.length) finish();
    };
    const feed = (s: Slot) => {
      if (settled || s.gone || !s.ready || s.task) return;
      const task = queue.shift();
      if (!task) return;
      s.task = task;
      s.ep.send({ type: 'frame', ...task });
    };
    const start = () => {
      const s: Slot = { ready: false, gone: false } as Slot;
      s.ep = spawn(
        p.kind,
        file,
        p.init,
        (m) => {
          if (settled) return;
          if (m.type === 'log') {
            // Every worker builds the same pipeline and says the same things about it: once is enough.
            if (!seenLogs.has(m.line)) p.log(m.line);
            seenLogs.add(m.line);
          } else if (m.type === 'init-error') {
            finish(new Error(m.message));
          } else if (m.type === 'ready') {
            s.ready = true;
            factsSent ??= Promise.resolve(p.onFacts(m.facts));
            factsSent.then(
              () => feed(s),
              (err) => finish(err),
            );
          } else if (m.type === 'outcome') {
            s.task = undefined;
            deliver(m.outcome);
            feed(s);
          }
        },
        (why) => {
          if (settled || s.gone) return;
          s.gone = true;
          slots.delete(s);
          // A worker that never got ready failed on what every worker needs, not on a frame.
          if (!s.ready) return finish(new Error(`an evaluation worker died while starting (${why})`));
          const task = s.task;
          if (task && task.attempt === 0) {
            p.log(`an evaluation worker died (${why}) on ${p.frameName(task.index)}; that frame is retried once`);
            queue.unshift({ index: task.index, attempt: 1 });
          } else if (task) {
            const reason = `the evaluation workers running it died twice (last: ${why})`;
            deliver({
              index: task.index,
              lines: [],
              det: [],
              gt: [],
              passes: 0,
              passMs: 0,
              signMs: 0,
              verifyMs: 0,
              rejected: {},
              failure: p.failureOf(task.index, reason),
            });
          }
          if (queue.length && !settled) start();
        },
      );
      slots.add(s);
    };
    if (!p.indices.length) return finish();
    for (let k = 0; k < Math.min(p.jobs, p.indices.length); k++) start();
  });
}

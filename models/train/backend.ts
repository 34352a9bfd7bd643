// Which TensorFlow.js backend trains: tfjs-node-gpu (CUDA through libtensorflow) when that
// optional package is installed, else WebGPU through Dawn (a GPU via Vulkan, or Mesa's lavapipe
// on a CPU-only machine), else tfjs's pure-JS cpu backend. The choice and the reason are always
// returned so the caller prints them.

import * as tf from '@tensorflow/tfjs';

export type TrainingBackendPref = 'auto' | 'tfjs-node-gpu' | 'webgpu' | 'cpu';
export type TrainingBackend = 'tfjs-node-gpu' | 'webgpu' | 'cpu';

export interface BackendChoice {
  backend: TrainingBackend;
  /** The tfjs backend name now active (tf.getBackend()). */
  tfBackend: string;
  /** Why this one runs, including why better ones were skipped. */
  reason: string;
}

async function tryNodeGpu(): Promise<string | undefined> {
  // A variable module name keeps TypeScript from resolving the (usually absent) package.
  const name = '@tensorflow/tfjs-node-gpu';
  try {
    await import(name);
  } catch (err) {
    return `@tensorflow/tfjs-node-gpu is not installed (${(err as Error).message.split('\n')[0]})`;
  }
  if (!(await tf.setBackend('tensorflow'))) return '@tensorflow/tfjs-node-gpu loaded but its "tensorflow" backend did not initialise';
  return undefined;
}

async function tryWebgpu(): Promise<string | undefined> {
  try {
    const { create, globals } = await import('webgpu');
    // tfjs-backend-webgpu looks for navigator.gpu and the WebGPU constants on globalThis, as in a browser.
    Object.assign(globalThis, globals);
    const gpu = create([]);
    const adapter = await gpu.requestAdapter();
    if (!adapter) return 'WebGPU (Dawn) found no adapter (install a Vulkan driver, or lavapipe: .ci/lavapipe.sh)';
    Object.defineProperty(globalThis, 'navigator', { value: { gpu }, configurable: true, writable: true });
    await import('@tensorflow/tfjs-backend-webgpu');
    if (!(await tf.setBackend('webgpu'))) return 'the tfjs webgpu backend did not initialise';
    const info = adapter.info;
    return `ok:${[info.vendor, info.architecture, info.description || info.device].filter(Boolean).join(' ')}`;
  } catch (err) {
    return `WebGPU is unavailable (${(err as Error).message.split('\n')[0]})`;
  }
}

/**
 * Activates a training backend. 'auto' tries tfjs-node-gpu, webgpu, cpu in that order; a named
 * backend that cannot start is an error rather than a silent fallback.
 */
export async function selectTrainingBackend(pref: TrainingBackendPref = 'auto', log: (line: string) => void = (l) => console.error(l)): Promise<BackendChoice> {
  const skipped: string[] = [];
  let choice: BackendChoice | undefined;
  if (pref === 'auto' || pref === 'tfjs-node-gpu') {
    const why = await tryNodeGpu();
    if (!why) choice = { backend: 'tfjs-node-gpu', tfBackend: tf.getBackend(), reason: 'tfjs-node-gpu (CUDA) is installed' };
    else if (pref === 'tfjs-node-gpu') throw new Error(`training backend tfjs-node-gpu: ${why}`);
    else skipped.push(why);
  }
  if (!choice && (pref === 'auto' || pref === 'webgpu')) {
    const why = await tryWebgpu();
    if (why?.startsWith('ok:')) choice = { backend: 'webgpu', tfBackend: tf.getBackend(), reason: `WebGPU adapter: ${why.slice(3)}` };
    else if (pref === 'webgpu') throw new Error(`training backend webgpu: ${why}`);
    else skipped.push(why!);
  }
  if (!choice) {
    if (!(await tf.setBackend('cpu'))) throw new Error('training backend cpu: the tfjs cpu backend did not initialise');
    choice = { backend: 'cpu', tfBackend: 'cpu', reason: pref === 'cpu' ? 'asked for with --backend cpu' : 'no faster backend available' };
  }
  if (skipped.length) choice.reason += `; skipped: ${skipped.join('; ')}`;
  log(`heal train: backend ${choice.backend} (${choice.reason})`);
  return choice;
}

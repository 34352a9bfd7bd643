// Which TensorFlow.js backend trains: tfjs-node-gpu (CUDA through libtensorflow) when that
// optional package is installed, else WebGPU through Dawn on a hardware GPU (Vulkan), else the
// wasm backend (XNNPACK) with heal's convolution gradients (models/train/wasm.ts), else WebGPU on
// a software adapter (Mesa's lavapipe), else tfjs's pure-JS cpu backend. On a 2-core CPU the wasm
// backend trains the small profile several times faster than lavapipe (`heal bench train`). The
// choice and the reason are always returned so the caller prints them.

import * as tf from '@tensorflow/tfjs';
import { installWasmGradients } from './wasm.ts';

export const TRAINING_BACKENDS = ['tfjs-node-gpu', 'webgpu', 'wasm', 'cpu'] as const;
export type TrainingBackend = (typeof TRAINING_BACKENDS)[number];
export type TrainingBackendPref = 'auto' | TrainingBackend;

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

interface Adapter {
  gpu?: unknown;
  name?: string;
  software?: boolean;
  why?: string;
}

async function findAdapter(): Promise<Adapter> {
  try {
    const { create, globals } = await import('webgpu');
    // tfjs-backend-webgpu looks for navigator.gpu and the WebGPU constants on globalThis, as in a browser.
    Object.assign(globalThis, globals);
    const gpu = create([]);
    const adapter = await gpu.requestAdapter();
    if (!adapter) return { why: 'WebGPU (Dawn) found no adapter (install a Vulkan driver, or lavapipe: .ci/lavapipe.sh)' };
    const info = adapter.info as GPUAdapterInfo & { isFallbackAdapter?: boolean };
    const name = [info.vendor, info.architecture, info.description || info.device].filter(Boolean).join(' ');
    const software = info.isFallbackAdapter === true || info.architecture === 'software' || /llvmpipe|lavapipe|swiftshader/i.test(name);
    return { gpu, name, software };
  } catch (err) {
    return { why: `WebGPU is unavailable (${(err as Error).message.split('\n')[0]})` };
  }
}

async function startWebgpu(a: Adapter): Promise<string | undefined> {
  if (!a.gpu) return a.why;
  Object.defineProperty(globalThis, 'navigator', { value: { gpu: a.gpu }, configurable: true, writable: true });
  await import('@tensorflow/tfjs-backend-webgpu');
  if (!(await tf.setBackend('webgpu'))) return 'the tfjs webgpu backend did not initialise';
  return undefined;
}

async function startWasm(): Promise<string | undefined> {
  try {
    await import('@tensorflow/tfjs-backend-wasm');
    installWasmGradients();
    if (!(await tf.setBackend('wasm'))) return 'the tfjs wasm backend did not initialise';
    return undefined;
  } catch (err) {
    return `the wasm backend is unavailable (${(err as Error).message.split('\n')[0]})`;
  }
}

/**
 * Activates a training backend. 'auto' tries tfjs-node-gpu, WebGPU on a hardware adapter, wasm,
 * WebGPU on a software adapter, cpu, in that order; a named backend that cannot start is an error
 * rather than a silent fallback.
 */
export async function selectTrainingBackend(pref: TrainingBackendPref = 'auto', log: (line: string) => void = (l) => console.error(l)): Promise<BackendChoice> {
  const skipped: string[] = [];
  let choice: BackendChoice | undefined;
  const pick = (backend: TrainingBackend, reason: string) => (choice = { backend, tfBackend: tf.getBackend(), reason });
  const fail = (backend: TrainingBackend, why: string) => {
    if (pref === backend) throw new Error(`training backend ${backend}: ${why}`);
    skipped.push(why);
  };
  if (pref === 'auto' || pref === 'tfjs-node-gpu') {
    const why = await tryNodeGpu();
    if (!why) pick('tfjs-node-gpu', 'tfjs-node-gpu (CUDA) is installed');
    else fail('tfjs-node-gpu', why);
  }
  let adapter: Adapter | undefined;
  if (!choice && (pref === 'auto' || pref === 'webgpu')) {
    adapter = await findAdapter();
    if (adapter.gpu && (!adapter.software || pref === 'webgpu')) {
      const why = await startWebgpu(adapter);
      if (!why) pick('webgpu', `WebGPU adapter: ${adapter.name}`);
      else fail('webgpu', why);
    } else if (adapter.gpu) skipped.push(`WebGPU adapter ${adapter.name} is a software one (slower than wasm)`);
    else fail('webgpu', adapter.why!);
  }
  if (!choice && (pref === 'auto' || pref === 'wasm')) {
    const why = await startWasm();
    if (!why) pick('wasm', pref === 'wasm' ? 'asked for with --backend wasm' : 'XNNPACK on the CPU');
    else fail('wasm', why);
  }
  if (!choice && pref === 'auto' && adapter?.gpu && adapter.software) {
    const why = await startWebgpu(adapter);
    if (!why) pick('webgpu', `WebGPU adapter: ${adapter.name}`);
    else skipped.push(why);
  }
  if (!choice) {
    if (!(await tf.setBackend('cpu'))) throw new Error('training backend cpu: the tfjs cpu backend did not initialise');
    pick('cpu', pref === 'cpu' ? 'asked for with --backend cpu' : 'no faster backend available');
  }
  const c = choice!;
  if (skipped.length) c.reason += `; skipped: ${skipped.join('; ')}`;
  log(`heal train: backend ${c.backend} (${c.reason})`);
  return c;
}

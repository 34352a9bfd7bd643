// onnxruntime-node sessions on the best available execution provider, and plain-tensor I/O.
//
// Preference for device 'auto': CUDA (only where its provider library was installed with
// `npm run install-cuda`), then WebGPU on a hardware adapter (bundled with onnxruntime-node on
// linux x64; Vulkan underneath), then CPU. A software WebGPU adapter (Mesa's lavapipe on a
// CPU-only machine) is skipped by 'auto': it is right but ~11× slower than the CPU provider for
// inference here; device 'webgpu' still uses it. The result always says which provider runs and
// why a better one was skipped. Nodes the WebGPU provider has no kernel for would run on CPU
// inside the same session (onnxruntime assigns per node); in onnxruntime-node 1.30 every op heal
// exports has a WebGPU kernel (its verbose log places all nodes of the ego network and of the
// encoder ops on WebGpuExecutionProvider).

import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import type { HostTensor } from './graph.ts';

export type Device = 'auto' | 'cuda' | 'webgpu' | 'cpu';
export type Provider = 'cuda' | 'webgpu' | 'cpu';

export interface SessionInfo {
  session: ort.InferenceSession;
  provider: Provider;
  /** Why a better provider than `provider` was not used (device 'auto' only). */
  fallbackReason?: string;
  /** The WebGPU adapter, e.g. "llvmpipe: Mesa 25.0.7 (LLVM 15.0.6)" (lavapipe, CPU) when provider is webgpu. */
  adapter?: string;
}

export interface SessionOptions {
  device: Device;
  /** Receives one line per provider skipped; default console.warn. */
  log?: (line: string) => void;
  /** CPU threads for intra-op parallelism; default onnxruntime's choice. */
  threads?: number;
}

export const DEVICES: readonly Device[] = ['auto', 'cuda', 'webgpu', 'cpu'];

export async function createSession(modelBytes: Uint8Array, opts: SessionOptions): Promise<SessionInfo> {
  if (!DEVICES.includes(opts.device)) throw new Error(`unknown device "${opts.device}" (use one of ${DEVICES.join(', ')})`);
  const log = opts.log ?? ((line: string) => console.warn(line));
  const make = (provider: Provider) =>
    ort.InferenceSession.create(modelBytes, {
      executionProviders: [provider],
      graphOptimizationLevel: 'all',
      ...(opts.threads ? { intraOpNumThreads: opts.threads } : {}),
    });
  const reasons: string[] = [];
  for (const provider of opts.device === 'auto' ? (['cuda', 'webgpu'] as const) : []) {
    try {
      const session = await tryProvider(provider, make, true);
      return { session, provider, ...(await adapterOf(provider)), ...(reasons.length ? { fallbackReason: reasons.join('; ') } : {}) };
    } catch (err) {
      const reason = (err as Error).message;
      reasons.push(reason);
      log(`onnxruntime: ${provider} not used: ${reason}`);
    }
  }
  if (opts.device === 'cuda' || opts.device === 'webgpu') {
    const session = await tryProvider(opts.device, make);
    return { session, provider: opts.device, ...(await adapterOf(opts.device)) };
  }
  const session = await make('cpu');
  return reasons.length ? { session, provider: 'cpu', fallbackReason: reasons.join('; ') } : { session, provider: 'cpu' };
}

async function tryProvider(provider: 'cuda' | 'webgpu', make: (p: Provider) => Promise<ort.InferenceSession>, auto = false): Promise<ort.InferenceSession> {
  const missing = provider === 'cuda' ? cudaMissingReason() : await webgpuMissingReason();
  if (missing) throw new Error(missing);
  if (provider === 'webgpu' && auto) {
    const { adapter, software } = await webgpuCheck();
    // Measured on the small ego network (3 agents, 64×64): lavapipe 215 ms/run, CPU provider 19 ms/run.
    if (software)
      throw new Error(
        `the WebGPU adapter is a software rasterizer (${adapter}); the CPU provider is faster for inference (ask for device 'webgpu' to use it anyway)`,
      );
  }
  try {
    return await make(provider);
  } catch (err) {
    throw new Error(`${provider} session could not be created: ${(err as Error).message}`);
  }
}

/** Folder holding onnxruntime-node's native libraries for this platform. */
export function ortBinaryDir(): string {
  const index = createRequire(import.meta.url).resolve('onnxruntime-node');
  return path.join(path.dirname(index), '..', 'bin', 'napi-v6', process.platform, process.arch);
}

/** Why the CUDA provider cannot load here, or undefined when its library is installed. */
export function cudaMissingReason(): string | undefined {
  const backend = ort.listSupportedBackends().find((b) => b.name === 'cuda');
  if (!backend) return `this onnxruntime-node build has no CUDA provider on ${process.platform}/${process.arch}`;
  if (backend.bundled) return undefined;
  const lib = path.join(ortBinaryDir(), 'libonnxruntime_providers_cuda.so');
  if (!existsSync(lib)) {
    return (
      `the CUDA provider library is not installed (${lib} is missing; onnxruntime-node was installed with ` +
      `its install scripts off, .npmrc). On a machine with internet access, CUDA 12 and cuDNN 9, run: npm run install-cuda`
    );
  }
  return undefined;
}

async function adapterOf(provider: Provider): Promise<{ adapter?: string }> {
  if (provider !== 'webgpu') return {};
  const { adapter } = await webgpuCheck();
  return adapter ? { adapter } : {};
}

interface WebgpuCheck {
  reason?: string;
  adapter?: string;
  /** A CPU implementation of the GPU (lavapipe, SwiftShader). */
  software?: boolean;
}

let adapterCheck: Promise<WebgpuCheck> | undefined;

function webgpuCheck(): Promise<WebgpuCheck> {
  adapterCheck ??= (async () => {
    if (!ort.listSupportedBackends().some((b) => b.name === 'webgpu')) {
      return { reason: `this onnxruntime-node build has no WebGPU provider on ${process.platform}/${process.arch}` };
    }
    try {
      const { create } = await import('webgpu');
      const adapter = await create([]).requestAdapter();
      if (!adapter) {
        return {
          reason:
            'no WebGPU adapter: Dawn found no Vulkan driver (install a GPU driver with Vulkan support, or mesa-vulkan-drivers ≥ 25 for lavapipe on a CPU-only machine)',
        };
      }
      const info = adapter.info as GPUAdapterInfo & { isFallbackAdapter?: boolean };
      const { vendor, architecture, description } = info;
      return {
        adapter: description || [vendor, architecture].filter(Boolean).join(' ') || 'unnamed adapter',
        software: info.isFallbackAdapter === true || architecture === 'software',
      };
    } catch (err) {
      return { reason: `WebGPU could not be initialised: ${(err as Error).message}` };
    }
  })();
  return adapterCheck;
}

/**
 * Why WebGPU cannot run here, or undefined when Dawn finds an adapter. onnxruntime's own
 * WebGPU provider uses the same Dawn backends (Vulkan on linux), so no adapter here means
 * none there either, and asking first gives a clear reason instead of a failed session.
 */
export async function webgpuMissingReason(): Promise<string | undefined> {
  return (await webgpuCheck()).reason;
}

/** Runs a session on plain tensors (float32 or int32), returning every output as float32 or int32. */
export async function runSession(session: ort.InferenceSession, inputs: Record<string, HostTensor>): Promise<Record<string, HostTensor>> {
  const feeds: Record<string, ort.Tensor> = {};
  for (const name of session.inputNames) {
    const t = inputs[name];
    if (!t) throw new Error(`ONNX session: input "${name}" is missing (have: ${Object.keys(inputs).join(', ') || 'none'})`);
    if (!(t.data instanceof Float32Array || t.data instanceof Int32Array)) {
      throw new Error(`ONNX session: input "${name}" must be a Float32Array or Int32Array, got ${(t.data as object).constructor.name}`);
    }
    feeds[name] = new ort.Tensor(t.data instanceof Int32Array ? 'int32' : 'float32', t.data, t.shape);
  }
  const results = await session.run(feeds);
  const out: Record<string, HostTensor> = {};
  for (const name of session.outputNames) {
    const r = results[name] as ort.Tensor;
    if (r.type !== 'float32' && r.type !== 'int32') throw new Error(`ONNX session: output "${name}" has unsupported type ${r.type}`);
    out[name] = { data: r.data as Float32Array | Int32Array, shape: [...r.dims] };
  }
  return out;
}

/** The WebGPU adapter Dawn picks, or undefined where there is none. */
export async function webgpuAdapter(): Promise<{ description: string; software: boolean } | undefined> {
  const { adapter, software } = await webgpuCheck();
  return adapter ? { description: adapter, software: software === true } : undefined;
}

// WebGPU through Dawn (the `webgpu` package): on a GPU through its Vulkan driver, on a CPU-only
// machine through Mesa's lavapipe (install with .ci/lavapipe.sh). Checks that both consumers,
// tfjs-backend-webgpu (training) and onnxruntime-node's WebGPU provider (inference), compute the
// same numbers as their CPU paths, and that onnxruntime really placed the nodes on WebGPU.

import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import * as ort from 'onnxruntime-node';
import { create, globals } from 'webgpu';
import { webgpuMissingReason } from '../../models/runtime.ts';
import { onnxModelType } from '../../models/onnx.ts';

const missing = await webgpuMissingReason();
if (missing) console.warn(`webgpu-adapter tests skipped: ${missing} (run .ci/lavapipe.sh on a CPU-only Debian machine)`);

/** Deterministic values in [-1, 1] without a random generator. */
function wave(n: number, freq: number, amp = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = amp * Math.sin(i * freq + 0.3);
  return a;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

describe.skipIf(missing !== undefined)('WebGPU adapter', () => {
  it('Dawn reports an adapter', async () => {
    const adapter = await create([]).requestAdapter();
    expect(adapter).not.toBeNull();
    const info = adapter!.info;
    console.log(`WebGPU adapter: ${info.vendor} ${info.architecture} ${info.description || info.device}`);
  });

  it('tfjs webgpu backend: conv2d and its gradients match the cpu backend', async () => {
    // tfjs-backend-webgpu looks for navigator.gpu and the WebGPU constants (GPUBufferUsage, ...)
    // on globalThis, as in a browser.
    Object.assign(globalThis, globals);
    Object.defineProperty(globalThis, 'navigator', { value: { gpu: create([]) }, configurable: true, writable: true });
    const tf = await import('@tensorflow/tfjs');
    await import('@tensorflow/tfjs-backend-webgpu');

    // Small weights keep every value O(1), so one absolute tolerance fits outputs and gradients.
    const xData = wave(2 * 12 * 12 * 4, 0.13);
    const wData = wave(3 * 3 * 4 * 8, 0.07, 0.2);
    const compute = async (backend: string) => {
      expect(await tf.setBackend(backend)).toBe(true);
      expect(tf.getBackend()).toBe(backend);
      const x = tf.tensor4d(xData, [2, 12, 12, 4]);
      const w = tf.tensor4d(wData, [3, 3, 4, 8]);
      const loss = (xx: import('@tensorflow/tfjs').Tensor, ww: import('@tensorflow/tfjs').Tensor) =>
        tf
          .conv2d(xx as import('@tensorflow/tfjs').Tensor4D, ww as import('@tensorflow/tfjs').Tensor4D, [1, 2], 'same')
          .relu()
          .square()
          .mean();
      const [gx, gw] = tf.grads(loss)([x, w]);
      const y = tf.conv2d(x, w, 1, 'same');
      // Async reads: tfjs-backend-webgpu's dataSync needs OffscreenCanvas, which Node lacks.
      const out = { y: await y.data(), gx: await gx.data(), gw: await gw.data() };
      tf.dispose([x, w, gx, gw, y]);
      return out;
    };
    const cpu = await compute('cpu');
    const gpu = await compute('webgpu');
    for (const k of ['y', 'gx', 'gw'] as const) {
      expect(maxAbs(cpu[k])).toBeGreaterThan(1e-4); // a vanishing gradient would compare equal trivially
      expect(maxAbsDiff(gpu[k], cpu[k]), k).toBeLessThan(1e-3);
    }
    await tf.setBackend('cpu');
  });

  describe('onnxruntime-node WebGPU execution provider', () => {
    const tmp = mkdtempSync(path.join(os.tmpdir(), 'heal-webgpu-'));
    afterAll(() => rmSync(tmp, { recursive: true, force: true }));

    // y = relu(conv3x3(x, w) + b), hand-built so the test depends on no exported network.
    const C = 8,
      K = 16,
      H = 20,
      W = 24;
    const weight = wave(K * C * 9, 0.37, 0.3);
    const bias = wave(K, 1.1, 0.1);
    const input = wave(C * H * W, 0.11);
    const valueInfo = (name: string, dims: number[]) => ({
      name,
      type: { tensor_type: { elem_type: 1, shape: { dim: dims.map((d) => ({ dim_value: d })) } } },
    });
    const raw = (a: Float32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
    const modelType = onnxModelType();
    const modelBytes = modelType
      .encode(
        modelType.fromObject({
          ir_version: 8,
          opset_import: [{ domain: '', version: 17 }],
          producer_name: 'heal-test',
          graph: {
            name: 'conv_relu',
            node: [
              { name: 'conv', op_type: 'Conv', input: ['x', 'w', 'b'], output: ['c'], attribute: [{ name: 'pads', type: 7, ints: [1, 1, 1, 1] }] },
              { name: 'relu', op_type: 'Relu', input: ['c'], output: ['y'] },
            ],
            initializer: [
              { name: 'w', dims: [K, C, 3, 3], data_type: 1, raw_data: raw(weight) },
              { name: 'b', dims: [K], data_type: 1, raw_data: raw(bias) },
            ],
            input: [valueInfo('x', [1, C, H, W])],
            output: [valueInfo('y', [1, K, H, W])],
          },
        }),
      )
      .finish();

    async function runOn(provider: 'cpu' | 'webgpu') {
      const prefix = path.join(tmp, provider);
      const session = await ort.InferenceSession.create(modelBytes, {
        executionProviders: [provider],
        enableProfiling: true,
        profileFilePrefix: prefix,
      });
      const result = await session.run({ x: new ort.Tensor('float32', input, [1, C, H, W]) });
      const y = result.y.data as Float32Array;
      // The profile records, for every kernel run, which provider ran it: the only in-process
      // evidence that the WebGPU provider did not silently hand the nodes to the CPU.
      session.endProfiling();
      await session.release();
      const file = readdirSync(tmp).find((f) => f.startsWith(`${provider}_`) && f.endsWith('.json'));
      expect(file, `profile file for ${provider}`).toBeDefined();
      const events = JSON.parse(readFileSync(path.join(tmp, file!), 'utf8')) as { name: string; args?: { provider?: string } }[];
      const providers = new Set(events.flatMap((e) => (e.args?.provider ? [e.args.provider] : [])));
      return { y, providers };
    }

    it('runs every node on WebGPU and matches the CPU provider', async () => {
      const cpu = await runOn('cpu');
      const gpu = await runOn('webgpu');
      expect([...cpu.providers]).toEqual(['CPUExecutionProvider']);
      expect([...gpu.providers]).toEqual(['WebGpuExecutionProvider']);
      expect(maxAbs(cpu.y)).toBeGreaterThan(0.1);
      expect(maxAbsDiff(gpu.y, cpu.y)).toBeLessThan(1e-3);
    });
  });
});

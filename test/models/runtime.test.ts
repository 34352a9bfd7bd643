// Execution-provider selection: CUDA fails clearly where its provider library is absent, 'auto'
// falls back CUDA → hardware WebGPU → CPU with the reasons, and WebGPU (where an adapter exists,
// lavapipe included) gives the same numbers as CPU.

import { describe, it, expect } from 'vitest';
import { GraphBuilder, type GraphDesc, type HostTensor } from '../../models/graph.ts';
import { initWeights } from '../../models/weights.ts';
import { exportOnnx } from '../../models/onnx.ts';
import { createSession, runSession, cudaMissingReason, webgpuMissingReason, webgpuAdapter, type Device } from '../../models/runtime.ts';
import { egoNetwork } from '../../fusion/networks/ego.ts';
import { affineGrids } from '../../fusion/networks/warp.ts';
import { rngFor } from '../../datasets/rng.ts';

function tinyModel(): Uint8Array {
  const g = new GraphBuilder('tiny');
  const x = g.input('x', ['n', 2, 4, 4]);
  g.output('y', g.relu(g.conv2d(x, { name: 'c', out: 3, kernel: 3 })));
  const desc = g.build();
  return exportOnnx(desc, initWeights(desc, 1));
}

function randomFloats(n: number, seed: number): Float32Array {
  const rng = rngFor('runtime-test', seed);
  return Float32Array.from({ length: n }, () => rng.uniform(-1, 1));
}

const cudaReason = cudaMissingReason();
const webgpuReason = await webgpuMissingReason();
const webgpuSoftware = webgpuReason === undefined && (await webgpuAdapter())?.software === true;

describe('createSession', () => {
  it('cpu runs and says so', async () => {
    const { session, provider, fallbackReason } = await createSession(tinyModel(), { device: 'cpu' });
    expect(provider).toBe('cpu');
    expect(fallbackReason).toBeUndefined();
    const out = await runSession(session, { x: { data: randomFloats(32, 1), shape: [1, 2, 4, 4] } });
    expect(out.y.shape).toEqual([1, 3, 4, 4]);
    expect(out.y.data.every((v) => v >= 0)).toBe(true);
    await session.release();
  });

  it('rejects unknown devices and missing or mistyped inputs', async () => {
    await expect(createSession(tinyModel(), { device: 'tpu' as Device })).rejects.toThrow(/unknown device "tpu"/);
    const { session } = await createSession(tinyModel(), { device: 'cpu' });
    await expect(runSession(session, {})).rejects.toThrow(/input "x" is missing/);
    const bad = { data: [1, 2] as unknown as Float32Array, shape: [2] } as HostTensor;
    await expect(runSession(session, { x: bad })).rejects.toThrow(/Float32Array or Int32Array/);
    await session.release();
  });

  it.skipIf(cudaReason === undefined)('cuda fails with a clear message where its provider library is absent', async () => {
    await expect(createSession(tinyModel(), { device: 'cuda' })).rejects.toThrow(/npm run install-cuda/);
  });

  it('auto picks the best provider that works and reports why better ones were skipped', async () => {
    const lines: string[] = [];
    const { session, provider, fallbackReason, adapter } = await createSession(tinyModel(), { device: 'auto', log: (l) => lines.push(l) });
    console.info(`auto → ${provider}${adapter ? ` on ${adapter}` : ''}${fallbackReason ? ` (${fallbackReason})` : ''}`);
    if (cudaReason) {
      expect(provider).not.toBe('cuda');
      expect(fallbackReason).toContain(cudaReason);
      expect(lines.some((l) => l.includes('cuda not used'))).toBe(true);
    }
    if (cudaReason && (webgpuReason || webgpuSoftware)) {
      expect(provider).toBe('cpu');
      expect(fallbackReason).toContain(webgpuReason ?? 'software rasterizer');
      expect(lines.some((l) => l.includes('webgpu not used'))).toBe(true);
    }
    const out = await runSession(session, { x: { data: randomFloats(32, 2), shape: [1, 2, 4, 4] } });
    expect(out.y.shape).toEqual([1, 3, 4, 4]);
    await session.release();
  });

  it.skipIf(webgpuReason === undefined)('webgpu without an adapter fails with the reason', async () => {
    await expect(createSession(tinyModel(), { device: 'webgpu' })).rejects.toThrow(/WebGPU/);
  });
});

if (webgpuReason) console.warn(`WebGPU parity test skipped: ${webgpuReason}`);

describe.skipIf(webgpuReason !== undefined)('webgpu provider', () => {
  it('gives the CPU numbers for the ego network (warp, fusion, head) and the encoder ops (random weights)', async () => {
    const fusion = {
      backbone: {
        inChannels: 8,
        layerNums: [1, 1, 1],
        layerStrides: [1, 2, 2],
        numFilters: [8, 16, 32],
        upsampleStrides: [1, 2, 4],
        numUpsampleFilters: [8, 8, 8],
        batchNorm: true,
      },
      height: 16,
      width: 16,
      shrinkChannels: 16,
    };
    const g = new GraphBuilder('encoder-ops');
    const pts = g.input('points', ['pillars', 8, 10]);
    const pillars = g.reduceMax(g.relu(g.batchNorm(g.linear(pts, { name: 'pfn', out: 16 }), { name: 'pfn.bn', axis: -1 })), 1);
    const idx = g.input('cellIndex', [64], 'int32');
    const zero = g.constant('zero', [1, 16], new Array(16).fill(0));
    const rows = g.gather(g.concat([zero, g.cumsum(pillars, 0)], 0), idx, 0);
    g.output('bev', g.softmax(g.transpose(g.reshape(rows, [1, 8, 8, 16]), [0, 3, 1, 2]), 1));
    const cellIndex = Int32Array.from({ length: 64 }, (_, i) => (i * 7) % 6);
    const cases: { desc: GraphDesc; inputs: Record<string, HostTensor> }[] = [
      {
        desc: egoNetwork({ fusion, head: { anchors: 2, dirBins: 2 } }),
        inputs: {
          features: { data: randomFloats(2 * 8 * 256, 3), shape: [2, 8, 16, 16] },
          valid: { data: new Float32Array(2 * 256).fill(1), shape: [2, 1, 16, 16] },
          grid: {
            data: affineGrids(
              [
                [1, 0, 0, 0, 1, 0],
                [0.9, -0.4, 0.3, 0.4, 0.9, -0.2],
              ],
              16,
              16,
            ),
            shape: [2, 16, 16, 2],
          },
        },
      },
      {
        desc: g.build(),
        inputs: { points: { data: randomFloats(5 * 8 * 10, 4), shape: [5, 8, 10] }, cellIndex: { data: cellIndex, shape: [64] } },
      },
    ];
    for (const { desc, inputs } of cases) {
      const bytes = exportOnnx(desc, initWeights(desc, 5));
      const gpu = await createSession(bytes, { device: 'webgpu' });
      expect(gpu.provider).toBe('webgpu');
      expect(gpu.adapter).toBeTruthy();
      const cpu = await createSession(bytes, { device: 'cpu' });
      const a = await runSession(gpu.session, inputs);
      const b = await runSession(cpu.session, inputs);
      for (const o of desc.outputs) {
        let md = 0;
        a[o.name].data.forEach((v, i) => (md = Math.max(md, Math.abs(v - b[o.name].data[i]))));
        expect(md, `${desc.name}.${o.name} webgpu vs cpu`).toBeLessThan(1e-3);
      }
      await gpu.session.release();
      await cpu.session.release();
    }
  });
});

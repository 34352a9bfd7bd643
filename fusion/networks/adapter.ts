// The two small networks a type that keeps its encoder as a black box trains to join (train/
// adapt.ts), after STAMP (ICLR 2025): the adapter maps its own BEV features into the shared
// space, in front of the frozen fusion and head; the reverter maps the fused shared map back
// into its own space, so that as the ego it detects with its own head. Each is a 1×1 conv into a
// hidden width, 3×3 convs there, and a 1×1 conv out (ReLU between, no batch norm: they train on
// one cached map at a time). Parameters "adapter.<type>.*" and "reverter.<type>.*".

import { GraphBuilder, type GraphDesc, type TensorRef } from '../../models/graph.ts';

export interface AdapterConfig {
  inChannels: number;
  outChannels: number;
  /** Width of the hidden convs. */
  hidden: number;
  /** 3×3 convs at the hidden width. */
  convs: number;
}

function addMapper(g: GraphBuilder, x: TensorRef, cfg: AdapterConfig, prefix: string): TensorRef {
  let y = g.relu(g.conv2d(x, { name: `${prefix}.in`, out: cfg.hidden, kernel: 1 }));
  for (let i = 0; i < cfg.convs; i++) y = g.relu(g.conv2d(y, { name: `${prefix}.conv${i}`, out: cfg.hidden, kernel: 3 }));
  return g.conv2d(y, { name: `${prefix}.out`, out: cfg.outChannels, kernel: 1 });
}

/** The adapter alone: input "features" [1, inChannels, H, W] → "bev" [1, outChannels, H, W]. */
export function adapterNetwork(type: string, cfg: AdapterConfig, size: { height: number; width: number }): GraphDesc {
  const g = new GraphBuilder(`adapter.${type}`);
  const x = g.input('features', [1, cfg.inChannels, size.height, size.width]);
  g.output('bev', addMapper(g, x, cfg, `adapter.${type}`));
  return g.build();
}

/** The reverter: input "fused" [1, inChannels, H, W] (the shared fused map) → "features" [1, outChannels, H, W] (the type's own space). */
export function reverterNetwork(type: string, cfg: AdapterConfig, size: { height: number; width: number }): GraphDesc {
  const g = new GraphBuilder(`reverter.${type}`);
  const x = g.input('fused', [1, cfg.inChannels, size.height, size.width]);
  g.output('features', addMapper(g, x, cfg, `reverter.${type}`));
  return g.build();
}

export function parameterCount(desc: GraphDesc): number {
  return desc.params.reduce((s, p) => s + p.shape.reduce((a, b) => a * b, 1), 0);
}

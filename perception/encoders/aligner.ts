// Aligner: a per-agent-type adapter from one encoder's BEV features into the shared feature
// space the fusion network expects (HEAL uses ConvNeXt blocks; residual basic blocks here). With
// no blocks it is the identity, as HEAL's stage-1 aligner (the type that trains the fusion).
// Backward alignment trains a new type's encoder + aligner against the frozen fusion and head.

import { GraphBuilder, type GraphDesc, type TensorRef, type Dim } from '../../models/graph.ts';
import { basicBlock } from '../../models/layers/blocks.ts';

export interface AlignerConfig {
  /** Channels the encoder emits. */
  inChannels: number;
  /** Channels of the shared space. */
  channels: number;
  /** Residual blocks (the first also maps inChannels → channels when they differ); 0 for the identity (then inChannels = channels). */
  blocks: number;
  batchNorm: boolean;
}

export const SMALL_ALIGNER: AlignerConfig = { inChannels: 32, channels: 32, blocks: 2, batchNorm: true };

export function addAligner(g: GraphBuilder, x: TensorRef, cfg: AlignerConfig, prefix: string): TensorRef {
  if (!(Number.isInteger(cfg.blocks) && cfg.blocks >= 0)) throw new Error(`${prefix}: aligner blocks must be a whole number ≥ 0, got ${cfg.blocks}`);
  if (cfg.blocks === 0 && cfg.inChannels !== cfg.channels) {
    throw new Error(`${prefix}: an aligner without blocks is the identity, so inChannels (${cfg.inChannels}) must equal channels (${cfg.channels})`);
  }
  let y = x;
  for (let b = 0; b < cfg.blocks; b++) y = basicBlock(g, y, { name: `${prefix}.block${b}`, out: cfg.channels, stride: 1, batchNorm: cfg.batchNorm });
  return y;
}

/**
 * Standalone: input "features" [agents, inChannels, H, W] → "aligned". Give each agent type its
 * own prefix (e.g. "aligner.m3") so the types' weights live side by side in one file.
 */
export function aligner(cfg: AlignerConfig, size: { height: Dim; width: Dim }, prefix = 'aligner'): GraphDesc {
  const g = new GraphBuilder('aligner');
  const x = g.input('features', ['agents', cfg.inChannels, size.height, size.width]);
  g.output('aligned', addAligner(g, x, cfg, prefix));
  return g.build();
}

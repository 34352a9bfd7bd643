// Aligner: a per-agent-type adapter from one encoder's BEV features into the shared feature
// space the fusion network expects: residual basic blocks ('basic', heal's own) or HEAL's ConvNeXt
// blocks ('convnext': depthwise k×k conv + bias, layer norm over channels (eps 1e-6), 1×1 to 4C,
// exact GELU, 1×1 back, per-channel scale gamma, residual; the Linear layers of HEAL's block are
// 1×1 convolutions here, the same products on an NCHW map). With no blocks it is the identity, as
// HEAL's stage-1 aligner (the type that trains the fusion).
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
  /** Block kind; default 'basic'. 'convnext' keeps the width (inChannels = channels) and ignores batchNorm. */
  kind?: 'basic' | 'convnext';
  /** 'convnext': depthwise kernel (HEAL: 7). */
  kernel?: number;
}

/** HEAL's layer-scale initial value (ConvNeXt's), so a new aligner starts as nearly the identity. */
const LAYER_SCALE_INIT = 1e-6;

/** One ConvNeXt block of HEAL's aligner; parameters <name>.dwconv, .norm, .pwconv1, .pwconv2, .gamma. */
function convNextBlock(g: GraphBuilder, x: TensorRef, name: string, kernel: number): TensorRef {
  const c = x.shape[1] as number;
  let y = g.conv2d(x, { name: `${name}.dwconv`, out: c, kernel, groups: c });
  y = g.layerNorm(y, { name: `${name}.norm`, axis: 1, epsilon: 1e-6 });
  y = g.gelu(g.conv2d(y, { name: `${name}.pwconv1`, out: 4 * c, kernel: 1 }));
  y = g.conv2d(y, { name: `${name}.pwconv2`, out: c, kernel: 1 });
  const gamma = g.param({ name: `${name}.gamma`, shape: [c, 1, 1], init: 'constant', value: LAYER_SCALE_INIT, trainable: true });
  return g.add(x, g.mul(y, gamma), `${name}.out`);
}

export const SMALL_ALIGNER: AlignerConfig = { inChannels: 32, channels: 32, blocks: 2, batchNorm: true };

export function addAligner(g: GraphBuilder, x: TensorRef, cfg: AlignerConfig, prefix: string): TensorRef {
  if (!(Number.isInteger(cfg.blocks) && cfg.blocks >= 0)) throw new Error(`${prefix}: aligner blocks must be a whole number ≥ 0, got ${cfg.blocks}`);
  if (cfg.blocks === 0 && cfg.inChannels !== cfg.channels) {
    throw new Error(`${prefix}: an aligner without blocks is the identity, so inChannels (${cfg.inChannels}) must equal channels (${cfg.channels})`);
  }
  let y = x;
  if ((cfg.kind ?? 'basic') === 'convnext') {
    if (cfg.inChannels !== cfg.channels)
      throw new Error(`${prefix}: a ConvNeXt aligner keeps the width, so inChannels (${cfg.inChannels}) must equal channels (${cfg.channels})`);
    const k = cfg.kernel ?? 7;
    if (!(Number.isInteger(k) && k % 2 === 1)) throw new Error(`${prefix}: ConvNeXt kernel must be an odd whole number, got ${k}`);
    for (let b = 0; b < cfg.blocks; b++) y = convNextBlock(g, y, `${prefix}.block${b}`, k);
    return y;
  }
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

// Pyramid fusion (the structure of HEAL's PyramidFusion): the agents' BEV features, already
// warped into the ego frame, go through a shared multi-scale backbone. At every level a 1×1
// "foreground" head scores each agent's cells; each cell is then the weighted sum over agents
// with weights softmax_agents(sigmoid(logit) + 1e-4), where an agent whose warped map does not
// cover the cell is masked out (weight 0) rather than averaged in. The mask multiplies exp(score),
// so values between 0 and 1 scale an agent's weight: the ego uses that for per-type trust
// (fusion/trust.ts). The fused levels are decoded to one resolution, concatenated and shrunk by a
// 3×3 conv.

import { GraphBuilder, type GraphDesc, type TensorRef } from '../../models/graph.ts';
import { type BackboneConfig, backboneLevel, decodeLevels, backboneOutChannels, checkBackboneConfig } from '../../models/layers/backbone.ts';
import { convBn } from '../../models/layers/blocks.ts';

export interface PyramidFusionConfig {
  backbone: BackboneConfig;
  /** Feature-map size of the inputs (the shared BEV grid). */
  height: number;
  width: number;
  /** Channels after the shrink conv; 0 for no shrink conv. */
  shrinkChannels: number;
}

/** Keeps a cell's weight finite when no agent covers it (then every weight is 0/ε = 0). */
const EMPTY_CELL_EPS = 1e-12;
/** HEAL's floor on the foreground score, so a confident-background agent still counts. */
const SCORE_FLOOR = 1e-4;

export interface PyramidFusionRefs {
  fused: TensorRef;
  /** Foreground logits per level, [A, 1, h_l, w_l]. */
  occupancy: TensorRef[];
}

/**
 * features [A, C, H, W] and mask [A, 1, H, W] (1 where the agent's warped map covers the cell,
 * fractions at the border of the coverage) → fused [1, C', H, W] and per-level logits.
 */
export function addPyramidFusion(g: GraphBuilder, features: TensorRef, mask: TensorRef, cfg: PyramidFusionConfig, prefix: string): PyramidFusionRefs {
  const bb = cfg.backbone;
  checkBackboneConfig(bb, prefix);
  if (bb.upsampleStrides.length === 0) throw new Error(`${prefix}: pyramid fusion needs upsampleStrides to merge its levels`);
  const floor = g.constant(`${prefix}.score_floor`, [1], [SCORE_FLOOR]);
  const eps = g.constant(`${prefix}.empty_cell_eps`, [1], [EMPTY_CELL_EPS]);
  let x = features;
  let m = mask;
  let size = [cfg.height, cfg.width];
  const fusedLevels: TensorRef[] = [];
  const occupancy: TensorRef[] = [];
  for (let level = 0; level < bb.layerNums.length; level++) {
    const s = bb.layerStrides[level];
    if (s > 1) {
      if (size[0] % s !== 0 || size[1] % s !== 0) {
        throw new Error(
          `${prefix}: level ${level} halves ${size[0]}×${size[1]} by ${s}, which must divide it (choose height/width divisible by the product of layerStrides)`,
        );
      }
      size = size.map((d) => d / s);
      // A coarse cell counts as covered as far as any of its fine cells is.
      m = g.maxPool(m, s, s, `${prefix}.level${level}.mask`);
    }
    x = backboneLevel(g, x, bb, level, prefix);
    const logit = g.conv2d(x, { name: `${prefix}.occ_head${level}`, out: 1, kernel: 1 });
    occupancy.push(logit);
    const score = g.add(g.sigmoid(logit), floor);
    const e = g.mul(g.exp(score), m);
    const weight = g.div(e, g.add(g.reduceSum(e, 0, true), eps), `${prefix}.level${level}.weight`);
    fusedLevels.push(g.reduceSum(g.mul(x, weight), 0, true, `${prefix}.level${level}.fused`));
  }
  let fused = decodeLevels(g, fusedLevels, bb, prefix);
  if (cfg.shrinkChannels > 0) {
    fused = convBn(g, fused, { name: `${prefix}.shrink`, out: cfg.shrinkChannels, kernel: 3, batchNorm: bb.batchNorm, relu: true });
  }
  return { fused, occupancy };
}

export function fusionOutChannels(cfg: PyramidFusionConfig): number {
  return cfg.shrinkChannels > 0 ? cfg.shrinkChannels : backboneOutChannels(cfg.backbone);
}

/** Standalone: inputs "features" [agents, C, H, W], "mask" [agents, 1, H, W] → "fused", "occ0".. */
export function pyramidFusion(cfg: PyramidFusionConfig, prefix = 'fusion'): GraphDesc {
  const g = new GraphBuilder('pyramidFusion');
  const features = g.input('features', ['agents', cfg.backbone.inChannels, cfg.height, cfg.width]);
  const mask = g.input('mask', ['agents', 1, cfg.height, cfg.width]);
  const { fused, occupancy } = addPyramidFusion(g, features, mask, cfg, prefix);
  g.output('fused', fused);
  occupancy.forEach((o, i) => g.output(`occ${i}`, o));
  return g.build();
}

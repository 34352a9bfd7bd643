// Pyramid fusion (the structure of HEAL's PyramidFusion): the agents' BEV features go through a
// shared multi-scale backbone. At every level a 1×1 "foreground" head scores each agent's cells
// (score = sigmoid(logit) + 1e-4); each ego-grid cell is then the weighted sum over agents with
// weights exp(score) normalised over the agents that cover the cell (HEAL's softmax with
// uncovered agents at −∞). The fused levels are decoded to one resolution, concatenated and
// shrunk. One implementation, two orders of warping (WarpPlacement in perception/space.ts):
//   'per-level' (HEAL): the pyramid runs on each agent's map in its own frame; at level l the
//     level's features and scores are warped with that level's grid (one θ per agent, grids at
//     every level's size). An agent covers a cell iff its warped score there is non-zero, an exact
//     indicator: sign(s̃), s̃ ≥ 1e-4 wherever any bilinear tap lands inside its map. The sender's
//     validity at each level multiplies its own-frame score before the warp: a sparse message's
//     sent cells max-pooled to the level, times HEAL's window for camera agents (fusion/pipeline.ts
//     levelValidity; one input per level, since HEAL's window at a coarse level is not the pooled
//     fine one). A per-agent trust (fusion/trust.ts) multiplies exp(s̃). Both are exact no-ops at
//     1, so the HEAL path is unchanged by them.
//   'before-pyramid': the maps arrive already warped (ego network: addWarp) and the weights use the
//     warped coverage, fractional at its border, max-pooled per level. Only for the small
//     profile's shipped weights.

import { GraphBuilder, type GraphDesc, type TensorRef } from '../../models/graph.ts';
import { type BackboneConfig, backboneLevel, decodeLevels, backboneOutChannels, checkBackboneConfig } from '../../models/layers/backbone.ts';
import { convBn } from '../../models/layers/blocks.ts';
import type { ShrinkKind, WarpPlacement } from '../../perception/space.ts';

export interface PyramidFusionConfig {
  backbone: BackboneConfig;
  /** Feature-map size of the inputs (the shared BEV grid). */
  height: number;
  width: number;
  /** Channels after the shrink; 0 for no shrink. */
  shrinkChannels: number;
  /** Default 'conv-bn' (the small profile's shipped weights); HEAL's is 'double-conv'. */
  shrink?: ShrinkKind;
  /** Default 'before-pyramid' (the small profile's shipped weights); HEAL's is 'per-level'. */
  warp?: WarpPlacement;
}

/** Keeps a cell's weight finite when no agent covers it (then every weight is 0/ε = 0). */
const EMPTY_CELL_EPS = 1e-12;
/** HEAL's floor on the foreground score, so a confident-background agent still counts. */
const SCORE_FLOOR = 1e-4;

export interface PyramidFusionInputs {
  /** [A, C, H, W]: each agent's own frame ('per-level') or already in the ego frame ('before-pyramid'). */
  features: TensorRef;
  /** 'before-pyramid': [A, 1, H, W], the warped coverage in the ego frame. */
  mask?: TensorRef;
  /**
   * 'per-level': one [A, 1, h_l, w_l] per level, where each agent's own map counts at that level
   * (1, or 0 for cells a sparse message left out or outside a camera agent's window).
   */
  valid?: TensorRef[];
  /** 'per-level': one sampling grid per level, [A, h_l, w_l, 2] (affineGrids of the agent→ego θ at that size). */
  grids?: TensorRef[];
  /** 'per-level': [A, 1, 1, 1] multiplier of each agent's fusion weight. */
  trust?: TensorRef;
}

export interface PyramidFusionRefs {
  /** The head's input: the decoded, concatenated and shrunk fused levels, [1, C', H, W]. */
  fused: TensorRef;
  /** Each level's fused map before decoding, [1, C_l, h_l, w_l]. */
  levels: TensorRef[];
  /** Foreground logits per level, [A, 1, h_l, w_l] (own frames for 'per-level'). */
  occupancy: TensorRef[];
}

/** [height, width] of each pyramid level. */
export function pyramidLevelSizes(cfg: PyramidFusionConfig, prefix = 'fusion'): [number, number][] {
  const sizes: [number, number][] = [];
  let size: [number, number] = [cfg.height, cfg.width];
  cfg.backbone.layerStrides.forEach((s, level) => {
    if (size[0] % s !== 0 || size[1] % s !== 0) {
      throw new Error(
        `${prefix}: level ${level} halves ${size[0]}×${size[1]} by ${s}, which must divide it (choose height/width divisible by the product of layerStrides)`,
      );
    }
    size = [size[0] / s, size[1] / s];
    sizes.push(size);
  });
  return sizes;
}

export function addPyramidFusion(g: GraphBuilder, inputs: PyramidFusionInputs, cfg: PyramidFusionConfig, prefix: string): PyramidFusionRefs {
  const bb = cfg.backbone;
  checkBackboneConfig(bb, prefix);
  if (bb.upsampleStrides.length === 0) throw new Error(`${prefix}: pyramid fusion needs upsampleStrides to merge its levels`);
  const perLevel = (cfg.warp ?? 'before-pyramid') === 'per-level';
  const sizes = pyramidLevelSizes(cfg, prefix);
  if (perLevel && (inputs.grids?.length !== sizes.length || inputs.valid?.length !== sizes.length || !inputs.trust)) {
    throw new Error(`${prefix}: per-level warping needs one grid and one validity map per level (${sizes.length}) and a trust input`);
  }
  if (!perLevel && !inputs.mask) throw new Error(`${prefix}: warping before the pyramid needs the warped coverage mask`);
  const floor = g.constant(`${prefix}.score_floor`, [1], [SCORE_FLOOR]);
  const eps = g.constant(`${prefix}.empty_cell_eps`, [1], [EMPTY_CELL_EPS]);
  let x = inputs.features;
  let m = inputs.mask!;
  const levels: TensorRef[] = [];
  const occupancy: TensorRef[] = [];
  for (let level = 0; level < bb.layerNums.length; level++) {
    const s = bb.layerStrides[level];
    // A coarse cell counts as covered as far as any of its fine cells is.
    if (!perLevel && s > 1) m = g.maxPool(m, s, s, `${prefix}.level${level}.mask`);
    x = backboneLevel(g, x, bb, level, prefix);
    const logit = g.conv2d(x, { name: `${prefix}.occ_head${level}`, out: 1, kernel: 1 });
    occupancy.push(logit);
    const score = g.add(g.sigmoid(logit), floor);
    let features = x;
    let e: TensorRef;
    if (perLevel) {
      const grid = inputs.grids![level];
      const sent = g.mul(score, inputs.valid![level], `${prefix}.level${level}.sent_score`);
      const warpedScore = g.gridSample(sent, grid, `${prefix}.level${level}.warped_score`);
      features = g.gridSample(x, grid, `${prefix}.level${level}.warped`);
      const covered = g.sign(warpedScore, `${prefix}.level${level}.covered`);
      e = g.mul(g.mul(g.exp(warpedScore), covered), inputs.trust!);
    } else {
      e = g.mul(g.exp(score), m);
    }
    const weight = g.div(e, g.add(g.reduceSum(e, 0, true), eps), `${prefix}.level${level}.weight`);
    levels.push(g.reduceSum(g.mul(features, weight), 0, true, `${prefix}.level${level}.fused`));
  }
  let fused = decodeLevels(g, levels, bb, prefix);
  if (cfg.shrinkChannels > 0) {
    if ((cfg.shrink ?? 'conv-bn') === 'double-conv') {
      fused = g.relu(g.conv2d(fused, { name: `${prefix}.shrink.conv1`, out: cfg.shrinkChannels, kernel: 3 }));
      fused = g.relu(g.conv2d(fused, { name: `${prefix}.shrink.conv2`, out: cfg.shrinkChannels, kernel: 3 }));
    } else {
      fused = convBn(g, fused, { name: `${prefix}.shrink`, out: cfg.shrinkChannels, kernel: 3, batchNorm: bb.batchNorm, relu: true });
    }
  }
  return { fused, levels, occupancy };
}

export function fusionOutChannels(cfg: PyramidFusionConfig): number {
  return cfg.shrinkChannels > 0 ? cfg.shrinkChannels : backboneOutChannels(cfg.backbone);
}

/**
 * The graph inputs of 'per-level' fusion: "features" [agents, C, H, W] in each agent's own frame,
 * "valid0".. [agents, 1, h_l, w_l] (own frames), "trust" [agents, 1, 1, 1], and "grid0"..
 * [agents, h_l, w_l, 2].
 */
export function perLevelInputs(g: GraphBuilder, cfg: PyramidFusionConfig): PyramidFusionInputs {
  const { height, width } = cfg;
  const sizes = pyramidLevelSizes(cfg);
  return {
    features: g.input('features', ['agents', cfg.backbone.inChannels, height, width]),
    valid: sizes.map(([h, w], l) => g.input(`valid${l}`, ['agents', 1, h, w])),
    trust: g.input('trust', ['agents', 1, 1, 1]),
    grids: sizes.map(([h, w], l) => g.input(`grid${l}`, ['agents', h, w, 2])),
  };
}

/**
 * Standalone: "features" and "mask" [agents, 1, H, W] (warped coverage) for 'before-pyramid';
 * perLevelInputs for 'per-level'. Outputs "fused", "occ0"...
 */
export function pyramidFusion(cfg: PyramidFusionConfig, prefix = 'fusion'): GraphDesc {
  const g = new GraphBuilder('pyramidFusion');
  const inputs =
    (cfg.warp ?? 'before-pyramid') === 'per-level'
      ? perLevelInputs(g, cfg)
      : {
          features: g.input('features', ['agents', cfg.backbone.inChannels, cfg.height, cfg.width]),
          mask: g.input('mask', ['agents', 1, cfg.height, cfg.width]),
        };
  const { fused, occupancy } = addPyramidFusion(g, inputs, cfg, prefix);
  g.output('fused', fused);
  occupancy.forEach((o, i) => g.output(`occ${i}`, o));
  return g.build();
}

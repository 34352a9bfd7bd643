// The ego side in one graph: pyramid fusion of every agent's aligned features (warped into the
// ego frame per level, or once before the pyramid: see PyramidFusionConfig.warp), then the
// detection head. Parameter names match the standalone networks ("fusion.*", "head.*"), so one
// weight file serves both.

import { GraphBuilder, type GraphDesc } from '../../models/graph.ts';
import { addWarp } from './warp.ts';
import { addPyramidFusion, fusionOutChannels, perLevelInputs, type PyramidFusionConfig, type PyramidFusionInputs } from './pyramid.ts';
import { addDetectionHead, type DetectionHeadConfig } from './head.ts';

export interface EgoConfig {
  fusion: PyramidFusionConfig;
  head: Omit<DetectionHeadConfig, 'inChannels'>;
}

export interface EgoNetworkOptions {
  /** Also output "fused" (the head's input) and "fusedLevel0".. (each fused level before decoding), for parity checks. */
  intermediates?: boolean;
}

/**
 * 'per-level' (HEAL): inputs "features" [agents, C, H, W] and "valid0".. [agents, 1, h_l, w_l] in
 * each agent's own frame, "trust" [agents, 1, 1, 1], "grid0".. [agents, h_l, w_l, 2] (affineGrids of
 * the agent→ego θ at each level's size; identity for the ego). 'before-pyramid': "features",
 * "valid" and one "grid" [agents, H, W, 2]. Outputs "cls", "reg", "dir", "occ0".., and "mask" (the
 * warped coverage) for 'before-pyramid'.
 */
export function egoNetwork(cfg: EgoConfig, opts: EgoNetworkOptions = {}): GraphDesc {
  const { height, width } = cfg.fusion;
  const g = new GraphBuilder('ego');
  let inputs: PyramidFusionInputs;
  if ((cfg.fusion.warp ?? 'before-pyramid') === 'per-level') {
    inputs = perLevelInputs(g, cfg.fusion);
  } else {
    const features = g.input('features', ['agents', cfg.fusion.backbone.inChannels, height, width]);
    const valid = g.input('valid', ['agents', 1, height, width]);
    const grid = g.input('grid', ['agents', height, width, 2]);
    const { warped, mask } = addWarp(g, features, valid, grid, 'warp');
    inputs = { features: warped, mask };
  }
  const { fused, levels, occupancy } = addPyramidFusion(g, inputs, cfg.fusion, 'fusion');
  const { cls, reg, dir } = addDetectionHead(g, fused, { ...cfg.head, inChannels: fusionOutChannels(cfg.fusion) }, 'head');
  g.output('cls', cls);
  g.output('reg', reg);
  g.output('dir', dir);
  occupancy.forEach((o, i) => g.output(`occ${i}`, o));
  if (inputs.mask) g.output('mask', inputs.mask);
  if (opts.intermediates) {
    g.output('fused', fused);
    levels.forEach((l, i) => g.output(`fusedLevel${i}`, l));
  }
  return g.build();
}

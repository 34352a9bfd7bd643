// The ego side in one graph: warp every agent's aligned features into the ego frame, pyramid
// fusion, detection head. Parameter names match the standalone networks ("fusion.*", "head.*"),
// so one weight file serves both.

import { GraphBuilder, type GraphDesc } from '../../models/graph.ts';
import { addWarp } from './warp.ts';
import { addPyramidFusion, fusionOutChannels, type PyramidFusionConfig } from './pyramid.ts';
import { addDetectionHead, type DetectionHeadConfig } from './head.ts';

export interface EgoConfig {
  fusion: PyramidFusionConfig;
  head: Omit<DetectionHeadConfig, 'inChannels'>;
}

/**
 * Inputs: "features" [agents, C, H, W] in each agent's own frame, "valid" [agents, 1, H, W]
 * (where each agent's map holds data), "grid" [agents, H, W, 2] (affineGrids of the
 * agent→ego matrices; identity for the ego). Outputs: "cls", "reg", "dir", "occ0".., "mask".
 */
export function egoNetwork(cfg: EgoConfig): GraphDesc {
  const { height, width } = cfg.fusion;
  const g = new GraphBuilder('ego');
  const features = g.input('features', ['agents', cfg.fusion.backbone.inChannels, height, width]);
  const valid = g.input('valid', ['agents', 1, height, width]);
  const grid = g.input('grid', ['agents', height, width, 2]);
  const { warped, mask } = addWarp(g, features, valid, grid, 'warp');
  const { fused, occupancy } = addPyramidFusion(g, warped, mask, cfg.fusion, 'fusion');
  const { cls, reg, dir } = addDetectionHead(g, fused, { ...cfg.head, inChannels: fusionOutChannels(cfg.fusion) }, 'head');
  g.output('cls', cls);
  g.output('reg', reg);
  g.output('dir', dir);
  occupancy.forEach((o, i) => g.output(`occ${i}`, o));
  g.output('mask', mask);
  return g.build();
}

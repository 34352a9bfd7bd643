// Multi-scale ResNet BEV backbone (the structure of HEAL's ResNetBEVBackbone and of its pyramid's
// ResNeXt): levels of basic or bottleneck blocks, each level starting with a strided block, then
// per-level transposed-conv "deblocks" that bring every level back to one resolution,
// concatenated along channels.

import { GraphBuilder, type GraphDesc, type TensorRef, type Dim } from '../graph.ts';
import { basicBlock, bottleneck } from './blocks.ts';

export interface BackboneConfig {
  /** Input channels. */
  inChannels: number;
  /** Blocks per level. */
  layerNums: number[];
  /** Stride of each level's first block (relative to the previous level). */
  layerStrides: number[];
  /** Channels of each level. */
  numFilters: number[];
  /** Upsampling factor of each level's deblock; [] for no decoding (levels are the output). */
  upsampleStrides: number[];
  /** Output channels of each level's deblock. */
  numUpsampleFilters: number[];
  batchNorm: boolean;
  /** ResNet basic blocks (default) or ResNeXt bottlenecks with expansion 1 (HEAL's pyramid). */
  block?: 'basic' | 'bottleneck';
  /** Bottleneck only: groups of the 3×3 conv, and ResNeXt's width per group (inner width = ⌊filters·widthPerGroup/64⌋·groups). */
  groups?: number;
  widthPerGroup?: number;
}

/** Small CPU profile: three levels of one block each. */
export const SMALL_BACKBONE: BackboneConfig = {
  inChannels: 32,
  layerNums: [1, 1, 1],
  layerStrides: [1, 2, 2],
  numFilters: [32, 48, 64],
  upsampleStrides: [1, 2, 4],
  numUpsampleFilters: [16, 16, 16],
  batchNorm: true,
};

/** HEAL's pyramid (PyramidFusion of the OPV2V-H configs): ResNeXt bottlenecks, 32 groups of width 4, expansion 1. */
export const HEAL_BACKBONE: BackboneConfig = {
  inChannels: 64,
  layerNums: [3, 5, 8],
  layerStrides: [1, 2, 2],
  numFilters: [64, 128, 256],
  upsampleStrides: [1, 2, 4],
  numUpsampleFilters: [128, 128, 128],
  batchNorm: true,
  block: 'bottleneck',
  groups: 32,
  widthPerGroup: 4,
};

export function checkBackboneConfig(cfg: BackboneConfig, where: string): void {
  const n = cfg.layerNums.length;
  if (n === 0) throw new Error(`${where}: layerNums is empty`);
  if (cfg.layerStrides.length !== n || cfg.numFilters.length !== n) {
    throw new Error(`${where}: layerNums, layerStrides and numFilters must have the same length (${n})`);
  }
  if (cfg.upsampleStrides.length !== cfg.numUpsampleFilters.length || (cfg.upsampleStrides.length !== 0 && cfg.upsampleStrides.length !== n)) {
    throw new Error(`${where}: upsampleStrides and numUpsampleFilters need one entry per level (${n}) or none`);
  }
  for (const [i, s] of cfg.layerStrides.entries()) if (!(Number.isInteger(s) && s >= 1)) throw new Error(`${where}: layerStrides[${i}] = ${s}`);
  for (const [i, s] of cfg.upsampleStrides.entries()) if (!(Number.isInteger(s) && s >= 1)) throw new Error(`${where}: upsampleStrides[${i}] = ${s}`);
  const block = cfg.block ?? 'basic';
  if (block !== 'basic' && block !== 'bottleneck') throw new Error(`${where}: block must be "basic" or "bottleneck", got ${JSON.stringify(cfg.block)}`);
  if (block === 'bottleneck') {
    const { groups, widthPerGroup } = cfg;
    if (!(Number.isInteger(groups) && groups! >= 1 && Number.isInteger(widthPerGroup) && widthPerGroup! >= 1)) {
      throw new Error(`${where}: bottleneck blocks need positive integer groups and widthPerGroup, got ${groups} and ${widthPerGroup}`);
    }
  }
}

/** Level `level` of the backbone (its blocks), on the previous level's output. */
export function backboneLevel(g: GraphBuilder, x: TensorRef, cfg: BackboneConfig, level: number, prefix: string): TensorRef {
  let y = x;
  for (let b = 0; b < cfg.layerNums[level]; b++) {
    const o = {
      name: `${prefix}.level${level}.block${b}`,
      out: cfg.numFilters[level],
      stride: b === 0 ? cfg.layerStrides[level] : 1,
      batchNorm: cfg.batchNorm,
    };
    y = cfg.block === 'bottleneck' ? bottleneck(g, y, { ...o, groups: cfg.groups!, widthPerGroup: cfg.widthPerGroup! }) : basicBlock(g, y, o);
  }
  return y;
}

/** Every level's feature map, finest first. */
export function backboneLevels(g: GraphBuilder, x: TensorRef, cfg: BackboneConfig, prefix: string): TensorRef[] {
  const out: TensorRef[] = [];
  let y = x;
  for (let level = 0; level < cfg.layerNums.length; level++) {
    y = backboneLevel(g, y, cfg, level, prefix);
    out.push(y);
  }
  return out;
}

/** Deblocks (transposed conv → BN → ReLU) to the common resolution, then channel concat. */
export function decodeLevels(g: GraphBuilder, levels: TensorRef[], cfg: BackboneConfig, prefix: string): TensorRef {
  if (cfg.upsampleStrides.length === 0) {
    if (levels.length !== 1) throw new Error(`${prefix}: several levels but no upsampleStrides to merge them`);
    return levels[0];
  }
  const ups = levels.map((x, i) => {
    const s = cfg.upsampleStrides[i];
    let y = g.convTranspose2d(x, { name: `${prefix}.deblock${i}.deconv`, out: cfg.numUpsampleFilters[i], kernel: s, stride: s, bias: !cfg.batchNorm });
    if (cfg.batchNorm) y = g.batchNorm(y, { name: `${prefix}.deblock${i}.bn`, epsilon: 1e-3, momentum: 0.01 });
    return g.relu(y);
  });
  const [h, w] = ups[0].shape.slice(2);
  for (const [i, u] of ups.entries()) {
    const [hi, wi] = u.shape.slice(2);
    if (typeof h === 'number' && typeof hi === 'number' && (hi !== h || wi !== w)) {
      throw new Error(`${prefix}: deblock ${i} gives ${hi}×${wi}, deblock 0 gives ${h}×${w}: adjust upsampleStrides or the input size`);
    }
  }
  return ups.length === 1 ? ups[0] : g.concat(ups, 1, `${prefix}.concat`);
}

/** Channels of decodeLevels' output. */
export function backboneOutChannels(cfg: BackboneConfig): number {
  return cfg.upsampleStrides.length === 0 ? cfg.numFilters[0] : cfg.numUpsampleFilters.reduce((a, b) => a + b, 0);
}

/** Standalone backbone: input "bev" [agents, C, H, W] → output "features". */
export function bevBackbone(cfg: BackboneConfig, size: { height: Dim; width: Dim }, prefix = 'backbone'): GraphDesc {
  checkBackboneConfig(cfg, prefix);
  const g = new GraphBuilder('bevBackbone');
  const x = g.input('bev', ['agents', cfg.inChannels, size.height, size.width]);
  g.output('features', decodeLevels(g, backboneLevels(g, x, cfg, prefix), cfg, prefix));
  return g.build();
}

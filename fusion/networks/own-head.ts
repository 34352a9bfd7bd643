// A type's own detector head, as its maker trains it on its own encoder's features (heal train
// --single): a 3×3 conv + batch norm + ReLU, then the detection head's three 1×1 convs, on the
// shared space's anchors. Parameters "ownhead.<type>.*". A type that joined by an adapter keeps
// using it as the ego, on the fused map brought back into its own space by its reverter
// (fusion/networks/adapter.ts).

import { GraphBuilder, type GraphDesc, type TensorRef } from '../../models/graph.ts';
import { convBn } from '../../models/layers/blocks.ts';
import { addDetectionHead } from './head.ts';

export interface OwnHeadConfig {
  /** Channels of the type's own features. */
  inChannels: number;
  anchors: number;
  dirBins: number;
}

export function ownHeadPrefix(type: string): string {
  return `ownhead.${type}`;
}

export function addOwnHead(g: GraphBuilder, x: TensorRef, cfg: OwnHeadConfig, prefix: string): { cls: TensorRef; reg: TensorRef; dir: TensorRef } {
  const y = convBn(g, x, { name: `${prefix}.conv`, out: cfg.inChannels, kernel: 3, batchNorm: true, relu: true });
  return addDetectionHead(g, y, { inChannels: cfg.inChannels, anchors: cfg.anchors, dirBins: cfg.dirBins }, prefix);
}

/** Input "features" [1, inChannels, H, W] → "cls", "reg", "dir". */
export function ownHeadNetwork(type: string, cfg: OwnHeadConfig, size: { height: number; width: number }): GraphDesc {
  const g = new GraphBuilder(`ownhead.${type}`);
  const x = g.input('features', [1, cfg.inChannels, size.height, size.width]);
  const { cls, reg, dir } = addOwnHead(g, x, cfg, ownHeadPrefix(type));
  g.output('cls', cls);
  g.output('reg', reg);
  g.output('dir', dir);
  return g.build();
}

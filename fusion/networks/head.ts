// Detection head: three 1×1 convs over the fused map (formats.md §4.4): cls [N, A, H', W'],
// reg [N, 7A, H', W'] (channel a·7 + k) and dir [N, 2A, H', W'] (channel a·2 + bin).

import { GraphBuilder, type GraphDesc, type TensorRef, type Dim } from '../../models/graph.ts';

export interface DetectionHeadConfig {
  inChannels: number;
  /** Anchors per cell (2: yaw 0° and 90°). */
  anchors: number;
  /** Direction bins per anchor (HEAL: 2). */
  dirBins: number;
}

/** Prior probability of "object" at initialisation, so focal loss starts near its optimum (RetinaNet). */
const CLS_PRIOR = 0.01;

export function addDetectionHead(g: GraphBuilder, x: TensorRef, cfg: DetectionHeadConfig, prefix: string): { cls: TensorRef; reg: TensorRef; dir: TensorRef } {
  const cls = g.conv2d(x, { name: `${prefix}.cls`, out: cfg.anchors, kernel: 1, biasInit: -Math.log((1 - CLS_PRIOR) / CLS_PRIOR) });
  const reg = g.conv2d(x, { name: `${prefix}.reg`, out: 7 * cfg.anchors, kernel: 1 });
  const dir = g.conv2d(x, { name: `${prefix}.dir`, out: cfg.dirBins * cfg.anchors, kernel: 1 });
  return { cls, reg, dir };
}

/** Standalone: input "fused" [batch, C, H, W] → "cls", "reg", "dir". */
export function detectionHead(cfg: DetectionHeadConfig, size: { height: Dim; width: Dim }, prefix = 'head'): GraphDesc {
  const g = new GraphBuilder('detectionHead');
  const x = g.input('fused', ['batch', cfg.inChannels, size.height, size.width]);
  const { cls, reg, dir } = addDetectionHead(g, x, cfg, prefix);
  g.output('cls', cls);
  g.output('reg', reg);
  g.output('dir', dir);
  return g.build();
}

// Lift-Splat-Shoot camera encoder (the structure of LSS / HEAL's lift_splat_shoot encoder):
//   lift: a small image backbone takes every camera's image to stride `downsample`; two 1×1
//     convs predict D depth logits and C context channels per feature pixel; softmax over depth;
//     the outer product depth ⊗ context is one C-vector per frustum point, flattened in
//     perception/camera.ts's (n, d, v, u) order to [points, C];
//   splat: the frustum points that land on the BEV grid, sorted by cell (keptIndex), are summed
//     per cell with the cumsum trick (running sum, then differences at segment ends), and the
//     cell sums are gathered onto the grid (cellToSegment; empty cells read one appended zero row);
//   a few basic blocks on the BEV map.
// The geometry (which frustum point falls in which cell) is computed outside the graph by
// perception/camera.ts frustumToBev, once per calibration, and fed as int32 index inputs.
//
// Two image backbones, so that camera types differ the way HEAL's m2 (EfficientNet) and m4
// (ResNet) do: 'resnet' (stages of ResNet basic blocks) and 'mbconv' (stages of MobileNetV2 /
// EfficientNet inverted residuals: 1×1 expand, 3×3 depthwise, 1×1 project).

import type { GraphBuilder, TensorRef } from '../../models/graph.ts';
import { DataError } from '../../datasets/io.ts';
import { depthBins, type DepthMode, type SplatOptions } from '../camera.ts';
import { featureGrid, type SharedSpace } from '../space.ts';
import { basicBlock, convBn } from '../../models/layers/blocks.ts';

export interface ImageStage {
  channels: number;
  blocks: number;
  /** Stride of the stage's first block. */
  stride: number;
}

export type ImageBackboneConfig =
  | { kind: 'resnet'; stem: { channels: number; stride: number }; stages: ImageStage[] }
  | {
      kind: 'mbconv';
      stem: { channels: number; stride: number };
      stages: ImageStage[];
      /** Hidden width of an inverted residual = expandRatio × its input width. */
      expandRatio: number;
    };

export interface DepthBinsConfig {
  /** 'LID' (linear-increasing widths, HEAL's default) or 'UD' (uniform). */
  mode: DepthMode;
  /** Meters. */
  min: number;
  max: number;
  count: number;
}

export interface LssConfig {
  arch: 'lss';
  /**
   * Camera names to use, in this order (e.g. ["camera0", "camera1", "camera2", "camera3"]);
   * absent: every camera the frame has, in its order.
   */
  cameras?: string[];
  /** Network input size [W, H] each camera image is resized to; both divisible by downsample. */
  imageSize: [number, number];
  /** Stride of the image feature map; the stem and stage strides must multiply to it. */
  downsample: number;
  depthBins: DepthBinsConfig;
  imageBackbone: ImageBackboneConfig;
  /** Channels of the lifted (and splatted) features. */
  contextChannels: number;
  /** Basic blocks on the splatted BEV map; `channels` is the encoder's output width. */
  bev: { channels: number; blocks: number };
}

/** The graph inputs of an LSS encoder. */
export interface LssInputs {
  /** [cameras, 3, H, W], preprocessed (perception/camera.ts preprocessImage). */
  images: TensorRef;
  /** [kept] int32: frustum points on the grid, sorted by cell (SplatIndex.keptIndex). */
  keptIndex: TensorRef;
  /** [segments] int32: per occupied cell, position of its first point in keptIndex. */
  segmentStarts: TensorRef;
  /** [segments] int32: per occupied cell, position of its last point in keptIndex. */
  segmentEnds: TensorRef;
  /** [H'·W'] int32: segment of each cell, `segments` for an empty one. */
  cellToSegment: TensorRef;
}

export function lssOutChannels(cfg: LssConfig): number {
  return cfg.bev.channels;
}

/** Depth of each bin (bin centres) in meters. */
export function lssDepths(cfg: LssConfig): Float32Array {
  const b = cfg.depthBins;
  return depthBins(b.mode, b.min, b.max, b.count);
}

/** Options for perception/camera.ts frustumToBev. */
export function lssSplatOptions(cfg: LssConfig, space: SharedSpace): SplatOptions {
  return { imageSize: [cfg.imageSize[0], cfg.imageSize[1]], downsample: cfg.downsample, depth: lssDepths(cfg), space };
}

const isPosInt = (v: unknown): v is number => Number.isInteger(v) && (v as number) > 0;

export function checkLssConfig(cfg: LssConfig, source: string, field = 'encoder'): void {
  const need = (ok: boolean, f: string, detail: string, value: unknown) => {
    if (!ok) throw new DataError(source, `${field}.${f}`, detail, value);
  };
  if (cfg.cameras !== undefined) {
    need(
      Array.isArray(cfg.cameras) && cfg.cameras.length > 0 && cfg.cameras.every((c) => typeof c === 'string' && c.length > 0),
      'cameras',
      'must be a non-empty list of camera names',
      cfg.cameras,
    );
  }
  need(isPosInt(cfg.downsample), 'downsample', 'must be a positive integer', cfg.downsample);
  const size = cfg.imageSize;
  need(Array.isArray(size) && size.length === 2 && size.every(isPosInt), 'imageSize', 'must be two positive integers [W, H]', size);
  need(size[0] % cfg.downsample === 0 && size[1] % cfg.downsample === 0, 'imageSize', `must be divisible by downsample ${cfg.downsample}`, size);
  const b = cfg.depthBins;
  need(typeof b === 'object' && b !== null, 'depthBins', 'must be an object {mode, min, max, count}', b);
  need(b.mode === 'LID' || b.mode === 'UD', 'depthBins.mode', 'must be "LID" or "UD"', b.mode);
  need(Number.isFinite(b.min) && Number.isFinite(b.max) && b.min > 0 && b.max > b.min, 'depthBins', 'needs 0 < min < max (meters)', b);
  need(isPosInt(b.count), 'depthBins.count', 'must be a positive integer', b.count);
  need(isPosInt(cfg.contextChannels), 'contextChannels', 'must be a positive integer', cfg.contextChannels);
  need(
    typeof cfg.bev === 'object' && cfg.bev !== null && isPosInt(cfg.bev.channels) && isPosInt(cfg.bev.blocks),
    'bev',
    'must be {channels, blocks} with positive integers',
    cfg.bev,
  );
  const ib = cfg.imageBackbone;
  need(typeof ib === 'object' && ib !== null, 'imageBackbone', 'must be an object', ib);
  need(ib.kind === 'resnet' || ib.kind === 'mbconv', 'imageBackbone.kind', 'must be "resnet" or "mbconv"', ib.kind);
  need(
    typeof ib.stem === 'object' && ib.stem !== null && isPosInt(ib.stem.channels) && isPosInt(ib.stem.stride),
    'imageBackbone.stem',
    'must be {channels, stride} with positive integers',
    ib.stem,
  );
  need(Array.isArray(ib.stages) && ib.stages.length > 0, 'imageBackbone.stages', 'must be a non-empty list', ib.stages);
  ib.stages.forEach((s, i) => {
    const ok = typeof s === 'object' && s !== null && isPosInt(s.channels) && isPosInt(s.blocks) && isPosInt(s.stride);
    need(ok, `imageBackbone.stages[${i}]`, 'must be {channels, blocks, stride} with positive integers', s);
  });
  if (ib.kind === 'mbconv') need(isPosInt(ib.expandRatio), 'imageBackbone.expandRatio', 'must be a positive integer', ib.expandRatio);
  const stride = ib.stages.reduce((a, s) => a * s.stride, ib.stem.stride);
  need(stride === cfg.downsample, 'imageBackbone', `strides (stem and stages) multiply to ${stride}, but downsample is ${cfg.downsample}`, stride);
}

/** Graph inputs named "images", "keptIndex", "segmentStarts", "segmentEnds", "cellToSegment". */
export function lssInputs(g: GraphBuilder, cfg: LssConfig, space: SharedSpace): LssInputs {
  const [w, h] = featureGrid(space);
  return {
    images: g.input('images', ['cameras', 3, cfg.imageSize[1], cfg.imageSize[0]]),
    keptIndex: g.input('keptIndex', ['kept'], 'int32'),
    segmentStarts: g.input('segmentStarts', ['segments'], 'int32'),
    segmentEnds: g.input('segmentEnds', ['segments'], 'int32'),
    cellToSegment: g.input('cellToSegment', [h * w], 'int32'),
  };
}

/** MobileNetV2 inverted residual: 1×1 expand → 3×3 depthwise (stride) → 1×1 project (+ shortcut). */
function invertedResidual(g: GraphBuilder, x: TensorRef, o: { name: string; out: number; stride: number; expand: number }): TensorRef {
  const inC = x.shape[1] as number;
  const hidden = inC * o.expand;
  let y = o.expand === 1 ? x : convBn(g, x, { name: `${o.name}.expand`, out: hidden, kernel: 1, batchNorm: true, relu: true });
  y = g.relu(
    g.batchNorm(g.conv2d(y, { name: `${o.name}.dw.conv`, out: hidden, kernel: 3, stride: o.stride, groups: hidden, bias: false }), { name: `${o.name}.dw.bn` }),
  );
  y = convBn(g, y, { name: `${o.name}.project`, out: o.out, kernel: 1, batchNorm: true, relu: false });
  return o.stride === 1 && inC === o.out ? g.add(y, x) : y;
}

/** images [N, 3, H, W] → [N, C_last, H/downsample, W/downsample]. */
export function addImageBackbone(g: GraphBuilder, images: TensorRef, cfg: ImageBackboneConfig, prefix: string): TensorRef {
  let y = convBn(g, images, { name: `${prefix}.stem`, out: cfg.stem.channels, kernel: 3, stride: cfg.stem.stride, batchNorm: true, relu: true });
  cfg.stages.forEach((stage, s) => {
    for (let b = 0; b < stage.blocks; b++) {
      const name = `${prefix}.stage${s}.block${b}`;
      const stride = b === 0 ? stage.stride : 1;
      y =
        cfg.kind === 'resnet'
          ? basicBlock(g, y, { name, out: stage.channels, stride, batchNorm: true })
          : invertedResidual(g, y, { name, out: stage.channels, stride, expand: cfg.expandRatio });
    }
  });
  return y;
}

/**
 * Lift: image features → frustum features [points, C] in (n, d, v, u) order, plus the depth
 * distribution [N, D, fH, fW] (for depth supervision).
 */
export function addLift(g: GraphBuilder, images: TensorRef, cfg: LssConfig, prefix: string): { points: TensorRef; depth: TensorRef } {
  const feats = addImageBackbone(g, images, cfg.imageBackbone, `${prefix}.image`);
  const [, , fh, fw] = feats.shape;
  const [W, H] = cfg.imageSize;
  if (fh !== H / cfg.downsample || fw !== W / cfg.downsample) {
    throw new Error(`${prefix}: image backbone gives a ${fw}×${fh} map from ${W}×${H}, expected stride ${cfg.downsample}`);
  }
  const D = cfg.depthBins.count;
  const C = cfg.contextChannels;
  const fH = fh as number;
  const fW = fw as number;
  const depth = g.softmax(g.conv2d(feats, { name: `${prefix}.depth`, out: D, kernel: 1 }), 1, `${prefix}.depth_prob`);
  const context = g.conv2d(feats, { name: `${prefix}.context`, out: C, kernel: 1 });
  const d5 = g.reshape(depth, [0, D, fH, fW, 1], `${prefix}.depth5`);
  const c5 = g.reshape(g.transpose(context, [0, 2, 3, 1], `${prefix}.context_nhwc`), [0, 1, fH, fW, C], `${prefix}.context5`);
  const frustum = g.mul(d5, c5, `${prefix}.frustum`); // [N, D, fH, fW, C]
  return { points: g.reshape(frustum, [-1, C], `${prefix}.points`), depth };
}

/**
 * Splat: frustum features [points, C] → [1, C, H', W'] by the cumsum trick. With S the running
 * sum over the sorted kept points, a cell's sum is S[end] − S[start − 1]; reading S[start − 1]
 * as row `start` of [0; S] gives the previous segment's last value, and 0 for the first segment.
 */
export function addSplat(g: GraphBuilder, points: TensorRef, idx: Omit<LssInputs, 'images'>, grid: [number, number], prefix: string): TensorRef {
  const [w, h] = grid;
  const c = points.shape[1];
  if (typeof c !== 'number') throw new Error(`${prefix}: frustum features need a fixed channel count, got [${points.shape}]`);
  const zero = g.constant(`${prefix}.zero_row`, [1, c], new Array<number>(c).fill(0));
  const sorted = g.gather(points, idx.keptIndex, 0, `${prefix}.sorted`);
  const running = g.cumsum(sorted, 0, `${prefix}.cumsum`);
  const shifted = g.concat([zero, running], 0, `${prefix}.cumsum0`);
  const cells = g.sub(
    g.gather(running, idx.segmentEnds, 0, `${prefix}.at_end`),
    g.gather(shifted, idx.segmentStarts, 0, `${prefix}.before_start`),
    `${prefix}.cell_sums`,
  );
  const rows = g.gather(g.concat([cells, zero], 0, `${prefix}.rows`), idx.cellToSegment, 0, `${prefix}.gather`);
  return g.transpose(g.reshape(rows, [1, h, w, c], `${prefix}.nhwc`), [0, 3, 1, 2], `${prefix}.nchw`);
}

/** The whole encoder: inputs → [1, C_enc, H', W'] on the shared feature grid, and the depth distribution. */
export function addLss(g: GraphBuilder, inputs: LssInputs, cfg: LssConfig, space: SharedSpace, prefix: string): { bev: TensorRef; depth: TensorRef } {
  checkLssConfig(cfg, prefix);
  const { points, depth } = addLift(g, inputs.images, cfg, prefix);
  let y = addSplat(g, points, inputs, featureGrid(space), `${prefix}.splat`);
  for (let b = 0; b < cfg.bev.blocks; b++) y = basicBlock(g, y, { name: `${prefix}.bev.block${b}`, out: cfg.bev.channels, stride: 1, batchNorm: true });
  return { bev: y, depth };
}

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
// EfficientNet inverted residuals: 1×1 expand, 3×3 depthwise, 1×1 project); and torchvision's
// ResNet ('torchvision-resnet': 7×7 stem, max pool, bottlenecks of expansion 4), HEAL's m4 trunk.
//
// With `heal` set, the encoder is HEAL's own LiftSplatShoot (the heal profile's m4): the geometry
// is HEAL's (perception/camera.ts healCameraInputs: float32, torch's order, its own LSS grid
// `heal.grid`, truncating cell rule), the lift multiplies each kept point's depth probability by
// its pixel's context vector (one float32 product, as HEAL's outer product), the per-cell sums
// accumulate in float64 with float32 running values, as torch's CPU cumsum in HEAL's voxel
// pooling, and the BEV part is HEAL's ResNetBEVBackbone (basic blocks, the first strided).

import type { GraphBuilder, TensorRef } from '../../models/graph.ts';
import { DataError } from '../../datasets/io.ts';
import { depthBins, type DepthMode, type HealCameraConfig, type HealVoxelGrid, type SplatOptions } from '../camera.ts';
import { featureGrid, type SharedSpace } from '../space.ts';
import { basicBlock, bottleneck, convBn } from '../../models/layers/blocks.ts';
import { backboneLevels } from '../../models/layers/backbone.ts';

export interface ImageStage {
  channels: number;
  blocks: number;
  /** Stride of the stage's first block. */
  stride: number;
}

export type ImageBackboneConfig =
  | { kind: 'resnet'; stem: { channels: number; stride: number }; stages: ImageStage[] }
  /**
   * torchvision's ResNet trunk: stem 7×7 stride-2 conv (no bias) + BN + ReLU + 3×3 stride-2 max
   * pool (stem stride 4), then stages of bottlenecks (expansion 4: inner width channels/4, the
   * stride in the 3×3 conv, projection shortcut on a stage's first block).
   */
  | { kind: 'torchvision-resnet'; stem: { channels: number; stride: number }; stages: ImageStage[] }
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
  /**
   * Basic blocks on the splatted BEV map; `channels` is the encoder's output width. `stride`
   * (default 1) is the first block's, with a projection shortcut (HEAL's ResNetBEVBackbone).
   */
  bev: { channels: number; blocks: number; stride?: number };
  /** HEAL's own camera model (see the top of this file); absent for heal's own LSS. */
  heal?: HealLssConfig;
}

/** HEAL's camera preprocessing and LSS grid (its yaml's data_aug_conf and grid_conf). */
export interface HealLssConfig {
  /** Size [W, H] of the source pictures. */
  sourceSize: [number, number];
  /** data_aug_conf bot_pct_lim. */
  botPctLim: [number, number];
  /** grid_conf xbound/ybound/zbound: [min, max, step] in meters. */
  grid: HealVoxelGrid;
}

/** The graph inputs of an LSS encoder. */
export interface LssInputs {
  /** [cameras, 3, H, W], preprocessed (perception/camera.ts preprocessImage). */
  images: TensorRef;
  /** [kept] int32: frustum points on the grid, sorted by cell (SplatIndex.keptIndex). */
  keptIndex: TensorRef;
  /** `heal` only: [kept] int32, the image-feature pixel (n·fH + v)·fW + u of each kept point. */
  keptPixel?: TensorRef;
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

/** Cells [nx, ny] of a HEAL voxel grid (x, then y). */
export function healGridSize(grid: HealVoxelGrid): [number, number] {
  return [Math.trunc((grid.xbound[1] - grid.xbound[0]) / grid.xbound[2]), Math.trunc((grid.ybound[1] - grid.ybound[0]) / grid.ybound[2])];
}

/** The splat grid [W', H'] an LSS encoder writes: HEAL's own LSS grid, or the space's feature grid. */
export function lssSplatGrid(cfg: LssConfig, space: SharedSpace): [number, number] {
  return cfg.heal ? healGridSize(cfg.heal.grid) : featureGrid(space);
}

/** The encoder's output grid [W, H] and cell size [m, m]: the splat grid after the BEV blocks' stride. */
export function lssOutputGrid(cfg: LssConfig, space: SharedSpace): { size: [number, number]; cell: [number, number] | undefined } {
  const s = cfg.bev.stride ?? 1;
  const [w, h] = lssSplatGrid(cfg, space);
  const size: [number, number] = [Math.ceil(w / s), Math.ceil(h / s)];
  return { size, cell: cfg.heal ? [cfg.heal.grid.xbound[2] * s, cfg.heal.grid.ybound[2] * s] : undefined };
}

/** perception/camera.ts's HEAL camera settings of an LSS config with `heal`. */
export function healCameraConfigOf(cfg: LssConfig): HealCameraConfig {
  if (!cfg.heal) throw new Error("healCameraConfigOf: the LSS config has no 'heal' block");
  const b = cfg.depthBins;
  return {
    sourceSize: [...cfg.heal.sourceSize],
    inputSize: [...cfg.imageSize],
    botPctLim: [...cfg.heal.botPctLim],
    downsample: cfg.downsample,
    depth: { mode: b.mode, min: b.min, max: b.max, bins: b.count },
  };
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
    typeof cfg.bev === 'object' &&
      cfg.bev !== null &&
      isPosInt(cfg.bev.channels) &&
      isPosInt(cfg.bev.blocks) &&
      (cfg.bev.stride === undefined || isPosInt(cfg.bev.stride)),
    'bev',
    'must be {channels, blocks, stride?} with positive integers',
    cfg.bev,
  );
  need(
    cfg.heal !== undefined || (cfg.bev.stride ?? 1) === 1,
    'bev.stride',
    'is HEAL\'s BEV backbone (needs "heal"); heal\'s own LSS keeps stride 1',
    cfg.bev.stride,
  );
  if (cfg.heal !== undefined) {
    const h = cfg.heal;
    need(typeof h === 'object' && h !== null, 'heal', 'must be an object {sourceSize, botPctLim, grid}', h);
    need(
      Array.isArray(h.sourceSize) && h.sourceSize.length === 2 && h.sourceSize.every(isPosInt),
      'heal.sourceSize',
      'must be two positive integers [W, H]',
      h.sourceSize,
    );
    need(
      Array.isArray(h.botPctLim) && h.botPctLim.length === 2 && h.botPctLim.every((v) => Number.isFinite(v) && v >= 0 && v < 1),
      'heal.botPctLim',
      'must be two fractions in [0, 1)',
      h.botPctLim,
    );
    const grid = h.grid;
    need(typeof grid === 'object' && grid !== null, 'heal.grid', 'must be an object {xbound, ybound, zbound}', grid);
    for (const axis of ['xbound', 'ybound', 'zbound'] as const) {
      const b = grid[axis];
      const ok = Array.isArray(b) && b.length === 3 && b.every(Number.isFinite) && b[1] > b[0] && b[2] > 0;
      need(ok, `heal.grid.${axis}`, 'must be [min, max, step] with min < max and step > 0 (meters)', b);
    }
    const [nx, ny] = healGridSize(grid);
    const s = cfg.bev.stride ?? 1;
    need(nx >= 1 && ny >= 1 && nx % s === 0 && ny % s === 0, 'heal.grid', `must have a whole number of cells per axis, divisible by bev.stride ${s}`, [nx, ny]);
  }
  const ib = cfg.imageBackbone;
  need(typeof ib === 'object' && ib !== null, 'imageBackbone', 'must be an object', ib);
  need(
    ib.kind === 'resnet' || ib.kind === 'mbconv' || ib.kind === 'torchvision-resnet',
    'imageBackbone.kind',
    'must be "resnet", "mbconv" or "torchvision-resnet"',
    ib.kind,
  );
  if (ib.kind === 'torchvision-resnet')
    need(ib.stem?.stride === 4, 'imageBackbone.stem.stride', "must be 4 for torchvision's stem (stride-2 conv, stride-2 max pool)", ib.stem?.stride);
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

/** Graph inputs named "images", "keptIndex", ("keptPixel" with `heal`,) "segmentStarts", "segmentEnds", "cellToSegment". */
export function lssInputs(g: GraphBuilder, cfg: LssConfig, space: SharedSpace): LssInputs {
  const [w, h] = lssSplatGrid(cfg, space);
  return {
    images: g.input('images', ['cameras', 3, cfg.imageSize[1], cfg.imageSize[0]]),
    keptIndex: g.input('keptIndex', ['kept'], 'int32'),
    ...(cfg.heal ? { keptPixel: g.input('keptPixel', ['kept'], 'int32') } : {}),
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
  if (cfg.kind === 'torchvision-resnet') {
    let t = convBn(g, images, { name: `${prefix}.stem`, out: cfg.stem.channels, kernel: 7, stride: 2, batchNorm: true, relu: true });
    t = g.maxPool(t, 3, 2, `${prefix}.stem.pool`, 1);
    cfg.stages.forEach((stage, s) => {
      for (let b = 0; b < stage.blocks; b++) {
        // widthPerGroup 16 with one group: inner width = channels/4 (expansion 4).
        const o = { name: `${prefix}.stage${s}.block${b}`, out: stage.channels, stride: b === 0 ? stage.stride : 1, groups: 1, widthPerGroup: 16 };
        t = bottleneck(g, t, { ...o, batchNorm: true });
      }
    });
    return t;
  }
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
  const { depth, context, fH, fW } = addDepthContext(g, images, cfg, prefix);
  const D = cfg.depthBins.count;
  const C = cfg.contextChannels;
  const d5 = g.reshape(depth, [0, D, fH, fW, 1], `${prefix}.depth5`);
  const c5 = g.reshape(g.transpose(context, [0, 2, 3, 1], `${prefix}.context_nhwc`), [0, 1, fH, fW, C], `${prefix}.context5`);
  const frustum = g.mul(d5, c5, `${prefix}.frustum`); // [N, D, fH, fW, C]
  return { points: g.reshape(frustum, [-1, C], `${prefix}.points`), depth };
}

/** Image backbone and the two 1×1 heads: depth distribution [N, D, fH, fW] (softmax) and context [N, C, fH, fW]. */
export function addDepthContext(
  g: GraphBuilder,
  images: TensorRef,
  cfg: LssConfig,
  prefix: string,
): { depth: TensorRef; context: TensorRef; fH: number; fW: number } {
  const feats = addImageBackbone(g, images, cfg.imageBackbone, `${prefix}.image`);
  const [, , fh, fw] = feats.shape;
  const [W, H] = cfg.imageSize;
  if (fh !== H / cfg.downsample || fw !== W / cfg.downsample) {
    throw new Error(`${prefix}: image backbone gives a ${fw}×${fh} map from ${W}×${H}, expected stride ${cfg.downsample}`);
  }
  const depth = g.softmax(g.conv2d(feats, { name: `${prefix}.depth`, out: cfg.depthBins.count, kernel: 1 }), 1, `${prefix}.depth_prob`);
  const context = g.conv2d(feats, { name: `${prefix}.context`, out: cfg.contextChannels, kernel: 1 });
  return { depth, context, fH: fh as number, fW: fw as number };
}

/**
 * HEAL's lift, only for the kept points: depth_prob[point] · context[pixel] for each kept point,
 * [kept, C] in keptIndex's order (the same float32 products as the full outer product).
 */
export function addKeptLift(g: GraphBuilder, images: TensorRef, idx: LssInputs, cfg: LssConfig, prefix: string): { kept: TensorRef; depth: TensorRef } {
  if (!idx.keptPixel) throw new Error(`${prefix}: HEAL's lift needs the keptPixel input`);
  const { depth, context } = addDepthContext(g, images, cfg, prefix);
  const C = cfg.contextChannels;
  const probs = g.gather(g.reshape(depth, [-1, 1], `${prefix}.depth_points`), idx.keptIndex, 0, `${prefix}.kept_depth`);
  const pixels = g.reshape(g.transpose(context, [0, 2, 3, 1], `${prefix}.context_nhwc`), [-1, C], `${prefix}.context_pixels`);
  return { kept: g.mul(probs, g.gather(pixels, idx.keptPixel, 0, `${prefix}.kept_context`), `${prefix}.kept`), depth };
}

/**
 * Splat: frustum features [points, C] → [1, C, H', W'] by the cumsum trick. With S the running
 * sum over the sorted kept points, a cell's sum is S[end] − S[start − 1]; reading S[start − 1]
 * as row `start` of [0; S] gives the previous segment's last value, and 0 for the first segment.
 */
export function addSplat(g: GraphBuilder, points: TensorRef, idx: Omit<LssInputs, 'images'>, grid: [number, number], prefix: string): TensorRef {
  return addCellSums(g, g.gather(points, idx.keptIndex, 0, `${prefix}.sorted`), idx, grid, prefix);
}

/**
 * The cumsum trick on features already in keptIndex's order [kept, C] → [1, C, H', W'].
 * `accumulate: 'float64'` is torch's CPU cumsum (HEAL): float32 cumsums over 10⁵ points are off by ~1e-1.
 */
export function addCellSums(
  g: GraphBuilder,
  sorted: TensorRef,
  idx: Omit<LssInputs, 'images'>,
  grid: [number, number],
  prefix: string,
  accumulate?: 'float64',
): TensorRef {
  const [w, h] = grid;
  const c = sorted.shape[1];
  if (typeof c !== 'number') throw new Error(`${prefix}: frustum features need a fixed channel count, got [${sorted.shape}]`);
  const zero = g.constant(`${prefix}.zero_row`, [1, c], new Array<number>(c).fill(0));
  const running = g.cumsum(sorted, 0, `${prefix}.cumsum`, accumulate);
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
export function addLss(
  g: GraphBuilder,
  inputs: LssInputs,
  cfg: LssConfig,
  space: SharedSpace,
  prefix: string,
): { bev: TensorRef; depth: TensorRef; splat?: TensorRef } {
  checkLssConfig(cfg, prefix);
  if (cfg.heal) {
    const { kept, depth } = addKeptLift(g, inputs.images, inputs, cfg, prefix);
    const splat = addCellSums(g, kept, inputs, healGridSize(cfg.heal.grid), `${prefix}.splat`, 'float64');
    // HEAL's ResNetBEVBackbone of one level: parameters encoder.<type>.backbone.level0.*, as the LiDAR types'.
    const levels = backboneLevels(
      g,
      splat,
      {
        inChannels: cfg.contextChannels,
        layerNums: [cfg.bev.blocks],
        layerStrides: [cfg.bev.stride ?? 1],
        numFilters: [cfg.bev.channels],
        upsampleStrides: [],
        numUpsampleFilters: [],
        batchNorm: true,
      },
      `${prefix}.backbone`,
    );
    return { bev: levels[0], depth, splat };
  }
  const { points, depth } = addLift(g, inputs.images, cfg, prefix);
  let y = addSplat(g, points, inputs, featureGrid(space), `${prefix}.splat`);
  for (let b = 0; b < cfg.bev.blocks; b++) y = basicBlock(g, y, { name: `${prefix}.bev.block${b}`, out: cfg.bev.channels, stride: 1, batchNorm: true });
  return { bev: y, depth };
}

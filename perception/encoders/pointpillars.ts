// PointPillars LiDAR encoder (the structure of PointPillars / HEAL's point_pillar encoder):
//   pillar feature net (PFN): every point's 10 decorated features → linear (no bias) → batch norm
//     → ReLU, then a max over the 32 slots of each pillar (see PfnPadding for the padded slots);
//   scatter: the [P, C] pillar features onto the pillar grid by a gather on cellToPillar, whose
//     empty cells point at one appended zero row (perception/pillars.ts);
//   BEV backbone: levels of ResNet basic blocks whose strides bring the pillar grid down to the
//     shared feature grid, so types with different pillar sizes all emit [1, C, H', W'].
// Preprocessing (pillarize) lives in perception/pillars.ts; pillarConfigOf gives its settings.

import type { GraphBuilder, TensorRef } from '../../models/graph.ts';
import { DataError } from '../../datasets/io.ts';
import { POINT_FEATURES, type PillarConfig } from '../pillars.ts';
import { featureGrid, type SharedSpace } from '../space.ts';
import { backboneLevels, decodeLevels, type BackboneConfig } from '../../models/layers/backbone.ts';

export interface PointPillarsConfig {
  /**
   * 'pointpillars': one level of basic blocks down to the feature grid (m1, m3). 'pillar-fpn'
   * (m5): several levels, each upsampled back to the feature grid by the neck and concatenated
   * (the multi-scale RPN of the PointPillars paper), so the encoder sees context at twice the
   * stride.
   */
  arch: 'pointpillars' | 'pillar-fpn';
  /** Pillar size [x, y] in meters; a pillar spans the space's whole z range. */
  pillarSize: [number, number];
  /** Points kept per pillar (OpenCOOD max_points_per_voxel). */
  maxPointsPerPillar: number;
  /** Pillars kept per cloud (OpenCOOD max_voxel_test); the graph takes any number up to it. */
  maxPillars: number;
  /** Drop points on the vehicle's own body (never for roadside units, which have none). */
  maskEgo: boolean;
  /** Width of the pillar feature net. */
  pfnChannels: number;
  /** How padded point slots enter the PFN's max; default 'zero-points' (HEAL's). */
  pfnPadding?: PfnPadding;
  /**
   * BEV backbone on the pillar grid: levels of basic blocks, each starting with a block of that
   * level's stride. The strides must multiply to (pillar grid) / (feature grid). The last
   * level's numFilters is the encoder's output width.
   */
  backbone: { layerNums: number[]; layerStrides: number[]; numFilters: number[] };
  /** 'pillar-fpn' only: per level, the upsampling factor and width of its deblock; the output is their concatenation. */
  neck?: { upsampleStrides: number[]; numUpsampleFilters: number[] };
}

/** The preprocessing settings of anything that reads pillars (a PointPillars encoder, or a black box fed pillars). */
export type PillarSettings = Pick<PointPillarsConfig, 'pillarSize' | 'maxPointsPerPillar' | 'maxPillars' | 'maskEgo'>;

/** Whether an encoder arch reads pillars (perception/pillars.ts). */
export function isPillarArch(arch: unknown): arch is PointPillarsConfig['arch'] {
  return arch === 'pointpillars' || arch === 'pillar-fpn';
}

/**
 * 'zero-points' (HEAL's PillarVFE): a padded slot is an all-zero point; it goes through the linear,
 * batch norm and ReLU like a real one, and the constant it becomes takes part in the max.
 * 'masked-after-relu': padded slots are zeroed after the ReLU, so only real points count. Only the
 * small profile's shipped weights use it (they were trained so); that profile moves to
 * 'zero-points' when it is retrained.
 */
export type PfnPadding = 'zero-points' | 'masked-after-relu';

/** The graph inputs of a PointPillars encoder. */
export interface PointPillarsInputs {
  /** [pillars, maxPointsPerPillar, 10] decorated point features. */
  features: TensorRef;
  /** [pillars, maxPointsPerPillar], 1 for a real point. */
  mask: TensorRef;
  /** [Hp·Wp] int32, pillar of each grid cell, or `pillars` for an empty one. */
  cellToPillar: TensorRef;
}

/** Pillar grid [W, H] of a config in a space (columns along x, rows along y). */
export function pillarGridOf(cfg: Pick<PointPillarsConfig, 'pillarSize'>, space: SharedSpace): [number, number] {
  const [xmin, ymin, , xmax, ymax] = space.range;
  return [Math.round((xmax - xmin) / cfg.pillarSize[0]), Math.round((ymax - ymin) / cfg.pillarSize[1])];
}

/** Stride from the pillar grid to the shared feature grid. */
export function pillarStride(cfg: PointPillarsConfig, space: SharedSpace): number {
  const [wp] = pillarGridOf(cfg, space);
  const [wf] = featureGrid(space);
  return wp / wf;
}

/** Settings for perception/pillars.ts pillarize. */
export function pillarConfigOf(cfg: PillarSettings, space: SharedSpace, opts: { maskEgo?: boolean } = {}): PillarConfig {
  const [, , zmin, , , zmax] = space.range;
  return {
    range: space.range,
    voxel: [cfg.pillarSize[0], cfg.pillarSize[1], zmax - zmin],
    maxPointsPerPillar: cfg.maxPointsPerPillar,
    maxPillars: cfg.maxPillars,
    maskEgo: opts.maskEgo ?? cfg.maskEgo,
    binning: space.points.binning,
  };
}

export function pointPillarsOutChannels(cfg: PointPillarsConfig): number {
  if (cfg.neck) return cfg.neck.numUpsampleFilters.reduce((a, b) => a + b, 0);
  return cfg.backbone.numFilters[cfg.backbone.numFilters.length - 1];
}

const isPosInt = (v: unknown): v is number => Number.isInteger(v) && (v as number) > 0;
const isIntList = (v: unknown): v is number[] => Array.isArray(v) && v.length > 0 && v.every(isPosInt);

type Need = (ok: boolean, field: string, detail: string, value: unknown) => void;

/** The pillar inputs' fields, shared by PointPillars and by black-box encoders fed the same inputs (external.ts). */
export function checkPillarInputs(cfg: Pick<PointPillarsConfig, 'pillarSize' | 'maxPointsPerPillar' | 'maxPillars' | 'maskEgo'>, need: Need): void {
  const ps = cfg.pillarSize;
  need(
    Array.isArray(ps) && ps.length === 2 && ps.every((v) => typeof v === 'number' && v > 0 && Number.isFinite(v)),
    'pillarSize',
    'must be two positive numbers [x, y] in meters',
    ps,
  );
  need(isPosInt(cfg.maxPointsPerPillar), 'maxPointsPerPillar', 'must be a positive integer', cfg.maxPointsPerPillar);
  need(isPosInt(cfg.maxPillars), 'maxPillars', 'must be a positive integer', cfg.maxPillars);
  need(typeof cfg.maskEgo === 'boolean', 'maskEgo', 'must be true or false', cfg.maskEgo);
}

/** Checks a (possibly hand-written JSON) config against the space; errors name `source` and the field. */
export function checkPointPillarsConfig(cfg: PointPillarsConfig, space: SharedSpace, source: string, field = 'encoder'): void {
  const need: Need = (ok, f, detail, value) => {
    if (!ok) throw new DataError(source, `${field}.${f}`, detail, value);
  };
  checkPillarInputs(cfg, need);
  need(isPosInt(cfg.pfnChannels), 'pfnChannels', 'must be a positive integer', cfg.pfnChannels);
  need(
    cfg.pfnPadding === undefined || cfg.pfnPadding === 'zero-points' || cfg.pfnPadding === 'masked-after-relu',
    'pfnPadding',
    'must be "zero-points" (HEAL) or "masked-after-relu"',
    cfg.pfnPadding,
  );
  const bb = cfg.backbone;
  need(typeof bb === 'object' && bb !== null, 'backbone', 'must be an object {layerNums, layerStrides, numFilters}', bb);
  need(isIntList(bb.layerNums), 'backbone.layerNums', 'must be a non-empty list of positive integers', bb.layerNums);
  need(
    isIntList(bb.layerStrides) && bb.layerStrides.length === bb.layerNums.length,
    'backbone.layerStrides',
    `must be ${bb.layerNums.length} positive integers (one per level)`,
    bb.layerStrides,
  );
  need(
    isIntList(bb.numFilters) && bb.numFilters.length === bb.layerNums.length,
    'backbone.numFilters',
    `must be ${bb.layerNums.length} positive integers (one per level)`,
    bb.numFilters,
  );
  // The pillar grid must shrink to the feature grid exactly, on both axes.
  const ps = cfg.pillarSize;
  const [wp, hp] = pillarGridOf(cfg, space);
  const [wf, hf] = featureGrid(space);
  const [xmin, ymin, , xmax, ymax] = space.range;
  const exact = Math.abs(wp * ps[0] - (xmax - xmin)) < 1e-6 && Math.abs(hp * ps[1] - (ymax - ymin)) < 1e-6;
  need(exact, 'pillarSize', `must divide the space "${space.name}" extent ${(xmax - xmin).toFixed(2)} × ${(ymax - ymin).toFixed(2)} m`, ps);
  const s = wp / wf;
  need(
    Number.isInteger(s) && hp / hf === s,
    'pillarSize',
    `gives a ${wp}×${hp} pillar grid, not a whole multiple of the ${wf}×${hf} feature grid of space "${space.name}"`,
    ps,
  );
  if (cfg.arch === 'pillar-fpn') {
    const neck = cfg.neck;
    need(typeof neck === 'object' && neck !== null, 'neck', "a 'pillar-fpn' encoder needs {upsampleStrides, numUpsampleFilters}", neck);
    const n = bb.layerNums.length;
    need(
      isIntList(neck!.upsampleStrides) && neck!.upsampleStrides.length === n,
      'neck.upsampleStrides',
      `must be ${n} positive integers`,
      neck!.upsampleStrides,
    );
    need(
      isIntList(neck!.numUpsampleFilters) && neck!.numUpsampleFilters.length === n,
      'neck.numUpsampleFilters',
      `must be ${n} positive integers`,
      neck!.numUpsampleFilters,
    );
    // Every level, after its deblock, must land on the feature grid.
    let down = 1;
    bb.layerStrides.forEach((st, i) => {
      down *= st;
      need(
        down === s * neck!.upsampleStrides[i],
        'neck.upsampleStrides',
        `level ${i} is at stride ${down}: its deblock must bring it to stride ${s}`,
        neck!.upsampleStrides,
      );
    });
    return;
  }
  need(cfg.neck === undefined, 'neck', "only a 'pillar-fpn' encoder has a neck", cfg.neck);
  const product = bb.layerStrides.reduce((a, b) => a * b, 1);
  need(
    product === s,
    'backbone.layerStrides',
    `multiply to ${product}, but the ${wp}×${hp} pillar grid needs stride ${s} to reach the ${wf}×${hf} feature grid`,
    bb.layerStrides,
  );
}

/** Graph inputs named "features", "mask", "cellToPillar". */
export function pointPillarsInputs(g: GraphBuilder, cfg: PointPillarsConfig, space: SharedSpace): PointPillarsInputs {
  const [wp, hp] = pillarGridOf(cfg, space);
  const n = cfg.maxPointsPerPillar;
  return {
    features: g.input('features', ['pillars', n, POINT_FEATURES]),
    mask: g.input('mask', ['pillars', n]),
    cellToPillar: g.input('cellToPillar', [hp * wp], 'int32'),
  };
}

/** PFN: [P, N, 10] points → [P, C] pillar features (max over the pillar's slots, see PfnPadding). */
export function addPillarFeatureNet(
  g: GraphBuilder,
  features: TensorRef,
  mask: TensorRef,
  channels: number,
  prefix: string,
  padding: PfnPadding = 'zero-points',
): TensorRef {
  const slotMask = () => g.reshape(mask, [0, 0, 1], `${prefix}.mask`);
  // HEAL multiplies the decorated features by the slot mask, so whatever a padded slot holds it is a zero point.
  const x = padding === 'zero-points' ? g.mul(features, slotMask(), `${prefix}.masked_points`) : features;
  let y = g.linear(x, { name: `${prefix}.linear`, out: channels, bias: false });
  y = g.relu(g.batchNorm(y, { name: `${prefix}.bn`, axis: -1, epsilon: 1e-3, momentum: 0.01 }));
  // After the ReLU every feature is ≥ 0, so zeroing padded slots leaves the max of the real points.
  if (padding === 'masked-after-relu') y = g.mul(y, slotMask());
  return g.reduceMax(y, 1, false, `${prefix}.max`);
}

/** Scatter: [P, C] pillar features → [1, C, H, W] grid, via gather on cellToPillar (P = empty). */
export function addPillarScatter(g: GraphBuilder, pillars: TensorRef, cellToPillar: TensorRef, grid: [number, number], prefix: string): TensorRef {
  const [w, h] = grid;
  const c = pillars.shape[1];
  if (typeof c !== 'number') throw new Error(`${prefix}: pillar features need a fixed channel count, got [${pillars.shape}]`);
  const zero = g.constant(`${prefix}.zero_row`, [1, c], new Array<number>(c).fill(0));
  const rows = g.gather(g.concat([pillars, zero], 0, `${prefix}.rows`), cellToPillar, 0, `${prefix}.gather`);
  return g.transpose(g.reshape(rows, [1, h, w, c], `${prefix}.nhwc`), [0, 3, 1, 2], `${prefix}.nchw`);
}

/** The whole encoder: inputs → [1, C_enc, H', W'] on the shared feature grid. */
export function addPointPillars(g: GraphBuilder, inputs: PointPillarsInputs, cfg: PointPillarsConfig, space: SharedSpace, prefix: string): TensorRef {
  checkPointPillarsConfig(cfg, space, prefix);
  const pillars = addPillarFeatureNet(g, inputs.features, inputs.mask, cfg.pfnChannels, `${prefix}.pfn`, cfg.pfnPadding);
  const bev = addPillarScatter(g, pillars, inputs.cellToPillar, pillarGridOf(cfg, space), `${prefix}.scatter`);
  const neck = cfg.neck ?? { upsampleStrides: [], numUpsampleFilters: [] };
  const bb: BackboneConfig = { inChannels: cfg.pfnChannels, ...cfg.backbone, ...neck, batchNorm: true, block: 'basic' };
  const levels = backboneLevels(g, bev, bb, `${prefix}.backbone`);
  if (cfg.neck) return decodeLevels(g, levels, bb, `${prefix}.neck`);
  return levels[levels.length - 1];
}

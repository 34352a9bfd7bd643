// Tiny networks for tests that train or differentiate: small enough for seconds on a 2-core CPU.
import type { AgentNetworkConfig } from '../../perception/encoders/agent.ts';
import { HEAL_SPACE, type SharedSpace } from '../../perception/space.ts';

/** HEAL's per-level pyramid family (bottlenecks, DoubleConv shrink) on a ±12.8 m grid with 8 channels. */
export function tinyPerLevelSpace(layerNums: number[]): SharedSpace {
  return {
    ...HEAL_SPACE,
    name: 'tiny',
    range: [-12.8, -12.8, -3, 12.8, 12.8, 1],
    trainRange: [-12.8, -6.4, -3, 12.8, 6.4, 1],
    voxel: [0.8, 0.8, 4],
    featureStride: 2,
    channels: 8,
    fusion: {
      backbone: {
        inChannels: 8,
        layerNums,
        layerStrides: [1, 2],
        numFilters: [8, 16],
        upsampleStrides: [1, 2],
        numUpsampleFilters: [8, 8],
        batchNorm: true,
        block: 'bottleneck',
        groups: 4,
        widthPerGroup: 16,
      },
      shrinkChannels: 8,
      shrink: 'double-conv',
      warp: 'per-level',
    },
  };
}

/** A LiDAR type on a tiny space: 0.8 m pillars, 8 channels, one stride-2 level; `alignerBlocks` 0 is the identity. */
export function tinyLidar(type: string, alignerBlocks: number): AgentNetworkConfig {
  return {
    type,
    encoder: {
      arch: 'pointpillars',
      pillarSize: [0.8, 0.8],
      maxPointsPerPillar: 16,
      maxPillars: 12000,
      maskEgo: true,
      pfnChannels: 8,
      backbone: { layerNums: [1], layerStrides: [2], numFilters: [8] },
    },
    aligner: { inChannels: 8, channels: 8, blocks: alignerBlocks, batchNorm: true },
  };
}

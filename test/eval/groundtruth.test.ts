import { describe, expect, it } from 'vitest';
import type { Dataset, FrameRef } from '../../datasets/dataset.ts';
import type { AgentFrame, GtBox } from '../../datasets/frame.ts';
import type { Box7 } from '../../datasets/geometry/boxes.ts';
import { egoGroundTruth } from '../../eval/groundtruth.ts';
import { HEAL_SPACE } from '../../perception/space.ts';

const identity = Float64Array.from([1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]);

// Six agents at the same place; agent k sees one object of id 100 + k. Boxes are [x,y,z,h,w,l,yaw].
const objectOf: Record<number, Box7> = {
  1: [10, 0, -1, 1.5, 1.8, 4.5, 0], // well inside
  2: [101.5, 0, -1, 1.5, 1.8, 4.5, 0], // centre inside, front corners beyond x = 102.4
  3: [20, 5, -0.2, 3.2, 2.5, 11, 0], // a bus: top at 1.4 m, above z = 1
  4: [30, -5, -1, 1.5, 1.8, 4.5, 0.3],
  5: [40, 8, -1, 1.5, 1.8, 4.5, 0],
  6: [50, 8, -1, 1.5, 1.8, 4.5, 0], // seen only by the sixth agent: beyond HEAL's max_cav
};

function fakeDataset(ref: FrameRef): Dataset {
  return {
    cooperativeBoxes: async (_ref: FrameRef, egoId: number, opts?: { agentIds?: number[] }) => {
      const ids = opts?.agentIds ?? ref.agentIds;
      const out: GtBox[] = [];
      for (const id of [egoId, ...ids.filter((a) => a !== egoId)]) out.push({ id: 100 + id, box: objectOf[id] });
      return out;
    },
  } as unknown as Dataset;
}

const ref: FrameRef = { split: 'test', scenario: 's', timestamp: '000000', agentIds: [1, 2, 3, 4, 5, 6] };
const ego: AgentFrame = {
  dataset: 'opv2v',
  scenario: 's',
  timestamp: '000000',
  agentId: 1,
  kind: 'vehicle',
  lidarPose: identity,
  points: new Float32Array(0),
  lidarFile: '000000.pcd',
  cameras: [],
  boxes: [],
};

describe('egoGroundTruth', () => {
  it("follows HEAL in the heal profile: all 8 corners in range, z included, and only the first max_cav agents' objects", async () => {
    const ids = (await egoGroundTruth(fakeDataset(ref), ref, ego, HEAL_SPACE)).map((b) => b.id);
    expect(ids).toEqual([101, 104, 105]);
  });

  it("keeps boxes whose centre lies in the x/y range under the 'centre' rule, and every agent's without a cap", async () => {
    const space = { ...HEAL_SPACE, groundTruth: 'centre' as const, maxAgents: undefined };
    const ids = (await egoGroundTruth(fakeDataset(ref), ref, ego, space)).map((b) => b.id);
    expect(ids).toEqual([101, 102, 103, 104, 105, 106]);
  });
});

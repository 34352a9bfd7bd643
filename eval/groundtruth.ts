// The ground truth a detection is scored against: cooperative boxes (objects seen by any agent
// within communication range of the ego, among the first maxAgents agents of the frame as the
// pipeline fuses them), in the ego's ground-aligned LiDAR frame, inside the shared space's range
// by the profile's rule (all 8 corners with z, as HEAL; or the centre in x/y). That is the frame and the area the pipeline's
// detections live in, so evaluation, training targets and the viewer all use this one function.

import type { AgentFrame, GtBox } from '../datasets/frame.ts';
import type { Dataset, FrameRef } from '../datasets/dataset.ts';
import type { SharedSpace } from '../perception/space.ts';
import { alignToGround } from '../perception/ground.ts';
import { invert, multiply, type Mat4 } from '../datasets/geometry/transforms.ts';
import { boxToCorners, cornersInRange, cornersToBox, transformCorners, type Box7 } from '../datasets/geometry/boxes.ts';

export interface GroundTruthOptions {
  /**
   * Applied to each box in the aligned ego frame before the range test (training augmentation
   * moves boxes in or out of range, so it must come first).
   */
  transform?: (box: Box7) => Box7;
}

function transformBox(box: ArrayLike<number>, m: Mat4): Box7 {
  return cornersToBox(transformCorners(m, boxToCorners(box)));
}

/**
 * `rawEgo` is the ego's frame as the dataset reader returned it (not yet ground-aligned): the
 * readers give cooperative boxes in that raw LiDAR frame, and alignToGround tells how the
 * encoders' frame differs from it.
 */
export async function egoGroundTruth(ds: Dataset, ref: FrameRef, rawEgo: AgentFrame, space: SharedSpace, opts: GroundTruthOptions = {}): Promise<GtBox[]> {
  const aligned = alignToGround(rawEgo, space);
  const alignedFromRaw = multiply(invert(aligned.lidarPose), rawEgo.lidarPose);
  const ego = rawEgo.agentId;
  // The same agents, in the same order, as the pipeline hears (fusion/pipeline.ts partners).
  const agentIds = space.maxAgents === undefined ? undefined : [ego, ...ref.agentIds.filter((a) => a !== ego)].slice(0, space.maxAgents);
  const coop = await ds.cooperativeBoxes(ref, ego, { commRange: space.commRange, agentIds });
  const r = space.range;
  const inRange =
    space.groundTruth === 'corners'
      ? (box: Box7) => cornersInRange(boxToCorners(box), r)
      : (box: Box7) => box[0] >= r[0] && box[0] <= r[3] && box[1] >= r[1] && box[1] <= r[4];
  const out: GtBox[] = [];
  for (const b of coop) {
    let box = transformBox(b.box, alignedFromRaw);
    if (opts.transform) box = opts.transform(box);
    if (inRange(box)) out.push({ ...b, box });
  }
  return out;
}

// The whole collaborative pass on a generated scene with all four agent types mixed: sensors →
// encoders → protobuf messages → warp → pyramid fusion → head → boxes in the ego frame. Weights are
// seeded random, so the boxes mean nothing; what is checked is that every stage runs and behaves.

import { describe, it, expect, beforeAll } from 'vitest';
import { WORLD_TIMEOUT_MS, testSplit } from '../helpers/world.ts';
import { openDataset } from '../../datasets/open.ts';
import type { Dataset, FrameRef } from '../../datasets/dataset.ts';
import { loadRegistry, type Registry } from '../../perception/registry.ts';
import { HEAL_SPACE, SMALL_SPACE, featureGrid } from '../../perception/space.ts';
import { CollabPipeline, type AgentInput } from '../../fusion/pipeline.ts';
import { decodeMessage, encodeMessage, gridForSpace } from '../../fusion/messages.ts';
import { alignToGround, groundAlignedPose } from '../../perception/ground.ts';
import { webgpuMissingReason } from '../../models/runtime.ts';
import { cornersInRange, boxToCorners } from '../../datasets/geometry/boxes.ts';
import { parseCodec } from '../../fusion/codec-spec.ts';

// The shared world's train scenario has three connected vehicles and a roadside unit.
let ds: Dataset;
let ref: FrameRef;
let registry: Registry;
let agents: AgentInput[];
let pipeline: CollabPipeline;
const TYPES = ['m1', 'm2', 'm3', 'm4'];

beforeAll(async () => {
  ds = await openDataset(await testSplit('train'));
  ref = ds.frames()[0];
  registry = await loadRegistry();
  agents = [];
  for (const [i, id] of ref.agentIds.entries()) {
    const type = registry.get(TYPES[i % 4]);
    agents.push({ frame: await ds.readAgentFrame(ref, id, { lidar: type.sensor.lidar ?? 64, images: type.modality === 'camera' }), type: type.name });
  }
  pipeline = await CollabPipeline.create({ space: SMALL_SPACE, registry, device: 'cpu', seed: 3 });
}, WORLD_TIMEOUT_MS);

describe('collaborative pass (random weights)', () => {
  it('runs all four agent types mixed and returns boxes in the ego frame', async () => {
    expect(ref.agentIds.length).toBeGreaterThanOrEqual(4);
    const egoId = ref.agentIds[0];
    const r = await pipeline.runFrame(agents, egoId, { mode: 'intermediate', dtype: 'float16', scoreThreshold: 0.005 });
    expect(r.provider).toBe('cpu');
    expect(new Set(r.used.map((u) => u.type))).toEqual(new Set(TYPES));
    expect(r.used[0].id).toBe(egoId);
    expect(r.skipped.filter((s) => s.reason.startsWith('rejected'))).toEqual([]);
    // Every message is a float16 [32, 64, 64] map plus a small header.
    const [W, H] = featureGrid(SMALL_SPACE);
    for (const m of r.messageBytes) {
      expect(m.bytes).toBeGreaterThan(SMALL_SPACE.channels * W * H * 2);
      expect(m.bytes).toBeLessThan(SMALL_SPACE.channels * W * H * 2 + 1024);
    }
    // The detection head's prior (sigmoid ≈ 0.01) passes a 0.005 threshold: NMS thins the anchors.
    expect(r.detections.length).toBeGreaterThan(0);
    for (const d of r.detections) {
      expect(d.box.every(Number.isFinite)).toBe(true);
      expect(cornersInRange(boxToCorners(d.box), SMALL_SPACE.range)).toBe(true);
    }
    for (let i = 1; i < r.detections.length; i++) expect(r.detections[i].score).toBeLessThanOrEqual(r.detections[i - 1].score);
    // Per-level foreground maps for every agent used.
    expect(r.occupancy.length).toBe(3);
    expect(r.occupancy[0].shape).toEqual([r.used.length, 1, H, W]);
    for (const stage of ['serialize', 'deserialize', 'warp+fuse+head', 'decode+nms', 'encode.m1', 'encode.m2', 'encode.m3', 'encode.m4']) {
      expect(r.times[stage], stage).toBeGreaterThan(0);
    }
  });

  it('late fusion and no fusion run through the same code', async () => {
    const egoId = ref.agentIds[0];
    const none = await pipeline.runFrame(agents, egoId, { mode: 'none', scoreThreshold: 0.005 });
    expect(none.used).toEqual([{ id: egoId, type: 'm1' }]);
    expect(none.messageBytes).toEqual([]);
    const late = await pipeline.runFrame(agents, egoId, { mode: 'late', scoreThreshold: 0.005 });
    expect(late.used.length).toBe(ref.agentIds.length);
    // Box-only messages are far smaller than feature maps.
    for (const m of late.messageBytes) expect(m.bytes).toBeLessThan(64 * 1024);
    expect(late.detections.length).toBeGreaterThanOrEqual(none.detections.length);
    // Partners' boxes outside the ego's range are dropped, as the ego's own are when decoded.
    for (const d of late.detections) expect(cornersInRange(boxToCorners(d.box), SMALL_SPACE.range)).toBe(true);
  });

  it("late fusion drops a partner's box on the ego's own body, and keeps one beside it", async () => {
    const ego = agents[0];
    const egoPose = groundAlignedPose(ego.frame, SMALL_SPACE);
    // A partner standing where the ego is, reporting a car on the ego (0, 0) and one 10 m ahead.
    const msg = encodeMessage(
      {
        agentId: '999',
        agentType: 'm1',
        timestamp: ego.frame.timestamp,
        sequence: 0,
        pose: egoPose,
        grid: gridForSpace(SMALL_SPACE),
        detections: { boxes: Float32Array.from([0.3, 0, -1, 1.5, 1.8, 4.5, 0, 10, 0, -1, 1.5, 1.8, 4.5, 0]), scores: Float32Array.from([0.99, 0.98]) },
      },
      { dtype: 'float32' },
    );
    const r = await pipeline.egoPass(ego, [msg], { mode: 'late', scoreThreshold: 0.9 });
    const near = (x: number) => r.detections.filter((d) => Math.hypot(d.box[0] - x, d.box[1]) < 0.5 && d.score >= 0.98);
    expect(near(10).length).toBe(1);
    expect(near(0.3)).toEqual([]);
  });

  it('a codec and a channel go through runFrame: occupancy top-k cells, and the channel decides what arrives', async () => {
    const egoId = ref.agentIds[0];
    const r = await pipeline.runFrame(agents, egoId, {
      mode: 'intermediate',
      codec: parseCodec('int4+top50+deflate'),
      channel: (sent) => ({ received: sent.slice(0, 1).map((m) => m.bytes), skipped: sent.slice(1).map((m) => ({ id: m.id, reason: 'link: lost' })) }),
    });
    // int4 of 50 cells × 32 channels = 800 B before deflate, plus the header.
    for (const m of r.messageBytes) expect(m.bytes).toBeLessThan(1300);
    expect(r.used.length).toBe(2);
    expect(r.skipped.filter((s) => s.reason === 'link: lost').length).toBe(ref.agentIds.length - 2);
    expect(r.times.occupancy).toBeGreaterThan(0);
  });

  it('cells a sparse message did not send are left out of the fusion, not fused as zeros', async () => {
    const ego = agents[0];
    const [W, H] = featureGrid(SMALL_SPACE);
    const egoFeatures = await pipeline.encode(ego);
    const partner = await pipeline.encode(agents[1]);
    const pose = agents[1].frame.lidarPose;
    const alone = await pipeline.fuse([egoFeatures], [ego.frame.lidarPose]);
    // A partner that sent no cell at all changes nothing; the same zeros fused as features would.
    const nothing = new Float32Array(partner.length);
    const none = new Uint8Array(W * H);
    const skipped = await pipeline.fuse([egoFeatures, nothing], [ego.frame.lidarPose, pose], {}, [undefined, none]);
    const diluted = await pipeline.fuse([egoFeatures, nothing], [ego.frame.lidarPose, pose]);
    const diff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);
    const cls = (o: Record<string, { data: unknown }>) => o.cls.data as Float32Array;
    expect(diff(cls(skipped), cls(alone))).toBeLessThan(1e-5);
    expect(diff(cls(diluted), cls(alone))).toBeGreaterThan(1e-3);
    // Every other cell sent: the fusion differs from both the dense partner and no partner.
    const half = Uint8Array.from({ length: W * H }, (_, i) => (i + Math.floor(i / W)) % 2);
    const sparse = await pipeline.fuse([egoFeatures, partner], [ego.frame.lidarPose, pose], {}, [undefined, half]);
    const dense = await pipeline.fuse([egoFeatures, partner], [ego.frame.lidarPose, pose]);
    expect(diff(cls(sparse), cls(dense))).toBeGreaterThan(1e-4);
    expect(diff(cls(sparse), cls(alone))).toBeGreaterThan(1e-4);
    await expect(pipeline.fuse([egoFeatures, partner], [ego.frame.lidarPose, pose], {}, [undefined, new Uint8Array(3)])).rejects.toThrow(/3 entries/);
  });

  it('a sparse message with a fill is fused as the dense map it decodes to: the unsent cells hold the fill and count', async () => {
    const ego = agents[0];
    const partner = agents[1];
    const features = await pipeline.encode(partner);
    const pose = groundAlignedPose(partner.frame, SMALL_SPACE);
    const occupancy = await pipeline.occupancyOf(features, pose);
    const base = { agentId: '555', agentType: 'm1', timestamp: ref.timestamp, sequence: 1, pose, grid: gridForSpace(SMALL_SPACE) };
    const filled = encodeMessage({ ...base, features }, { dtype: 'float32', topK: 50, confidence: occupancy, fill: true });
    // Each its own sequence number: the ego's replay check remembers the ones before.
    const decoded = decodeMessage(filled);
    expect(decoded.fill?.length).toBe(SMALL_SPACE.channels);
    const dense = encodeMessage({ ...base, sequence: 2, features: decoded.features! }, { dtype: 'float32' });
    const holes = encodeMessage({ ...base, sequence: 3, features }, { dtype: 'float32', topK: 50, confidence: occupancy });
    const opts = { mode: 'intermediate', scoreThreshold: 0.005 } as const;
    const scores = async (m: Uint8Array) => (await pipeline.egoPass(ego, [m], opts)).detections.map((d) => d.score);
    const viaFill = await scores(filled);
    expect(viaFill).toEqual(await scores(dense));
    expect(viaFill).not.toEqual(await scores(holes));
  });

  it("a fusion trust scales an agent's weight: 0 leaves it out, equal trusts cancel, 1 is HEAL's rule", async () => {
    const ego = agents[0];
    const egoFeatures = await pipeline.encode(ego);
    const partner = await pipeline.encode(agents[1]);
    const poses = [ego.frame.lidarPose, agents[1].frame.lidarPose];
    const cls = (o: Record<string, { data: unknown }>) => o.cls.data as Float32Array;
    const diff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);
    const alone = cls(await pipeline.fuse([egoFeatures], [poses[0]]));
    const heal = cls(await pipeline.fuse([egoFeatures, partner], poses));
    expect(diff(cls(await pipeline.fuse([egoFeatures, partner], poses, {}, [], [1, 0])), alone)).toBeLessThan(1e-5);
    expect(diff(cls(await pipeline.fuse([egoFeatures, partner], poses, {}, [], [1, 1])), heal)).toBe(0);
    expect(diff(cls(await pipeline.fuse([egoFeatures, partner], poses, {}, [], [0.4, 0.4])), heal)).toBeLessThan(1e-4);
    const damped = cls(await pipeline.fuse([egoFeatures, partner], poses, {}, [], [1, 0.3]));
    expect(diff(damped, heal)).toBeGreaterThan(1e-3);
    expect(diff(damped, alone)).toBeGreaterThan(1e-3);

    // Through messages: a pipeline trusting m2 0 detects what the scene without its m2 agents gives.
    expect(pipeline.trust).toEqual({});
    const distrust = await CollabPipeline.create({ space: SMALL_SPACE, registry, device: 'cpu', seed: 3, trust: { m2: 0 } });
    expect(distrust.trustOf('m2')).toBe(0);
    expect(distrust.trustOf('m3')).toBe(1);
    const opts = { mode: 'intermediate', scoreThreshold: 0.005 } as const;
    const egoId = ref.agentIds[0];
    const withM2 = await distrust.runFrame(agents, egoId, opts);
    const withoutM2 = await pipeline.runFrame(
      agents.filter((a) => a.type !== 'm2'),
      egoId,
      opts,
    );
    expect(withM2.used.some((u) => u.type === 'm2')).toBe(true);
    expect(withM2.detections.length).toBeGreaterThan(0);
    expect(withM2.detections.length).toBe(withoutM2.detections.length);
    withM2.detections.forEach((d, i) => expect(Math.abs(d.score - withoutM2.detections[i].score)).toBeLessThan(1e-5));
    await expect(CollabPipeline.create({ space: SMALL_SPACE, registry, device: 'cpu', trust: { m9: 0.5 } })).rejects.toThrow(/unknown agent type "m9"/);
  });

  it('a message carries the pose of the ground-aligned frame its features and boxes are in', async () => {
    // A sender whose LiDAR sits 5 m up (a roadside mast): its frame is moved down 3.1 m for encoding.
    const mast: AgentInput = { ...agents[2], frame: { ...agents[2].frame, lidarHeight: 5 } };
    const raw = mast.frame.lidarPose;
    const aligned = groundAlignedPose(mast.frame, SMALL_SPACE);
    expect(Array.from(aligned)).toEqual(Array.from(alignToGround(mast.frame, SMALL_SPACE).lidarPose));
    // Its origin moves 3.1 m along the LiDAR's own z axis (third column of the rotation).
    for (const k of [3, 7, 11]) expect(aligned[k]).toBeCloseTo(raw[k] - 3.1 * raw[k - 1], 6);
    for (const mode of ['intermediate', 'late'] as const) {
      const msg = decodeMessage(await pipeline.send(mast, mode, 'float32', {}, undefined, 0.2));
      for (let k = 0; k < 16; k++) expect(msg.pose[k]).toBeCloseTo(aligned[k], 6);
    }
    expect(groundAlignedPose({ lidarPose: raw, lidarHeight: undefined }, SMALL_SPACE)).toBe(raw);
    // HEAL's profile keeps every frame where its LiDAR is.
    expect(groundAlignedPose(mast.frame, HEAL_SPACE)).toBe(raw);
  });

  it('rejects corrupted and hostile messages and still detects with the rest', async () => {
    const egoId = ref.agentIds[0];
    const [W, H] = featureGrid(SMALL_SPACE);
    const good = encodeMessage(
      {
        agentId: '77',
        agentType: 'm1',
        timestamp: ref.timestamp,
        sequence: 1,
        pose: agents[1].frame.lidarPose,
        grid: gridForSpace(SMALL_SPACE),
        features: new Float32Array(SMALL_SPACE.channels * W * H),
      },
      { dtype: 'float32' },
    );
    const truncated = good.subarray(0, good.length - 100);
    const random = new Uint8Array(5000).map((_, i) => (i * 2654435761) >>> 24);
    const nanFeatures = encodeMessage(
      {
        agentId: '78',
        agentType: 'm1',
        timestamp: ref.timestamp,
        sequence: 1,
        pose: agents[1].frame.lidarPose,
        grid: gridForSpace(SMALL_SPACE),
        features: new Float32Array(SMALL_SPACE.channels * W * H),
      },
      { dtype: 'float32' },
    );
    // Overwrite the last float of the feature payload with a NaN, after encoding (a hostile sender).
    new DataView(nanFeatures.buffer, nanFeatures.byteOffset).setFloat32(nanFeatures.length - 4, NaN, true);
    const spoofedEgo = encodeMessage(
      {
        agentId: String(egoId),
        agentType: 'm1',
        timestamp: ref.timestamp,
        sequence: 1,
        pose: agents[1].frame.lidarPose,
        grid: gridForSpace(SMALL_SPACE),
        features: new Float32Array(SMALL_SPACE.channels * W * H),
      },
      { dtype: 'float32' },
    );
    const r = await pipeline.runFrame(agents, egoId, { mode: 'intermediate', scoreThreshold: 0.005 }, [truncated, random, nanFeatures, spoofedEgo, good]);
    const rejected = r.skipped.filter((s) => s.reason.startsWith('rejected message'));
    expect(rejected.length).toBe(4);
    expect(rejected.some((s) => /finite|NaN/i.test(s.reason))).toBe(true);
    expect(rejected.some((s) => /ego/.test(s.reason))).toBe(true);
    // The valid extra message from agent 77 is fused along with the scene's agents.
    expect(r.used.map((u) => u.id)).toContain(77);
    expect(r.detections.length).toBeGreaterThan(0);
  });

  it('WebGPU gives the CPU numbers', async (ctx) => {
    const missing = await webgpuMissingReason();
    if (missing) {
      console.warn(`skipping the WebGPU comparison: ${missing}`);
      ctx.skip();
    }
    const gpu = await CollabPipeline.create({ space: SMALL_SPACE, registry, device: 'webgpu', seed: 3 });
    expect(gpu.provider).toBe('webgpu');
    const egoId = ref.agentIds[0];
    const a = await pipeline.runFrame(agents, egoId, { mode: 'intermediate', scoreThreshold: 0.005 });
    const b = await gpu.runFrame(agents, egoId, { mode: 'intermediate', scoreThreshold: 0.005 });
    expect(b.provider).toBe('webgpu');
    for (let l = 0; l < a.occupancy.length; l++) {
      const x = a.occupancy[l].data,
        y = b.occupancy[l].data;
      let maxDiff = 0;
      for (let i = 0; i < x.length; i++) maxDiff = Math.max(maxDiff, Math.abs(x[i] - y[i]));
      expect(maxDiff, `occupancy level ${l}`).toBeLessThan(1e-3);
    }
    expect(b.detections.length).toBe(a.detections.length);
    for (let i = 0; i < Math.min(20, a.detections.length); i++) expect(b.detections[i].score).toBeCloseTo(a.detections[i].score, 3);
  }, 300_000);
});

// The MCAP recording of `heal eval --mcap`: written with @mcap/core, read back with its indexed
// reader, and decoded with the FileDescriptorSet stored in the file, as Foxglove does.

import { SMALL_SPACE } from '../../perception/space.ts';
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import protobuf from 'protobufjs';
import descriptor from 'protobufjs/ext/descriptor/index.js';
import { McapIndexedReader } from '@mcap/core';
import { SceneRecorder, quaternionOf, type SceneFrame } from '../../eval/mcap.ts';
import type { AgentFrame } from '../../datasets/frame.ts';
import { poseToMatrix } from '../../datasets/geometry/transforms.ts';
import type { Box7 } from '../../datasets/geometry/boxes.ts';

let dir = '';
let file = '';
const FRAMES = 3;

function agent(id: number, pose: number[], points: number[][]): AgentFrame {
  return {
    dataset: 'opv2v',
    split: 'test',
    scenario: 's',
    timestamp: '000001',
    agentId: id,
    kind: id < 0 ? 'rsu' : 'vehicle',
    lidarPose: poseToMatrix(pose),
    lidarHeight: 1.9,
    points: Float32Array.from(points.flat()),
    lidarFile: 'x.pcd',
    cameras: [],
    boxes: [],
  };
}

function scene(i: number): SceneFrame {
  const gt: Box7[] = [
    [5, 0, -1, 1.5, 1.8, 4.5, 0.3],
    [-8, 3, -1, 1.5, 1.8, 4.5, 0],
  ];
  return {
    ref: { split: 'test', scenario: 's', timestamp: String(i).padStart(6, '0'), agentIds: [10, 20] },
    egoId: 10,
    space: SMALL_SPACE,
    agents: [
      {
        frame: agent(
          10,
          [100 + i, 50, 1.9, 0, 0, 0],
          [
            [1, 2, 0, 0.5],
            [3, 4, 0, 0.25],
          ],
        ),
        type: 'm1',
      },
      // Ten meters ahead of the ego, turned 90°: its point (1, 0, 0) is at (10, 1, 0) in the ego frame.
      { frame: agent(20, [110 + i, 50, 1.9, 0, 90, 0], [[1, 0, 0, 1]]), type: 'm3' },
    ],
    gt,
    detections: [
      { label: 'm1+m3 pyramid float32', boxes: [{ box: gt[0], score: 0.9, tp: true }] },
      { label: 'm1+m3 late', boxes: [] },
    ],
  };
}

function readable(buf: Uint8Array) {
  return {
    size: async () => BigInt(buf.length),
    read: async (offset: bigint, size: bigint) => buf.subarray(Number(offset), Number(offset + size)),
  };
}

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'heal-mcap-'));
  file = path.join(dir, 'out.mcap');
  const rec = await SceneRecorder.create(file, 1_700_000_000_000_000_000n);
  for (let i = 0; i < FRAMES; i++) await rec.addFrame(scene(i));
  const { messages } = await rec.close();
  // /tf, two clouds, /gt and two detection topics per frame.
  expect(messages).toBe(FRAMES * 6);
});

afterAll(async () => {
  if (dir) await fs.rm(dir, { recursive: true, force: true });
});

describe('MCAP export', () => {
  it('has the channels, Foxglove protobuf schemas and message counts', async () => {
    const reader = await McapIndexedReader.Initialize({ readable: readable(await fs.readFile(file)) });
    const topics = new Map([...reader.channelsById.values()].map((c) => [c.topic, c]));
    expect([...topics.keys()].sort()).toEqual(['/detections/m1-m3_late', '/detections/m1-m3_pyramid_float32', '/gt', '/points/cav1', '/points/ego', '/tf']);
    const schemaOf = (topic: string) => reader.schemasById.get(topics.get(topic)!.schemaId)!;
    expect(schemaOf('/tf').name).toBe('foxglove.FrameTransforms');
    expect(schemaOf('/points/ego').name).toBe('foxglove.PointCloud');
    expect(schemaOf('/gt').name).toBe('foxglove.SceneUpdate');
    for (const c of topics.values()) {
      expect(c.messageEncoding).toBe('protobuf');
      expect(reader.schemasById.get(c.schemaId)!.encoding).toBe('protobuf');
    }
    expect(reader.statistics?.messageCount).toBe(BigInt(FRAMES * 6));
    for (const [id, count] of reader.statistics!.channelMessageCounts) expect(count, reader.channelsById.get(id)!.topic).toBe(BigInt(FRAMES));
    let n = 0;
    for await (const m of reader.readMessages({ topics: ['/points/ego'] })) {
      expect(m.logTime).toBe(1_700_000_000_000_000_000n + BigInt(n) * 100_000_000n);
      n++;
    }
    expect(n).toBe(FRAMES);
  });

  it('decodes with the stored descriptors: points in the ego frame, boxes, transforms', async () => {
    const reader = await McapIndexedReader.Initialize({ readable: readable(await fs.readFile(file)) });
    const typeFor = (schemaId: number) => {
      const s = reader.schemasById.get(schemaId)!;
      const set = (descriptor as unknown as { FileDescriptorSet: protobuf.Type }).FileDescriptorSet.decode(s.data);
      return (protobuf.Root as unknown as { fromDescriptor(d: unknown): protobuf.Root }).fromDescriptor(set).lookupType(s.name);
    };
    const first = async (topic: string) => {
      for await (const m of reader.readMessages({ topics: [topic] })) {
        const channel = reader.channelsById.get(m.channelId)!;
        return typeFor(channel.schemaId).toObject(typeFor(channel.schemaId).decode(m.data), { longs: Number, defaults: true }) as Record<string, any>;
      }
      throw new Error(`no message on ${topic}`);
    };
    // The descriptors carry the .proto (snake_case) names Foxglove reads; protobufjs's
    // fromDescriptor then exposes them camelCased.
    const pcSchema = [...reader.schemasById.values()].find((s) => s.name === 'foxglove.PointCloud')!;
    const set = (descriptor as unknown as { FileDescriptorSet: protobuf.Type }).FileDescriptorSet.decode(pcSchema.data) as unknown as {
      file: { messageType: { name: string; field: { name: string }[] }[] }[];
    };
    const pc = set.file.flatMap((f) => f.messageType).find((m) => m.name === 'PointCloud')!;
    expect(pc.field.map((f) => f.name)).toEqual(['timestamp', 'frame_id', 'pose', 'point_stride', 'fields', 'data']);

    const cloud = await first('/points/cav1');
    expect(cloud.frameId).toBe('ego');
    expect(cloud.pointStride).toBe(16);
    expect(cloud.fields.map((f: { name: string }) => f.name)).toEqual(['x', 'y', 'z', 'intensity']);
    const pts = new Float32Array(new Uint8Array(cloud.data).buffer);
    expect(pts.length).toBe(4);
    expect(pts[0]).toBeCloseTo(10, 4);
    expect(pts[1]).toBeCloseTo(1, 4);
    expect(pts[3]).toBeCloseTo(1, 6);

    const gt = await first('/gt');
    expect(gt.entities).toHaveLength(1);
    expect(gt.entities[0].cubes).toHaveLength(2);
    expect(gt.entities[0].cubes[0].size).toEqual({ x: 4.5, y: 1.8, z: 1.5 });
    expect(gt.entities[0].cubes[0].pose.orientation.z).toBeCloseTo(Math.sin(0.15), 6);

    const tf = await first('/tf');
    expect(tf.transforms.map((t: { childFrameId: string }) => t.childFrameId)).toEqual(['ego', 'agent_20']);
    expect(tf.transforms[1].translation.x).toBeCloseTo(10, 6);
    expect(tf.transforms[1].rotation.z).toBeCloseTo(Math.SQRT1_2, 6);
  });

  it('turns rotations into unit quaternions', () => {
    const q = quaternionOf(poseToMatrix([0, 0, 0, 0, 180, 0]));
    expect(Math.abs(q.z)).toBeCloseTo(1, 9);
    expect(q.w).toBeCloseTo(0, 9);
  });
});

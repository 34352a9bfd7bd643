// Evaluated scenes as MCAP with Foxglove's protobuf schemas, to open in Foxglove:
//   /tf                    foxglove.FrameTransforms  world → ego, ego → agent_<id> (true poses)
//   /points/<slot>         foxglove.PointCloud       each agent's points in the ego frame
//                                                  (slot: ego, cav1, cav2, ... in ego-first order,
//                                                  so a scenario change replaces, not piles up)
//   /gt                    foxglove.SceneUpdate      GT boxes
//   /detections/<variant>  foxglove.SceneUpdate      predicted boxes of one combination/mode/dtype
// Everything is in the ego's ground-aligned LiDAR frame ("ego"), the frame the pipeline detects in.
//
// The schemas are generated from @foxglove/schemas' own definitions (generateProto), parsed with
// protobufjs and sent as FileDescriptorSets, so they match what Foxglove expects field for field.

import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import protobuf from 'protobufjs';
import descriptor from 'protobufjs/ext/descriptor/index.js';
import { McapWriter, type IWritable } from '@mcap/core';
import { foxgloveMessageSchemas, foxgloveEnumSchemas, generateProto } from '@foxglove/schemas/internal.js';
import type { FoxgloveMessageSchema } from '@foxglove/schemas/internal.js';
import type { AgentFrame } from '../datasets/frame.ts';
import type { FrameRef } from '../datasets/dataset.ts';
import type { Box7 } from '../datasets/geometry/boxes.ts';
import { invert, multiply, transformPoints, type Mat4 } from '../datasets/geometry/transforms.ts';
import { alignToGround, type GroundRule } from '../perception/ground.ts';

export interface SceneFrame {
  ref: FrameRef;
  egoId: number;
  /** Agents in ego-first order, as read (not ground-aligned), with their true poses. */
  agents: { frame: AgentFrame; type: string }[];
  /** GT boxes in the ground-aligned ego frame. */
  gt: Box7[];
  /** The profile, for its ground rule. */
  space: GroundRule;
  detections: { label: string; boxes: { box: Box7; score: number; tp: boolean }[] }[];
}

export const FOXGLOVE_SCHEMAS = ['foxglove.PointCloud', 'foxglove.SceneUpdate', 'foxglove.FrameTransforms'] as const;
type SchemaName = (typeof FOXGLOVE_SCHEMAS)[number];

/** The schema and every schema it refers to, in @foxglove/schemas' definitions. */
function closure(root: FoxgloveMessageSchema, out = new Map<string, FoxgloveMessageSchema>()): Map<string, FoxgloveMessageSchema> {
  if (root.protoEquivalent || out.has(root.name)) return out;
  out.set(root.name, root);
  for (const f of root.fields) if (f.type.type === 'nested') closure(f.type.schema, out);
  return out;
}

/** protobufjs Root holding one Foxglove message type, its dependencies and google.protobuf time types. */
export function foxgloveRoot(name: SchemaName): protobuf.Root {
  const short = name.slice('foxglove.'.length) as keyof typeof foxgloveMessageSchemas;
  const schema = foxgloveMessageSchemas[short];
  if (!schema) throw new Error(`@foxglove/schemas has no ${name}`);
  const root = new protobuf.Root();
  for (const file of ['google/protobuf/timestamp.proto', 'google/protobuf/duration.proto']) {
    const json = protobuf.common.get(file);
    if (!json?.nested) throw new Error(`protobufjs lacks ${file}`);
    root.addJSON(json.nested);
  }
  const enums = Object.values(foxgloveEnumSchemas);
  for (const s of closure(schema).values()) {
    const text = generateProto(
      s,
      enums.filter((e) => e.parentSchemaName === s.name),
    );
    // keepCase: Foxglove reads the snake_case field names of the .proto definitions.
    protobuf.parse(text, root, { keepCase: true });
  }
  root.resolveAll();
  return root;
}

/** Encoded google.protobuf.FileDescriptorSet for an MCAP Schema record. */
export function foxgloveDescriptorSet(root: protobuf.Root): Uint8Array {
  const set = (root as unknown as { toDescriptor(syntax: string): protobuf.Message }).toDescriptor('proto3');
  return (descriptor as unknown as { FileDescriptorSet: protobuf.Type }).FileDescriptorSet.encode(set).finish();
}

/** Writes to `<file>.tmp` and renames on close, so a crash never leaves a truncated MCAP under its name. */
class FileWritable implements IWritable {
  private pos = 0n;
  constructor(private readonly handle: fs.FileHandle) {}
  static async open(file: string): Promise<FileWritable> {
    return new FileWritable(await fs.open(file, 'w'));
  }
  async write(buffer: Uint8Array): Promise<void> {
    let off = 0;
    while (off < buffer.length) {
      const { bytesWritten } = await this.handle.write(buffer, off, buffer.length - off);
      off += bytesWritten;
    }
    this.pos += BigInt(buffer.length);
  }
  position(): bigint {
    return this.pos;
  }
  close(): Promise<void> {
    return this.handle.close();
  }
}

/** Quaternion (x, y, z, w) of the rotation part of a row-major 4×4. */
export function quaternionOf(m: Mat4): { x: number; y: number; z: number; w: number } {
  const [r00, r01, r02, r10, r11, r12, r20, r21, r22] = [m[0], m[1], m[2], m[4], m[5], m[6], m[8], m[9], m[10]];
  const tr = r00 + r11 + r22;
  let x: number, y: number, z: number, w: number;
  if (tr > 0) {
    const s = Math.sqrt(tr + 1) * 2;
    w = s / 4;
    x = (r21 - r12) / s;
    y = (r02 - r20) / s;
    z = (r10 - r01) / s;
  } else if (r00 > r11 && r00 > r22) {
    const s = Math.sqrt(1 + r00 - r11 - r22) * 2;
    w = (r21 - r12) / s;
    x = s / 4;
    y = (r01 + r10) / s;
    z = (r02 + r20) / s;
  } else if (r11 > r22) {
    const s = Math.sqrt(1 + r11 - r00 - r22) * 2;
    w = (r02 - r20) / s;
    x = (r01 + r10) / s;
    y = s / 4;
    z = (r12 + r21) / s;
  } else {
    const s = Math.sqrt(1 + r22 - r00 - r11) * 2;
    w = (r10 - r01) / s;
    x = (r02 + r20) / s;
    y = (r12 + r21) / s;
    z = s / 4;
  }
  const n = Math.hypot(x, y, z, w);
  return { x: x / n, y: y / n, z: z / n, w: w / n };
}

const FLOAT32 = 7; // foxglove.PackedElementField.NumericType.FLOAT32
const GT_COLOR = { r: 0.2, g: 0.85, b: 0.3, a: 0.35 };
const TP_COLOR = { r: 0.2, g: 0.5, b: 1, a: 0.45 };
const FP_COLOR = { r: 1, g: 0.3, b: 0.2, a: 0.45 };

function topicName(label: string): string {
  return label
    .replace(/\+/g, '-')
    .replace(/%/g, 'pct')
    .replace(/[^A-Za-z0-9_.-]+/g, '_');
}

export class SceneRecorder {
  private readonly channels = new Map<string, number>();
  private readonly schemaIds = new Map<SchemaName, number>();
  private readonly types = new Map<SchemaName, protobuf.Type>();
  private sequence = 0;
  private frameIndex = 0;
  private messages = 0;

  private constructor(
    readonly file: string,
    private readonly tmp: string,
    private readonly out: FileWritable,
    private readonly writer: McapWriter,
    /** Log time of the first frame, ns. */
    private readonly t0: bigint,
  ) {}

  static async create(file: string, startNs = BigInt(Date.now()) * 1_000_000n): Promise<SceneRecorder> {
    await fs.mkdir(path.dirname(file), { recursive: true });
    const tmp = `${file}.${process.pid}.tmp`;
    const out = await FileWritable.open(tmp);
    const writer = new McapWriter({ writable: out, useStatistics: true, useChunks: true, useChunkIndex: true, useMessageIndex: true });
    await writer.start({ profile: '', library: 'heal eval' });
    return new SceneRecorder(file, tmp, out, writer, startNs);
  }

  private async channel(topic: string, schema: SchemaName): Promise<number> {
    const have = this.channels.get(topic);
    if (have !== undefined) return have;
    let schemaId = this.schemaIds.get(schema);
    if (schemaId === undefined) {
      const root = foxgloveRoot(schema);
      this.types.set(schema, root.lookupType(schema));
      schemaId = await this.writer.registerSchema({ name: schema, encoding: 'protobuf', data: foxgloveDescriptorSet(root) });
      this.schemaIds.set(schema, schemaId);
    }
    const id = await this.writer.registerChannel({ topic, schemaId, messageEncoding: 'protobuf', metadata: new Map() });
    this.channels.set(topic, id);
    return id;
  }

  private async publish(topic: string, schema: SchemaName, time: bigint, value: Record<string, unknown>): Promise<void> {
    const channelId = await this.channel(topic, schema);
    const type = this.types.get(schema)!;
    const err = type.verify(type.fromObject(value));
    if (err) throw new Error(`MCAP ${topic}: ${schema} message is invalid: ${err}`);
    const data = type.encode(type.fromObject(value)).finish();
    await this.writer.addMessage({ channelId, sequence: this.sequence++, logTime: time, publishTime: time, data });
    this.messages++;
  }

  /** One evaluated frame; frames are 100 ms apart (OPV2V's 10 Hz). */
  async addFrame(scene: SceneFrame): Promise<void> {
    const time = this.t0 + BigInt(this.frameIndex++) * 100_000_000n;
    const stamp = { seconds: Number(time / 1_000_000_000n), nanos: Number(time % 1_000_000_000n) };
    const aligned = scene.agents.map((a) => alignToGround(a.frame, scene.space));
    const ego = aligned[0];
    const egoInv = invert(ego.lidarPose);
    const pose = (m: Mat4) => ({ position: { x: m[3], y: m[7], z: m[11] }, orientation: quaternionOf(m) });

    const transforms = [
      { timestamp: stamp, parent_frame_id: 'world', child_frame_id: 'ego', translation: pose(ego.lidarPose).position, rotation: quaternionOf(ego.lidarPose) },
    ];
    for (const a of aligned.slice(1)) {
      const m = multiply(egoInv, a.lidarPose);
      transforms.push({
        timestamp: stamp,
        parent_frame_id: 'ego',
        child_frame_id: `agent_${a.agentId}`,
        translation: pose(m).position,
        rotation: quaternionOf(m),
      });
    }
    await this.publish('/tf', 'foxglove.FrameTransforms', time, { transforms });

    for (const [i, a] of aligned.entries()) {
      const m = multiply(egoInv, a.lidarPose);
      const pts = transformPoints(m, a.points, 4);
      await this.publish(`/points/${i === 0 ? 'ego' : `cav${i}`}`, 'foxglove.PointCloud', time, {
        timestamp: stamp,
        frame_id: 'ego',
        pose: { position: { x: 0, y: 0, z: 0 }, orientation: { x: 0, y: 0, z: 0, w: 1 } },
        point_stride: 16,
        fields: ['x', 'y', 'z', 'intensity'].map((name, k) => ({ name, offset: k * 4, type: FLOAT32 })),
        data: new Uint8Array(pts.buffer, pts.byteOffset, pts.byteLength),
      });
    }

    const cube = (box: ArrayLike<number>, color: typeof GT_COLOR) => ({
      pose: { position: { x: box[0], y: box[1], z: box[2] }, orientation: { x: 0, y: 0, z: Math.sin(box[6] / 2), w: Math.cos(box[6] / 2) } },
      // Box7 is [x, y, z, h, w, l, yaw] with l along the box's x axis.
      size: { x: box[5], y: box[4], z: box[3] },
      color,
    });
    const entity = (id: string, cubes: ReturnType<typeof cube>[], extra: Record<string, unknown> = {}) => ({
      entities: [
        {
          timestamp: stamp,
          frame_id: 'ego',
          id,
          lifetime: { seconds: 0, nanos: 0 },
          frame_locked: true,
          metadata: [
            { key: 'scenario', value: `${scene.ref.split}/${scene.ref.scenario}` },
            { key: 'timestamp', value: scene.ref.timestamp },
            { key: 'ego', value: String(scene.egoId) },
            ...Object.entries(extra).map(([key, value]) => ({ key, value: String(value) })),
          ],
          cubes,
        },
      ],
    });
    await this.publish(
      '/gt',
      'foxglove.SceneUpdate',
      time,
      entity(
        'gt',
        scene.gt.map((b) => cube(b, GT_COLOR)),
        { boxes: scene.gt.length },
      ),
    );
    for (const d of scene.detections) {
      const cubes = d.boxes.map((b) => cube(b.box, b.tp ? TP_COLOR : FP_COLOR));
      await this.publish(
        `/detections/${topicName(d.label)}`,
        'foxglove.SceneUpdate',
        time,
        entity('detections', cubes, { variant: d.label, boxes: d.boxes.length }),
      );
    }
  }

  async close(): Promise<{ file: string; messages: number }> {
    await this.writer.end();
    await this.out.close();
    await fs.rename(this.tmp, this.file);
    return { file: this.file, messages: this.messages };
  }

  async abort(): Promise<void> {
    await this.out.close().catch(() => {});
    await fs.rm(this.tmp, { force: true });
  }
}

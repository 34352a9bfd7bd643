// Adapter mode (`heal adapt`): a new agent type joins without retraining its encoder. Its maker's
// encoder is a black box, an ONNX file that heal runs in onnxruntime and never changes; heal
// trains only a small adapter (fusion/networks/adapter.ts) from that encoder's feature space into
// the shared one, against the frozen pyramid fusion and head, after STAMP (ICLR 2025). With the
// maker's own head it also trains STAMP's reverter, which brings the fused shared map back into
// the type's own space so that, as the ego, it detects with its own head.
//
// The encoder is run once per train frame and agent, before training: its maps are cached, so no
// gradient ever goes through it and a step costs only the adapter, the frozen fusion and the
// heads. No augmentation (it would need the encoder again). The adapter sees every agent of a
// frame as its own ego, with the GT its own sensor sees, as backward alignment does.

import * as path from 'node:path';
import { promises as fs } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import type { FrameRef } from '../datasets/dataset.ts';
import { openDataset } from '../datasets/open.ts';
import { DataError, readFileChecked, sha256Hex, writeFileAtomic } from '../datasets/io.ts';
import type { GraphDesc, HostTensor } from '../models/graph.ts';
import { exportOnnx } from '../models/onnx.ts';
import { createSession, runSession } from '../models/runtime.ts';
import { buildTfModel, type TfModel } from '../models/tfjs.ts';
import { encodeWeights, initWeights, pickWeights, type Weights } from '../models/weights.ts';
import { agentInputs, agentNetwork, encoderOutChannels, type AgentNetworkConfig } from '../perception/encoders/agent.ts';
import { alignToGround } from '../perception/ground.ts';
import type { LidarBeams } from '../datasets/dataset.ts';
import { runExternalEncoder } from '../perception/encoders/external.ts';
import { loadRegistry } from '../perception/registry.ts';
import { featureGrid, type SharedSpace } from '../perception/space.ts';
import { adapterNetwork, parameterCount, reverterNetwork, type AdapterConfig } from '../fusion/networks/adapter.ts';
import { makeAnchors, type Anchors } from '../fusion/anchors.ts';
import { egoNetworkFor, weightsFromFile } from '../fusion/pipeline.ts';
import { loadSingleAgentSample, TrainRng, type TrainSample } from './batch.ts';
import { DEFAULT_LOSS_WEIGHTS, detectionLoss, disposeTargets, occupancyLoss, targetTensors } from './losses.ts';
import { NamedAdam } from './optimizer.ts';
import { ownHeadFor } from './single.ts';
import { egoInputs, type TrainNet } from './stages.ts';
import { trainingFrames, validate } from './trainer.ts';

export interface AdaptOptions {
  data: string;
  out: string;
  /** The type joining: its declaration gives the sensor and the preprocessing the encoder takes. */
  type: string;
  typesDirs?: string[];
  space: SharedSpace;
  /** Weight file with the frozen fusion.* and head.*. */
  base: string;
  /** The black-box encoder (ONNX; inputs as its declaration's preprocessing gives, output its BEV map). */
  encoder: string;
  /** A weight file with the type's own head (ownhead.<type>.*, as heal train --single writes): also train the reverter. */
  head?: string;
  /** Steps of the detection loss through the frozen fusion and head (the adapter's fine-tuning). */
  steps: number;
  /**
   * The base type whose shared map of the same agent-frame the adapter first learns to reproduce
   * (feature alignment, no fusion in the loop, so each step is cheap), when the dataset has that
   * type's sensor for every agent (OPV2V-H and heal generate do); null: none.
   */
  teacher?: string | null;
  /** Feature-alignment steps (default 1000). */
  featureSteps?: number;
  /**
   * Side of the square window of cells each feature-alignment step learns on, at a random place
   * in the map (default 32; 0: the whole map). The adapter is convolutional, so a window teaches it the
   * same mapping at a fraction of a step's cost.
   */
  featureCrop?: number;
  /** Reverter steps (default 300), on the fused maps of at most reverterMaps cached frames (default 60). */
  reverterSteps?: number;
  reverterMaps?: number;
  lr?: number;
  /**
   * How the learning rate moves within each phase: 'cosine' (default) falls from lr to 0 along a
   * half cosine, so each phase ends on small steps; 'constant' keeps lr.
   */
  schedule?: LrSchedule;
  seed?: number;
  /** Hidden width and 3×3 convs of the adapter (the reverter has the same width and one 3×3 conv). */
  hidden?: number;
  convs?: number;
  /** Agents of each train frame whose maps are cached, drawn by the seed (default 1; 0: all). */
  agentsPerFrame?: number;
  /** At most this many validate frames (all by default). */
  valFrames?: number;
  /** The command line, for the record. */
  command?: string;
  log?: (line: string) => void;
  onCache?: (done: number, total: number) => void;
  onStep?: (info: { phase: string; step: number; steps: number; loss: number; parts: Record<string, number>; ms: number }) => void;
}

export interface AdaptRecord {
  command?: string;
  type: string;
  join: 'adapter';
  data: string;
  seed: number;
  steps: { feature: number; task: number; reverter: number };
  teacher: string | null;
  /** Side of the feature-alignment window (null: the whole map). */
  featureCrop: number | null;
  lr: number;
  schedule: LrSchedule;
  encoder: { file: string; sha256Before: string; sha256After: string; unchanged: boolean; outChannels: number };
  /** The frozen fusion and head read back after training, against the base, tensor by tensor. */
  fusionUnchanged: boolean;
  adapter: { onnx: string; parameters: number; config: AdapterConfig };
  reverter?: { onnx: string; parameters: number; config: AdapterConfig };
  head?: { onnx: string; parameters: number; from: string };
  trainableParams: number;
  cachedMaps: number;
  cacheSeconds: number;
  trainSeconds: number;
  /** Seconds of each training phase (feature alignment, detection, reverter; the reverter's include computing its fused maps). */
  phaseSeconds: { feature: number; task: number; reverter: number };
  wallSeconds: number;
  /** AP on the validate split (never training frames), the type alone as ego: through the shared head, and through its reverter and own head. */
  validation: { frames: number; shared: Record<string, number>; own?: Record<string, number> };
  declaration: string;
  files: { file: string; bytes: number; sha256: string }[];
}

export const LR_SCHEDULES = ['cosine', 'constant'] as const;
export type LrSchedule = (typeof LR_SCHEDULES)[number];

/** The learning rate of step `step` (1-based) of `steps` under `schedule`. */
export function scheduledLr(lr: number, schedule: LrSchedule, step: number, steps: number): number {
  return schedule === 'cosine' ? (lr * (1 + Math.cos((Math.PI * (step - 1)) / steps))) / 2 : lr;
}

/** Weight of a foreground cell in the feature-alignment loss, against 1 for the others. */
const FOREGROUND_WEIGHT = 10;

/** A cached sample: the encoder's map stands in for the agent's sensor inputs. */
type CachedSample = TrainSample;

function levelsOf(ego: GraphDesc): [number, number][] {
  return ego.outputs
    .filter((o) => /^occ\d+$/.test(o.name))
    .sort((a, b) => Number(a.name.slice(3)) - Number(b.name.slice(3)))
    .map((o) => [o.shape[2] as number, o.shape[3] as number]);
}

/** Whether two weight maps hold the same tensors, bit for bit. */
function sameWeights(a: Weights, b: Weights): boolean {
  if (a.size !== b.size) return false;
  for (const [k, t] of a) {
    const u = b.get(k);
    if (!u || u.data.length !== t.data.length) return false;
    const x = new Uint32Array(t.data.buffer, t.data.byteOffset, t.data.length);
    const y = new Uint32Array(u.data.buffer, u.data.byteOffset, u.data.length);
    for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  }
  return true;
}

/** The adapter (and reverter) in front of the frozen ego network, on cached encoder maps. */
class AdapterNet implements TrainNet {
  readonly anchors: Anchors;
  readonly levels: [number, number][];
  readonly adapter: TfModel;
  readonly ego: TfModel;
  readonly reverter?: TfModel;
  readonly head?: TfModel;

  constructor(
    readonly models: { space: SharedSpace; network: AgentNetworkConfig },
    descs: { adapter: GraphDesc; ego: GraphDesc; reverter?: GraphDesc; head?: GraphDesc },
    weights: Weights,
  ) {
    const build = (d: GraphDesc) => buildTfModel(d, pickWeights(d, weights, d.name), d.name);
    this.adapter = build(descs.adapter);
    this.ego = build(descs.ego);
    if (descs.reverter && descs.head) {
      this.reverter = build(descs.reverter);
      this.head = build(descs.head);
    }
    this.anchors = makeAnchors(models.space);
    this.levels = levelsOf(descs.ego);
  }

  trainable(): Map<string, tf.Variable> {
    const out = new Map<string, tf.Variable>();
    for (const m of [this.adapter, this.reverter]) if (m) for (const [n, v] of m.variables) if (v.trainable) out.set(n, v);
    return out;
  }

  /** The shared head's outputs (and occ*), plus ownCls/ownReg/ownDir through the reverter and own head. */
  forward(sample: CachedSample, _training: boolean, withOwnHead = true): Record<string, tf.Tensor> {
    const f = sample.inputs[0].features;
    const bev = this.adapter.apply({ features: tf.tensor(f.data as Float32Array, f.shape) }).bev;
    // Frozen: batch norms in inference mode, so their statistics stay as the base has them.
    const out = this.ego.apply(egoInputs(this.models.space, [bev], sample.poses), { training: false });
    if (!withOwnHead || !this.reverter || !this.head) return out;
    const own = this.head.apply({ features: this.reverter.apply({ fused: out.fused }).features }, { training: false });
    return { ...out, ownCls: own.cls, ownReg: own.reg, ownDir: own.dir };
  }

  async readWeights(): Promise<Weights> {
    const maps = await Promise.all([this.adapter, this.reverter].filter((m): m is TfModel => !!m).map((m) => m.readWeights()));
    return new Map(maps.flatMap((m) => [...m]));
  }

  dispose(): void {
    for (const m of [this.adapter, this.ego, this.reverter, this.head]) m?.dispose();
  }
}

/** The same network seen through its own head, for validation of the reverter path. */
function ownView(net: AdapterNet): TrainNet {
  return {
    models: net.models,
    anchors: net.anchors,
    levels: net.levels,
    trainable: () => net.trainable(),
    forward: (s, t) => {
      const o = net.forward(s, t);
      return { cls: o.ownCls, reg: o.ownReg, dir: o.ownDir };
    },
    readWeights: () => net.readWeights(),
    dispose: () => {},
  };
}

export async function adapt(opts: AdaptOptions): Promise<AdaptRecord> {
  const t0 = performance.now();
  const log = opts.log ?? ((l: string) => console.error(l));
  const { space } = opts;
  const registry = await loadRegistry(opts.typesDirs ?? []);
  const type = registry.get(opts.type);
  const network = registry.profile(type.name, space.name).network;
  if (network.encoder.arch === 'lss' || !type.sensor.lidar) {
    throw new DataError(
      type.file,
      'encoder.arch',
      'heal adapt feeds a black box pillars (a LiDAR type); camera types are not supported yet',
      network.encoder.arch,
    );
  }
  const seed = opts.seed ?? 0;
  const lr = opts.lr ?? 2e-3;
  const schedule = opts.schedule ?? 'cosine';
  const encoderBytes = await readFileChecked(opts.encoder, `ONNX encoder of agent type ${type.name}`);
  const sha256Before = sha256Hex(encoderBytes);
  const outChannels = encoderOutChannels(network.encoder);
  // The black box runs on the CPU provider: its maps are computed once, so a device buys little.
  const { session } = await createSession(encoderBytes, { device: 'cpu' });
  const base = await weightsFromFile(opts.base, space, registry, log);

  const egoDesc = egoNetworkFor(space, { intermediates: !!opts.head });
  const egoWeights = pickWeights(egoDesc, base, opts.base);
  const [width, height] = featureGrid(space);
  const hidden = opts.hidden ?? 32;
  const adapterCfg: AdapterConfig = { inChannels: outChannels, outChannels: space.channels, hidden, convs: opts.convs ?? 2 };
  const adapterDesc = adapterNetwork(type.name, adapterCfg, { height, width });
  const weights: Weights = new Map([...egoWeights, ...initWeights(adapterDesc, seed)]);
  const descs: { adapter: GraphDesc; ego: GraphDesc; reverter?: GraphDesc; head?: GraphDesc } = { adapter: adapterDesc, ego: egoDesc };
  let reverterCfg: AdapterConfig | undefined;
  if (opts.head) {
    const fused = egoDesc.outputs.find((o) => o.name === 'fused')!;
    reverterCfg = { inChannels: fused.shape[1] as number, outChannels, hidden, convs: 1 };
    descs.reverter = reverterNetwork(type.name, reverterCfg, { height, width });
    descs.head = ownHeadFor(network, space);
    const headWeights = pickWeights(descs.head, await weightsFromFile(opts.head, space, registry), opts.head);
    for (const [k, v] of [...initWeights(descs.reverter, seed + 1), ...headWeights]) weights.set(k, v);
  }

  // Encode every train agent-frame once (and the teacher's shared map of it), and the validate frames' first agents.
  const ds = await openDataset(opts.data);
  const { trainRefs, valRefs } = trainingFrames(ds, opts.data, opts.valFrames);
  const anchors = makeAnchors(space);
  const sampleOpts = { space, network, anchors, levels: levelsOf(egoDesc), augment: false, lidar: type.sensor.lidar };
  const teacherName = opts.teacher === undefined ? 'm1' : opts.teacher;
  let teacher: { network: AgentNetworkConfig; session: Awaited<ReturnType<typeof createSession>>['session']; lidar: LidarBeams } | undefined;
  if (teacherName) {
    const t = registry.get(teacherName);
    const tn = registry.profile(teacherName, space.name).network;
    if (!t.sensor.lidar) throw new DataError(t.file, 'sensor', 'the teacher must be a LiDAR type', t.sensor);
    const desc = agentNetwork(tn, space);
    teacher = {
      network: tn,
      session: (await createSession(exportOnnx(desc, pickWeights(desc, base, opts.base)), { device: 'cpu' })).session,
      lidar: t.sensor.lidar,
    };
  }
  const pick = new TrainRng((seed * 0x85ebca6b + 7) >>> 0);
  const perFrame = opts.agentsPerFrame ?? 1;
  const agentsOf = (ids: number[]) => {
    if (perFrame <= 0 || perFrame >= ids.length) return ids;
    const left = [...ids];
    return Array.from({ length: perFrame }, () => left.splice(pick.int(left.length), 1)[0]);
  };
  const jobs: { ref: FrameRef; agent: number; val: boolean }[] = [
    ...trainRefs.flatMap((ref) => agentsOf(ref.agentIds).map((agent) => ({ ref, agent, val: false }))),
    ...valRefs.map((ref) => ({ ref, agent: ref.agentIds[0], val: true })),
  ];
  const train: CachedSample[] = [];
  const teacherMaps: HostTensor[] = [];
  const val: CachedSample[] = [];
  const encoderCfg = { model: opts.encoder, outChannels, output: network.encoder.arch === 'external' ? network.encoder.output : undefined };
  for (const [i, job] of jobs.entries()) {
    const sample = await loadSingleAgentSample(ds, job.ref, job.agent, sampleOpts);
    const features: HostTensor = await runExternalEncoder(session, encoderCfg, space, sample.inputs[0]);
    (job.val ? val : train).push({ ...sample, inputs: [{ features }] });
    if (teacher && !job.val) {
      const frame = alignToGround(await ds.readAgentFrame(job.ref, job.agent, { lidar: teacher.lidar, images: false }), space);
      teacherMaps.push((await runSession(teacher.session, agentInputs(teacher.network, space, frame))).bev);
    }
    opts.onCache?.(i + 1, jobs.length);
  }
  await session.release();
  await teacher?.session.release();
  const cacheSeconds = (performance.now() - t0) / 1000;
  log(
    `heal adapt: ${train.length} train maps and ${val.length} validate maps encoded once by the black box${teacher ? `, and ${teacherName}'s shared maps of the same agent-frames` : ''}, in ${cacheSeconds.toFixed(1)} s`,
  );

  const net = new AdapterNet({ space, network }, descs, weights);
  const opt = new NamedAdam(lr);
  const rng = new TrainRng((seed * 0x9e3779b1 + 1) >>> 0);
  const w = DEFAULT_LOSS_WEIGHTS;
  const featureSteps = teacher ? (opts.featureSteps ?? 1000) : 0;
  const reverterSteps = net.reverter ? (opts.reverterSteps ?? 300) : 0;
  /** `steps` optimisation steps of `loss` over `vars`; loss returns the total and fills its parts. */
  const phaseSeconds = { feature: 0, task: 0, reverter: 0 };
  const run = async (phase: string, steps: number, vars: Map<string, tf.Variable>, loss: (parts: Record<string, tf.Scalar>) => tf.Scalar) => {
    const nameOf = new Map([...vars].map(([n, v]) => [v.name, n]));
    for (let step = 1; step <= steps; step++) {
      const ts = performance.now();
      opt.lr = scheduledLr(lr, schedule, step, steps);
      const parts: Record<string, tf.Scalar> = {};
      const { value, grads } = tf.variableGrads(() => loss(parts), [...vars.values()]);
      const byName = new Map<string, tf.Tensor>();
      for (const [varName, g] of Object.entries(grads)) byName.set(nameOf.get(varName)!, g);
      opt.apply(vars, byName);
      tf.dispose(Object.values(grads));
      const v = (await value.data())[0];
      const partValues = Object.fromEntries(await Promise.all(Object.entries(parts).map(async ([k, t]) => [k, (await t.data())[0]] as const)));
      tf.dispose([value, ...Object.values(parts)]);
      if (!Number.isFinite(v)) throw new Error(`${phase}: loss is ${v} at step ${step}; lower the learning rate`);
      opts.onStep?.({ phase, step, steps, loss: v, parts: partValues, ms: performance.now() - ts });
    }
  };
  const toTensor = (h: HostTensor) => tf.tensor(h.data as Float32Array, h.shape);
  const t1 = performance.now();
  try {
    const adapterVars = new Map([...net.adapter.variables].filter(([, v]) => v.trainable));
    // 1. Feature alignment: the adapter's map of the black box's features against the teacher's shared map.
    // Cells on a GT footprint weigh FOREGROUND_WEIGHT times more: they are few, and they are what the head reads.
    const [fw, fh] = featureGrid(space);
    const side = (opts.featureCrop ?? 32) || Infinity;
    const cw = Math.min(fw, side),
      ch = Math.min(fh, side);
    const cropped = cw < fw || ch < fh;
    // On a window, the same adapter built at the window's size (graphs have fixed shapes) trains, and its weights go back after.
    const windowed = cropped
      ? buildTfModel(adapterNetwork(type.name, adapterCfg, { height: ch, width: cw }), await net.adapter.readWeights(), 'adapter window')
      : net.adapter;
    await run('align features', featureSteps, cropped ? new Map([...windowed.variables].filter(([, v]) => v.trainable)) : adapterVars, (parts) => {
      const i = rng.int(train.length);
      const x0 = cw < fw ? rng.int(fw - cw + 1) : 0,
        y0 = ch < fh ? rng.int(fh - ch + 1) : 0;
      const crop = (t: tf.Tensor) => (cropped ? tf.slice(t, [0, 0, y0, x0], [-1, -1, ch, cw]) : t);
      const bev = windowed.apply({ features: crop(toTensor(train[i].inputs[0].features)) }).bev;
      const fg = train[i].occTargets[0];
      const cellWeight = fg?.length === fw * fh ? tf.add(1, tf.mul(FOREGROUND_WEIGHT - 1, crop(tf.tensor4d(fg, [1, 1, fh, fw])))) : tf.scalar(1);
      parts.mse = tf.keep(tf.div(tf.mean(tf.mul(tf.squaredDifference(bev, crop(toTensor(teacherMaps[i]))), cellWeight)), tf.mean(cellWeight)) as tf.Scalar);
      return parts.mse;
    });
    if (cropped) {
      for (const [n, v] of adapterVars) v.assign(windowed.variables.get(n)!);
      windowed.dispose();
    }
    phaseSeconds.feature = (performance.now() - t1) / 1000;
    // 2. The detection loss through the frozen fusion and head.
    await run('detect', opts.steps, adapterVars, (parts) => {
      const sample = train[rng.int(train.length)];
      const targets = targetTensors(sample.targets);
      try {
        const out = net.forward(sample, true, false);
        const det = detectionLoss({ cls: out.cls, reg: out.reg, dir: out.dir }, targets, w);
        const occ = occupancyLoss(
          net.levels.map((_, l) => out[`occ${l}`]),
          sample.occTargets,
          w.occ,
        );
        parts.det = tf.keep(det.total);
        parts.occ = tf.keep(occ);
        return tf.add(det.total, occ) as tf.Scalar;
      } finally {
        disposeTargets(targets);
      }
    });
    phaseSeconds.task = (performance.now() - t1) / 1000 - phaseSeconds.feature;
    // 3. The reverter, on fused maps computed once (the adapter and fusion are fixed by now), through the frozen own head.
    if (net.reverter && net.head && reverterSteps > 0) {
      const chosen = new Set<number>();
      while (chosen.size < Math.min(train.length, opts.reverterMaps ?? 60)) chosen.add(rng.int(train.length));
      const fused = new Map<number, HostTensor>();
      for (const i of chosen) {
        const f = tf.tidy(() => net.forward(train[i], false, false).fused);
        fused.set(i, { data: (await f.data()) as Float32Array, shape: f.shape });
        f.dispose();
      }
      const keys = [...fused.keys()];
      const reverterVars = new Map([...net.reverter.variables].filter(([, v]) => v.trainable));
      await run('revert', reverterSteps, reverterVars, (parts) => {
        const i = keys[rng.int(keys.length)];
        const targets = targetTensors(train[i].targets);
        try {
          const own = net.head!.apply({ features: net.reverter!.apply({ fused: toTensor(fused.get(i)!) }).features }, { training: false });
          parts.own = tf.keep(detectionLoss({ cls: own.cls, reg: own.reg, dir: own.dir }, targets, w).total);
          return parts.own;
        } finally {
          disposeTargets(targets);
        }
      });
    }
    const trainSeconds = (performance.now() - t1) / 1000;
    phaseSeconds.reverter = trainSeconds - phaseSeconds.feature - phaseSeconds.task;
    const wallSeconds = (performance.now() - t0) / 1000;

    const load = (ref: FrameRef) => Promise.resolve(val[valRefs.indexOf(ref)]);
    const validation: AdaptRecord['validation'] = { frames: val.length, shared: val.length ? await validate(net, valRefs, load) : {} };
    if (net.reverter && val.length) validation.own = await validate(ownView(net), valRefs, load);

    // Frozen means frozen: the fusion and head as they are now, against the base, bit for bit.
    const fusionUnchanged = sameWeights(await net.ego.readWeights(), egoWeights);
    const encoderAfter = sha256Hex(await readFileChecked(opts.encoder, `ONNX encoder of agent type ${type.name}`));
    const trained = await net.readWeights();
    return await writeOutputs(opts, {
      type: type.name,
      typeFile: type.file,
      network,
      descs,
      trained,
      headWeights: descs.head ? pickWeights(descs.head, weights, opts.head) : undefined,
      record: {
        command: opts.command,
        type: type.name,
        join: 'adapter',
        data: path.resolve(opts.data),
        seed,
        steps: { feature: featureSteps, task: opts.steps, reverter: reverterSteps },
        teacher: teacher ? teacherName : null,
        featureCrop: cropped ? side : null,
        lr,
        schedule,
        encoder: { file: path.resolve(opts.encoder), sha256Before, sha256After: encoderAfter, unchanged: encoderAfter === sha256Before, outChannels },
        fusionUnchanged,
        adapter: { onnx: `${type.name}.adapter.onnx`, parameters: parameterCount(adapterDesc), config: adapterCfg },
        reverter: descs.reverter && { onnx: `${type.name}.reverter.onnx`, parameters: parameterCount(descs.reverter), config: reverterCfg! },
        head: descs.head && { onnx: `${type.name}.head.onnx`, parameters: parameterCount(descs.head), from: path.resolve(opts.head!) },
        trainableParams: [...net.trainable().values()].reduce((s, v) => s + v.size, 0),
        cachedMaps: train.length + val.length,
        cacheSeconds,
        trainSeconds,
        phaseSeconds,
        wallSeconds,
        validation,
        declaration: `types/${type.name}.json`,
        files: [],
      },
    });
  } finally {
    opt.dispose();
    net.dispose();
  }
}

/**
 * The adapter's files in opts.out: its weights (adapter.bin), the ONNX files, manifest.json, and
 * in types/ a declaration that joins the type by its adapter (give that folder to --types-dir).
 */
async function writeOutputs(
  opts: AdaptOptions,
  o: {
    type: string;
    typeFile: string;
    network: AgentNetworkConfig;
    descs: { adapter: GraphDesc; reverter?: GraphDesc; head?: GraphDesc };
    trained: Weights;
    headWeights?: Weights;
    record: AdaptRecord;
  },
): Promise<AdaptRecord> {
  const out = path.resolve(opts.out);
  const files: AdaptRecord['files'] = [];
  const write = async (name: string, bytes: Uint8Array) => {
    await fs.mkdir(path.dirname(path.join(out, name)), { recursive: true });
    await writeFileAtomic(path.join(out, name), bytes);
    files.push({ file: name, bytes: bytes.length, sha256: sha256Hex(bytes) });
  };
  const { record } = o;
  await write('adapter.bin', encodeWeights(o.trained, { command: opts.command, seed: record.seed, data: record.data, steps: record.steps, type: o.type }));
  await write(record.adapter.onnx, exportOnnx(o.descs.adapter, pickWeights(o.descs.adapter, o.trained)));
  if (o.descs.reverter && record.reverter) await write(record.reverter.onnx, exportOnnx(o.descs.reverter, pickWeights(o.descs.reverter, o.trained)));
  if (o.descs.head && o.headWeights && record.head) await write(record.head.onnx, exportOnnx(o.descs.head, o.headWeights));
  // The declaration keeps the sensor and preprocessing, and points at the black box where it lies.
  const enc = o.network.encoder as unknown as Record<string, unknown>;
  const encoder = {
    arch: 'external',
    model: path.relative(path.join(out, 'types'), record.encoder.file),
    input: 'pillars',
    pillarSize: enc.pillarSize,
    maxPointsPerPillar: enc.maxPointsPerPillar,
    maxPillars: enc.maxPillars,
    maskEgo: enc.maskEgo,
    outChannels: record.encoder.outChannels,
    ...(enc.output ? { output: enc.output } : {}),
    sha256: record.encoder.sha256Before,
  };
  const declared = JSON.parse((await readFileChecked(o.typeFile, 'agent-type declaration')).toString('utf8')) as Record<string, unknown>;
  const declaration = {
    name: o.type,
    description: declared.description,
    modality: declared.modality,
    sensor: declared.sensor,
    profiles: {
      [opts.space.name]: {
        join: 'adapter',
        encoder,
        adapter: {
          model: `../${record.adapter.onnx}`,
          ...(record.reverter && record.head ? { reverter: `../${record.reverter.onnx}`, head: `../${record.head.onnx}` } : {}),
        },
      },
    },
  };
  await write(record.declaration, new TextEncoder().encode(JSON.stringify(declaration, null, 2) + '\n'));
  const final = { ...record, files };
  await writeFileAtomic(path.join(out, 'manifest.json'), JSON.stringify(final, null, 2) + '\n');
  return final;
}

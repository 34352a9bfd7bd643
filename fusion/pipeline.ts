// The collaborative pass. Each agent encodes its own sensors with its type's encoder + aligner
// into the shared BEV space and sends a protobuf message; the ego decodes what it received from
// agents in communication range, warps it into its frame, fuses it with the pyramid fusion
// network, runs the detection head and decodes boxes in its own LiDAR frame.
//
// Late fusion (each agent detects alone and sends boxes, merged by NMS) and no fusion (ego alone)
// go through the same encoders, network and decoder, as baselines.

import type { AgentFrame } from '../datasets/frame.ts';
import type { SharedSpace } from '../perception/space.ts';
import { featureGrid, HEAL_SPACE } from '../perception/space.ts';
import type { Registry } from '../perception/registry.ts';
import { alignToGround, groundAlignedPose } from '../perception/ground.ts';
import { EGO_BODY } from '../perception/pillars.ts';
import { agentNetwork, agentInputs, healCropRatios } from '../perception/encoders/agent.ts';
import { egoNetwork, type EgoNetworkOptions } from './networks/ego.ts';
import { pyramidLevelSizes, type PyramidFusionConfig } from './networks/pyramid.ts';
import { affineGrids } from './networks/warp.ts';
import type { GraphDesc, HostTensor } from '../models/graph.ts';
import { exportOnnx } from '../models/onnx.ts';
import { initWeights, loadWeights, mergeWeightFiles, pickWeights, type MergeRule, type Weights, type WeightsMeta } from '../models/weights.ts';
import { createSession, runSession, type Device, type Provider, type SessionInfo } from '../models/runtime.ts';
import { makeAnchors, type Anchors } from './anchors.ts';
import { decodeDetections, type Detection } from './detect.ts';
import { encodeMessage, decodeMessage, gridForSpace, messageWireSize, strongestCellsMask, type FeatureDType } from './messages.ts';
import { agentFromEgo, warpGrids, warpTheta } from './warp.ts';
import { boxToCorners, cornersInRange, cornersToBox, transformCorners, bevFromCorners, type Box7 } from '../datasets/geometry/boxes.ts';
import { nmsRotated } from '../datasets/geometry/nms.ts';
import { invert, multiply } from '../datasets/geometry/transforms.ts';
import { DataError, readFileChecked, sha256Hex } from '../datasets/io.ts';
import { trustFromWeights, type Trust } from './trust.ts';
import { Rejected, signMessage, type AgentIdentity, type Security } from './identity.ts';
import { boundFeatures, EgoGate, type Admitted, type GateOptions } from './gate.ts';
import { describeImport } from './heal-checkpoint.ts';
import { importHealModalities, leftOutLines, modalityOf, type CheckpointImport } from './heal-import.ts';
import { decodeStateDict } from '../models/pth.ts';
import { learnedCodecs, type LearnedCodec } from './codec.ts';
import { type CodecSpec, encodeOptionsFor } from './codec-spec.ts';
import { AdapterAgent } from './adapter-agent.ts';
import * as path from 'node:path';

export type FusionMode = 'intermediate' | 'late' | 'none';

export interface PipelineOptions {
  space: SharedSpace;
  registry: Registry;
  device?: Device;
  /**
   * One weight file holding every parameter (encoder.*, aligner.*, fusion.*, head.*), or a HEAL
   * checkpoint (.pth) whose modalities are agent types of this profile (fusion/heal-checkpoint.ts).
   * Several files are merged by `mergeRule` (readWeightFiles).
   */
  weightsFile?: string | string[];
  /** How several weight files merge (models/weights.ts MergeRule); default 'identical'. */
  mergeRule?: MergeRule;
  /** The same in memory (e.g. merged alignments), instead of weightsFile; that then only names them in errors. */
  weights?: Weights;
  /** Seed of the random weights used when no weight file is given. */
  seed?: number;
  /**
   * Per-type fusion trust (fusion/trust.ts) over the weight file's own; null for HEAL's rule (every
   * type 1, whatever the weight file carries).
   */
  trust?: Trust | null;
  /**
   * Signed messages (fusion/identity.ts): senders sign with their identity, the ego verifies
   * before it parses. Absent: messages travel unsigned, and the ego checks only their contents.
   */
  security?: Security;
  /** The ego's message checks (fusion/gate.ts) beyond the space and the verifier. */
  gate?: Omit<GateOptions, 'space' | 'verifier'>;
  /** onnxruntime intra-op threads per session; default onnxruntime's choice (one per core). */
  threads?: number;
  /**
   * Encode each agent frame once per type and reuse the map (and the sender's occupancy) while the
   * frame object lives: sweeps over codecs and links run the same sensors many times. Stage times
   * then count the encoders only in the first pass that needed them.
   */
  reuseEncodings?: boolean;
  /** Weight files holding learned message codecs (codec.r<R>.*, heal train-codec), besides any in the weights. */
  codecWeightsFile?: string[];
  log?: (line: string) => void;
}

export interface AgentInput {
  frame: AgentFrame;
  /** Agent type name in the registry. */
  type: string;
}

export interface FrameOptions {
  mode: FusionMode;
  dtype?: FeatureDType;
  /**
   * Fraction of BEV cells each sender transmits in intermediate fusion, those with the strongest
   * features (see strongestCellsMask); undefined or 1 sends the dense map.
   */
  keep?: number;
  scoreThreshold?: number;
  nmsThreshold?: number;
  /**
   * Marks a pass of an evaluation frame: the pass's first message gets this sequence number (the
   * others follow), certificates are pre-distributed (every message carries the digest; see
   * digestOnly), and the ego's replay check remembers only this pass's messages (a worker may run
   * frames out of order, e.g. one retried after another worker died). Every pass of a frame (codec,
   * sweep value) thus sends the same message bytes but for the signature's time.
   * Default: the pipeline's running count and certificate schedule. An evaluation gives each frame
   * a base that grows with the frame's place in the evaluation, so what goes on the wire, and what
   * the ego's replay check sees, does not depend on which frames this pipeline ran before (heal
   * eval --jobs, --shard).
   */
  sequence?: number;
  /** The message codec (fusion/codec-spec.ts); replaces dtype and keep when given. */
  codec?: CodecSpec;
  /**
   * The channel between the senders and the ego (eval/link.ts): given every message sent this
   * frame, what the ego receives (possibly older messages held back from an earlier frame) and who
   * it did not hear from. Default: every message arrives.
   */
  channel?: (sent: { id: number; bytes: Uint8Array }[]) => { received: Uint8Array[]; skipped: { id: number; reason: string }[] };
  /** The ego's gate (its memory of senders' sequence numbers) for this frame, instead of the pipeline's own. */
  gate?: EgoGate;
}

/** Milliseconds per stage, summed over agents where a stage runs per agent. */
export type StageTimes = Record<string, number>;

export interface FrameResult {
  egoId: number;
  mode: FusionMode;
  /** Detections in the ego's LiDAR frame, best first. */
  detections: Detection[];
  /** Agents whose data was used (ego first). */
  used: { id: number; type: string }[];
  /** Agents out of communication range, and messages the ego rejected (id NaN when unknown). */
  skipped: { id: number; reason: string }[];
  /** Messages the ego rejected, by reason (fusion/identity.ts REJECT_CODES). */
  rejected: Record<string, number>;
  /** Senders whose features the ego bounded (fusion/gate.ts boundFeatures): values clipped, scale applied. */
  bounded: { id: number; clipped: number; scale: number }[];
  /** Bytes each non-ego agent sent. */
  messageBytes: { id: number; bytes: number }[];
  /** Per-level foreground logits of the pyramid, [agents, 1, h, w] each (intermediate fusion only). */
  occupancy: HostTensor[];
  times: StageTimes;
  provider: Provider;
}

export function fusionConfigFor(space: SharedSpace): PyramidFusionConfig {
  const [w, h] = featureGrid(space);
  const { backbone, shrinkChannels, shrink, warp } = space.fusion;
  return { height: h, width: w, shrinkChannels, shrink, warp, backbone: { ...backbone, inChannels: space.channels } };
}

export function egoNetworkFor(space: SharedSpace, opts: EgoNetworkOptions = {}): GraphDesc {
  return egoNetwork({ fusion: fusionConfigFor(space), head: { anchors: space.anchor.yawsDeg.length, dirBins: 2 } }, opts);
}

/**
 * HEAL's window of a camera agent on a pyramid level of n cells (HeterPyramidCollab at eval, with
 * the agent's crop ratio, perception/encoders/agent.ts healCropRatios): crop = n/ratio − 4 cells,
 * kept [⌊n/2⌋ − ⌊crop/2⌋, ⌊n/2⌋ + ⌊crop/2⌋), i.e. two cells inside the camera's own map on every
 * side ("unstable response values at the edges", HEAL says). [start, end) in cells.
 */
export function cameraWindow(n: number, ratio: number): [number, number] {
  const half = Math.floor((n / ratio - 4) / 2);
  const mid = Math.floor(n / 2);
  return [Math.max(0, Math.trunc(mid - half)), Math.min(n, Math.trunc(mid + half))];
}

/**
 * Each pyramid level's validity [A, 1, h_l, w_l] from the sent cells [A, H, W]: a coarse cell was
 * sent as far as any of its fine cells was (max-pooled level by level, by the level's stride),
 * times the window of each agent that has crop ratios [H, W] (zero outside it).
 */
export function levelValidity(cfg: PyramidFusionConfig, valid: Float32Array, windows: ([number, number] | undefined)[]): HostTensor[] {
  let [h, w] = [cfg.height, cfg.width];
  const A = valid.length / (h * w);
  let m = valid;
  return cfg.backbone.layerStrides.map((s) => {
    if (s > 1) {
      const [ph, pw] = [h / s, w / s];
      const pooled = new Float32Array(A * ph * pw);
      for (let a = 0; a < A; a++) {
        for (let y = 0; y < ph; y++) {
          for (let x = 0; x < pw; x++) {
            let v = -Infinity;
            for (let dy = 0; dy < s; dy++) for (let dx = 0; dx < s; dx++) v = Math.max(v, m[(a * h + y * s + dy) * w + x * s + dx]);
            pooled[(a * ph + y) * pw + x] = v;
          }
        }
      }
      [m, h, w] = [pooled, ph, pw];
    }
    let out = m;
    windows.forEach((r, a) => {
      if (!r) return;
      if (out === m) out = m.slice();
      const [y0, y1] = cameraWindow(h, r[0]);
      const [x0, x1] = cameraWindow(w, r[1]);
      for (let y = 0; y < h; y++) {
        for (let x = 0; x < w; x++) if (y < y0 || y >= y1 || x < x0 || x >= x1) out[(a * h + y) * w + x] = 0;
      }
    });
    return { data: out, shape: [A, 1, h, w] };
  });
}

/**
 * The ego network's inputs for agents' stacked features [A, C, H, W] (ego first) and their
 * T_world←lidar: the per-level grids (or the one grid), the validity maps and the trust.
 * `valid` is [A, H, W] (1 where the agent sent the cell); `trust` one number per agent;
 * `windows[i]`, 'per-level' only, agent i's HEAL crop ratios when its score is windowed (see levelValidity).
 */
export function egoInputsFor(
  space: SharedSpace,
  stacked: Float32Array,
  poses: Float64Array[],
  valid: Float32Array,
  trust: number[],
  windows: ([number, number] | undefined)[] = [],
): Record<string, HostTensor> {
  const cfg = fusionConfigFor(space);
  const { height: H, width: W } = cfg;
  const C = space.channels;
  const A = poses.length;
  const inputs: Record<string, HostTensor> = { features: { data: stacked, shape: [A, C, H, W] } };
  if (cfg.warp === 'per-level') {
    levelValidity(cfg, valid, windows).forEach((v, l) => {
      inputs[`valid${l}`] = v;
    });
    inputs.trust = { data: Float32Array.from(poses, (_, i) => trust[i] ?? 1), shape: [A, 1, 1, 1] };
    // One θ per agent serves every level: it is normalised by the range's extent, not by cells.
    const thetas = poses.map((p) => warpTheta(agentFromEgo(poses[0], p), space));
    for (const [l, [h, w]] of pyramidLevelSizes(cfg).entries()) inputs[`grid${l}`] = { data: affineGrids(thetas, h, w), shape: [A, h, w, 2] };
  } else {
    if (windows.some((r) => r !== undefined)) throw new Error("egoInputsFor: HEAL's camera windows need the 'per-level' pyramid");
    // The validity map scales the agent's softmax weight cell by cell, so trust scales it too.
    const scaled = valid.slice();
    trust.forEach((t, i) => {
      if (t === 1) return;
      for (let c = 0; c < H * W; c++) scaled[i * H * W + c] *= t;
    });
    inputs.valid = { data: scaled, shape: [A, 1, H, W] };
    inputs.grid = { data: warpGrids(poses[0], poses, space, H, W), shape: [A, H, W, 2] };
  }
  return inputs;
}

/** A weight file as loaded: heal's own, or a HEAL checkpoint mapped onto heal's networks. */
export interface WeightFile {
  weights: Weights;
  /** heal's meta; for a HEAL checkpoint, where it came from (importedFrom). */
  meta: WeightsMeta;
  /** For a HEAL checkpoint: which key went where and what was left out, with the file's SHA-256. */
  heal?: CheckpointImport & { file: string; sha256: string; bytes: number };
}

/** A HEAL checkpoint is a PyTorch file: told by its name (.pth, .pt). */
export function isHealCheckpoint(file: string): boolean {
  return /\.pth?$/i.test(file);
}

/**
 * The one loader of every --weights (and --base): heal's weight file, or a HEAL state dict (.pth)
 * mapped onto the profile's ego network and the agent types whose modality it holds
 * (encoder_<type>.*); a modality heal cannot hold is left out and named (fusion/heal-import.ts),
 * every other key must find its place.
 */
export async function readWeightFile(file: string, space: SharedSpace, registry: Registry, log?: (line: string) => void): Promise<WeightFile> {
  if (!isHealCheckpoint(file)) return loadWeights(file);
  const bytes = await readFileChecked(file, 'HEAL checkpoint');
  const sha256 = sha256Hex(bytes);
  const sd = decodeStateDict(bytes, file);
  const agents = new Map<string, GraphDesc>();
  for (const m of new Set([...sd.keys()].map(modalityOf))) {
    if (m === undefined || !registry.types.has(m) || !registry.get(m).profiles[space.name]) continue;
    agents.set(m, agentNetwork(registry.profile(m, space.name).network, space));
  }
  let imp: CheckpointImport;
  try {
    imp = importHealModalities(sd, egoNetworkFor(space), agents, file);
  } catch (err) {
    // HEAL's networks are the heal profile's; another profile's shapes never fit them.
    if (err instanceof DataError && space.name !== HEAL_SPACE.name) {
      throw new DataError(err.file, err.field, `${err.detail}\n(HEAL checkpoints fit the heal profile's networks: --profile heal)`, err.value);
    }
    throw err;
  }
  log?.(
    `heal: HEAL checkpoint ${file} → the ${space.name} profile's ego network and ${imp.types.join(', ') || 'no agent type'}:\n  ${[...describeImport(imp), ...leftOutLines(imp)].join('\n  ')}`,
  );
  const importedFrom = {
    file: path.resolve(file),
    sha256,
    bytes: bytes.length,
    format: 'HEAL state dict (PyTorch zip)',
    profile: space.name,
    types: imp.types,
    leftOut: imp.leftOut.map((l) => ({ modality: l.modality, reason: l.reason })),
  };
  return { weights: imp.weights, meta: { importedFrom }, heal: { ...imp, file: path.resolve(file), sha256, bytes: bytes.length } };
}

/** The weights of readWeightFile alone. */
export async function weightsFromFile(file: string, space: SharedSpace, registry: Registry, log?: (line: string) => void): Promise<Weights> {
  return (await readWeightFile(file, space, registry, log)).weights;
}

/** Several weight files as one (mergeWeightFiles's rule), each read by readWeightFile. */
export function readWeightFiles(
  files: string[],
  space: SharedSpace,
  registry: Registry,
  log?: (line: string) => void,
  rule: MergeRule = 'identical',
): Promise<{ weights: Weights; meta: WeightsMeta }> {
  return mergeWeightFiles(files, (f) => readWeightFile(f, space, registry, log), rule, log);
}

/** How weight files are named in messages and run records: several joined by " + ". */
export function weightsName(file: string | string[] | undefined): string | undefined {
  return Array.isArray(file) ? file.join(' + ') : file;
}

const now = () => performance.now();
const addTime = (t: StageTimes, k: string, ms: number) => {
  t[k] = (t[k] ?? 0) + ms;
};

/** Horizontal distance between two agents' sensors: what communication range is checked against. */
function distance(a: AgentInput, b: AgentInput): number {
  return Math.hypot(a.frame.lidarPose[3] - b.frame.lidarPose[3], a.frame.lidarPose[7] - b.frame.lidarPose[7]);
}

/**
 * The agents other than the ego, in their order, split by the profile's agent cap (HEAL's max_cav,
 * the ego counted): HEAL cuts its frame's agent list before it tests the communication range.
 */
function partners(agents: AgentInput[], ego: AgentInput, space: SharedSpace): { heard: AgentInput[]; capped: AgentInput[] } {
  const others = agents.filter((a) => a !== ego);
  const n = space.maxAgents === undefined ? others.length : Math.max(0, space.maxAgents - 1);
  return { heard: others.slice(0, n), capped: others.slice(n) };
}

/** Whether a box's centre lies on the ego vehicle's own body (perception/pillars.ts EGO_BODY), in the ego's frame. */
export function onEgoBody(box: Box7): boolean {
  return box[0] >= EGO_BODY.xMin && box[0] <= EGO_BODY.xMax && box[1] >= EGO_BODY.yMin && box[1] <= EGO_BODY.yMax;
}

function transformBox(box: Box7, m: Float64Array): Box7 {
  return cornersToBox(transformCorners(m, boxToCorners(box)));
}

/** A sender's first signed message and every CERT_EVERY-th carry its whole certificate, the others its digest. */
const CERT_EVERY = 10;

export class CollabPipeline {
  private readonly typeSessions = new Map<string, SessionInfo>();
  private readonly encodings = new WeakMap<AgentFrame, Map<string, Float32Array>>();
  private readonly occupancies = new WeakMap<Float32Array, Float32Array>();
  private readonly adapterAgents = new Map<string, AdapterAgent>();
  /** The ego network that also outputs the fused map, for an ego that reverts it into its own space. */
  private fusedEgo?: SessionInfo;
  private sequence = 0;
  /** Messages each sender has signed: the first and every CERT_EVERY-th carry the whole certificate. */
  private readonly signedCount = new Map<string, number>();
  /** FrameOptions.sequence of the frame under way. */
  private frameSequence: number | undefined;
  readonly anchors: Anchors;
  readonly gate: EgoGate;

  private constructor(
    readonly opts: PipelineOptions,
    private readonly ego: SessionInfo,
    private readonly weights: Weights | undefined,
    /** True when the networks run on seeded random weights: the boxes mean nothing. */
    readonly randomWeights: boolean,
    /** The fusion trust of each type that has one; every other type is trusted 1. */
    readonly trust: Trust,
    /** When the weight file is a HEAL checkpoint: what it loaded and left out. */
    readonly healImport: WeightFile['heal'] | undefined,
    /** Learned message codecs, keyed by their number of code channels. */
    readonly codecs: Map<number, LearnedCodec>,
  ) {
    this.anchors = makeAnchors(opts.space);
    this.gate = new EgoGate({ ...opts.gate, space: opts.space, verifier: opts.security?.verifier, decoders: codecs });
  }

  get provider(): Provider {
    return this.ego.provider;
  }

  get fallbackReason(): string | undefined {
    return this.ego.fallbackReason;
  }

  static async create(opts: PipelineOptions): Promise<CollabPipeline> {
    const files = opts.weightsFile === undefined ? [] : [opts.weightsFile].flat();
    const file = !opts.weights && files.length === 1 ? await readWeightFile(files[0], opts.space, opts.registry, opts.log) : undefined;
    const merged = !opts.weights && files.length > 1 ? await readWeightFiles(files, opts.space, opts.registry, opts.log, opts.mergeRule) : undefined;
    const weights = opts.weights ?? file?.weights ?? merged?.weights;
    const name = weightsName(opts.weightsFile);
    const desc = egoNetworkFor(opts.space);
    const w = weights ? pickWeights(desc, weights, name) : initWeights(desc, opts.seed ?? 0);
    // Why a better provider was skipped comes back as fallbackReason; callers print it once.
    const ego = await createSession(exportOnnx(desc, w), { device: opts.device ?? 'auto', threads: opts.threads, log: () => {} });
    if (!weights) opts.log?.('heal: no weight file given: the networks run on seeded random weights, so detections mean nothing');
    for (const type of Object.keys(opts.trust ?? {})) opts.registry.get(type);
    const trust = opts.trust === null ? {} : { ...(weights ? trustFromWeights(weights, name) : {}), ...opts.trust };
    const codecWeights: Weights = new Map(weights);
    for (const f of opts.codecWeightsFile ?? []) for (const [k, v] of (await loadWeights(f)).weights) if (k.startsWith('codec.')) codecWeights.set(k, v);
    return new CollabPipeline(opts, ego, weights, !weights, trust, file?.heal, learnedCodecs(codecWeights, opts.space.channels));
  }

  trustOf(type: string): number {
    return this.trust[type] ?? 1;
  }

  /** HEAL's crop ratios of a type in collaborative fusion (healCropRatios); none for a type this profile does not know. */
  cropRatiosOf(type: string): [number, number] | undefined {
    const { registry, space } = this.opts;
    if (!registry.types.has(type) || !registry.get(type).profiles[space.name]) return undefined;
    return healCropRatios(registry.profile(type, space.name).network, space);
  }

  private async typeSession(type: string): Promise<SessionInfo> {
    let s = this.typeSessions.get(type);
    if (s) return s;
    const profile = this.opts.registry.profile(type, this.opts.space.name);
    let bytes: Uint8Array;
    if (profile.model) {
      bytes = await readFileChecked(profile.model, `ONNX model of agent type ${type}`);
    } else {
      const desc = agentNetwork(profile.network, this.opts.space);
      const imp = this.healImport;
      if (imp && !imp.types.includes(type)) {
        const left = imp.leftOut.find((l) => l.modality === type);
        throw new DataError(
          imp.file,
          undefined,
          left
            ? `agent type ${type}: this HEAL checkpoint's ${type} was left out: ${left.reason}`
            : `agent type ${type}: this HEAL checkpoint holds no ${type} encoder (it holds ${imp.types.join(', ') || 'none'})`,
        );
      }
      const w = this.weights ? pickWeights(desc, this.weights, weightsName(this.opts.weightsFile)) : initWeights(desc, this.opts.seed ?? 0);
      bytes = exportOnnx(desc, w);
    }
    // The encoders run on the provider the ego network got, so a frame never mixes devices.
    s = await createSession(bytes, { device: this.ego.provider, threads: this.opts.threads });
    this.typeSessions.set(type, s);
    return s;
  }

  /** The runtime of a type that joined by an adapter (registry join "adapter"); undefined for any other. */
  private async adapterAgent(type: string): Promise<AdapterAgent | undefined> {
    const profile = this.opts.registry.profile(type, this.opts.space.name);
    if (profile.join !== 'adapter') return undefined;
    let a = this.adapterAgents.get(type);
    if (!a) {
      a = await AdapterAgent.create(type, profile, this.ego.provider);
      this.adapterAgents.set(type, a);
    }
    return a;
  }

  /** One agent's encoder + aligner: features [C, H', W'] in its own (ground-aligned) frame. */
  async encode(input: AgentInput, times: StageTimes = {}): Promise<Float32Array> {
    if (this.opts.reuseEncodings) {
      let byType = this.encodings.get(input.frame);
      if (!byType) this.encodings.set(input.frame, (byType = new Map()));
      const hit = byType.get(input.type);
      if (hit) return hit;
      const f = await this.encodeFresh(input, times);
      byType.set(input.type, f);
      return f;
    }
    return this.encodeFresh(input, times);
  }

  private async encodeFresh(input: AgentInput, times: StageTimes): Promise<Float32Array> {
    return (await this.encodeAgent(input, times)).bev;
  }

  /**
   * What a type detects with alone: an adapter-joined type's map in its own space and its runtime
   * (never cached: it is needed only by the ego and late fusion), any other type's shared map (encode).
   */
  private async encodeForDetection(input: AgentInput, times: StageTimes): Promise<{ bev: Float32Array; own?: HostTensor; adapter?: AdapterAgent }> {
    if (await this.adapterAgent(input.type)) return this.encodeAgent(input, times);
    return { bev: await this.encode(input, times) };
  }

  /** encode, and for a type that joined by an adapter its map in its own space and its runtime. */
  private async encodeAgent(input: AgentInput, times: StageTimes): Promise<{ bev: Float32Array; own?: HostTensor; adapter?: AdapterAgent }> {
    const frame = alignToGround(input.frame, this.opts.space);
    const profile = this.opts.registry.profile(input.type, this.opts.space.name);
    const adapter = await this.adapterAgent(input.type);
    // The type's weights are checked before its sensor data: a checkpoint without this type says so.
    const session = adapter ? undefined : await this.typeSession(input.type);
    let t = now();
    const inputs = agentInputs(profile.network, this.opts.space, frame);
    addTime(times, `preprocess.${input.type}`, now() - t);
    t = now();
    if (adapter) {
      const own = await adapter.ownFeatures(this.opts.space, inputs);
      addTime(times, `encode.${input.type}`, now() - t);
      t = now();
      const bev = await adapter.toShared(own);
      addTime(times, `adapt.${input.type}`, now() - t);
      return { bev, own, adapter };
    }
    const out = await runSession(session!.session, inputs);
    addTime(times, `encode.${input.type}`, now() - t);
    return { bev: out.bev.data as Float32Array };
  }

  /** A type's detections alone: its own head where it joined by an adapter with one, else the shared fusion and head on its map alone. */
  private async detectAlone(
    enc: { bev: Float32Array; own?: HostTensor; adapter?: AdapterAgent },
    pose: Float64Array,
    opts: Pick<FrameOptions, 'scoreThreshold' | 'nmsThreshold'>,
    times: StageTimes,
  ): Promise<Detection[]> {
    if (enc.adapter?.ownHead && enc.own) {
      const t = now();
      const out = await enc.adapter.detectOwn(enc.own);
      addTime(times, 'own head', now() - t);
      return this.decode(out, opts, times);
    }
    return this.decode(await this.fuse([enc.bev], [pose], times), opts, times);
  }

  /**
   * Runs the ego network on agents' features (ego first) given with their T_world←lidar.
   * `sent[i]`, when given, is agent i's H×W mask of transmitted cells (a sparse message): the
   * cells it did not send are left out of the fusion instead of being fused as zero features,
   * which would pull every such cell towards "nothing here". `trust[i]` (default 1) multiplies
   * agent i's fusion weight (fusion/trust.ts). `types[i]`, when given for every agent, is agent
   * i's type: with partners (two agents or more) HEAL's camera agents count only inside their
   * window (cameraWindow); the ego alone is HEAL's single-agent model, which has no window.
   */
  async fuse(
    features: Float32Array[],
    poses: Float64Array[],
    times: StageTimes = {},
    sent: (Uint8Array | undefined)[] = [],
    trust: number[] = [],
    types: string[] = [],
    withFused = false,
  ): Promise<Record<string, HostTensor>> {
    const { space } = this.opts;
    const [W, H] = featureGrid(space);
    const C = space.channels;
    const A = features.length;
    const stacked = new Float32Array(A * C * H * W);
    features.forEach((f, i) => stacked.set(f, i * C * H * W));
    const valid = new Float32Array(A * H * W).fill(1);
    sent.forEach((m, i) => {
      if (!m) return;
      if (m.length !== H * W) throw new Error(`fuse: agent ${i}'s mask of sent cells has ${m.length} entries, the grid has ${H}×${W}`);
      for (let c = 0; c < H * W; c++) valid[i * H * W + c] = m[c];
    });
    const t = now();
    const windows = A > 1 && types.length === A ? types.map((t) => this.cropRatiosOf(t)) : [];
    const out = await runSession((withFused ? await this.fusedEgoSession() : this.ego).session, egoInputsFor(space, stacked, poses, valid, trust, windows));
    addTime(times, 'warp+fuse+head', now() - t);
    return out;
  }

  private async fusedEgoSession(): Promise<SessionInfo> {
    if (!this.fusedEgo) {
      const desc = egoNetworkFor(this.opts.space, { intermediates: true });
      const w = this.weights ? pickWeights(desc, this.weights, weightsName(this.opts.weightsFile)) : initWeights(desc, this.opts.seed ?? 0);
      this.fusedEgo = await createSession(exportOnnx(desc, w), { device: this.ego.provider });
    }
    return this.fusedEgo;
  }

  /** The ego network's outputs → detections in the ego's frame (score threshold, NMS, range). */
  decode(out: Record<string, HostTensor>, opts: Pick<FrameOptions, 'scoreThreshold' | 'nmsThreshold'>, times: StageTimes = {}): Detection[] {
    const t = now();
    const dets = decodeDetections(this.anchors, out.cls.data as Float32Array, out.reg.data as Float32Array, out.dir.data as Float32Array, {
      scoreThreshold: opts.scoreThreshold,
      nmsThreshold: opts.nmsThreshold,
      range: this.opts.space.range,
    });
    addTime(times, 'decode+nms', now() - t);
    return dets;
  }

  private message(
    input: AgentInput,
    payload: { features?: Float32Array; detections?: Detection[]; occupancy?: Float32Array },
    dtype: FeatureDType,
    times: StageTimes,
    keep?: number,
    codec?: CodecSpec,
  ): Uint8Array {
    const t = now();
    const grid = gridForSpace(this.opts.space);
    const mask = payload.features && !codec && keep !== undefined && keep < 1 ? strongestCellsMask(payload.features, grid, keep) : undefined;
    const bytes = encodeMessage(
      {
        agentId: String(input.frame.agentId),
        agentType: input.type,
        timestamp: input.frame.timestamp,
        sequence: this.sequence++,
        // The pose of the ground-aligned frame the features and boxes were computed in.
        pose: groundAlignedPose(input.frame, this.opts.space),
        grid,
        features: payload.features,
        detections: payload.detections && {
          boxes: Float32Array.from(payload.detections.flatMap((d) => d.box)),
          scores: Float32Array.from(payload.detections.map((d) => d.score)),
        },
      },
      codec && payload.features
        ? encodeOptionsFor(codec, { features: payload.features, grid, occupancy: payload.occupancy, learned: this.learnedCodec(codec) })
        : { dtype, mask },
    );
    addTime(times, 'serialize', now() - t);
    const security = this.opts.security;
    if (!security) return bytes;
    const id = security.identity(String(input.frame.agentId), input.type);
    if (!id) throw new DataError('keys', 'agent', `agent ${input.frame.agentId} holds no key and certificate, so it cannot sign`, input.frame.agentId);
    const t1 = now();
    const signed = signMessage(id, bytes, Date.now(), this.digestOnly(id));
    addTime(times, 'sign', now() - t1);
    return signed;
  }

  /**
   * Whether a sender's message carries only its certificate's digest. In an evaluation frame
   * (FrameOptions.sequence) certificates are pre-distributed: the ego's verifier is handed each
   * sender's certificate, with the usual checks, and every message carries the digest, so that every
   * pass of a frame (codec, sweep value) sends the same bytes whatever ran before it. A certificate
   * the verifier refuses travels whole, so that the ego rejects the message for its own reason.
   * Otherwise a sender's first message and every CERT_EVERY-th carry the whole certificate.
   */
  private digestOnly(id: AgentIdentity): boolean {
    const security = this.opts.security!;
    if (this.frameSequence !== undefined) {
      try {
        security.verifier.learn(id.certificate.bytes, Date.now());
        return true;
      } catch (err) {
        if (err instanceof Rejected) return false;
        throw err;
      }
    }
    const key = id.certificate.digest.toString('hex');
    const n = this.signedCount.get(key) ?? 0;
    this.signedCount.set(key, n + 1);
    return n % CERT_EVERY !== 0;
  }

  /** encodeMessage's options for a codec: its dtype, cells chosen on the sender's occupancy, learned half, entropy coder. */
  /** The learned codec of a codec's ratio, if it has one; refuses a ratio the weights lack. */
  private learnedCodec(codec: CodecSpec): LearnedCodec | undefined {
    if (codec.learnedRatio === undefined) return undefined;
    const learned = this.codecs.get(this.opts.space.channels / codec.learnedRatio);
    if (!learned) {
      throw new Error(
        `codec "${codec.name}": no learned codec of ratio ${codec.learnedRatio} in the weights (train one with heal train-codec --ratio ${codec.learnedRatio}, pass it as codec weights)`,
      );
    }
    return learned;
  }

  /**
   * The sender's own foreground probability per BEV cell [H·W]: the pyramid's finest occupancy
   * map on its features alone (what it would fuse with no partner), nearest-sampled onto the grid.
   */
  async occupancyOf(features: Float32Array, pose: Float64Array, times: StageTimes = {}): Promise<Float32Array> {
    const hit = this.opts.reuseEncodings ? this.occupancies.get(features) : undefined;
    if (hit) return hit;
    const out = await this.fuse([features], [pose], times);
    const occ = out.occ0;
    const [h, w] = [occ.shape[2], occ.shape[3]];
    const [W, H] = featureGrid(this.opts.space);
    const logits = occ.data as Float32Array;
    const prob = new Float32Array(H * W);
    for (let y = 0; y < H; y++) {
      const sy = Math.min(h - 1, Math.floor((y * h) / H));
      for (let x = 0; x < W; x++) prob[y * W + x] = 1 / (1 + Math.exp(-logits[sy * w + Math.min(w - 1, Math.floor((x * w) / W))]));
    }
    if (this.opts.reuseEncodings) this.occupancies.set(features, prob);
    return prob;
  }

  /**
   * The sender side: encodes one agent and returns the message it broadcasts. In late fusion the
   * message carries the agent's own detections instead of features.
   */
  async send(
    input: AgentInput,
    mode: FusionMode,
    dtype: FeatureDType,
    times: StageTimes = {},
    keep?: number,
    scoreThreshold?: number,
    codec?: CodecSpec,
  ): Promise<Uint8Array> {
    if (mode === 'late') {
      // Senders keep boxes at the ego's score threshold, so late fusion is scored like the others.
      const enc = await this.encodeForDetection(input, times);
      const detections = await this.detectAlone(enc, input.frame.lidarPose, { scoreThreshold }, times);
      return this.message(input, { detections }, dtype, times);
    }
    const features = await this.encode(input, times);
    if (codec && (codec.topK !== undefined || codec.threshold !== undefined)) {
      const t = now();
      const occupancy = await this.occupancyOf(features, groundAlignedPose(input.frame, this.opts.space));
      addTime(times, 'occupancy', now() - t);
      return this.message(input, { features, occupancy }, dtype, times, keep, codec);
    }
    return this.message(input, { features }, dtype, times, keep, codec);
  }

  /**
   * One cooperative frame. `agents` holds every agent of the scene with its type; the one whose
   * id is `egoId` is the ego. Agents beyond the communication range send nothing the ego uses.
   * `extraMessages` are bytes received from elsewhere (tests use them for hostile input).
   */
  async runFrame(agents: AgentInput[], egoId: number, opts: FrameOptions, extraMessages: Uint8Array[] = []): Promise<FrameResult> {
    const { space } = this.opts;
    const dtype = opts.dtype ?? 'float32';
    const times: StageTimes = {};
    const startMs = Date.now();
    if (opts.sequence !== undefined) {
      // Every pass of an evaluation frame is another version of the one message each sender sends
      // in it: the same sequence numbers, and a replay check that remembers only this pass.
      this.frameSequence = opts.sequence;
      this.sequence = opts.sequence;
      this.gate.forget();
    }
    const ego = agents.find((a) => a.frame.agentId === egoId);
    if (!ego) throw new Error(`runFrame: ego ${egoId} is not among the agents (${agents.map((a) => a.frame.agentId).join(', ')})`);
    const skipped: FrameResult['skipped'] = [];
    const messageBytes: FrameResult['messageBytes'] = [];
    let received: Uint8Array[] = [];
    if (opts.mode !== 'none') {
      const sent: { id: number; bytes: Uint8Array }[] = [];
      const { heard, capped } = partners(agents, ego, space);
      for (const a of capped) skipped.push({ id: a.frame.agentId, reason: `beyond the first ${space.maxAgents} agents of the frame (max_cav)` });
      for (const a of heard) {
        const d = distance(ego, a);
        if (d > space.commRange) {
          skipped.push({ id: a.frame.agentId, reason: `out of communication range (${d.toFixed(1)} m > ${space.commRange} m)` });
          continue;
        }
        let bytes: Uint8Array;
        try {
          bytes = await this.send(a, opts.mode, dtype, times, opts.keep, opts.scoreThreshold, opts.codec);
        } catch (err) {
          // A sender without a key sends nothing the ego would accept; the frame goes on.
          if (!(err instanceof DataError && err.file === 'keys')) throw err;
          skipped.push({ id: a.frame.agentId, reason: err.detail });
          continue;
        }
        messageBytes.push({ id: a.frame.agentId, bytes: bytes.length });
        sent.push({ id: a.frame.agentId, bytes });
      }
      if (opts.channel) {
        const link = opts.channel(sent);
        received = link.received;
        skipped.push(...link.skipped);
      } else {
        received = sent.map((m) => m.bytes);
      }
      received.push(...extraMessages);
    }
    return this.egoPass(ego, received, opts, { times, skipped, messageBytes, startMs });
  }

  /**
   * What the ego fuses in a dense float32 frame, without the wire (whose float32 encoding is
   * lossless): the ego's and its in-range partners' features, ego first, with the poses and types
   * that go with them. heal calibrate encodes each scene once and fuses it under many trusts.
   */
  async encodeScene(agents: AgentInput[], egoId: number): Promise<{ features: Float32Array[]; poses: Float64Array[]; types: string[] }> {
    const ego = agents.find((a) => a.frame.agentId === egoId);
    if (!ego) throw new Error(`encodeScene: ego ${egoId} is not among the agents (${agents.map((a) => a.frame.agentId).join(', ')})`);
    const used = [ego, ...partners(agents, ego, this.opts.space).heard.filter((a) => distance(ego, a) <= this.opts.space.commRange)];
    const features: Float32Array[] = [];
    for (const a of used) features.push(await this.encode(a));
    // The partners' maps bounded as egoPass bounds what it receives, so both fuse the same.
    if (this.gate.checks) for (let i = 1; i < features.length; i++) features[i] = boundFeatures(features[i], features[0]).features;
    return { features, poses: used.map((a) => groundAlignedPose(a.frame, this.opts.space)), types: used.map((a) => a.type) };
  }

  /** The ego side: decode and validate what was received, then fuse (or merge boxes) and detect. */
  async egoPass(
    ego: AgentInput,
    received: Uint8Array[],
    opts: FrameOptions,
    acc: { times: StageTimes; skipped: FrameResult['skipped']; messageBytes: FrameResult['messageBytes']; startMs?: number } = {
      times: {},
      skipped: [],
      messageBytes: [],
    },
  ): Promise<FrameResult> {
    const { times, skipped, messageBytes } = acc;
    const egoId = ego.frame.agentId;
    const used = [{ id: egoId, type: ego.type }];
    const egoPose = groundAlignedPose(ego.frame, this.opts.space);
    // Every message passes the gate before anything of it is used; a rejected one is counted by
    // reason and the frame goes on with the rest.
    const gate = (opts.gate ?? this.gate).frame(String(egoId), egoPose, acc.startMs);
    const messages: Admitted[] = [];
    for (const bytes of received) {
      const msg = gate.admit(bytes, times);
      if (msg) messages.push(msg);
    }
    skipped.push(...gate.notes);
    const rejected: Record<string, number> = { ...gate.rejected } as Record<string, number>;
    const bounded: FrameResult['bounded'] = [];
    const egoEnc = await this.encodeForDetection(ego, times);
    const egoFeatures = egoEnc.bev;
    // An ego that joined by an adapter with its own head detects with it: alone, and on the fused map reverted into its space.
    const ownEgo = egoEnc.adapter?.ownHead ? egoEnc.adapter : undefined;
    let detections: Detection[];
    let occupancy: HostTensor[] = [];
    if (opts.mode === 'none' && ownEgo) {
      detections = await this.detectAlone(egoEnc, egoPose, opts, times);
    } else if (opts.mode === 'late') {
      const all = await this.detectAlone(egoEnc, egoPose, opts, times);
      const egoFromWorld = invert(egoPose);
      for (const msg of messages) {
        used.push({ id: Number(msg.agentId), type: msg.agentType });
        const egoFromAgent = multiply(egoFromWorld, msg.pose);
        const boxes = msg.detections?.boxes ?? new Float32Array(0);
        const scores = msg.detections?.scores ?? new Float32Array(0);
        for (let i = 0; i < scores.length; i++) {
          const box = transformBox(Array.from(boxes.subarray(i * 7, i * 7 + 7)) as Box7, egoFromAgent);
          // The ego's own boxes were kept inside its range when decoded; a partner's are kept by the same rule.
          // A partner sees the ego as a car, but the ego is not an object of its own scene (the GT
          // leaves it out, and it knows where it is): such a box would only be a false positive.
          if (cornersInRange(boxToCorners(box), this.opts.space.range) && !onEgoBody(box)) all.push({ box, score: scores[i] });
        }
      }
      const t = now();
      const keep = nmsRotated(
        all.map((d) => bevFromCorners(boxToCorners(d.box))),
        all.map((d) => d.score),
        opts.nmsThreshold ?? 0.15,
      );
      detections = keep.map((i) => all[i]);
      addTime(times, 'decode+nms', now() - t);
    } else {
      const features = [egoFeatures];
      const poses = [egoPose];
      const sent: (Uint8Array | undefined)[] = [undefined];
      const trust = [this.trustOf(ego.type)];
      const types = [ego.type];
      for (const msg of messages) {
        if (!msg.features) {
          skipped.push({ id: Number(msg.agentId), reason: 'message has no features (intermediate fusion needs them)' });
          continue;
        }
        let f = msg.features;
        // Cells a sparse message left out are left out of the fusion, unless it sent their fill.
        const mask = msg.fill ? undefined : msg.mask;
        if (this.gate.checks) {
          const b = boundFeatures(f, egoFeatures, mask);
          if (b.clipped || b.scale !== 1) bounded.push({ id: Number(msg.agentId), clipped: b.clipped, scale: b.scale });
          f = b.features;
        }
        features.push(f);
        poses.push(msg.pose);
        sent.push(mask);
        trust.push(this.trustOf(msg.agentType));
        types.push(msg.agentType);
        used.push({ id: Number(msg.agentId), type: msg.agentType });
      }
      const out = await this.fuse(features, poses, times, sent, trust, types, !!ownEgo);
      occupancy = Object.keys(out)
        .filter((k) => /^occ\d+$/.test(k))
        .sort()
        .map((k) => out[k]);
      if (ownEgo) {
        const t = now();
        const own = await ownEgo.detectOwn(await ownEgo.revert(out.fused));
        addTime(times, 'revert+own head', now() - t);
        detections = this.decode(own, opts, times);
      } else detections = this.decode(out, opts, times);
    }
    return { egoId, mode: opts.mode, detections, used, skipped, rejected, bounded, messageBytes, occupancy, times, provider: this.provider };
  }

  /** Decodes and validates a message the ego received from outside (e.g. over a network). */
  static inspectMessage(bytes: Uint8Array) {
    return { message: decodeMessage(bytes), size: messageWireSize(bytes) };
  }
}

// What the ego lets into its fusion. Every received message passes, in order: the signature and
// certificate (when the ego verifies: fusion/identity.ts) before the payload is parsed, the
// generation time, decodeMessage's checks against the ego's own grid, the certificate's id and
// type against the message's claim, the ego's own id, one message per sender per frame, sequence
// numbers that only grow per sender, and a pose inside the communication range. A message that
// fails is dropped with a named reason (identity.ts REJECT_CODES), counted in the frame's result,
// and the frame goes on with the rest. Features that pass are then bounded (boundFeatures).

import type { SharedSpace } from '../perception/space.ts';
import { type RejectCode, Rejected, type Verifier } from './identity.ts';
import { decodeMessage, type DecodedMessage, gridForSpace, MessageError, SpaceMismatch } from './messages.ts';
import type { LearnedCodec } from './codec.ts';

export interface GateOptions {
  space: SharedSpace;
  /** Checks signatures and certificates; without one, messages travel unsigned (insecure). */
  verifier?: Verifier;
  /**
   * Oldest accepted generation time, in ms before the ego's frame began (default 2000). A signed
   * time is all there is to check: unsigned messages carry none.
   */
  maxAgeMs?: number;
  /** Latest accepted generation time, in ms after the message is checked (clock skew; default 1000). */
  maxFutureMs?: number;
  /**
   * false turns off every check below decodeMessage's own and the feature bounds: heal before issue
   * 15, kept so that `heal bench hostile` can show what the checks change. Nothing else uses it.
   */
  checks?: boolean;
  /** Learned codecs' receiver halves by code channels (fusion/codec.ts), for messages whose header names one. */
  decoders?: ReadonlyMap<number, LearnedCodec>;
}

/** One received message the ego admitted: decoded, with the certified (or claimed) sender. */
export type Admitted = DecodedMessage & { certified: boolean };

/** The ego's memory across frames: the last sequence number it accepted from each sender. */
export class EgoGate {
  private readonly lastSequence = new Map<string, number>();
  readonly checks: boolean;

  constructor(readonly opts: GateOptions) {
    this.checks = opts.checks ?? true;
  }

  get signed(): boolean {
    return this.opts.verifier !== undefined;
  }

  /** Forgets every sender's last sequence number: the next frame starts a history of its own. */
  forget(): void {
    this.lastSequence.clear();
  }

  /** The gate for one frame of ego `egoId` at `egoPose` (T_world←lidar), begun at `startMs`. */
  frame(egoId: string, egoPose: Float64Array, startMs = Date.now()): FrameGate {
    return new FrameGate(this, this.lastSequence, egoId, egoPose, startMs);
  }
}

export class FrameGate {
  /** Rejections of this frame by reason. */
  readonly rejected: Partial<Record<RejectCode, number>> = {};
  /** One line per rejection: the sender when known, and why. */
  readonly notes: { id: number; reason: string }[] = [];
  private readonly senders = new Set<string>();

  constructor(
    private readonly gate: EgoGate,
    private readonly lastSequence: Map<string, number>,
    private readonly egoId: string,
    private readonly egoPose: Float64Array,
    private readonly startMs: number,
  ) {}

  /** The decoded message, or undefined when it was rejected (and counted). */
  admit(bytes: Uint8Array, times: Record<string, number> = {}): Admitted | undefined {
    let sender: string | undefined;
    try {
      const msg = this.check(bytes, times, (id) => {
        sender = id;
      });
      return msg;
    } catch (err) {
      const code: RejectCode = err instanceof Rejected ? err.code : err instanceof SpaceMismatch ? 'space-mismatch' : 'invalid';
      this.rejected[code] = (this.rejected[code] ?? 0) + 1;
      const id = sender !== undefined && /^\d+$/.test(sender) ? Number(sender) : NaN;
      this.notes.push({ id, reason: `rejected message (${code}): ${err instanceof Error ? err.message : String(err)}` });
      return undefined;
    }
  }

  get rejectedCount(): number {
    return Object.values(this.rejected).reduce((a, b) => a + (b ?? 0), 0);
  }

  private check(bytes: Uint8Array, times: Record<string, number>, onSender: (id: string) => void): Admitted {
    const { opts, checks } = this.gate;
    const add = (k: string, t0: number) => {
      times[k] = (times[k] ?? 0) + performance.now() - t0;
    };
    let payload = bytes;
    let certified: { agentId: string; agentType: string } | undefined;
    if (opts.verifier) {
      const t0 = performance.now();
      const now = Date.now();
      try {
        const v = opts.verifier.verify(bytes, now);
        onSender(v.certificate.agentId);
        const maxAge = opts.maxAgeMs ?? 2000;
        const maxFuture = opts.maxFutureMs ?? 1000;
        if (checks && (v.generationTimeMs < this.startMs - maxAge || v.generationTimeMs > now + maxFuture)) {
          throw new Rejected(
            'stale-timestamp',
            'signed.generationTimeMs',
            `was made ${now - v.generationTimeMs} ms before it was checked; the window is ${maxAge} ms before the frame began to ${maxFuture} ms ahead`,
            v.generationTimeMs,
          );
        }
        payload = v.payload;
        certified = v.certificate;
      } finally {
        add('verify', t0);
      }
    }
    const t0 = performance.now();
    let msg: DecodedMessage;
    try {
      msg = decodeMessage(payload, checks ? { grid: gridForSpace(opts.space) } : {}, opts.decoders);
    } finally {
      add('deserialize', t0);
    }
    onSender(certified?.agentId ?? msg.agentId);
    if (certified && (msg.agentId !== certified.agentId || msg.agentType !== certified.agentType)) {
      throw new Rejected(
        'identity-mismatch',
        'header.agentId',
        `claims agent ${msg.agentId} of type ${msg.agentType}, its certificate is agent ${certified.agentId} of type ${certified.agentType}`,
      );
    }
    if (msg.agentId === this.egoId) throw new Rejected('claims-ego', 'header.agentId', `claims to come from the ego (${this.egoId})`, msg.agentId);
    if (checks) {
      if (this.senders.has(msg.agentId))
        throw new Rejected('duplicate-sender', 'header.agentId', `a second message from agent ${msg.agentId} in this frame`, msg.agentId);
      const last = this.lastSequence.get(msg.agentId);
      if (last !== undefined && msg.sequence <= last) {
        throw new Rejected('replayed-sequence', 'header.sequence', `agent ${msg.agentId} already sent sequence ${last}; this one is not newer`, msg.sequence);
      }
      const d = Math.hypot(msg.pose[3] - this.egoPose[3], msg.pose[7] - this.egoPose[7]);
      if (d > opts.space.commRange) {
        throw new Rejected(
          'out-of-range',
          'pose.matrix',
          `places agent ${msg.agentId} ${d.toFixed(1)} m from the ego, beyond the ${opts.space.commRange} m communication range`,
          d,
        );
      }
      this.senders.add(msg.agentId);
      this.lastSequence.set(msg.agentId, msg.sequence);
    }
    return { ...msg, certified: certified !== undefined };
  }
}

/**
 * How far a sender's features may reach, relative to the ego's own map of the same frame: every
 * value is clipped to ±CLIP × the largest |value| of the ego's map, and a map whose mean |value|
 * over the cells it sent is above ENERGY × the ego's mean is scaled down to it. Honest maps from
 * heal's encoders stay inside both (their aligners put every type on the base type's scale); a
 * hostile map at float32's or float16's maximum, or at the largest values everywhere, becomes
 * one the fusion can outweigh instead of one that saturates every cell the sender covers.
 */
export const FEATURE_CLIP = 4;
export const FEATURE_ENERGY = 2;

export interface Bounded {
  features: Float32Array;
  /** Values clipped. */
  clipped: number;
  /** Factor the whole map was scaled by (1: none). */
  scale: number;
}

export function boundFeatures(features: Float32Array, egoFeatures: Float32Array, sent?: Uint8Array): Bounded {
  let egoMax = 0;
  let egoSum = 0;
  for (let i = 0; i < egoFeatures.length; i++) {
    const a = Math.abs(egoFeatures[i]);
    egoSum += a;
    if (a > egoMax) egoMax = a;
  }
  if (features.length !== egoFeatures.length) throw new MessageError('features.shape', `${features.length} values, the ego's map has ${egoFeatures.length}`);
  const limit = FEATURE_CLIP * egoMax;
  const cells = sent?.length ?? 0;
  let clipped = 0;
  let sum = 0;
  let count = 0;
  const out = new Float32Array(features.length);
  for (let i = 0; i < features.length; i++) {
    let v = features[i];
    if (v > limit) {
      v = limit;
      clipped++;
    } else if (v < -limit) {
      v = -limit;
      clipped++;
    }
    out[i] = v;
    if (!sent || sent[i % cells]) {
      sum += Math.abs(v);
      count++;
    }
  }
  const egoMean = egoSum / Math.max(1, egoFeatures.length);
  const mean = sum / Math.max(1, count);
  const cap = FEATURE_ENERGY * egoMean;
  let scale = 1;
  if (mean > cap) {
    scale = cap / mean;
    for (let i = 0; i < out.length; i++) out[i] *= scale;
  }
  return { features: out, clipped, scale };
}

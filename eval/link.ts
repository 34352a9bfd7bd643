// The radio between the senders and the ego (issue 14), as `heal eval --link` simulates it.
//
// Assumptions, kept few and stated:
// - All senders of a frame capture at the same instant (t = 0) and queue their messages on one
//   shared channel at once; encoding time is not modelled. The channel is idle at the start of each
//   frame (a backlog older than a frame is useless anyway: see the deadline).
// - Channel access order is random per frame (CSMA-like), seeded by the frame; a message's
//   fragments go out back to back, each fragment mtu bytes of payload (the last one the rest),
//   taking bytes·8 / bandwidth on air. No per-fragment header or retransmission (broadcast).
// - A fragment is lost with probability `loss`, independently and seeded; a message is lost when
//   any fragment is. Lost fragments still take their air time.
// - A message arrives `latency` after its last fragment left. It is in time when it arrives by the
//   deadline (100 ms at 10 Hz). One that misses it is, by policy, used at the next frame with the
//   pose it was made at ('use'; it must arrive by that frame's deadline, else it expires) or
//   dropped ('drop').

import { rngFor } from '../datasets/rng.ts';

export type LatePolicy = 'use' | 'drop';

export interface LinkConfig {
  /** Bits per second shared by every sender (Infinity: no time on air). */
  bandwidth: number;
  /** One-way latency added to every message, ms. */
  latencyMs: number;
  /** Probability that one fragment is lost. */
  loss: number;
  /** Payload bytes per fragment (Infinity: no fragmentation). */
  mtu: number;
  /** A message must arrive this long after capture to be used in its own frame, ms. */
  deadlineMs: number;
  late: LatePolicy;
}

export const LINK_PRESETS: Record<string, LinkConfig> = {
  // IEEE 802.11p at 10 MHz: 6 Mbps is its default rate (3–27 Mbps); ETSI GeoNetworking packets of 1,398 B.
  dsrc: { bandwidth: 6e6, latencyMs: 20, loss: 0.01, mtu: 1398, deadlineMs: 100, late: 'use' },
  // LTE-V2X / 5G sidelink: TS 22.186's cooperative-perception row, 20 ms; a 20 MHz channel near 27 Mbps.
  cv2x: { bandwidth: 27e6, latencyMs: 20, loss: 0.01, mtu: 1398, deadlineMs: 100, late: 'use' },
  ideal: { bandwidth: Infinity, latencyMs: 0, loss: 0, mtu: Infinity, deadlineMs: 100, late: 'use' },
};

function readValue(key: string, text: string, units: Record<string, number>, spec: string): number {
  const m = text.trim().match(/^([0-9]*\.?[0-9]+(?:e[+-]?\d+)?)\s*([A-Za-z]*)$/);
  const unit = m ? (m[2] === '' ? '' : m[2]) : undefined;
  if (!m || unit === undefined || !(unit in units)) {
    throw new Error(
      `link "${spec}": ${key}=${text} is not a number with one of the units ${Object.keys(units)
        .map((u) => u || '(none)')
        .join(', ')}`,
    );
  }
  return Number(m[1]) * units[unit];
}

const BANDWIDTH_UNITS = { bps: 1, kbps: 1e3, Kbps: 1e3, Mbps: 1e6, Gbps: 1e9, '': 1e6 };
const MS_UNITS = { ms: 1, s: 1000, '': 1 };

/** "dsrc", "bandwidth=27Mbps,latency=20ms,loss=0.01,mtu=1398" or a preset with overrides ("dsrc,bandwidth=3Mbps"). */
export function parseLink(spec: string): LinkConfig {
  const parts = spec
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean);
  let cfg: LinkConfig = { ...LINK_PRESETS.ideal };
  for (const [i, part] of parts.entries()) {
    const eq = part.indexOf('=');
    if (eq < 0) {
      const preset = LINK_PRESETS[part];
      if (!preset || i > 0) throw new Error(`link "${spec}": "${part}" is not key=value, nor a preset first (${Object.keys(LINK_PRESETS).join(', ')})`);
      cfg = { ...preset };
      continue;
    }
    const key = part.slice(0, eq).trim();
    const value = part.slice(eq + 1).trim();
    if (key === 'bandwidth') cfg.bandwidth = value === 'inf' ? Infinity : readValue(key, value, BANDWIDTH_UNITS, spec);
    else if (key === 'latency') cfg.latencyMs = readValue(key, value, MS_UNITS, spec);
    else if (key === 'deadline') cfg.deadlineMs = readValue(key, value, MS_UNITS, spec);
    else if (key === 'loss') cfg.loss = readValue(key, value, { '': 1, '%': 0.01 }, spec);
    else if (key === 'mtu') cfg.mtu = value === 'inf' ? Infinity : readValue(key, value, { '': 1, B: 1 }, spec);
    else if (key === 'late') {
      if (value !== 'use' && value !== 'drop') throw new Error(`link "${spec}": late must be use or drop (got ${value})`);
      cfg.late = value;
    } else throw new Error(`link "${spec}": unknown key "${key}" (have bandwidth, latency, loss, mtu, deadline, late)`);
  }
  if (!(cfg.bandwidth > 0)) throw new Error(`link "${spec}": bandwidth must be > 0`);
  if (!(cfg.loss >= 0 && cfg.loss <= 1)) throw new Error(`link "${spec}": loss must be in [0, 1]`);
  if (!(cfg.mtu >= 1)) throw new Error(`link "${spec}": mtu must be ≥ 1 byte`);
  if (!(cfg.latencyMs >= 0) || !(cfg.deadlineMs > 0)) throw new Error(`link "${spec}": latency must be ≥ 0 and deadline > 0`);
  return cfg;
}

/** A short name of a configuration, for row labels: "6Mbps 20ms 1% mtu1398". */
export function linkLabel(c: LinkConfig): string {
  const bw = c.bandwidth === Infinity ? '∞' : c.bandwidth >= 1e6 ? `${+(c.bandwidth / 1e6).toPrecision(4)}Mbps` : `${+(c.bandwidth / 1e3).toPrecision(4)}kbps`;
  const parts = [bw, `${c.latencyMs}ms`, `loss ${+(c.loss * 100).toPrecision(3)}%`];
  if (c.mtu !== Infinity) parts.push(`mtu ${c.mtu}`);
  if (c.deadlineMs !== 100) parts.push(`deadline ${c.deadlineMs}ms`);
  if (c.late === 'drop') parts.push('late dropped');
  return parts.join(' ');
}

export type Delivery = 'in-time' | 'late' | 'lost' | 'expired';

export interface MessageOutcome {
  id: number;
  bytes: number;
  fragments: number;
  /** When its first fragment went on air and its last one left, ms after capture. */
  startMs: number;
  endMs: number;
  /** Arrival at the ego (endMs + latency), ms after capture; Infinity when lost. */
  arrivalMs: number;
  lostFragments: number;
  /** in-time: by the deadline; late: by the next frame's deadline; expired: after that. */
  delivery: Delivery;
}

export function fragmentsOf(bytes: number, mtu: number): number {
  return mtu === Infinity ? 1 : Math.max(1, Math.ceil(bytes / mtu));
}

/** Time on air of `bytes` at `bandwidth` bits per second, in ms. */
export function airMs(bytes: number, bandwidth: number): number {
  return bandwidth === Infinity ? 0 : (bytes * 8 * 1000) / bandwidth;
}

/**
 * One frame on the channel: the messages in the order given (the caller draws it), each
 * fragmented and sent back to back after the one before; `fragmentLost(id, k)` says whether
 * fragment k of message `id` is lost.
 */
export function scheduleFrame(
  messages: { id: number; bytes: number }[],
  cfg: LinkConfig,
  fragmentLost: (id: number, fragment: number) => boolean,
): MessageOutcome[] {
  let t = 0;
  return messages.map(({ id, bytes }) => {
    const fragments = fragmentsOf(bytes, cfg.mtu);
    const startMs = t;
    let lostFragments = 0;
    for (let k = 0; k < fragments; k++) {
      const size = cfg.mtu === Infinity ? bytes : Math.min(cfg.mtu, bytes - k * cfg.mtu);
      t += airMs(Math.max(0, size), cfg.bandwidth);
      if (cfg.loss > 0 && fragmentLost(id, k)) lostFragments++;
    }
    const arrivalMs = lostFragments ? Infinity : t + cfg.latencyMs;
    const delivery: Delivery = lostFragments ? 'lost' : arrivalMs <= cfg.deadlineMs ? 'in-time' : arrivalMs <= 2 * cfg.deadlineMs ? 'late' : 'expired';
    return { id, bytes, fragments, startMs, endMs: t, arrivalMs, lostFragments, delivery };
  });
}

/** Seeded draws of one frame: the access order and each fragment's fate, keyed so nothing shifts another. */
export function frameChannel(seed: number, frameKey: string, cfg: LinkConfig) {
  const orderRng = rngFor('heal-link', seed, frameKey, 'order');
  return {
    order<T>(items: T[]): T[] {
      const out = [...items];
      for (let i = out.length - 1; i > 0; i--) {
        const j = Math.floor(orderRng.next() * (i + 1));
        [out[i], out[j]] = [out[j], out[i]];
      }
      return out;
    },
    fragmentLost: (id: number, k: number) => rngFor('heal-link', seed, frameKey, 'loss', id, k).next() < cfg.loss,
  };
}

/** What one row's frames did on the link: summed over frames, for the report. */
export interface LinkStats {
  config: string;
  messages: number;
  inTime: number;
  /** Late messages used one frame late (policy 'use'), and those the policy dropped or that expired. */
  late: number;
  lateUsed: number;
  lost: number;
  expired: number;
  bytes: number;
  airMs: number;
  frames: number;
}

export function emptyLinkStats(config: string): LinkStats {
  return { config, messages: 0, inTime: 0, late: 0, lateUsed: 0, lost: 0, expired: 0, bytes: 0, airMs: 0, frames: 0 };
}

// A message codec as one name (issue 14): what a sender applies to its BEV features, in order.
// Tokens joined by '+', e.g. "int8", "int4+top200+deflate", "learned16+int8+fg0.3+brotli":
//   float32 | float16 | int8 | int4   the dtype on the wire (int8/int4 with one scale per channel)
//   learned<R>                        the learned channel compressor, C → C/R channels (fusion/codec.ts)
//   top<K>                            only the K cells the sender's own occupancy scores highest
//   fg<P>                             only cells whose occupancy probability is above P
//   keep<F>                           only the fraction F of cells with the largest |feature| (strongestCellsMask)
//   max<B>                            with top<K>: fewer cells, the best first, until the message (unsigned)
//                                     takes at most B bytes
//   fill                              with a cell selection: also the per-channel median of the cells not sent,
//                                     which the receiver puts there and fuses (EncodeOptions.fill)
//   deflate | brotli                  an entropy coder over the quantised payload (node:zlib)
// or a preset's name (CODEC_PRESETS: fit6500, fit1398). The name travels in the message header;
// the receiver decodes by the header's fields alone.

import { CODEC_RATIOS, type LearnedCodec } from './codec.ts';
import { type BevGrid, type EncodeOptions, type EntropyCoder, type FeatureDType, strongestCellsMask } from './messages.ts';

export interface CodecSpec {
  name: string;
  dtype: FeatureDType;
  learnedRatio?: number;
  topK?: number;
  threshold?: number;
  /** Fraction of cells kept by feature magnitude. */
  keep?: number;
  /** Sends the per-channel median of the cells not sent, for the receiver to fill them with. */
  fill?: boolean;
  /** The most bytes a message may take (unsigned): fewer of the selected cells until it fits. */
  maxBytes?: number;
  entropy: EntropyCoder;
}

const DTYPES: readonly FeatureDType[] = ['float32', 'float16', 'int8', 'int4'];

/**
 * Named codecs for the radios of issue 14, chosen on the w40 validate split (README, Bandwidth and
 * the link). Each fits its size signed even when the message carries the sender's whole certificate
 * (215 B of envelope; 87 B with the digest): 6,500 B − 215 B and 1,398 B − 215 B unsigned. top4096
 * ranks every cell of the small profile's 64 × 64 grid; max<B> keeps the best that fit.
 */
export const CODEC_PRESETS: Readonly<Record<string, string>> = {
  /** 3GPP TS 22.186's cooperative-perception message: at most 6,500 B. */
  fit6500: 'int4+top4096+max6285+fill+deflate',
  /** One ETSI GeoNetworking packet: at most 1,398 B. */
  fit1398: 'int4+top4096+max1183+fill+deflate',
};

/** Reads a codec name, or a preset's (CODEC_PRESETS); throws an Error naming the token that is wrong. */
export function parseCodec(name: string): CodecSpec {
  const spec: CodecSpec = { name: name.trim(), dtype: 'float32', entropy: 'none' };
  const seen = new Set<string>();
  const once = (kind: string, token: string) => {
    if (seen.has(kind)) throw new Error(`codec "${name}": more than one ${kind} (at "${token}")`);
    seen.add(kind);
  };
  const parts = Object.hasOwn(CODEC_PRESETS, spec.name) ? CODEC_PRESETS[spec.name] : spec.name;
  for (const token of parts.split('+').map((t) => t.trim())) {
    let m: RegExpMatchArray | null;
    if ((DTYPES as readonly string[]).includes(token)) {
      once('dtype', token);
      spec.dtype = token as FeatureDType;
    } else if ((m = token.match(/^max(\d+)$/))) {
      once('byte budget', token);
      spec.maxBytes = Number(m[1]);
      if (spec.maxBytes < 1) throw new Error(`codec "${name}": max<B> needs B ≥ 1`);
    } else if (token === 'fill') {
      once('fill', token);
      spec.fill = true;
    } else if (token === 'deflate' || token === 'brotli') {
      once('entropy coder', token);
      spec.entropy = token;
    } else if ((m = token.match(/^learned(\d+)$/))) {
      once('learned codec', token);
      const r = Number(m[1]);
      if (!(CODEC_RATIOS as readonly number[]).includes(r))
        throw new Error(`codec "${name}": learned ratio must be one of ${CODEC_RATIOS.join(', ')} (got ${r})`);
      spec.learnedRatio = r;
    } else if ((m = token.match(/^top(\d+)$/))) {
      once('cell selection', token);
      spec.topK = Number(m[1]);
      if (spec.topK < 1) throw new Error(`codec "${name}": top<K> needs K ≥ 1`);
    } else if ((m = token.match(/^keep(0?\.\d+|1)$/))) {
      once('cell selection', token);
      spec.keep = Number(m[1]);
      if (!(spec.keep > 0)) throw new Error(`codec "${name}": keep<F> needs F in (0, 1]`);
    } else if ((m = token.match(/^fg(0?\.\d+|[01])$/))) {
      once('cell selection', token);
      spec.threshold = Number(m[1]);
    } else {
      throw new Error(
        `codec "${name}": unknown part "${token}" (have float32, float16, int8, int4, learned<R>, top<K>, fg<P> with P in [0, 1], keep<F>, max<B>, fill, deflate, brotli)`,
      );
    }
  }
  if (spec.fill && spec.topK === undefined && spec.threshold === undefined && spec.keep === undefined)
    throw new Error(`codec "${name}": fill needs a cell selection (top<K>, fg<P> or keep<F>): a dense message has no cells left to fill`);
  if (spec.maxBytes !== undefined && spec.topK === undefined) throw new Error(`codec "${name}": max<B> needs top<K>, the cells it drops from`);
  return spec;
}

/**
 * encodeMessage's options for a codec and one sender's map: its dtype, the cells chosen on the
 * sender's occupancy (top, fg) or by |feature| (keep), the learned half (`learned`, the one of the
 * codec's ratio), fill, byte budget and entropy coder. The one place a codec name becomes options.
 */
export function encodeOptionsFor(
  codec: CodecSpec,
  sender: { features: Float32Array; grid: BevGrid; occupancy?: Float32Array; learned?: LearnedCodec },
): EncodeOptions {
  return {
    dtype: codec.dtype,
    learned: sender.learned,
    entropy: codec.entropy,
    codecName: codec.name,
    topK: codec.topK,
    sparseThreshold: codec.threshold,
    fill: codec.fill,
    maxBytes: codec.maxBytes,
    confidence: codec.topK !== undefined || codec.threshold !== undefined ? sender.occupancy : undefined,
    mask: codec.keep !== undefined && codec.keep < 1 ? strongestCellsMask(sender.features, sender.grid, codec.keep) : undefined,
  };
}

// A message codec as one name (issue 14): what a sender applies to its BEV features, in order.
// Tokens joined by '+', e.g. "int8", "int4+top200+deflate", "learned16+int8+fg0.3+brotli":
//   float32 | float16 | int8 | int4   the dtype on the wire (int8/int4 with one scale per channel)
//   learned<R>                        the learned channel compressor, C → C/R channels (fusion/codec.ts)
//   top<K>                            only the K cells the sender's own occupancy scores highest
//   fg<P>                             only cells whose occupancy probability is above P
//   keep<F>                           only the fraction F of cells with the largest |feature| (strongestCellsMask)
//   deflate | brotli                  an entropy coder over the quantised payload (node:zlib)
// The name travels in the message header; the receiver decodes by the header's fields alone.

import { CODEC_RATIOS } from './codec.ts';
import type { EntropyCoder, FeatureDType } from './messages.ts';

export interface CodecSpec {
  name: string;
  dtype: FeatureDType;
  learnedRatio?: number;
  topK?: number;
  threshold?: number;
  /** Fraction of cells kept by feature magnitude. */
  keep?: number;
  entropy: EntropyCoder;
}

const DTYPES: readonly FeatureDType[] = ['float32', 'float16', 'int8', 'int4'];

/** Reads a codec name; throws an Error naming the token that is wrong. */
export function parseCodec(name: string): CodecSpec {
  const spec: CodecSpec = { name: name.trim(), dtype: 'float32', entropy: 'none' };
  const seen = new Set<string>();
  const once = (kind: string, token: string) => {
    if (seen.has(kind)) throw new Error(`codec "${name}": more than one ${kind} (at "${token}")`);
    seen.add(kind);
  };
  for (const token of spec.name.split('+').map((t) => t.trim())) {
    let m: RegExpMatchArray | null;
    if ((DTYPES as readonly string[]).includes(token)) {
      once('dtype', token);
      spec.dtype = token as FeatureDType;
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
        `codec "${name}": unknown part "${token}" (have float32, float16, int8, int4, learned<R>, top<K>, fg<P> with P in [0, 1], keep<F>, deflate, brotli)`,
      );
    }
  }
  return spec;
}

// The learned channel compressor (issue 14): a 1×1 convolution C→c the sender applies to its BEV
// features before quantising them, and a 1×1 convolution c→C the receiver applies after, trained
// with every other network frozen (`heal train-codec`, like an alignment). Its parameters are
// named `codec.r<ratio>.encode.*` / `codec.r<ratio>.decode.*`, so several ratios live in one
// weight file, and the receiver finds the decoder a message needs from its header alone (the
// number of code channels).
//
// The sender and the receiver run the two convolutions here in plain TypeScript: a 1×1 conv is a
// C×c matrix product per cell, well under a millisecond for the small profile, and this keeps
// fusion/messages.ts free of sessions. The same graphs export to ONNX (heal export) and train in
// tfjs (train/stages.ts CodecNet).

import { GraphBuilder, type GraphDesc } from '../models/graph.ts';
import type { Weights } from '../models/weights.ts';

export const CODEC_RATIOS = [8, 16, 32, 64] as const;

export function codeChannels(channels: number, ratio: number): number {
  const c = channels / ratio;
  if (!Number.isInteger(c) || c < 1) throw new Error(`learned codec: ${channels} channels cannot be compressed ${ratio}× (need an integer ≥ 1)`);
  return c;
}

export function codecPrefix(ratio: number): string {
  return `codec.r${ratio}`;
}

/**
 * The codec's graphs on [N, C, H, W] maps: `encoder` (bev → code), `decoder` (code → restored)
 * and `both` (bev → code, restored; what trains). The three share parameter names.
 */
export function codecGraphs(channels: number, ratio: number): { encoder: GraphDesc; decoder: GraphDesc; both: GraphDesc } {
  const c = codeChannels(channels, ratio);
  const p = codecPrefix(ratio);
  const enc = new GraphBuilder(`${p}.encoder`);
  enc.output('code', enc.conv2d(enc.input('bev', ['N', channels, 'H', 'W']), { name: `${p}.encode`, out: c, kernel: 1, pad: 0 }));
  const dec = new GraphBuilder(`${p}.decoder`);
  dec.output('restored', dec.conv2d(dec.input('code', ['N', c, 'H', 'W']), { name: `${p}.decode`, out: channels, kernel: 1, pad: 0 }));
  const both = new GraphBuilder(`${p}`);
  const code = both.conv2d(both.input('bev', ['N', channels, 'H', 'W']), { name: `${p}.encode`, out: c, kernel: 1, pad: 0 });
  both.output('code', code);
  both.output('restored', both.conv2d(code, { name: `${p}.decode`, out: channels, kernel: 1, pad: 0 }));
  return { encoder: enc.build(), decoder: dec.build(), both: both.build() };
}

/** One 1×1 convolution: weight [out, in, 1, 1], bias [out]. */
export interface PointwiseConv {
  in: number;
  out: number;
  weight: Float32Array;
  bias: Float32Array;
}

/** The sender's and receiver's halves of one trained ratio. */
export interface LearnedCodec {
  ratio: number;
  channels: number;
  code: number;
  encode: PointwiseConv;
  decode: PointwiseConv;
}

function conv(weights: Weights, name: string, inC: number, outC: number): PointwiseConv | undefined {
  const w = weights.get(`${name}.weight`);
  const b = weights.get(`${name}.bias`);
  if (!w || !b) return undefined;
  if (w.data.length !== inC * outC || b.data.length !== outC) {
    throw new Error(
      `learned codec: ${name} has ${w.data.length} weights and ${b.data.length} biases, a ${inC}→${outC} 1×1 convolution needs ${inC * outC} and ${outC}`,
    );
  }
  return { in: inC, out: outC, weight: Float32Array.from(w.data), bias: Float32Array.from(b.data) };
}

/** Every trained ratio found in a weight map, keyed by its number of code channels. */
export function learnedCodecs(weights: Weights | undefined, channels: number): Map<number, LearnedCodec> {
  const out = new Map<number, LearnedCodec>();
  if (!weights) return out;
  const ratios = [...weights.keys()].flatMap((k) => k.match(/^codec\.r(\d+)\.encode\.weight$/)?.[1] ?? []).map(Number);
  for (const ratio of ratios) {
    if (channels % ratio) continue;
    const c = channels / ratio;
    const p = codecPrefix(ratio);
    const encode = conv(weights, `${p}.encode`, channels, c);
    const decode = conv(weights, `${p}.decode`, c, channels);
    if (encode && decode) out.set(c, { ratio, channels, code: c, encode, decode });
  }
  return out;
}

/** A 1×1 convolution over [in, cells] channel-major values → [out, cells]. */
export function applyPointwise(conv: PointwiseConv, x: Float32Array, cells: number): Float32Array {
  if (x.length !== conv.in * cells) throw new Error(`learned codec: ${x.length} values, expected ${conv.in} channels × ${cells} cells`);
  const y = new Float32Array(conv.out * cells);
  for (let o = 0; o < conv.out; o++) {
    const row = y.subarray(o * cells, (o + 1) * cells);
    row.fill(conv.bias[o]);
    for (let i = 0; i < conv.in; i++) {
      const w = conv.weight[o * conv.in + i];
      if (w === 0) continue;
      const src = x.subarray(i * cells, (i + 1) * cells);
      for (let k = 0; k < cells; k++) row[k] += w * src[k];
    }
  }
  return y;
}

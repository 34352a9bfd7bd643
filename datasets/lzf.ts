// LZF (liblzf's format), as used by PCL's `DATA binary_compressed` point clouds.
//
// A stream is a sequence of chunks, each starting with a control byte c:
//   c < 32:  a literal run: the next c+1 bytes are copied as they are.
//   c ≥ 32:  a back reference: length = c >> 5 (7 means "7 + next byte"), plus 2;
//            offset = ((c & 31) << 8 | next byte) + 1 bytes back from the output end.
//            The copy may overlap its own output (a run), so it is done byte by byte.
// No npm LZF package is maintained, and both directions fit in a page, so they live here.

/** Raised for a stream that does not decode to exactly the expected number of bytes. */
export class LzfError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LzfError';
  }
}

const MAX_LITERAL = 32;
const MAX_OFFSET = 1 << 13;
const MAX_MATCH = 7 + 255 + 2;
const HASH_BITS = 16;

/** Decodes `input` into exactly `outSize` bytes; throws LzfError when the stream disagrees. */
export function lzfDecompress(input: Uint8Array, outSize: number): Uint8Array {
  const out = new Uint8Array(outSize);
  const n = input.length;
  let ip = 0;
  let op = 0;
  while (ip < n) {
    const ctrl = input[ip++];
    if (ctrl < 32) {
      const len = ctrl + 1;
      if (ip + len > n) throw new LzfError(`literal run of ${len} bytes at input byte ${ip - 1} runs past the end of the input (${n} bytes)`);
      if (op + len > outSize) throw new LzfError(`output would exceed the declared ${outSize} bytes`);
      out.set(input.subarray(ip, ip + len), op);
      ip += len;
      op += len;
    } else {
      let len = ctrl >> 5;
      if (len === 7) {
        if (ip >= n) throw new LzfError(`input ends inside a back reference at byte ${ip - 1}`);
        len += input[ip++];
      }
      len += 2;
      if (ip >= n) throw new LzfError(`input ends inside a back reference at byte ${ip - 1}`);
      const ref = op - (((ctrl & 31) << 8) | input[ip++]) - 1;
      if (ref < 0) throw new LzfError(`back reference points ${op - ref} bytes back, before the start of the output (at output byte ${op})`);
      if (op + len > outSize) throw new LzfError(`output would exceed the declared ${outSize} bytes`);
      for (let k = 0; k < len; k++) out[op + k] = out[ref + k];
      op += len;
    }
  }
  if (op !== outSize) throw new LzfError(`decoded ${op} bytes, expected ${outSize}`);
  return out;
}

/**
 * Encodes `input` as one LZF stream. Greedy matching through a hash of the next three bytes,
 * the same scheme as liblzf, so the output is about as compact as PCL's.
 */
export function lzfCompress(input: Uint8Array): Uint8Array {
  const n = input.length;
  // Worst case: all literals, one control byte per 32 of them.
  const out = new Uint8Array(n + Math.ceil(n / MAX_LITERAL) + 1);
  const table = new Int32Array(1 << HASH_BITS).fill(-1);
  let ip = 0;
  let op = 1; // out[litStart] is reserved for the control byte of the literal run in progress
  let litStart = 0;
  let lit = 0;

  const hashAt = (i: number) => (((input[i] << 16) | (input[i + 1] << 8) | input[i + 2]) * 2654435761) >>> (32 - HASH_BITS);

  while (ip < n) {
    if (ip + 2 < n) {
      const h = hashAt(ip);
      const ref = table[h];
      table[h] = ip;
      const off = ip - ref - 1;
      if (ref >= 0 && off < MAX_OFFSET && input[ref] === input[ip] && input[ref + 1] === input[ip + 1] && input[ref + 2] === input[ip + 2]) {
        const maxLen = Math.min(MAX_MATCH, n - ip);
        let len = 3;
        while (len < maxLen && input[ref + len] === input[ip + len]) len++;
        // Close the pending literal run, or take back its unused control byte.
        if (lit > 0) out[litStart] = lit - 1;
        else op--;
        const code = len - 2;
        if (code < 7) {
          out[op++] = (code << 5) | (off >> 8);
        } else {
          out[op++] = (7 << 5) | (off >> 8);
          out[op++] = code - 7;
        }
        out[op++] = off & 255;
        // Index the positions inside the match too, so long runs keep finding references.
        const end = ip + len;
        for (let k = ip + 1; k < end && k + 2 < n; k++) table[hashAt(k)] = k;
        ip = end;
        litStart = op++;
        lit = 0;
        continue;
      }
    }
    out[op++] = input[ip++];
    if (++lit === MAX_LITERAL) {
      out[litStart] = MAX_LITERAL - 1;
      litStart = op++;
      lit = 0;
    }
  }
  if (lit > 0) out[litStart] = lit - 1;
  else op--;
  return out.slice(0, op);
}

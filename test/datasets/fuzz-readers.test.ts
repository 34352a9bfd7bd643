// The seeded small reader fuzz of `heal bench fuzz-readers`: mutated and structure-aware PCD, frame
// YAML and DAIR-V2X-C JSON must each be accepted or rejected with a DataError, never crash (any
// other error) or hang.

import { describe, expect, it } from 'vitest';
import { fuzzReader } from '../../bench/fuzz-readers.ts';

describe('reader fuzz (seeded, small)', () => {
  for (const [kind, n] of [
    ['pcd', 600],
    ['yaml', 400],
    ['dair', 150],
  ] as const) {
    it(`${kind}: ${n} cases, no crash, no hang`, async () => {
      const c = await fuzzReader(kind, n, 0);
      expect(c.crashes).toEqual([]);
      expect({ crashed: c.crashed, hung: c.hung }).toEqual({ crashed: 0, hung: 0 });
      expect(c.rejected).toBeGreaterThan(n / 2);
      expect(c.accepted + c.rejected).toBe(n);
    }, 120_000);
  }
});

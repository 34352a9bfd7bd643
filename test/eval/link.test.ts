// The link model of heal eval (eval/link.ts): fragments, time on air, loss and the deadline,
// against cases computed by hand.

import { describe, expect, it } from 'vitest';
import { airMs, emptyLinkStats, fragmentsOf, frameChannel, LINK_PRESETS, linkLabel, parseLink, scheduleFrame, type LinkConfig } from '../../eval/link.ts';
import { linkChannel, type HeldMessages } from '../../eval/evaluate.ts';

const noLoss = () => false;

describe('link model arithmetic', () => {
  it('fragments at the MTU and queues senders back to back (8 Mbps: 1 byte a microsecond)', () => {
    const cfg: LinkConfig = { bandwidth: 8e6, latencyMs: 20, loss: 0, mtu: 1000, deadlineMs: 100, late: 'use' };
    expect(fragmentsOf(2500, 1000)).toBe(3);
    expect(fragmentsOf(1000, 1000)).toBe(1);
    expect(fragmentsOf(1001, 1000)).toBe(2);
    expect(airMs(1000, 8e6)).toBeCloseTo(1, 12);
    const [a, b] = scheduleFrame(
      [
        { id: 1, bytes: 2500 },
        { id: 2, bytes: 1000 },
      ],
      cfg,
      noLoss,
    );
    // A: 1000 + 1000 + 500 B = 2.5 ms on air, arrives 20 ms later; B waits for A.
    expect(a).toMatchObject({ fragments: 3, startMs: 0, delivery: 'in-time' });
    expect(a.endMs).toBeCloseTo(2.5, 9);
    expect(a.arrivalMs).toBeCloseTo(22.5, 9);
    expect(b.startMs).toBeCloseTo(2.5, 9);
    expect(b.arrivalMs).toBeCloseTo(23.5, 9);
  });

  it('a message is lost when any one of its fragments is, and its fragments still take their air time', () => {
    const cfg: LinkConfig = { bandwidth: 8e6, latencyMs: 0, loss: 0.5, mtu: 1000, deadlineMs: 100, late: 'use' };
    const out = scheduleFrame(
      [
        { id: 1, bytes: 3000 },
        { id: 2, bytes: 3000 },
      ],
      cfg,
      (id, k) => id === 1 && k === 2,
    );
    expect(out[0]).toMatchObject({ delivery: 'lost', lostFragments: 1, arrivalMs: Infinity });
    expect(out[1].startMs).toBeCloseTo(3, 9);
    expect(out[1].delivery).toBe('in-time');
  });

  it('deadline: 15,000 B at 1 Mbps is 11 fragments of 1,398 B, 120 ms on air: late; 30,000 B expires', () => {
    const cfg: LinkConfig = { bandwidth: 1e6, latencyMs: 20, loss: 0, mtu: 1398, deadlineMs: 100, late: 'use' };
    const [late] = scheduleFrame([{ id: 1, bytes: 15_000 }], cfg, noLoss);
    expect(late.fragments).toBe(11);
    expect(late.arrivalMs).toBeCloseTo(140, 9);
    expect(late.delivery).toBe('late');
    const [expired] = scheduleFrame([{ id: 1, bytes: 30_000 }], cfg, noLoss);
    expect(expired.arrivalMs).toBeCloseTo(260, 9);
    expect(expired.delivery).toBe('expired');
  });

  it('seeded fragment loss: a message of n fragments arrives with probability (1 − p)^n', () => {
    const cfg: LinkConfig = { ...LINK_PRESETS.dsrc, bandwidth: Infinity, loss: 0.05 };
    const n = 20; // 20 fragments: (0.95)^20 = 0.3585
    let arrived = 0;
    const trials = 3000;
    for (let t = 0; t < trials; t++) {
      const ch = frameChannel(0, `frame ${t}`, cfg);
      if (scheduleFrame([{ id: 1, bytes: n * cfg.mtu }], cfg, ch.fragmentLost)[0].delivery !== 'lost') arrived++;
    }
    // Binomial standard deviation sqrt(0.3585·0.6415/3000) ≈ 0.0088: 4 σ.
    expect(Math.abs(arrived / trials - 0.95 ** n)).toBeLessThan(0.035);
    // The same key draws the same fates.
    const a = frameChannel(3, 'k', cfg);
    const b = frameChannel(3, 'k', cfg);
    expect([0, 1, 2, 3].map((k) => a.fragmentLost(9, k))).toEqual([0, 1, 2, 3].map((k) => b.fragmentLost(9, k)));
  });

  it('parses presets, units and overrides, and names what is wrong', () => {
    expect(parseLink('dsrc')).toEqual(LINK_PRESETS.dsrc);
    expect(parseLink('bandwidth=27Mbps,latency=20ms,loss=0.01,mtu=1398')).toEqual({
      ...LINK_PRESETS.ideal,
      bandwidth: 27e6,
      latencyMs: 20,
      loss: 0.01,
      mtu: 1398,
    });
    expect(parseLink('dsrc,bandwidth=3Mbps,late=drop')).toMatchObject({ bandwidth: 3e6, late: 'drop', mtu: 1398 });
    expect(parseLink('cv2x,latency=0.2s').latencyMs).toBeCloseTo(200, 9);
    expect(() => parseLink('bandwidth=fast')).toThrow(/bandwidth=fast/);
    expect(() => parseLink('speed=3')).toThrow(/unknown key "speed"/);
    expect(() => parseLink('loss=2')).toThrow(/loss must be in/);
    expect(linkLabel(parseLink('dsrc'))).toBe('6Mbps 20ms loss 1% mtu 1398');
  });
});

describe('late messages in heal eval', () => {
  const cfg: LinkConfig = { bandwidth: 1e6, latencyMs: 20, loss: 0, mtu: 1398, deadlineMs: 100, late: 'use' };
  const big = new Uint8Array(15_000); // 140 ms: misses its deadline, arrives before the next one
  const small = new Uint8Array(1_000);

  it("a message that misses its frame's deadline is used at the next frame (policy use)", () => {
    const held: HeldMessages = new Map();
    const stats = emptyLinkStats('test');
    const f0 = linkChannel(cfg, 0, 'f0', 'row', 0, held, stats)([{ id: 5, bytes: big }]);
    expect(f0.received).toEqual([]);
    expect(f0.skipped[0].reason).toMatch(/late/);
    // Frame 1: this frame's message misses too; the one made at frame 0 arrived meanwhile and is used.
    const f1 = linkChannel(cfg, 0, 'f1', 'row', 1, held, stats)([{ id: 5, bytes: big.slice() }]);
    expect(f1.received.length).toBe(1);
    expect(f1.received[0]).toBe(big);
    // Frame 2: in time again.
    const f2 = linkChannel(cfg, 0, 'f2', 'row', 2, held, stats)([{ id: 5, bytes: small }]);
    expect(f2.received).toEqual([small]);
    expect(stats).toMatchObject({ messages: 3, inTime: 1, late: 2, lateUsed: 1, lost: 0, expired: 0, frames: 3 });
  });

  it('policy drop never uses a late message, and a held one is not used two frames on', () => {
    const held: HeldMessages = new Map();
    const stats = emptyLinkStats('test');
    const drop = { ...cfg, late: 'drop' as const };
    linkChannel(drop, 0, 'f0', 'row', 0, held, stats)([{ id: 5, bytes: big }]);
    expect(linkChannel(drop, 0, 'f1', 'row', 1, held, stats)([{ id: 5, bytes: big }]).received).toEqual([]);
    const use: HeldMessages = new Map();
    linkChannel(cfg, 0, 'f0', 'row', 0, use, emptyLinkStats('x'))([{ id: 5, bytes: big }]);
    expect(linkChannel(cfg, 0, 'f2', 'row', 2, use, emptyLinkStats('x'))([{ id: 5, bytes: big }]).received).toEqual([]);
  });
});

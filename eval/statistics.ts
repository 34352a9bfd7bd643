// Statistics over an evaluation's frames: AP per row, percentiles of stage times, bytes.

import { bevCorners, type Box7 } from '../datasets/geometry/boxes.ts';
import type { GtBox } from '../datasets/frame.ts';
import { ApAccumulator, DEFAULT_IOU_THRESHOLDS } from './metrics.ts';
import { emptyLinkStats, type LinkStats } from './link.ts';
import { rowKey, rowLabel, type ApByThreshold, type FrameLine, type ReportRow, type StageLatency, type Variant } from './contracts.ts';

/** Nearest-rank percentile of an unsorted list. */
export function percentile(values: number[], p: number): number {
  if (!values.length) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1];
}

export function median(values: number[]): number {
  if (!values.length) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export function apOf(acc: ApAccumulator): ApByThreshold {
  const r = acc.result({ maxCurvePoints: 2 });
  const at = (t: number) => r.find((x) => Math.abs(x.iouThreshold - t) < 1e-9)?.ap ?? 0;
  return { '0.3': at(0.3), '0.5': at(0.5), '0.7': at(0.7) };
}

export class RowStats {
  readonly acc = new ApAccumulator(DEFAULT_IOU_THRESHOLDS);
  readonly byUsed = new Map<string, ApAccumulator>();
  readonly bytes: number[] = [];
  readonly times = new Map<string, number[]>();
  linkStats?: LinkStats;
  constructor(
    readonly combo: string[],
    readonly variant: Variant,
  ) {}

  add(line: FrameLine, det: { box: Box7; score: number }[], gt: GtBox[]): void {
    const detFp = det.map((d) => bevCorners(d.box));
    const scores = det.map((d) => d.score);
    const gtFp = gt.map((g) => bevCorners(g.box));
    this.acc.addFrame(detFp, scores, gtFp);
    const used = [...new Set(line.agents.filter((a) => a.used).map((a) => a.type))].sort().join('+');
    let u = this.byUsed.get(used);
    if (!u) this.byUsed.set(used, (u = new ApAccumulator(DEFAULT_IOU_THRESHOLDS)));
    u.addFrame(detFp, scores, gtFp);
    this.bytes.push(line.bytes);
    if (line.linkStats) {
      this.linkStats ??= emptyLinkStats(line.linkStats.config);
      for (const k of ['messages', 'inTime', 'late', 'lateUsed', 'lost', 'expired', 'bytes', 'airMs', 'frames'] as const)
        this.linkStats[k] += line.linkStats[k];
    }
    for (const [k, v] of Object.entries(line.times)) {
      let list = this.times.get(k);
      if (!list) this.times.set(k, (list = []));
      list.push(v);
    }
  }

  row(): ReportRow {
    const results = this.acc.result({ maxCurvePoints: 200 });
    const mean = this.bytes.length ? this.bytes.reduce((a, b) => a + b, 0) / this.bytes.length : 0;
    const latency: Record<string, StageLatency> = {};
    for (const [k, v] of this.times) latency[k] = { median: median(v), p95: percentile(v, 95), n: v.length };
    return {
      key: rowKey(this.combo, this.variant),
      label: rowLabel(this.combo, this.variant),
      combo: this.combo,
      ...this.variant,
      frames: this.acc.frames,
      detections: this.acc.detections,
      gt: this.acc.groundTruth,
      ap: apOf(this.acc),
      pr: results.map((r) => ({ iou: r.iouThreshold, precision: r.precision, recall: r.recall })),
      bytes: {
        mean,
        log2: mean > 0 ? Math.log2(mean) : null,
        min: this.bytes.length ? Math.min(...this.bytes) : 0,
        max: this.bytes.length ? Math.max(...this.bytes) : 0,
      },
      byUsedTypes: [...this.byUsed.entries()].sort((a, b) => a[0].localeCompare(b[0])).map(([types, acc]) => ({ types, frames: acc.frames, ap: apOf(acc) })),
      latency,
      ...(this.linkStats ? { linkStats: this.linkStats } : {}),
    };
  }
}

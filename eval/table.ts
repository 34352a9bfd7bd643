// The AP table heal eval prints.

import type { EvalReport, ReportRow } from './contracts.ts';

/** What a row swept beyond the table's columns: its link and pose noise, or ''. */
function sweptOf(r: ReportRow): string {
  return [r.link ? `@ ${r.link}` : '', r.poseNoise !== undefined ? `pose σ ${r.poseNoise}` : ''].filter(Boolean).join(' ');
}

export function formatTable(report: EvalReport): string {
  const swept = report.rows.some((r) => sweptOf(r));
  const head = [
    'combination',
    'fusion',
    'dtype',
    'keep',
    'frames',
    'AP@0.3',
    'AP@0.5',
    'AP@0.7',
    'bytes/frame',
    'log2',
    ...(swept ? ['link / pose noise'] : []),
  ];
  const body = report.rows.map((r) => [
    r.combo.join('+'),
    r.fusion,
    r.fusion === 'pyramid' ? (r.codec ?? r.dtype) : '-',
    r.fusion === 'pyramid' ? `${Math.round(r.keep * 100)}%` : '-',
    String(r.frames),
    r.ap['0.3'].toFixed(3),
    r.ap['0.5'].toFixed(3),
    r.ap['0.7'].toFixed(3),
    formatBytes(r.bytes.mean),
    r.bytes.log2 === null ? '-' : r.bytes.log2.toFixed(2),
    ...(swept ? [sweptOf(r)] : []),
  ]);
  return alignTable(head, body, [4, 5, 6, 7, 8, 9]);
}

/** Rows run over a link: what the link did to their messages, with their AP. */
export function formatLinkTable(report: EvalReport): string {
  const rows = report.rows.filter((r) => r.linkStats);
  const pct = (n: number, of: number) => (of ? `${((100 * n) / of).toFixed(0)}%` : '-');
  return alignTable(
    ['link', 'combination', 'fusion', 'codec', 'bytes/msg', 'air ms/frame', 'in time', 'late', 'late used', 'lost', 'expired', 'AP@0.5', 'AP@0.7'],
    rows.map((r) => {
      const s = r.linkStats!;
      return [
        s.config + (r.poseNoise !== undefined ? ` pose σ ${r.poseNoise}` : ''),
        r.combo.join('+'),
        r.fusion,
        r.fusion === 'pyramid' ? (r.codec ?? r.dtype) + (r.keep < 1 ? ` ${Math.round(r.keep * 100)}%` : '') : '-',
        s.messages ? formatBytes(s.bytes / s.messages) : '-',
        s.frames ? (s.airMs / s.frames).toFixed(1) : '-',
        pct(s.inTime, s.messages),
        pct(s.late, s.messages),
        pct(s.lateUsed, s.messages),
        pct(s.lost, s.messages),
        pct(s.expired, s.messages),
        r.ap['0.5'].toFixed(3),
        r.ap['0.7'].toFixed(3),
      ];
    }),
    [4, 5, 6, 7, 8, 9, 10, 11, 12],
  );
}

/** Per-stage latency of one row: median and p95 in ms. */
export function formatLatency(row: ReportRow): string {
  const stages = Object.entries(row.latency).sort((a, b) => (a[0] === 'total' ? 1 : b[0] === 'total' ? -1 : b[1].median - a[1].median));
  return alignTable(
    ['stage', 'median ms', 'p95 ms', 'frames'],
    stages.map(([k, s]) => [k, s.median.toFixed(1), s.p95.toFixed(1), String(s.n)]),
    [1, 2, 3],
  );
}

export function formatBytes(b: number): string {
  if (b <= 0) return '0';
  if (b < 1024) return `${b.toFixed(0)} B`;
  if (b < 1024 * 1024) return `${(b / 1024).toFixed(1)} KiB`;
  return `${(b / 1024 / 1024).toFixed(2)} MiB`;
}

export function alignTable(head: string[], body: string[][], right: number[]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((r) => r[i].length)));
  const fmt = (r: string[]) =>
    r
      .map((c, i) => (right.includes(i) ? c.padStart(widths[i]) : c.padEnd(widths[i])))
      .join('  ')
      .trimEnd();
  return [fmt(head), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(fmt)].join('\n');
}

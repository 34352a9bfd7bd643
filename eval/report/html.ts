// The HTML report of `heal eval`: one self-contained file (inline CSS and SVG, no scripts, no
// network), so it can be archived with the run or attached to an issue and still open.

import type { EvalReport, ReportRow } from '../contracts.ts';
import { formatBytes } from '../table.ts';
import { formatTrust } from '../../fusion/trust.ts';
import { PALETTE, esc, linePlot, hbarChart, type Series } from './svg.ts';
import { parseLink, type LinkConfig } from '../link.ts';

export const CSS = `
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1180px;color:#222;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
table{border-collapse:collapse;margin:6px 0 10px;font-variant-numeric:tabular-nums}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:left}td.n,th.n{text-align:right}th{background:#f5f5f5}
.warn{background:#fff4e5;border:1px solid #f0b35a;padding:8px 12px;border-radius:4px;margin:10px 0}
.meta td:first-child{color:#555}.plots{display:flex;flex-wrap:wrap;gap:14px}
.plots figure{margin:0;border:1px solid #e5e5e5;border-radius:4px;padding:4px;background:#fff}
figcaption{font-size:12px;color:#555;max-width:460px;padding:2px 6px}
svg text{font-size:11px;fill:#333}svg .t{font-size:13px;font-weight:600}svg .g{stroke:#eee}svg .frame{fill:none;stroke:#999}
svg .lg{font-size:10.5px}svg .lgbox{fill:#fff;fill-opacity:.85;stroke:#ccc}svg .empty{fill:#999;font-size:13px}svg .pl{font-size:10px;fill:#444}svg .cat{font-size:10.5px}
code{background:#f3f3f3;padding:1px 4px;border-radius:3px}small{color:#666}
`;

function apCell(v: number): string {
  return `<td class="n">${v.toFixed(3)}</td>`;
}

function resultsTable(rows: ReportRow[]): string {
  const head =
    '<tr><th>combination</th><th>fusion</th><th>dtype</th><th class="n">keep</th><th class="n">frames</th><th class="n">AP@0.3</th><th class="n">AP@0.5</th><th class="n">AP@0.7</th><th class="n">detections</th><th class="n">GT</th><th class="n">bytes / frame</th><th class="n">log2(bytes)</th><th class="n">median total ms</th></tr>';
  const body = rows
    .map(
      (r) =>
        `<tr><td>${esc(r.combo.join(' + '))}</td><td>${esc(r.fusion)}</td><td>${r.fusion === 'pyramid' ? esc(r.dtype) : '–'}</td>` +
        `<td class="n">${r.fusion === 'pyramid' ? `${Math.round(r.keep * 100)}%` : '–'}</td><td class="n">${r.frames}</td>${apCell(r.ap['0.3'])}${apCell(r.ap['0.5'])}${apCell(r.ap['0.7'])}` +
        `<td class="n">${r.detections}</td><td class="n">${r.gt}</td><td class="n">${esc(formatBytes(r.bytes.mean))}</td><td class="n">${r.bytes.log2 === null ? '–' : r.bytes.log2.toFixed(2)}</td>` +
        `<td class="n">${r.latency.total ? r.latency.total.median.toFixed(1) : '–'}</td></tr>`,
    )
    .join('');
  return `<table>${head}${body}</table>`;
}

function usedTypesTable(rows: ReportRow[]): string {
  const body = rows.flatMap((r) =>
    r.byUsedTypes.map(
      (u) =>
        `<tr><td>${esc(r.label)}</td><td>${esc(u.types || '(none)')}</td><td class="n">${u.frames}</td>${apCell(u.ap['0.3'])}${apCell(u.ap['0.5'])}${apCell(u.ap['0.7'])}</tr>`,
    ),
  );
  return `<table><tr><th>configuration</th><th>agent types used in the frame</th><th class="n">frames</th><th class="n">AP@0.3</th><th class="n">AP@0.5</th><th class="n">AP@0.7</th></tr>${body.join('')}</table>`;
}

function latencyTable(rows: ReportRow[]): string {
  const stages = stageOrder(rows);
  const head = `<tr><th>stage</th>${rows.map((r) => `<th class="n">${esc(r.label)}<br><small>median / p95 ms</small></th>`).join('')}</tr>`;
  const body = stages
    .map(
      (s) =>
        `<tr><td>${esc(s)}</td>${rows
          .map((r) => {
            const l = r.latency[s];
            return `<td class="n">${l ? `${l.median.toFixed(1)} / ${l.p95.toFixed(1)}` : '–'}</td>`;
          })
          .join('')}</tr>`,
    )
    .join('');
  return `<table>${head}${body}</table>`;
}

function stageOrder(rows: ReportRow[]): string[] {
  const seen = new Map<string, number>();
  for (const r of rows) for (const [k, v] of Object.entries(r.latency)) seen.set(k, Math.max(seen.get(k) ?? 0, v.median));
  return [...seen.keys()].sort((a, b) => (a === 'total' ? 1 : b === 'total' ? -1 : (seen.get(b) ?? 0) - (seen.get(a) ?? 0)));
}

export function figure(svg: string, caption: string): string {
  return `<figure>${svg}<figcaption>${caption}</figcaption></figure>`;
}

/** One row per combination and mode, at the run's first dtype and dense: the sweep would only repeat them. */
function mainRows(rows: ReportRow[], mainDtype: string): ReportRow[] {
  return rows.filter((r) => r.fusion !== 'pyramid' || (r.dtype === mainDtype && r.keep === 1));
}

function prPlots(rows: ReportRow[]): string {
  const shown = rows.slice(0, PALETTE.length);
  return [0.3, 0.5, 0.7]
    .map((iou) => {
      const series: Series[] = shown.map((r, i) => {
        const pr = r.pr.find((p) => Math.abs(p.iou - iou) < 1e-9);
        const points = pr ? pr.recall.map((rc, k) => [rc, pr.precision[k]] as [number, number]) : [];
        // A one-detection curve is a point: draw it as one.
        return {
          name: points.length ? r.label : `${r.label} (no detections)`,
          color: PALETTE[i],
          points,
          markers: points.length === 1 ? ('circle' as const) : undefined,
        };
      });
      return figure(
        linePlot({
          title: `Precision–recall, IoU ${iou}`,
          xLabel: 'recall',
          yLabel: 'precision',
          x: [0, 1],
          y: [0, 1],
          series,
          empty: 'no detections above the score threshold',
          width: 290,
          height: 280,
        }),
        `Raw precision after each ranked detection (all frames, global score order); AP is the VOC all-point area under the interpolated curve.${rows.length > shown.length ? ` First ${shown.length} configurations.` : ''}`,
      );
    })
    .join('');
}

function apBars(rows: ReportRow[]): string {
  const series = (['0.3', '0.5', '0.7'] as const).map((t, i) => ({ name: `AP@${t}`, color: PALETTE[i], values: rows.map((r) => r.ap[t]) }));
  return figure(
    hbarChart({ title: 'AP per configuration', xLabel: 'AP', categories: rows.map((r) => r.label), series, x: [0, 1] }),
    'AP@0.3/0.5/0.7 for each agent-type combination and fusion mode (and dtype / kept cells where swept).',
  );
}

function bandwidthPlot(rows: ReportRow[]): string {
  const combos = [...new Set(rows.map((r) => r.combo.join('+')))];
  const marker = { pyramid: 'circle', late: 'square', none: 'triangle' } as const;
  const series: Series[] = [];
  combos.forEach((c, i) => {
    for (const fusion of ['pyramid', 'late', 'none'] as const) {
      const rs = rows.filter((r) => r.combo.join('+') === c && r.fusion === fusion).sort((a, b) => a.bytes.mean - b.bytes.mean);
      if (!rs.length) continue;
      series.push({
        name: `${c} ${fusion}`,
        color: PALETTE[i % PALETTE.length],
        markers: marker[fusion],
        line: fusion === 'pyramid' && rs.length > 1,
        points: rs.map((r) => [r.bytes.log2 ?? 0, r.ap['0.5']]),
        // Labels once (first combination): the others sit at the same bandwidths.
        labels: i === 0 ? rs.map((r) => (fusion === 'pyramid' ? `${r.dtype}${r.keep < 1 ? ` ${Math.round(r.keep * 100)}%` : ''}` : fusion)) : undefined,
      });
    }
  });
  const xs = rows.map((r) => r.bytes.log2 ?? 0);
  const lo = Math.floor(Math.min(...xs, 0) - 0.5),
    hi = Math.ceil(Math.max(...xs, 1) + 1.5);
  return figure(
    linePlot({
      title: 'AP@0.5 against bandwidth',
      xLabel: 'log2(bytes received per frame)',
      yLabel: 'AP@0.5',
      x: [lo, hi],
      y: [0, 1],
      series,
      width: 520,
      height: 320,
    }),
    'One point per configuration: circles pyramid fusion (one per dtype and fraction of BEV cells kept), squares late fusion (boxes only), triangles no fusion (0 bytes, drawn at 0).',
  );
}

function latencyPlot(rows: ReportRow[]): string {
  const shown = rows.slice(0, 24);
  const stages = stageOrder(shown).filter((s) => s !== 'total');
  return figure(
    hbarChart({
      title: 'Latency per stage (median)',
      xLabel: 'ms per frame',
      categories: shown.map((r) => r.label),
      stacked: true,
      series: stages.map((s, i) => ({ name: s, color: PALETTE[i % PALETTE.length], values: shown.map((r) => r.latency[s]?.median) })),
      marks: shown.map((r) => (r.latency.total ? { value: r.latency.total.median, hi: r.latency.total.p95 } : undefined)),
      markName: 'total ms',
    }),
    'Stage medians end to end; the black tick is the median of the whole pass and the whisker its p95. Per-agent stages (preprocess.*, encode.*, serialize, deserialize) are summed over the agents of a frame. p95 per stage: table below.',
  );
}

/** The link parameters that differ between the run's links, with each link's value (x units: Mbps, ms, %, B). */
const LINK_AXES = [
  { key: 'bandwidth', label: 'link bandwidth (Mbps)', of: (c: LinkConfig) => c.bandwidth / 1e6 },
  { key: 'latencyMs', label: 'link latency (ms)', of: (c: LinkConfig) => c.latencyMs },
  { key: 'loss', label: 'fragment loss (%)', of: (c: LinkConfig) => c.loss * 100 },
  { key: 'mtu', label: 'MTU (bytes)', of: (c: LinkConfig) => c.mtu },
] as const;

/** One line per configuration (the row's label without the swept part) of AP@0.5 against x. */
function sweepPlot(rows: ReportRow[], x: (r: ReportRow) => number | undefined, strip: RegExp, label: string, caption: string): string {
  const groups = new Map<string, ReportRow[]>();
  for (const r of rows) {
    if (x(r) === undefined) continue;
    const name = r.label.replace(strip, '').replace(/ none$/, ' (ego alone)');
    groups.set(name, [...(groups.get(name) ?? []), r]);
  }
  const xs = [...new Set(rows.map(x).filter((v): v is number => v !== undefined))].sort((a, b) => a - b);
  if (xs.length < 2 || xs.some((v) => !Number.isFinite(v))) return '';
  const series: Series[] = [...groups.entries()].map(([name, rs], i) => ({
    name,
    color: rs[0].fusion === 'none' ? '#888' : PALETTE[i % PALETTE.length],
    dash: rs[0].fusion !== 'pyramid',
    markers: rs[0].fusion === 'pyramid' ? 'circle' : rs[0].fusion === 'late' ? 'square' : 'triangle',
    points: rs.map((r) => [x(r)!, r.ap['0.5']] as [number, number]).sort((a, b) => a[0] - b[0]),
  }));
  return figure(
    linePlot({
      title: `AP@0.5 against ${label}`,
      xLabel: label,
      yLabel: 'AP@0.5',
      x: [Math.min(...xs, 0), xs[xs.length - 1] * 1.05],
      y: [0, 1],
      series,
      width: 560,
      height: 340,
      xTicks: xs,
    }),
    caption,
  );
}

/**
 * AP@0.5 against each link parameter and the pose noise the run swept: one line per combination,
 * fusion mode and codec; late fusion dashed, the ego alone dashed grey.
 */
function sweepPlots(rows: ReportRow[], links: string[] | undefined): string {
  const out: string[] = [];
  const cfg = new Map((links ?? []).map((l) => [l, parseLink(l)]));
  const linkCaption =
    'One line per configuration over the swept links (eval/link.ts: senders share the channel, fragments at the MTU, a message lost with any fragment, late ones used one frame late or dropped); late fusion dashed, the ego alone dashed grey.';
  for (const axis of LINK_AXES) {
    if (new Set([...cfg.values()].map(axis.of)).size < 2) continue;
    out.push(sweepPlot(rows, (r) => (r.link ? axis.of(cfg.get(r.link)!) : undefined), / @ .*?(?= pose σ|$)/, axis.label, linkCaption));
  }
  out.push(
    sweepPlot(
      rows,
      (r) => r.poseNoise,
      / pose σ [0-9.]+$/,
      'pose noise σ (m on x, y; degrees on yaw)',
      "Gaussian noise on the senders' poses as the ego receives them (HEAL's protocol), one line per configuration; late fusion dashed, the ego alone dashed grey.",
    ),
  );
  return out.join('');
}

function linkTable(rows: ReportRow[]): string {
  const linked = rows.filter((r) => r.linkStats);
  if (!linked.length) return '';
  const pct = (n: number, of: number) => (of ? `${((100 * n) / of).toFixed(0)}%` : '–');
  return `<h2>The link</h2><table><tr><th>link</th><th>configuration</th><th class="n">bytes / message</th><th class="n">air ms / frame</th><th class="n">in time</th><th class="n">late</th><th class="n">late, used</th><th class="n">lost</th><th class="n">expired</th><th class="n">AP@0.5</th><th class="n">AP@0.7</th></tr>${linked
    .map((r) => {
      const s = r.linkStats!;
      return `<tr><td>${esc(s.config)}</td><td>${esc(r.label.replace(/ @ .*$/, ''))}</td><td class="n">${s.messages ? Math.round(s.bytes / s.messages) : '–'}</td><td class="n">${s.frames ? (s.airMs / s.frames).toFixed(1) : '–'}</td><td class="n">${pct(s.inTime, s.messages)}</td><td class="n">${pct(s.late, s.messages)}</td><td class="n">${pct(s.lateUsed, s.messages)}</td><td class="n">${pct(s.lost, s.messages)}</td><td class="n">${pct(s.expired, s.messages)}</td>${apCell(r.ap['0.5'])}${apCell(r.ap['0.7'])}</tr>`;
    })
    .join('')}</table>`;
}

export function renderReport(report: EvalReport): string {
  const r = report.run;
  const noise = r.poseNoise ? `σx ${r.poseNoise[0]} m, σy ${r.poseNoise[1]} m, σyaw ${r.poseNoise[2]}°` : 'off';
  const meta: [string, string][] = [
    ['dataset', `<code>${esc(r.data)}</code>, split <b>${esc(r.split)}</b>`],
    [
      'frames',
      `${report.frames.evaluated} evaluated of ${report.frames.total}${report.frames.failed ? `, <b>${report.frames.failed} skipped</b> (see below)` : ''}`,
    ],
    ['profile', esc(r.profile)],
    ['execution provider', `${esc(report.provider)} (asked: ${esc(r.device)})${report.fallbackReason ? ` <small>${esc(report.fallbackReason)}</small>` : ''}`],
    ['weights', r.weights ? `<code>${esc(r.weights)}</code>` : 'seeded random (no weight file)'],
    ['combinations', r.combos.map((c) => esc(c.join(', '))).join(' ; ')],
    ['fusion', esc(r.fusion.join(', '))],
    ['fusion trust', esc(formatTrust(r.fusionTrust ?? {}))],
    ['feature dtypes', esc(r.dtypes.join(', '))],
    ['kept BEV cells', esc(r.keep.map((k) => `${Math.round(k * 100)}%`).join(', '))],
    ...(r.codecs?.length ? [['codecs', esc(r.codecs.join(', '))] as [string, string]] : []),
    ...(r.links?.length ? [['links', esc(r.links.join(' ; '))] as [string, string]] : []),
    ['score threshold', r.scoreThreshold === undefined || r.scoreThreshold === 0.2 ? "0.2 (HEAL's)" : `<b>${r.scoreThreshold}</b> (not HEAL's 0.2)`],
    ['time', `${report.seconds.toFixed(1)} s, ${report.msPerFrame.toFixed(0)} ms per collaborative pass; started ${esc(r.createdAt)}`],
  ];
  const robust: [string, string][] = [
    ['pose noise (senders)', noise],
    ['message latency', r.latency ? `${r.latency} frame(s): collaborators' messages come from frame t−${r.latency}` : 'off'],
    ['dropped messages', r.drop ? `p = ${r.drop} per message (seed ${r.seed})` : 'off'],
  ];
  const kv = (rows: [string, string][]) => `<table class="meta">${rows.map(([k, v]) => `<tr><td>${esc(k)}</td><td>${v}</td></tr>`).join('')}</table>`;
  const failures = report.failures.length
    ? `<table><tr><th>frame</th><th>file</th><th>reason</th></tr>${report.failures.map((f) => `<tr><td>${esc(`${f.split}/${f.scenario} ${f.timestamp}`)}</td><td><code>${esc(f.file)}</code></td><td>${esc(f.reason)}</td></tr>`).join('')}</table>`
    : '<p>None: every frame was read and evaluated.</p>';
  const warn = report.randomWeights
    ? '<div class="warn"><b>Random weights.</b> No weight file was given or shipped: the networks ran on seeded random weights, so these AP values say nothing about the method. The numbers of bytes and the latencies are real.</div>'
    : '';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>heal eval: ${esc(r.split)} of ${esc(r.data)}</title><style>${CSS}</style></head>
<body>
<h1>heal eval</h1>
<p><small>AP with HEAL's protocol: rotated BEV IoU, greedy matching per frame, global score ordering, VOC all-point interpolation. GT: cooperative boxes within communication range, in the ego's ground-aligned LiDAR frame, inside the shared space.</small></p>
${warn}
${kv(meta)}
<h2>Robustness settings</h2>
${kv(robust)}
<h2>Results</h2>
${resultsTable(report.rows)}
<h2>Plots</h2>
<div class="plots">${prPlots(mainRows(report.rows, r.dtype))}${apBars(report.rows)}${bandwidthPlot(report.rows)}${latencyPlot(mainRows(report.rows, r.dtype))}${sweepPlots(report.rows, r.links)}</div>
${linkTable(report.rows)}
<h2>AP by the agent types actually used</h2>
<p><small>Agents out of communication range or whose message was dropped do not count, so one combination can appear with several sets.</small></p>
${usedTypesTable(report.rows)}
<h2>Latency per stage</h2>
${latencyTable(report.rows)}
<h2>Skipped frames</h2>
${failures}
</body></html>
`;
}

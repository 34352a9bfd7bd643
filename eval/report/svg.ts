// Inline SVG charts for the HTML reports: no scripts, no external files, so a report is one file
// that opens anywhere (also offline, also attached to an issue).

export const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#7f7f7f', '#bcbd22'];

export function esc(text: unknown): string {
  return String(text).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

const f = (v: number) => (Math.round(v * 10) / 10).toString();

/** About `count` round tick values covering [lo, hi]. */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? raw;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step) out.push(Math.round(v / step) * step);
  return out;
}

function fmtTick(v: number): string {
  return Math.abs(v) >= 1e6 ? v.toExponential(0) : String(Math.round(v * 1000) / 1000);
}

interface Frame {
  width: number;
  height: number;
  x: (v: number) => number;
  y: (v: number) => number;
  parts: string[];
}

const MARGIN = { left: 52, right: 16, top: 30, bottom: 42 };
const LEGEND_W = 250;

function axes(o: {
  title: string;
  xLabel: string;
  yLabel: string;
  x: [number, number];
  y: [number, number];
  width?: number;
  height?: number;
  xTicks?: number[];
  legend?: boolean;
}): Frame {
  const width = (o.width ?? 460) + (o.legend ? LEGEND_W : 0),
    height = o.height ?? 300;
  const pw = width - MARGIN.left - MARGIN.right - (o.legend ? LEGEND_W : 0),
    ph = height - MARGIN.top - MARGIN.bottom;
  const x = (v: number) => MARGIN.left + ((v - o.x[0]) / (o.x[1] - o.x[0] || 1)) * pw;
  const y = (v: number) => MARGIN.top + ph - ((v - o.y[0]) / (o.y[1] - o.y[0] || 1)) * ph;
  const parts: string[] = [];
  parts.push(`<text x="${MARGIN.left + pw / 2}" y="18" text-anchor="middle" class="t">${esc(o.title)}</text>`);
  for (const t of o.xTicks ?? niceTicks(o.x[0], o.x[1])) {
    parts.push(`<line x1="${f(x(t))}" x2="${f(x(t))}" y1="${MARGIN.top}" y2="${MARGIN.top + ph}" class="g"/>`);
    parts.push(`<text x="${f(x(t))}" y="${MARGIN.top + ph + 14}" text-anchor="middle">${fmtTick(t)}</text>`);
  }
  for (const t of niceTicks(o.y[0], o.y[1])) {
    parts.push(`<line x1="${MARGIN.left}" x2="${MARGIN.left + pw}" y1="${f(y(t))}" y2="${f(y(t))}" class="g"/>`);
    parts.push(`<text x="${MARGIN.left - 5}" y="${f(y(t) + 4)}" text-anchor="end">${fmtTick(t)}</text>`);
  }
  parts.push(`<rect x="${MARGIN.left}" y="${MARGIN.top}" width="${pw}" height="${ph}" class="frame"/>`);
  parts.push(`<text x="${MARGIN.left + pw / 2}" y="${height - 6}" text-anchor="middle">${esc(o.xLabel)}</text>`);
  parts.push(`<text transform="translate(13 ${MARGIN.top + ph / 2}) rotate(-90)" text-anchor="middle">${esc(o.yLabel)}</text>`);
  return { width, height, x, y, parts };
}

/** Legend in the band reserved on the right (axes/hbar charts reserve LEGEND_W when they have one). */
function finish(fr: Frame, legend: { name: string; color: string; dash?: boolean }[] = []): string {
  const lx = fr.width - LEGEND_W + 8;
  const items = legend.map((l, i) => {
    const ly = MARGIN.top + 10 + i * 15;
    return (
      `<line x1="${lx}" x2="${lx + 16}" y1="${ly - 4}" y2="${ly - 4}" stroke="${l.color}" stroke-width="3"${l.dash ? ' stroke-dasharray="4 3"' : ''}/>` +
      `<text x="${lx + 21}" y="${ly}" class="lg">${esc(l.name.length > 38 ? l.name.slice(0, 37) + '…' : l.name)}</text>`
    );
  });
  return `<svg viewBox="0 0 ${fr.width} ${fr.height}" width="${fr.width}" height="${fr.height}" role="img">${fr.parts.join('')}${items.join('')}</svg>`;
}

export interface Series {
  name: string;
  color: string;
  points: [number, number][];
  dash?: boolean;
  /** Draw markers (with optional text beside each point) instead of, or as well as, a line. */
  markers?: 'circle' | 'square' | 'triangle';
  line?: boolean;
  labels?: string[];
}

export function linePlot(o: {
  title: string;
  xLabel: string;
  yLabel: string;
  x: [number, number];
  y: [number, number];
  series: Series[];
  empty?: string;
  width?: number;
  height?: number;
  xTicks?: number[];
}): string {
  const fr = axes({ ...o, legend: true });
  const anyPoint = o.series.some((s) => s.points.length);
  if (!anyPoint) {
    fr.parts.push(`<text x="${fr.width / 2}" y="${fr.height / 2}" text-anchor="middle" class="empty">${esc(o.empty ?? 'no data')}</text>`);
    return finish(fr, o.series);
  }
  for (const s of o.series) {
    if (!s.points.length) continue;
    if (s.line !== false) {
      const d = s.points.map(([x, y], i) => `${i ? 'L' : 'M'}${f(fr.x(x))} ${f(fr.y(y))}`).join('');
      fr.parts.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="2"${s.dash ? ' stroke-dasharray="5 3"' : ''}/>`);
    }
    if (s.markers) {
      s.points.forEach(([x, y], i) => {
        const cx = fr.x(x),
          cy = fr.y(y);
        const shape =
          s.markers === 'square'
            ? `<rect x="${f(cx - 4)}" y="${f(cy - 4)}" width="8" height="8" fill="${s.color}"/>`
            : s.markers === 'triangle'
              ? `<path d="M${f(cx)} ${f(cy - 5)}L${f(cx + 5)} ${f(cy + 4)}L${f(cx - 5)} ${f(cy + 4)}Z" fill="${s.color}"/>`
              : `<circle cx="${f(cx)}" cy="${f(cy)}" r="4.5" fill="${s.color}"/>`;
        fr.parts.push(shape);
        // Slanted so that labels of points close together do not print over each other.
        if (s.labels?.[i]) fr.parts.push(`<text transform="translate(${f(cx + 3)} ${f(cy - 7)}) rotate(-40)" class="pl">${esc(s.labels[i])}</text>`);
      });
    }
  }
  return finish(fr, o.series);
}

/**
 * Horizontal bars: one band per category, inside it one bar per series (grouped) or one bar made
 * of all series end to end (stacked). `marks` draws a tick with a whisker per category (e.g. a
 * total's median and p95 over stacked stage medians).
 */
export function hbarChart(o: {
  title: string;
  xLabel: string;
  categories: string[];
  series: { name: string; color: string; values: (number | undefined)[] }[];
  stacked?: boolean;
  x?: [number, number];
  marks?: ({ value: number; hi: number } | undefined)[];
  markName?: string;
}): string {
  const barH = 11;
  const band = o.stacked ? barH + 8 : o.series.length * barH + 8;
  const labelW = Math.min(300, 14 + 6.9 * Math.max(0, ...o.categories.map((c) => c.length)));
  const width = labelW + 360 + MARGIN.right + LEGEND_W;
  const height = MARGIN.top + MARGIN.bottom + o.categories.length * band;
  const val = (v: number | undefined) => (v !== undefined && Number.isFinite(v) ? v : 0);
  const ends = o.categories.map((_, c) =>
    o.stacked ? o.series.reduce((a, s) => a + val(s.values[c]), 0) : Math.max(0, ...o.series.map((s) => val(s.values[c]))),
  );
  const max = o.x?.[1] ?? Math.max(1e-3, ...ends, ...(o.marks ?? []).map((m) => (m ? m.hi : 0)));
  const pw = 360;
  const x = (v: number) => labelW + (Math.min(v, max) / max) * pw;
  const parts: string[] = [`<text x="${labelW + pw / 2}" y="18" text-anchor="middle" class="t">${esc(o.title)}</text>`];
  for (const t of niceTicks(0, max)) {
    parts.push(`<line x1="${f(x(t))}" x2="${f(x(t))}" y1="${MARGIN.top}" y2="${height - MARGIN.bottom}" class="g"/>`);
    parts.push(`<text x="${f(x(t))}" y="${height - MARGIN.bottom + 14}" text-anchor="middle">${fmtTick(t)}</text>`);
  }
  parts.push(`<text x="${labelW + pw / 2}" y="${height - 8}" text-anchor="middle">${esc(o.xLabel)}</text>`);
  o.categories.forEach((cat, c) => {
    const top = MARGIN.top + c * band + 4;
    parts.push(`<text x="${labelW - 6}" y="${f(top + (band - 8) / 2 + 4)}" text-anchor="end">${esc(cat)}</text>`);
    let acc = 0;
    o.series.forEach((s, k) => {
      const v = s.values[c];
      if (v === undefined || !Number.isFinite(v)) return;
      const x0 = o.stacked ? x(acc) : labelW;
      const y = o.stacked ? top : top + k * barH;
      acc += v;
      const x1 = o.stacked ? x(acc) : x(v);
      parts.push(
        `<rect x="${f(x0)}" y="${y}" width="${f(Math.max(0.5, x1 - x0))}" height="${barH - 1}" fill="${s.color}"><title>${esc(`${cat}, ${s.name}: ${v.toFixed(3)}`)}</title></rect>`,
      );
      // Grouped bars carry their value, so a zero reads as zero rather than as a missing bar.
      if (!o.stacked) parts.push(`<text x="${f(x1 + 3)}" y="${y + barH - 2}" class="pl">${v.toFixed(3)}</text>`);
    });
    const m = o.marks?.[c];
    if (m) {
      const y = top + (o.stacked ? barH / 2 : (o.series.length * barH) / 2);
      parts.push(
        `<line x1="${f(x(m.value))}" x2="${f(x(m.hi))}" y1="${f(y)}" y2="${f(y)}" stroke="#222"/><line x1="${f(x(m.hi))}" x2="${f(x(m.hi))}" y1="${f(y - 4)}" y2="${f(y + 4)}" stroke="#222"/>` +
          `<line x1="${f(x(m.value))}" x2="${f(x(m.value))}" y1="${f(y - 7)}" y2="${f(y + 7)}" stroke="#222" stroke-width="2"><title>${esc(`${cat}, ${o.markName ?? ''}: ${m.value.toFixed(1)} (p95 ${m.hi.toFixed(1)})`)}</title></line>`,
      );
    }
  });
  parts.push(`<line x1="${labelW}" x2="${labelW}" y1="${MARGIN.top}" y2="${height - MARGIN.bottom}" stroke="#555"/>`);
  return finish({ width, height, x, y: (v) => v, parts }, o.series);
}

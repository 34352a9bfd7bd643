// `heal calibrate`: fits each agent type's fusion trust (fusion/trust.ts). Everything trained stays
// frozen; for every type T, the scenes of a split (train by default: held-out splits stay held out)
// are run with a base-type ego and T partners, each scene encoded once and fused under every trust
// of a grid. T's trust is the grid value with the best AP@0.5; ties go to the larger trust, the one
// nearer HEAL's rule. Writes the weights with the trusts in them, a record for heal export, and a
// page with AP against trust.

import * as path from 'node:path';
import { promises as fs } from 'node:fs';
import { openDataset } from '../datasets/open.ts';
import type { AgentFrame } from '../datasets/frame.ts';
import { DataError, writeFileAtomic } from '../datasets/io.ts';
import { ApAccumulator, DEFAULT_IOU_THRESHOLDS } from '../eval/metrics.ts';
import { bevCorners } from '../datasets/geometry/boxes.ts';
import { loadRegistry } from '../perception/registry.ts';
import { spaceByName } from '../perception/space.ts';
import { encodeWeights } from '../models/weights.ts';
import type { Device, Provider } from '../models/runtime.ts';
import { CollabPipeline, readWeightFiles, type AgentInput } from '../fusion/pipeline.ts';
import type { Detection } from '../fusion/detect.ts';
import { egoGroundTruth } from '../eval/groundtruth.ts';
import { apOf } from '../eval/statistics.ts';
import { describeError, selectFrames } from '../eval/evaluate.ts';
import type { ApByThreshold, FrameFailure } from '../eval/contracts.ts';
import { withTrust, type Trust } from '../fusion/trust.ts';
import { CSS, figure } from '../eval/report/html.ts';
import { PALETTE, esc, linePlot, type Series } from '../eval/report/svg.ts';

export const DEFAULT_TRUST_GRID = [1, 0.5, 0.3, 0.2, 0.1, 0.05, 0];

export interface CalibrateOptions {
  data: string;
  /** One weight file, or several alignments of one base (merged as heal export merges them). */
  weightsFiles: string[];
  /** Types to calibrate. */
  types: string[];
  /** The ego's type. */
  base: string;
  split: string;
  limit?: number;
  grid: number[];
  device: Device;
  profile: string;
  typesDirs?: string[];
  scoreThreshold?: number;
  /** Run folder: weights.bin and calibrate.json. */
  out: string;
  /** The command line, for the record. */
  command?: string;
  log?: (line: string) => void;
  progress?: (total: number) => { tick(n?: number, info?: Record<string, string | number>): void; stop(): void };
}

export interface CalibrateRecord {
  command?: string;
  data: string;
  split: string;
  base: string;
  grid: number[];
  weightsFrom: string[];
  provider: Provider;
  frames: { total: number; evaluated: number; failed: number };
  failures: FrameFailure[];
  /** Per type: AP of a base-type ego with that type's partners under each trust, and the choice. */
  types: Record<string, { rows: { trust: number; ap: ApByThreshold; detections: number }[]; trust: number }>;
  /** Every type's trust (the chosen ones), as the weight file now carries them. */
  fusionTrust: Trust;
  wallSeconds: number;
  finishedAt: string;
}

export function checkCalibrateOptions(o: CalibrateOptions): void {
  if (!o.weightsFiles.length) throw new Error('weightsFiles: give the weight file(s) to calibrate');
  if (!o.types.length) throw new Error('types: give at least one agent type to calibrate');
  if (!o.grid.length) throw new Error('grid: give at least one trust value');
  for (const t of o.grid) if (!(Number.isFinite(t) && t >= 0)) throw new Error(`grid: trust values must be finite numbers ≥ 0 (got ${t})`);
  if (o.limit !== undefined && !(Number.isInteger(o.limit) && o.limit >= 1)) throw new Error(`limit: must be a positive integer (got ${o.limit})`);
}

/** The best AP@0.5; among equal ones the largest trust. */
export function chooseTrust(rows: { trust: number; ap: ApByThreshold }[]): number {
  let best = rows[0];
  for (const r of rows) {
    const better = r.ap['0.5'] > best.ap['0.5'] || (r.ap['0.5'] === best.ap['0.5'] && r.trust > best.trust);
    if (better) best = r;
  }
  return best.trust;
}

export async function calibrate(o: CalibrateOptions): Promise<{ record: CalibrateRecord; weightsFile: string; recordFile: string; pageFile: string }> {
  checkCalibrateOptions(o);
  const t0 = performance.now();
  const log = o.log ?? (() => {});
  const space = spaceByName(o.profile);
  const registry = await loadRegistry(o.typesDirs ?? []);
  for (const t of [o.base, ...o.types]) registry.profile(t, space.name);
  const grid = [...new Set(o.grid)].sort((a, b) => b - a);
  // A bad dataset or split fails before the networks load.
  const ds = await openDataset(o.data);
  const frames = selectFrames(ds, o.split, o.limit);
  const { weights, meta } = await readWeightFiles(o.weightsFiles, space, registry);
  // The partners get each trust of the grid in turn; the ego keeps the one its type has.
  const pipeline = await CollabPipeline.create({ space, registry, device: o.device, weights, weightsFile: o.weightsFiles.join(' + ') });

  const acc = new Map(o.types.map((t) => [t, grid.map(() => new ApAccumulator(DEFAULT_IOU_THRESHOLDS))]));
  const failures: CalibrateRecord['failures'] = [];
  let evaluated = 0;
  const bar = o.progress?.(frames.length);
  for (const ref of frames) {
    // Scores for the whole frame are added only once every type has run, so that all rows count
    // the same frames when one fails half-way.
    const pending: { type: string; k: number; det: Detection[] }[] = [];
    let gt: ReturnType<typeof bevCorners>[] = [];
    try {
      const egoId = ref.agentIds[0];
      const frameOf = async (id: number, type: string): Promise<AgentFrame> => {
        const t = registry.get(type);
        return ds.readAgentFrame(ref, id, { lidar: t.sensor.lidar ?? 64, images: t.modality === 'camera' });
      };
      const ego: AgentInput = { frame: await frameOf(egoId, o.base), type: o.base };
      gt = (await egoGroundTruth(ds, ref, ego.frame, space)).map((g) => bevCorners(g.box));
      for (const type of o.types) {
        const agents = [ego];
        for (const id of ref.agentIds.slice(1)) agents.push({ frame: await frameOf(id, type), type });
        const scene = await pipeline.encodeScene(agents, egoId);
        for (const [k, t] of grid.entries()) {
          const trust = scene.types.map((ty, i) => (i > 0 && ty === type ? t : pipeline.trustOf(ty)));
          const out = await pipeline.fuse(scene.features, scene.poses, {}, [], trust);
          pending.push({ type, k, det: pipeline.decode(out, { scoreThreshold: o.scoreThreshold }) });
        }
      }
    } catch (err) {
      const { file, reason } = describeError(err);
      failures.push({ scenario: ref.scenario, split: ref.split, timestamp: ref.timestamp, file, reason });
      log(`skipped ${ref.split}/${ref.scenario} ${ref.timestamp}: ${reason}`);
      bar?.tick(1, { failed: failures.length });
      continue;
    }
    for (const p of pending) {
      acc.get(p.type)![p.k].addFrame(
        p.det.map((d) => bevCorners(d.box)),
        p.det.map((d) => d.score),
        gt,
      );
    }
    evaluated++;
    bar?.tick(1, failures.length ? { failed: failures.length } : undefined);
  }
  bar?.stop();
  if (!evaluated) throw new DataError(o.data, 'split', `no frame of split "${o.split}" could be read; nothing to calibrate on`, o.split);

  const types: CalibrateRecord['types'] = {};
  const chosen: Trust = {};
  for (const type of o.types) {
    const rows = grid.map((trust, k) => ({ trust, ap: apOf(acc.get(type)![k]), detections: acc.get(type)![k].detections }));
    chosen[type] = chooseTrust(rows);
    types[type] = { rows, trust: chosen[type] };
  }
  const fusionTrust = { ...pipeline.trust, ...chosen };
  // Written only now, so a calibration that dies leaves no weights that look calibrated.
  await fs.mkdir(o.out, { recursive: true });
  const weightsFile = path.join(path.resolve(o.out), 'weights.bin');
  const recordFile = path.join(path.resolve(o.out), 'calibrate.json');
  await writeFileAtomic(weightsFile, encodeWeights(withTrust(weights, fusionTrust), { ...meta, calibrated: { split: o.split, base: o.base, fusionTrust } }));
  const record: CalibrateRecord = {
    command: o.command,
    data: path.resolve(o.data),
    split: o.split,
    base: o.base,
    grid,
    weightsFrom: o.weightsFiles.map((f) => path.resolve(f)),
    provider: pipeline.provider,
    frames: { total: frames.length, evaluated, failed: failures.length },
    failures,
    types,
    fusionTrust,
    wallSeconds: (performance.now() - t0) / 1000,
    finishedAt: new Date().toISOString(),
  };
  await writeFileAtomic(recordFile, JSON.stringify(record, null, 2) + '\n');
  const pageFile = path.join(path.resolve(o.out), 'calibrate.html');
  await writeFileAtomic(pageFile, renderCalibration(record));
  return { record, weightsFile, recordFile, pageFile };
}

/** The AP@0.5 table a user reads: one row per trust, one column per type, the choices marked. */
export function formatCalibration(record: CalibrateRecord): string {
  const types = Object.keys(record.types);
  const head = ['trust', ...types.map((t) => `${record.base}+${t}`)];
  const lines = [head.map((h) => h.padStart(9)).join(' ')];
  for (const [k, trust] of record.grid.entries()) {
    const cells = types.map((t) => {
      const r = record.types[t].rows[k];
      return `${r.ap['0.5'].toFixed(3)}${r.trust === record.types[t].trust ? '*' : ' '}`;
    });
    lines.push([String(trust).padStart(9), ...cells.map((c) => c.padStart(9))].join(' '));
  }
  return lines.join('\n');
}

/** heal calibrate's page: AP@0.5 against trust per type (the picture), then the table. */
export function renderCalibration(record: CalibrateRecord): string {
  const types = Object.keys(record.types);
  const ys = types.flatMap((t) => record.types[t].rows.map((r) => r.ap['0.5']));
  const series: Series[] = types.map((t, i) => ({
    name: `${record.base} ego + ${t} partners (chosen ${record.types[t].trust})`,
    color: PALETTE[i % PALETTE.length],
    points: record.types[t].rows.map((r) => [r.trust, r.ap['0.5']] as [number, number]),
    markers: 'circle',
    line: true,
  }));
  const hi = Math.min(1, Math.ceil((Math.max(0.1, ...ys) + 0.05) * 10) / 10);
  const plot = linePlot({
    title: `AP@0.5 against fusion trust, split ${record.split}`,
    xLabel: "trust (1 = HEAL's rule, 0 = left out)",
    yLabel: 'AP@0.5',
    x: [0, Math.max(1, ...record.grid)],
    y: [0, hi],
    series,
    width: 560,
    height: 340,
  });
  const head = `<tr><th>trust</th>${types.map((t) => `<th>${esc(`${record.base}+${t}`)} AP@0.3 / 0.5 / 0.7</th>`).join('')}</tr>`;
  const rows = record.grid
    .map(
      (trust, k) =>
        `<tr><td class="n">${trust}</td>${types
          .map((t) => {
            const r = record.types[t].rows[k];
            const cell = `${r.ap['0.3'].toFixed(3)} / ${r.ap['0.5'].toFixed(3)} / ${r.ap['0.7'].toFixed(3)}`;
            return `<td class="n">${r.trust === record.types[t].trust ? `<b>${cell}</b>` : cell}</td>`;
          })
          .join('')}</tr>`,
    )
    .join('');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>heal calibrate: ${esc(record.data)}</title><style>${CSS}</style></head>
<body>
<h1>heal calibrate</h1>
<p>${record.frames.evaluated} frames of split <b>${esc(record.split)}</b> of <code>${esc(record.data)}</code>${record.frames.failed ? `, ${record.frames.failed} skipped` : ''}; provider ${esc(record.provider)}; ${record.wallSeconds.toFixed(0)} s.
Each type's trust multiplies its weight in the pyramid's softmax over agents; the chosen one (bold) has the best AP@0.5, ties going to the larger.</p>
<div class="plots">${figure(plot, "One curve per type; 0 is the ego without that type's partners.")}</div>
<table>${head}${rows}</table>
</body></html>
`;
}

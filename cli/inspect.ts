// `heal inspect DIR`: what is in a dataset folder, frame by frame; `--json` for machines,
// `--png` for a top-down picture of one frame.

import * as path from 'node:path';
import type { AgentInfo, Dataset, FrameRef, LidarBeams } from '../datasets/dataset.ts';
import type { AgentFrame } from '../datasets/frame.ts';
import { DataError } from '../datasets/io.ts';
import { datasetWarnings, openDataset } from '../datasets/open.ts';
import { writeTopDown } from '../viewer/topdown.ts';
import { mat4ToRows } from '../datasets/geometry/transforms.ts';
import { type Progress, progress } from './progress.ts';
import { type Io, choice, command, flag, int, number, processIo, runCommand, string, outFile } from './args.ts';

export const INSPECT = command({
  name: 'inspect',
  usage: 'DIR [options]',
  about: `Summarizes an OPV2V / OPV2V-H / V2XSet or DAIR-V2X-C dataset. DIR may be the dataset root,
one split folder or one scenario folder.`,
  positionals: { name: 'DIR', min: 1, max: 1 },
  options: {
    json: flag({
      help: "one JSON object per line per agent and frame: scenario, agent, type, timestamp, lidarPose (4x4 rows), points (count), boxes (GT in that agent's LiDAR frame, [x,y,z,h,w,l,yaw]); nothing else goes to stdout",
    }),
    png: outFile({
      help: 'write a top-down picture of one frame (points of all agents in the ego frame, cooperative GT boxes) instead of the summary',
    }),
    scenario: string({ arg: 'NAME', help: 'only this scenario (NAME or SPLIT/NAME)' }),
    frame: string({ arg: 'TS', help: 'only this timestamp (with --png: the frame to draw; default the first)' }),
    ego: int({ arg: 'ID', help: "ego agent for --png (default: the frame's default ego)" }),
    range: number({ arg: 'M', above: 0, max: 1000, default: 60, help: 'half-width of the --png view in meters' }),
    lidar: choice(['64', '32', '16'], { arg: 'N', default: '64', help: 'beams of the LiDAR file to read: <ts>.pcd, <ts>_32.pcd or <ts>_16.pcd' }),
    limit: int({ min: 1, help: 'read at most N frames of each scenario' }),
  },
  exclusive: [['json', 'png']],
  epilog: `A frame that cannot be read is reported on stderr and skipped. Exit status: 0, or 3 when no
frame could be read, 2 for bad options, 1 when DIR cannot be opened.`,
});

/** Where output goes; tests pass their own collectors. */
export type InspectIo = Io;

interface Options {
  dir: string;
  json: boolean;
  png?: string;
  scenario?: string;
  frame?: string;
  ego?: number;
  range: number;
  lidar: LidarBeams;
  limit?: number;
}

export function run(args: string[], io: InspectIo = processIo): Promise<number> {
  return runCommand(
    INSPECT,
    args,
    async ({ values, positionals }) => {
      const opts: Options = { ...values, dir: positionals[0], lidar: Number(values.lidar) as LidarBeams };
      let ds: Dataset;
      try {
        ds = await openDataset(opts.dir);
      } catch (err) {
        if (!(err instanceof DataError)) throw err;
        io.err(`heal inspect: ${err.message}\n`);
        return 1;
      }
      for (const w of datasetWarnings(ds)) io.err(`warning: ${w}\n`);

      const frames = selectFrames(ds.frames(), opts);
      if (frames.length === 0) {
        io.err(`heal inspect: no frames match${opts.scenario ? ` --scenario ${opts.scenario}` : ''}${opts.frame ? ` --frame ${opts.frame}` : ''}\n`);
        return 1;
      }
      if (opts.png) return writePicture(ds, frames[0], opts, io);
      return opts.json ? inspectJson(ds, frames, opts, io) : inspectTable(ds, frames, opts, io);
    },
    io,
  );
}

function selectFrames(all: FrameRef[], opts: Options): FrameRef[] {
  const perScenario = new Map<string, number>();
  const out: FrameRef[] = [];
  for (const f of all) {
    if (opts.scenario && opts.scenario !== f.scenario && opts.scenario !== `${f.split}/${f.scenario}`) continue;
    if (opts.frame && opts.frame !== f.timestamp) continue;
    const key = `${f.split}/${f.scenario}`;
    const n = perScenario.get(key) ?? 0;
    if (opts.limit !== undefined && n >= opts.limit) continue;
    perScenario.set(key, n + 1);
    out.push(f);
  }
  return out;
}

async function writePicture(ds: Dataset, ref: FrameRef, opts: Options, io: InspectIo): Promise<number> {
  const egoId = opts.ego ?? ref.agentIds[0];
  if (!ref.agentIds.includes(egoId)) {
    io.err(`heal inspect: agent ${egoId} is not in ${ref.scenario} ${ref.timestamp} (agents: ${ref.agentIds.join(', ')})\n`);
    return 1;
  }
  const file = path.resolve(opts.png!);
  const rangeM = opts.range;
  try {
    const s = await writeTopDown(file, ds, ref, { egoId, lidar: opts.lidar, rangeM });
    io.out(
      `wrote ${file}: top-down view of ${where(ref)} ${ref.timestamp}, ego ${s.egoId}, ` +
        `${s.agents} agents (${s.agentsInRange} within comm range), ${s.points} points, ${s.boxes} GT boxes, ±${rangeM} m\n`,
    );
    return 0;
  } catch (err) {
    if (!(err instanceof DataError)) throw err;
    io.err(`heal inspect: cannot draw ${where(ref)} ${ref.timestamp}: ${err.message}\n`);
    return 1;
  }
}

/**
 * Reads every agent of a frame; an error in any of them makes the whole frame bad. Readers throw
 * DataError naming the file; anything else is a reader bug, still reported for this frame alone
 * so that one file cannot end the survey of the rest.
 */
async function readFrame(ds: Dataset, ref: FrameRef, lidar: LidarBeams | undefined): Promise<AgentFrame[] | DataError> {
  const frames: AgentFrame[] = [];
  for (const id of ref.agentIds) {
    try {
      frames.push(await ds.readAgentFrame(ref, id, { lidar }));
    } catch (err) {
      return asDataError(err, ref, id);
    }
  }
  return frames;
}

function asDataError(err: unknown, ref: FrameRef, agentId: number): DataError {
  if (err instanceof DataError) return err;
  const what = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  return new DataError(`${where(ref)} ${ref.timestamp} agent ${agentId}`, undefined, `unexpected error while reading (a reader bug): ${what}`);
}

/**
 * A progress bar for long runs. Lines written while a TTY bar is showing first clear the bar's
 * line; the bar redraws itself below them on its next tick.
 */
function startProgress(total: number, io: InspectIo): { bar?: Progress; say: (stream: 'out' | 'err', text: string) => void } {
  const bar = total >= 20 ? progress('inspect', total) : undefined;
  const clear = bar !== undefined && process.stderr.isTTY && io === processIo;
  return {
    bar,
    say(stream, text) {
      if (clear) process.stderr.write('\r\x1b[K');
      io[stream](text);
    },
  };
}

async function inspectJson(ds: Dataset, frames: FrameRef[], opts: Options, io: InspectIo): Promise<number> {
  const { bar, say } = startProgress(frames.length, io);
  let bad = 0;
  for (const ref of frames) {
    const read = await readFrame(ds, ref, opts.lidar);
    if (read instanceof DataError) {
      bad++;
      say('err', `bad frame ${where(ref)} ${ref.timestamp}: ${read.message}\n`);
    } else {
      const lines = read.map((f) =>
        JSON.stringify({
          split: f.split,
          scenario: f.scenario,
          agent: f.agentId,
          type: f.kind,
          timestamp: f.timestamp,
          lidarFile: f.lidarFile,
          lidarPose: mat4ToRows(f.lidarPose),
          points: f.points.length / 4,
          boxes: f.boxes.map((b) => (b.label === undefined ? { id: b.id, box: b.box } : { id: b.id, label: b.label, box: b.box })),
        }),
      );
      say('out', lines.join('\n') + '\n');
    }
    bar?.tick();
  }
  bar?.stop();
  return finish(frames.length, bad, io);
}

async function inspectTable(ds: Dataset, frames: FrameRef[], opts: Options, io: InspectIo): Promise<number> {
  const t0 = Date.now();
  const { bar, say } = startProgress(frames.length, io);
  const scenarios = new Map(ds.scenarios().map((s) => [where({ split: s.split, scenario: s.name }), s]));
  let bad = 0,
    agentFrames = 0,
    pointSum = 0,
    boxSum = 0,
    coopSum = 0;
  const seenScenarios = new Set<string>();

  say(
    'out',
    `dataset ${ds.format} at ${ds.root}: ${scenarios.size} scenarios, ${ds.frames().length} frames` +
      `${frames.length < ds.frames().length ? ` (reading ${frames.length})` : ''}\n`,
  );

  let i = 0;
  while (i < frames.length) {
    const key = where(frames[i]);
    const group: FrameRef[] = [];
    while (i < frames.length && where(frames[i]) === key) group.push(frames[i++]);
    seenScenarios.add(key);
    const info = scenarios.get(key);
    const agents: AgentInfo[] = info?.agents ?? [];
    const lines: string[] = [];
    lines.push(
      '',
      `${key}: ${agents.length} agents, ${info?.timestamps.length ?? group.length} timestamps` +
        `${info && group.length < info.timestamps.length ? ` (showing ${group.length})` : ''}`,
    );
    for (const a of agents) lines.push(`  agent ${String(a.id).padStart(6)}  ${a.kind.padEnd(7)}  ${compactSensors(a.sensors)}`);

    const colW = Math.max(13, ...agents.map((a) => String(a.id).length + 12));
    const tsW = Math.max(9, ...group.map((f) => f.timestamp.length));
    lines.push('  ' + ['timestamp'.padEnd(tsW), ...agents.map((a) => `${a.id} pts/box`.padStart(colW)), 'coop boxes'.padStart(11)].join(' '));
    for (const ref of group) {
      const read = await readFrame(ds, ref, opts.lidar);
      if (read instanceof DataError) {
        bad++;
        say('err', `bad frame ${where(ref)} ${ref.timestamp}: ${read.message}\n`);
        lines.push(`  ${ref.timestamp.padEnd(tsW)} bad frame, skipped (see stderr)`);
        bar?.tick();
        continue;
      }
      let coop: number | string;
      try {
        coop = (await ds.cooperativeBoxes(ref, ref.agentIds[0])).length;
        coopSum += coop;
      } catch (err) {
        // A frame whose ground truth cannot be read cannot be scored either: it counts as bad.
        coop = 'error';
        bad++;
        say('err', `bad frame ${where(ref)} ${ref.timestamp}: cooperative GT: ${asDataError(err, ref, ref.agentIds[0]).message}\n`);
      }
      const cells = agents.map((a) => {
        const f = read.find((x) => x.agentId === a.id);
        if (!f) return '-'.padStart(colW);
        const n = f.points.length / 4;
        agentFrames++;
        pointSum += n;
        boxSum += f.boxes.length;
        return `${n}/${f.boxes.length}`.padStart(colW);
      });
      lines.push('  ' + [ref.timestamp.padEnd(tsW), ...cells, String(coop).padStart(11)].join(' '));
      bar?.tick();
    }
    say('out', lines.join('\n') + '\n');
  }
  bar?.stop();

  const good = frames.length - bad;
  const mean = (s: number, n: number) => (n > 0 ? (s / n).toFixed(1) : '-');
  io.out(
    `\nsummary: ${seenScenarios.size} scenarios, ${frames.length} frames read, ${bad} bad; ` +
      `${agentFrames} agent-frames, mean ${mean(pointSum, agentFrames)} points and ${mean(boxSum, agentFrames)} boxes per agent-frame, ` +
      `mean ${mean(coopSum, good)} cooperative boxes per frame; ${((Date.now() - t0) / 1000).toFixed(1)} s\n`,
  );
  return finish(frames.length, bad, io);
}

function finish(total: number, bad: number, io: InspectIo): number {
  if (bad === 0) return 0;
  io.err(`${bad} of ${total} frames could not be read and were skipped\n`);
  return bad === total ? 3 : 0;
}

function where(ref: { split: string; scenario: string }): string {
  return ref.split ? `${ref.split}/${ref.scenario}` : ref.scenario;
}

/** "camera0 camera1 camera2 camera3" → "camera0-3", likewise for depth. */
function compactSensors(sensors: string[]): string {
  const out: string[] = [];
  for (const s of sensors) {
    const m = /^(camera|depth)(\d)$/.exec(s);
    const prev = out[out.length - 1];
    const pm = prev ? /^(camera|depth)(\d)(?:-(\d))?$/.exec(prev) : null;
    if (m && pm && pm[1] === m[1] && Number(pm[3] ?? pm[2]) + 1 === Number(m[2])) {
      out[out.length - 1] = `${m[1]}${pm[2]}-${m[2]}`;
    } else out.push(s);
  }
  return out.length > 0 ? out.join(' ') : '(none)';
}

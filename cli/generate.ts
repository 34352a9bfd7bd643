// `heal generate`: writes a synthetic V2X dataset in the OPV2V-H layout.

import { parseArgs } from 'node:util';
import * as path from 'node:path';
import { promises as fs } from 'node:fs';
import type { PcdDataFormat } from '../datasets/pcd.ts';
import { type GenerateOptions, SPLITS, type Split, defaultJobs, generateDataset, nonEmptyDir, splitCounts } from '../datasets/synthetic/generate.ts';
import { progress } from './progress.ts';

const USAGE = `usage: heal generate --out DIR [options]

Writes a procedural town with traffic, connected vehicles and one roadside unit in the
OPV2V-H layout: DIR/{train,validate,test}/<scenario>/<agent id>/<ts>.yaml, <ts>.pcd (64 beams),
<ts>_32.pcd, <ts>_16.pcd, <ts>_camera0..3.png, <ts>_depth0..3.png, plus data_protocol.yaml.
Each scenario has 2-4 connected vehicles (4-digit ids) and a roadside unit (id -1).

options:
  --out DIR               output folder (required)
  --scenarios N           scenarios in total (default 3), shared out as: validate and test
                          20 % each (at least 1 each once N >= 3; test first when N = 2),
                          train the rest. 1 -> 1/0/0, 3 -> 1/1/1, 5 -> 3/1/1, 10 -> 6/2/2
  --frames M              frames per scenario, 10 Hz (default 10)
  --seed S                integer seed (default 0). The output depends only on the options:
                          the same options give byte-identical files, and scenario k of a
                          split is the same whatever N is
  --camera-size WxH       camera picture size (default 400x300; OPV2V's is 800x600)
  --no-cameras            LiDAR and YAML only
  --no-shadows            skip the sun-shadow rays in camera pictures (faster)
  --splits LIST           comma-separated subset of train,validate,test to write (default all)
  --pcd FORMAT            ascii (OPV2V's, default), binary or binary_compressed (3x smaller,
                          4x faster to write)
  --jobs N                worker threads (default: cores, at most 8); 1 renders in-process
  --overwrite             replace split folders that already exist in DIR
  -h, --help              this text`;

class UsageError extends Error {}

export async function run(args: string[]): Promise<number> {
  let opts: GenerateOptions;
  let overwrite: boolean;
  try {
    const parsed = parseOptions(args);
    if (parsed === 'help') {
      console.log(USAGE);
      return 0;
    }
    ({ opts, overwrite } = parsed);
  } catch (err) {
    if (!(err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS'))) throw err;
    console.error(`heal generate: ${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }

  const counts = splitCounts(opts.scenarios);
  if (opts.splits.every((s) => counts[s] === 0)) {
    console.error(`heal generate: --scenarios ${opts.scenarios} leaves no scenario in ${opts.splits.join(', ')} (see the split rule in --help)`);
    return 2;
  }

  for (const split of opts.splits) {
    const dir = path.join(opts.out, split);
    if (!(await nonEmptyDir(dir))) continue;
    if (!overwrite) {
      console.error(`heal generate: ${dir} already exists and is not empty; pass --overwrite to replace it`);
      return 1;
    }
    await fs.rm(dir, { recursive: true, force: true });
  }

  const shown = opts.splits.map((s) => `${s} ${counts[s]}`).join(', ');
  const cams = opts.camera ? `cameras ${opts.camera.width}x${opts.camera.height}` : 'no cameras';
  console.error(`heal generate: ${shown} scenarios x ${opts.frames} frames, seed ${opts.seed}, ${cams}, ${opts.jobs} worker(s) -> ${opts.out}`);
  let bar: ReturnType<typeof progress> | undefined;
  const summary = await generateDataset(opts, (_done, total, ev) => {
    bar ??= progress('generate', total);
    bar.tick(1, { scenario: `${ev.split}/${ev.scenario}`, agent: ev.agent });
  });
  bar?.stop();
  const agentFrames = summary.agentFrames;
  console.log(
    `wrote ${summary.scenarios.length} scenarios, ${agentFrames} agent-frames to ${opts.out} in ${summary.seconds.toFixed(1)} s ` +
      `(${agentFrames ? Math.round(summary.points64 / agentFrames) : 0} points and ${agentFrames ? (summary.visibleBoxes / agentFrames).toFixed(1) : 0} visible vehicles per 64-beam scan)`,
  );
  for (const s of summary.scenarios) console.log(`  ${s.split}/${s.name}: agents ${s.agents.join(', ')}`);
  return 0;
}

function parseOptions(args: string[]): { opts: GenerateOptions; overwrite: boolean } | 'help' {
  const { values, positionals } = parseArgs({
    args,
    strict: true,
    allowPositionals: true,
    options: {
      out: { type: 'string' },
      scenarios: { type: 'string' },
      frames: { type: 'string' },
      seed: { type: 'string' },
      'camera-size': { type: 'string' },
      'no-cameras': { type: 'boolean' },
      'no-shadows': { type: 'boolean' },
      splits: { type: 'string' },
      pcd: { type: 'string' },
      jobs: { type: 'string' },
      overwrite: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return 'help';
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
  if (!values.out) throw new UsageError('--out DIR is required');
  const int = (text: string | undefined, name: string, fallback: number, min: number): number => {
    if (text === undefined) return fallback;
    if (!/^-?\d+$/.test(text) || !Number.isSafeInteger(Number(text)) || Number(text) < min) {
      throw new UsageError(`--${name} must be an integer >= ${min} (got "${text}")`);
    }
    return Number(text);
  };
  let camera: GenerateOptions['camera'] = { width: 400, height: 300 };
  if (values['camera-size'] !== undefined) {
    const m = /^(\d+)x(\d+)$/.exec(values['camera-size']);
    if (!m || Number(m[1]) < 16 || Number(m[2]) < 16 || Number(m[1]) > 4096 || Number(m[2]) > 4096) {
      throw new UsageError(`--camera-size must be WxH with sides 16..4096, e.g. 400x300 (got "${values['camera-size']}")`);
    }
    camera = { width: Number(m[1]), height: Number(m[2]) };
  }
  if (values['no-cameras']) camera = null;
  let splits: Split[] = [...SPLITS];
  if (values.splits !== undefined) {
    const names = values.splits
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    for (const n of names) {
      if (!(SPLITS as readonly string[]).includes(n)) throw new UsageError(`--splits: unknown split "${n}" (have ${SPLITS.join(', ')})`);
    }
    if (names.length === 0) throw new UsageError('--splits needs at least one split');
    splits = SPLITS.filter((s) => names.includes(s));
  }
  const pcd = values.pcd ?? 'ascii';
  if (pcd !== 'ascii' && pcd !== 'binary' && pcd !== 'binary_compressed') {
    throw new UsageError(`--pcd must be ascii, binary or binary_compressed (got "${pcd}")`);
  }
  return {
    opts: {
      out: path.resolve(values.out),
      scenarios: int(values.scenarios, 'scenarios', 3, 1),
      frames: int(values.frames, 'frames', 10, 1),
      seed: int(values.seed, 'seed', 0, -(2 ** 31)),
      camera,
      splits,
      jobs: int(values.jobs, 'jobs', defaultJobs(), 1),
      pcdFormat: pcd as PcdDataFormat,
      shadows: !values['no-shadows'],
    },
    overwrite: !!values.overwrite,
  };
}

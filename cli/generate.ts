// `heal generate`: writes a synthetic V2X dataset in the OPV2V-H layout.

import * as path from 'node:path';
import { promises as fs } from 'node:fs';
import type { PcdDataFormat } from '../datasets/pcd.ts';
import { type GenerateOptions, SPLITS, defaultJobs, generateDataset, nonEmptyDir, splitCounts } from '../datasets/synthetic/generate.ts';
import { progress } from './progress.ts';
import { parseShard } from './shard.ts';
import { UsageError, choice, choices, command, flag, int, option, readOne, runCommand, string, type Kind } from './args.ts';

const PCD_FORMATS: readonly PcdDataFormat[] = ['ascii', 'binary', 'binary_compressed'];

const cameraSize: Kind<{ width: number; height: number }> = {
  what: 'WxH with sides 16..4096, e.g. 400x300',
  parse(text) {
    const m = /^(\d+)x(\d+)$/.exec(text.trim());
    const [width, height] = m ? [Number(m[1]), Number(m[2])] : [0, 0];
    return width >= 16 && height >= 16 && width <= 4096 && height <= 4096 ? { width, height } : undefined;
  },
};

export const GENERATE = command({
  name: 'generate',
  usage: '--out DIR [options]',
  about: `Writes a procedural town with traffic, connected vehicles and one roadside unit in the
OPV2V-H layout: DIR/{train,validate,test}/<scenario>/<agent id>/<ts>.yaml, <ts>.pcd (64 beams),
<ts>_32.pcd, <ts>_16.pcd, <ts>_camera0..3.png, <ts>_depth0..3.png, plus data_protocol.yaml.
Each scenario has 2-4 connected vehicles (4-digit ids) and a roadside unit (id -1).`,
  options: {
    out: string({ arg: 'DIR', required: true, help: 'output folder' }),
    scenarios: int({
      min: 1,
      default: 3,
      help: 'scenarios in total, shared out as: validate and test 20 % each (at least 1 each once N >= 3; test first when N = 2), train the rest. 1 -> 1/0/0, 3 -> 1/1/1, 5 -> 3/1/1, 10 -> 6/2/2',
    }),
    frames: int({ arg: 'M', min: 1, default: 10, help: 'frames per scenario, 10 Hz' }),
    seed: int({
      arg: 'S',
      min: -(2 ** 31),
      default: 0,
      help: 'integer seed; the output depends only on the options: the same options give byte-identical files, and scenario k of a split is the same whatever N is',
    }),
    'camera-size': option((g, f) => readOne(cameraSize, g, f), { arg: 'WxH', defaultText: "400x300; OPV2V's is 800x600", help: 'camera picture size' }),
    'no-cameras': flag({ help: 'LiDAR and YAML only' }),
    'no-shadows': flag({ help: 'skip the sun-shadow rays in camera pictures (faster)' }),
    splits: choices(SPLITS, { defaultText: 'all', help: 'the splits to write' }),
    pcd: choice(PCD_FORMATS, {
      arg: 'FORMAT',
      default: 'ascii',
      help: "point cloud files: ascii is OPV2V's; binary_compressed is 3x smaller and 4x faster to write",
    }),
    jobs: int({ min: 1, defaultText: 'cores, at most 8', help: 'worker threads; 1 renders in-process' }),
    overwrite: flag({ help: 'replace split folders that already exist in DIR' }),
    shard: string({
      arg: 'I/N',
      help: 'write only shard I of N of the scenarios (every Nth, from the Ith), the same files as an unsharded run; shards share DIR, so split folders that exist are not refused. I may be auto, $SLURM_ARRAY_TASK_ID or $JOB_COMPLETION_INDEX (as heal eval --shard)',
    }),
  },
  exclusive: [['shard', 'overwrite']],
});

export function run(args: string[]): Promise<number> {
  return runCommand(GENERATE, args, async ({ values }) => {
    const camera = values['no-cameras'] ? null : (values['camera-size'] ?? { width: 400, height: 300 });
    const opts: GenerateOptions = {
      out: path.resolve(values.out),
      scenarios: values.scenarios,
      frames: values.frames,
      seed: values.seed,
      camera,
      splits: values.splits ? SPLITS.filter((s) => values.splits?.includes(s)) : [...SPLITS],
      jobs: values.jobs ?? defaultJobs(),
      pcdFormat: values.pcd,
      shadows: !values['no-shadows'],
      ...(values.shard === undefined ? {} : { shard: parseShard(values.shard) }),
    };
    const counts = splitCounts(opts.scenarios);
    if (opts.splits.every((s) => counts[s] === 0)) {
      throw new UsageError(`--scenarios ${opts.scenarios} leaves no scenario in ${opts.splits.join(', ')} (see the split rule in --help)`);
    }

    // Shards write into one DIR side by side: the other shards' scenarios are expected there.
    for (const split of opts.shard ? [] : opts.splits) {
      const dir = path.join(opts.out, split);
      if (!(await nonEmptyDir(dir))) continue;
      if (!values.overwrite) {
        console.error(`heal generate: ${dir} already exists and is not empty; pass --overwrite to replace it`);
        return 1;
      }
      await fs.rm(dir, { recursive: true, force: true });
    }

    const shown = opts.splits.map((s) => `${s} ${counts[s]}`).join(', ');
    const cams = opts.camera ? `cameras ${opts.camera.width}x${opts.camera.height}` : 'no cameras';
    const part = opts.shard ? `shard ${opts.shard.index}/${opts.shard.count} of ` : '';
    console.error(`heal generate: ${part}${shown} scenarios x ${opts.frames} frames, seed ${opts.seed}, ${cams}, ${opts.jobs} worker(s) -> ${opts.out}`);
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
  });
}

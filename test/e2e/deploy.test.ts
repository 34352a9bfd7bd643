// The recipes in deploy/ as a scheduler would run them: the Kubernetes Indexed Job's arguments
// with each completion index give each shard once, the merge job reads where the shards go, and
// the Slurm array script, run as two array tasks would run it, writes two shards that merge.

import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { parseAllDocuments } from 'yaml';
import { parseEvalArgs } from '../../cli/eval.ts';
import { MERGE } from '../../cli/eval-merge.ts';
import { parseCommand } from '../../cli/args.ts';
import { WORLD_TIMEOUT_MS, testWorld } from '../helpers/world.ts';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const HEAL = `node ${path.join(ROOT, 'cli', 'heal.js')}`;

interface Container {
  args: string[];
  env?: { name: string }[];
}

async function jobOf(file: string) {
  const [doc] = parseAllDocuments(await fs.readFile(path.join(ROOT, file), 'utf8'));
  const job = doc.toJSON() as { kind: string; spec: { completions?: number; completionMode?: string; template: { spec: { containers: Container[] } } } };
  return { job, container: job.spec.template.spec.containers[0] };
}

let dir = '';
let world = '';
beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'heal-deploy-'));
  world = await testWorld();
}, WORLD_TIMEOUT_MS);

afterAll(async () => {
  if (dir) await fs.rm(dir, { recursive: true, force: true });
});

describe('deploy/', () => {
  it('the Kubernetes Indexed Job: each completion index is one shard of N = completions, in its own folder, which the merge job reads', async () => {
    const { job, container } = await jobOf('deploy/k8s/eval-indexed-job.yaml');
    expect(job.spec.completionMode).toBe('Indexed');
    expect(container.env?.map((e) => e.name)).toContain('JOB_COMPLETION_INDEX');
    const n = job.spec.completions!;
    const outs = new Set<string>();
    for (let index = 0; index < n; index++) {
      // What the kubelet does: $(VAR) in args from the container's environment.
      const args = container.args.map((a) => a.replaceAll('$(JOB_COMPLETION_INDEX)', String(index)));
      expect(args[0]).toBe('eval');
      process.env.JOB_COMPLETION_INDEX = String(index);
      try {
        const parsed = parseEvalArgs(args.slice(1));
        if (parsed === 'help') throw new Error('help');
        expect(parsed.shard).toEqual({ index, count: n });
        outs.add(path.dirname(parsed.options.out));
        expect(path.basename(parsed.options.out)).toBe(`shard-${index}`);
      } finally {
        delete process.env.JOB_COMPLETION_INDEX;
      }
    }
    expect(outs.size).toBe(1);
    const merge = await jobOf('deploy/k8s/eval-merge-job.yaml');
    expect(merge.container.args.slice(0, 2)).toEqual(['eval', 'merge']);
    const parsed = parseCommand(MERGE, merge.container.args.slice(2));
    if (parsed === 'help') throw new Error('help');
    expect(parsed.positionals).toEqual([...outs]);
  });

  it('the Slurm array script, run as tasks 0 and 1 of a 2-task array, writes two shards that heal eval merge joins', async () => {
    const runDir = path.join(dir, 'slurm');
    const env = {
      ...process.env,
      DATA: world,
      RUN: runDir,
      HEAL,
      EVAL_ARGS: '--split test --types m1 --device cpu',
      SLURM_ARRAY_TASK_COUNT: '2',
      SLURM_CPUS_PER_TASK: '1',
    };
    for (const task of ['0', '1']) {
      const r = await run('bash', [path.join(ROOT, 'deploy/slurm/eval-array.sh')], { env: { ...env, SLURM_ARRAY_TASK_ID: task } });
      expect(r.stdout).toContain(`shard ${task}/2:`);
    }
    const merged = await run('node', [path.join(ROOT, 'cli', 'heal.js'), 'eval', 'merge', runDir, '--out', path.join(runDir, 'run')]);
    expect(merged.stdout).toContain('frames: 3 evaluated, 0 skipped, of 3');
  }, 240_000);

  it('the shell recipes are valid bash', async () => {
    for (const f of ['deploy/slurm/eval-array.sh', 'deploy/slurm/submit.sh', 'deploy/parallel/eval.sh']) {
      await expect(run('bash', ['-n', path.join(ROOT, f)])).resolves.toBeDefined();
    }
  });
});

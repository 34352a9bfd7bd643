// --shard I/N: which shard of N this process evaluates (or generates). The index may come from the
// scheduler that started the process, so one command line serves every task of a job array:
//
//   I/N                       explicit, 0 ≤ I < N (GNU parallel: --shard {}/4 ::: 0 1 2 3)
//   auto/N                    SLURM_ARRAY_TASK_ID (Slurm job array), else JOB_COMPLETION_INDEX
//                             (Kubernetes Indexed Job); refused when neither is set, or both and they differ
//   '$NAME/N', '${NAME}/N'    the environment variable NAME, read by heal (quote it, so the shell
//                             does not expand it; unquoted, the shell expands it and heal sees I/N)
//
// N may be a variable too ('$SLURM_ARRAY_TASK_COUNT'). Indices are 0-based: a Slurm array for 4
// shards is --array=0-3.

import type { ShardSpec } from '../eval/contracts.ts';
import { UsageError } from './args.ts';

/** The variables `auto` reads, in order: Slurm job arrays, then Kubernetes Indexed Jobs. */
export const SHARD_INDEX_VARIABLES = ['SLURM_ARRAY_TASK_ID', 'JOB_COMPLETION_INDEX'] as const;

type Env = Record<string, string | undefined>;

function integer(text: string, flag: string, what: string, from: string): number {
  if (!/^\d+$/.test(text.trim())) throw new UsageError(`${flag}: ${what} must be a whole number ≥ 0, got "${text}"${from}`);
  return Number(text.trim());
}

/** One side of I/N: a number, or a variable (`$NAME`, `${NAME}`), or for the index `auto`. */
function side(text: string, flag: string, what: string, env: Env, auto: boolean): { value: number; from: string } {
  const t = text.trim();
  if (auto && t === 'auto') {
    const set = SHARD_INDEX_VARIABLES.filter((v) => env[v] !== undefined && env[v] !== '');
    if (!set.length) {
      throw new UsageError(`${flag}: auto reads ${SHARD_INDEX_VARIABLES.join(' or ')}, and neither is set (not a Slurm array task or Kubernetes Indexed Job?)`);
    }
    const values = set.map((v) => env[v]!);
    if (new Set(values).size > 1) {
      throw new UsageError(`${flag}: auto is ambiguous: ${set.map((v, k) => `${v}=${values[k]}`).join(' and ')}; name the one to use, e.g. '$${set[0]}/N'`);
    }
    const from = ` (from ${set[0]})`;
    return { value: integer(values[0], flag, what, from), from };
  }
  const m = /^\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))$/.exec(t);
  if (m) {
    const name = m[1] ?? m[2];
    const v = env[name];
    if (v === undefined || v === '') throw new UsageError(`${flag}: the environment variable ${name} is not set`);
    const from = ` (from ${name})`;
    return { value: integer(v, flag, what, from), from };
  }
  return { value: integer(t, flag, what, ''), from: '' };
}

/** Reads I/N (see the top of this file); `env` is process.env unless a test gives its own. */
export function parseShard(text: string, flag = '--shard', env: Env = process.env): ShardSpec {
  const parts = text.split('/');
  if (parts.length !== 2) throw new UsageError(`${flag}: expected I/N (e.g. 0/4, auto/4 or '$SLURM_ARRAY_TASK_ID/4'), got "${text}"`);
  const index = side(parts[0], flag, 'the shard index', env, true);
  const count = side(parts[1], flag, 'the number of shards', env, false);
  if (count.value < 1) throw new UsageError(`${flag}: the number of shards must be at least 1, got ${count.value}${count.from}`);
  if (index.value >= count.value) {
    throw new UsageError(
      `${flag}: shard index ${index.value}${index.from} is not below N = ${count.value}; shards are numbered 0 to ${count.value - 1} (a Slurm array for them: --array=0-${count.value - 1})`,
    );
  }
  return { index: index.value, count: count.value };
}

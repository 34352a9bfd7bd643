// --shard I/N and where the index comes from: explicit, auto (Slurm job arrays, then Kubernetes
// Indexed Jobs), or a named environment variable; each mistake is a usage error that says what to do.

import { describe, it, expect } from 'vitest';
import { parseShard } from '../../cli/shard.ts';
import { parseEvalArgs } from '../../cli/eval.ts';

describe('--shard', () => {
  it('reads I/N', () => {
    expect(parseShard('0/4', '--shard', {})).toEqual({ index: 0, count: 4 });
    expect(parseShard(' 3 / 4 ', '--shard', {})).toEqual({ index: 3, count: 4 });
  });

  it('auto: SLURM_ARRAY_TASK_ID, else JOB_COMPLETION_INDEX', () => {
    expect(parseShard('auto/4', '--shard', { SLURM_ARRAY_TASK_ID: '2' })).toEqual({ index: 2, count: 4 });
    expect(parseShard('auto/4', '--shard', { JOB_COMPLETION_INDEX: '1' })).toEqual({ index: 1, count: 4 });
    expect(parseShard('auto/4', '--shard', { SLURM_ARRAY_TASK_ID: '3', JOB_COMPLETION_INDEX: '3' })).toEqual({ index: 3, count: 4 });
    expect(() => parseShard('auto/4', '--shard', {})).toThrow('auto reads SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX, and neither is set');
    expect(() => parseShard('auto/4', '--shard', { SLURM_ARRAY_TASK_ID: '1', JOB_COMPLETION_INDEX: '2' })).toThrow(
      "auto is ambiguous: SLURM_ARRAY_TASK_ID=1 and JOB_COMPLETION_INDEX=2; name the one to use, e.g. '$SLURM_ARRAY_TASK_ID/N'",
    );
  });

  it('a named variable, for the index or the count', () => {
    const env = { SLURM_ARRAY_TASK_ID: '1', SLURM_ARRAY_TASK_COUNT: '8', JOB_COMPLETION_INDEX: '5' };
    expect(parseShard('$SLURM_ARRAY_TASK_ID/4', '--shard', env)).toEqual({ index: 1, count: 4 });
    // biome-ignore lint/suspicious/noTemplateCurlyInString: the shell's ${NAME} form, given to heal unexpanded
    expect(parseShard('${JOB_COMPLETION_INDEX}/$SLURM_ARRAY_TASK_COUNT', '--shard', env)).toEqual({ index: 5, count: 8 });
    expect(() => parseShard('$PARALLEL_SEQ/4', '--shard', env)).toThrow('the environment variable PARALLEL_SEQ is not set');
  });

  it('refuses what is not a shard of N, saying where the value came from', () => {
    expect(() => parseShard('4/4', '--shard', {})).toThrow(
      'shard index 4 is not below N = 4; shards are numbered 0 to 3 (a Slurm array for them: --array=0-3)',
    );
    expect(() => parseShard('auto/4', '--shard', { SLURM_ARRAY_TASK_ID: '4' })).toThrow('shard index 4 (from SLURM_ARRAY_TASK_ID) is not below N = 4');
    expect(() => parseShard('auto/4', '--shard', { JOB_COMPLETION_INDEX: 'x' })).toThrow(
      'the shard index must be a whole number ≥ 0, got "x" (from JOB_COMPLETION_INDEX)',
    );
    expect(() => parseShard('1/0', '--shard', {})).toThrow('the number of shards must be at least 1');
    expect(() => parseShard('1', '--shard', {})).toThrow('expected I/N');
    expect(() => parseShard('-1/4', '--shard', {})).toThrow('must be a whole number ≥ 0, got "-1"');
  });

  it('heal eval --shard reads the environment, and names the shard folder after the shard', () => {
    process.env.SLURM_ARRAY_TASK_ID = '2';
    try {
      const parsed = parseEvalArgs(['--data', 'd', '--shard', 'auto/3']);
      if (parsed === 'help') throw new Error('help');
      expect(parsed.shard).toEqual({ index: 2, count: 3 });
      expect(parsed.options.out).toBe('runs/eval-shard-2-of-3');
    } finally {
      delete process.env.SLURM_ARRAY_TASK_ID;
    }
    expect(() => parseEvalArgs(['--data', 'd', '--shard', '0/2', '--mcap', 'x.mcap'])).toThrow(/--shard.*--mcap|--mcap.*--shard/);
  });
});

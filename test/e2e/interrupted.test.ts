// Killing `heal generate` half way leaves only whole frames: every frame a reader lists reads back.

import { describe, it, expect } from 'vitest';
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { openDataset } from '../../datasets/open.ts';

const heal = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'cli', 'heal.js');

async function countYaml(dir: string): Promise<number> {
  let n = 0;
  const walk = async (d: string): Promise<void> => {
    for (const e of await fs.readdir(d, { withFileTypes: true }).catch(() => [])) {
      if (e.isDirectory()) await walk(path.join(d, e.name));
      else if (e.name.endsWith('.yaml') && e.name !== 'data_protocol.yaml') n++;
    }
  };
  await walk(dir);
  return n;
}

describe('heal generate, interrupted', () => {
  it('leaves no half-written frame behind', async () => {
    const out = await fs.mkdtemp(path.join(os.tmpdir(), 'heal-kill-'));
    try {
      const child = spawn(
        process.execPath,
        [heal, 'generate', '--out', out, '--scenarios', '1', '--frames', '40', '--seed', '5', '--no-cameras', '--jobs', '1'],
        { stdio: 'ignore' },
      );
      // Kill it hard (no cleanup handlers run) once a few frames are on disk.
      const deadline = Date.now() + 60_000;
      while ((await countYaml(out)) < 4 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
      const written = await countYaml(out);
      expect(written).toBeGreaterThanOrEqual(4);
      const ds = await openDataset(out);
      let read = 0;
      for (const ref of ds.frames()) {
        for (const id of ref.agentIds) {
          const f = await ds.readAgentFrame(ref, id);
          expect(f.points.length).toBeGreaterThan(0);
          read++;
        }
      }
      // Frames whose agents were not all written are not listed for the missing agents; whatever
      // is listed is whole.
      expect(read).toBeGreaterThan(0);
      expect(read).toBeLessThanOrEqual(written);
    } finally {
      await fs.rm(out, { recursive: true, force: true });
    }
  }, 120_000);
});

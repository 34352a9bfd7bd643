// Runs the `heal` executable as a user does (node cli/heal.js …) and collects what it printed.

import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const HEAL = fileURLToPath(new URL('../../cli/heal.js', import.meta.url));

export interface HealRun {
  code: number | null;
  out: string;
  err: string;
  seconds: number;
}

export function runHeal(args: string[]): Promise<HealRun> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [HEAL, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, out, err, seconds: (performance.now() - t0) / 1000 }));
  });
}

// One progress bar style for every long-running command. Draws to stderr only when it is a TTY,
// and otherwise prints a line every ~10 % so that CI logs still show progress.

import cliProgress from 'cli-progress';

export interface Progress {
  tick(n?: number, info?: Record<string, string | number>): void;
  stop(): void;
}

export function progress(label: string, total: number): Progress {
  if (process.stderr.isTTY) {
    const bar = new cliProgress.SingleBar(
      {
        format: `${label} [{bar}] {value}/{total} {percentage}% | ETA {eta_formatted} | {info}`,
        stream: process.stderr,
        hideCursor: true,
        etaBuffer: 20,
      },
      cliProgress.Presets.shades_classic,
    );
    bar.start(total, 0, { info: '' });
    return {
      tick(n = 1, info) {
        const text = info
          ? Object.entries(info)
              .map(([k, v]) => `${k} ${v}`)
              .join(' ')
          : '';
        bar.increment(n, { info: text });
      },
      stop() {
        bar.stop();
      },
    };
  }
  let done = 0;
  let lastPct = -1;
  const t0 = Date.now();
  return {
    tick(n = 1, info) {
      done += n;
      const pct = total > 0 ? Math.floor((done / total) * 10) * 10 : 100;
      if (pct !== lastPct || done === total) {
        lastPct = pct;
        const elapsed = (Date.now() - t0) / 1000;
        const eta = done > 0 ? (elapsed / done) * (total - done) : 0;
        const text = info
          ? ' ' +
            Object.entries(info)
              .map(([k, v]) => `${k} ${v}`)
              .join(' ')
          : '';
        process.stderr.write(`${label} ${done}/${total} (${pct}%) elapsed ${elapsed.toFixed(1)}s ETA ${eta.toFixed(1)}s${text}\n`);
      }
    },
    stop() {},
  };
}

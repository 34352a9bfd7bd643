// heal command-line entry. Each command lives in its own module, loaded on demand so that
// `heal inspect` does not pay for loading onnxruntime or TensorFlow.js. Exit status: 2 for a
// mistake on the command line (one line naming it), 1 for any other failure.

import { UsageError, usageLine } from './args.ts';

const COMMANDS: Record<string, { module: string; summary: string }> = {
  generate: { module: './generate.ts', summary: 'write a synthetic V2X world in OPV2V-H format' },
  inspect: { module: './inspect.ts', summary: 'summarize a dataset (OPV2V/OPV2V-H/V2XSet/DAIR-V2X-C), --json, --png' },
  detect: { module: './detect.ts', summary: 'collaborative perception on dataset frames: encode, message, warp, fuse, detect' },
  eval: { module: './eval.ts', summary: 'evaluate a dataset: AP table, bandwidth, latency; JSON, HTML report, --mcap' },
  view: { module: './view.ts', summary: 'three.js viewer of fused scenes in the browser' },
  train: { module: './train.ts', summary: 'stage 1: train the base agent type with the pyramid fusion and head' },
  align: { module: './align.ts', summary: 'stage 2: backward-align a new agent type to the frozen fusion and head' },
  'train-codec': { module: './train-codec.ts', summary: 'train the learned channel compressor of messages (everything else frozen)' },
  adapt: { module: './adapt.ts', summary: 'join a new agent type whose encoder stays a black box: train only a small adapter (and reverter)' },
  calibrate: { module: './calibrate.ts', summary: "fit each agent type's fusion trust on a training split" },
  export: { module: './export.ts', summary: 'write ONNX files and a manifest from trained weights' },
  import: { module: './import.ts', summary: "a HEAL checkpoint (.pth) as heal's weight file, with a manifest of the mapping" },
  'verify-reference': { module: './verify-reference.ts', summary: "check heal against HEAL's reference tensors (checkpoint + case folders)" },
  start: { module: './start.ts', summary: 'the default job (what `npm start` runs)' },
  keys: { module: './keys.ts', summary: 'a test authority and agent certificates for signed messages (init, issue, revoke)' },
  bench: { module: './bench.ts', summary: 'benchmarks; figures go to bench/results/' },
};

function usage(): string {
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(16)} ${c.summary}`);
  return `usage: heal <command> [options]\n\ncommands:\n${lines.join('\n')}\n\nRun \`heal <command> --help\` for a command's options.`;
}

const [command, ...rest] = process.argv.slice(2);
if (!command || command === '--help' || command === '-h' || command === 'help') {
  console.log(usage());
  process.exit(command ? 0 : 1);
}
const entry = COMMANDS[command];
if (!entry) {
  console.error(`heal: unknown command "${command}"\n\n${usage()}`);
  process.exit(2);
}
try {
  const mod = (await import(entry.module)) as { run(args: string[]): Promise<number | undefined> };
  const code = await mod.run(rest);
  process.exitCode = typeof code === 'number' ? code : 0;
} catch (err) {
  if (process.env.HEAL_DEBUG) console.error(err);
  if (err instanceof UsageError) {
    console.error(usageLine(command, err));
    process.exitCode = 2;
  } else {
    console.error(`heal ${command}: ${err instanceof Error ? err.message : String(err)}`);
    process.exitCode = 1;
  }
}

// TypeScript types of the wire messages, generated from proto/*.proto: `npm run proto` writes
// proto/<name>.d.ts next to each .proto. protobufjs-cli's pbjs writes static code whose JSDoc
// describes every message, and pbts turns that JSDoc into declarations; the static code itself is
// dropped, since the messages are still encoded and decoded by protobufjs reflection from the .proto
// (fusion/messages.ts), so only the types are committed. test/proto.test.ts regenerates them and
// fails when they differ from the committed files, so the types cannot drift from the schema.

import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { pbjs, pbts } from 'protobufjs-cli';
import { writeFileAtomic } from '../datasets/io.ts';

export const PROTO_DIR = path.dirname(fileURLToPath(import.meta.url));

/** The schemas that get types. */
export const PROTO_FILES = ['heal.proto', 'scene.proto'];

// No create/encode/decode/verify/convert functions: nothing runs this code, and without them the
// declarations hold only the messages' fields. --alt-comment carries the .proto comments over.
const PBJS_ARGS = [
  '--target=static-module',
  '--wrap=esm',
  '--alt-comment',
  '--no-create',
  '--no-encode',
  '--no-decode',
  '--no-verify',
  '--no-convert',
  '--no-delimited',
  '--no-typeurl',
  '--no-service',
];

function call(run: (done: (err: Error | null, output?: string) => void) => void, what: string): Promise<string> {
  return new Promise((resolve, reject) => {
    run((err, output) => (err ? reject(new Error(`${what}: ${err.message}`)) : resolve(output ?? '')));
  });
}

/** The declarations for one .proto in PROTO_DIR (e.g. "heal.proto"), as `npm run proto` writes them. */
export async function protoTypes(protoFile: string): Promise<string> {
  const js = await call((done) => pbjs.main([...PBJS_ARGS, path.join(PROTO_DIR, protoFile)], done), `pbjs ${protoFile}`);
  const dts = await call((done) => pbts.process(js, [], done), `pbts ${protoFile}`);
  return `// Generated from proto/${protoFile} by \`npm run proto\` (proto/generate.ts); do not edit.\n${dts}`;
}

/** The .d.ts file written for a .proto. */
export function typesFile(protoFile: string): string {
  return path.join(PROTO_DIR, protoFile.replace(/\.proto$/, '.d.ts'));
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  for (const file of PROTO_FILES) {
    await writeFileAtomic(typesFile(file), await protoTypes(file));
    console.log(`wrote ${path.relative(process.cwd(), typesFile(file))}`);
  }
}

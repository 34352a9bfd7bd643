// The committed proto/*.d.ts are exactly what `npm run proto` writes from proto/*.proto, so the
// types the code is checked against cannot drift from the schema the messages are read with.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';

const require = createRequire(import.meta.url);

/** Why the generator cannot run here (protobufjs-cli is a dev dependency; pbts runs jsdoc), or undefined. */
function missingGenerator(): string | undefined {
  try {
    const cli = require.resolve('protobufjs-cli');
    createRequire(cli).resolve('jsdoc/jsdoc.js');
    return undefined;
  } catch (err) {
    return `the generator cannot run (${(err as Error).message.split('\n')[0]}); install the dev dependencies`;
  }
}

const missing = missingGenerator();
if (missing) console.warn(`test/proto/generate.test.ts skipped: ${missing}`);

describe.skipIf(missing !== undefined)('generated proto types', async () => {
  const { PROTO_FILES, protoTypes, typesFile } = await import('../../proto/generate.ts');
  for (const file of PROTO_FILES) {
    it(`proto/${file} gives the committed types`, async () => {
      const committed = readFileSync(typesFile(file), 'utf8');
      expect(await protoTypes(file), `${typesFile(file)} is stale: run npm run proto`).toBe(committed);
    });
  }
});

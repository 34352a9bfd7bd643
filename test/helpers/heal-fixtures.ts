// Where HEAL's reference fixtures live (../shared/fixtures beside the repository) and how tests
// skip, with the reason printed, when a fresh clone does not have them.
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The fixture folder, or undefined (with the reason printed once) when it is absent. */
export function healFixture(name: 'heal_reference' | 'heal_reference_cameras'): string | undefined {
  const dir = path.join(root, '..', 'shared', 'fixtures', name);
  if (existsSync(dir)) return dir;
  console.log(`skipped: HEAL's reference fixtures are not at ${dir} (research use only; they are never copied into the repository)`);
  return undefined;
}

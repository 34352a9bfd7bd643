// Opens a dataset folder of any supported layout: DAIR-V2X-C, or OPV2V / OPV2V-H / V2XSet.

import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import type { Dataset } from './dataset.ts';
import { DataError } from './io.ts';
import { isDairRoot, openDair } from './dair.ts';
import { openOpv2v } from './opv2v.ts';

export async function openDataset(dir: string): Promise<Dataset> {
  const abs = path.resolve(dir);
  const st = await fs.stat(abs).catch(() => undefined);
  if (!st) throw new DataError(abs, undefined, 'dataset folder does not exist');
  if (!st.isDirectory()) throw new DataError(abs, undefined, 'dataset path is not a folder');
  if (await isDairRoot(abs)) return openDair(abs);
  try {
    return await openOpv2v(abs);
  } catch (err) {
    if (err instanceof DataError && err.file === abs) {
      throw new DataError(abs, undefined, `not a recognised dataset: not DAIR-V2X-C (no cooperative/data_info.json), and ${err.detail}`);
    }
    throw err;
  }
}

/** Layout warnings a reader collected while opening (OPV2V: agents whose timestamps disagree). */
export function datasetWarnings(ds: Dataset): string[] {
  const w = (ds as { warnings?: unknown }).warnings;
  return Array.isArray(w) ? w.filter((x): x is string => typeof x === 'string') : [];
}

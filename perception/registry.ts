// The agent-type registry. An agent type is declared as data, one JSON file per type
// (perception/types/*.json for the built-in m1–m4, or any folder passed with --types-dir):
//
//   {
//     "name": "m1",
//     "description": "LiDAR-64, PointPillars",
//     "modality": "lidar",                      // or "camera"
//     "sensor": { "lidar": 64 },                // or { "cameras": ["camera0", ...] }
//     "profiles": {
//       "small": {
//         "encoder": { "arch": "pointpillars", ... },   // preprocessing + encoder architecture
//         "aligner": { ... },
//         "model": "../../models/small/m1.onnx"         // optional: encoder+aligner ONNX file
//       },
//       "heal": { ... }
//     }
//   }
//
// Adding a type means adding such a file (and its weights): no code changes. `model` is resolved
// relative to the declaration file; without it the network is built from the declared
// architecture with weights from the weight file given to the pipeline (or seeded random ones).
//
// A profile may say how the type joined (`"join"`): "backward" (the default, above) or "adapter",
// for a black-box encoder ("encoder": { "arch": "external", "model": "x.onnx", ... },
// perception/encoders/external.ts) with "adapter": { "model", "reverter"?, "head"? } ONNX files,
// which heal adapt writes (train/adapt.ts).

import { promises as fs, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DataError, READ_CAPS, readFileChecked } from '../datasets/io.ts';
import type { LidarBeams } from '../datasets/dataset.ts';
import { SPACES } from './space.ts';
import { type AgentNetworkConfig, checkAgentNetworkConfig } from './encoders/agent.ts';

export type Modality = 'lidar' | 'camera';

/**
 * How a type joined the shared space. 'backward' (HEAL's backward alignment, the default): its
 * encoder and aligner were trained against the frozen fusion and head, and live in the weight
 * file (or `model`). 'adapter': its encoder is a black box (encoder.arch "external"), and only a
 * small adapter into the shared space was trained (train/adapt.ts); heal adapt writes such a
 * declaration.
 */
export type JoinMode = 'backward' | 'adapter';

/** The ONNX files of a type that joined by an adapter (absolute paths). */
export interface AdapterFiles {
  /** Its features → the shared space: input "features" [1, C_enc, H, W], output "bev" [1, C, H, W]. */
  model: string;
  /** STAMP's reverter, for the type as ego: the fused shared map "fused" → "features" in its own space. */
  reverter?: string;
  /** The type's own detection head, on its own features: input "features", outputs "cls", "reg", "dir". */
  head?: string;
}

export interface TypeProfile {
  network: AgentNetworkConfig;
  /** Absolute path of an ONNX file holding this type's encoder + aligner, when declared. */
  model?: string;
  join: JoinMode;
  /** join "adapter" only; absent until heal adapt has trained one. */
  adapter?: AdapterFiles;
}

export interface AgentType {
  name: string;
  description: string;
  modality: Modality;
  sensor: { lidar?: LidarBeams; cameras?: string[] };
  profiles: Record<string, TypeProfile>;
  /** The declaration file. */
  file: string;
}

export const BUILTIN_TYPES_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), 'types');
const NAME = /^[A-Za-z0-9_.-]{1,64}$/;

/** Parses and checks one declaration; errors name the file, the field and the value. */
export function parseDeclaration(text: string, file: string): AgentType {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new DataError(file, undefined, `malformed JSON: ${(err as Error).message}`);
  }
  const obj = (v: unknown, field: string): Record<string, unknown> => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new DataError(file, field, 'must be an object', v);
    return v as Record<string, unknown>;
  };
  const str = (v: unknown, field: string): string => {
    if (typeof v !== 'string' || !v) throw new DataError(file, field, 'must be a non-empty string', v);
    return v;
  };
  const d = obj(raw, '(root)');
  const name = str(d.name, 'name');
  if (!NAME.test(name)) throw new DataError(file, 'name', 'must be 1–64 letters, digits, "_", "." or "-"', name);
  const modality = str(d.modality, 'modality');
  if (modality !== 'lidar' && modality !== 'camera') throw new DataError(file, 'modality', 'must be "lidar" or "camera"', modality);
  const sensorRaw = obj(d.sensor, 'sensor');
  const sensor: AgentType['sensor'] = {};
  if (modality === 'lidar') {
    const beams = sensorRaw.lidar;
    if (beams !== 64 && beams !== 32 && beams !== 16) throw new DataError(file, 'sensor.lidar', 'must be 64, 32 or 16', beams);
    sensor.lidar = beams;
  } else {
    const cams = sensorRaw.cameras;
    if (!Array.isArray(cams) || cams.length === 0 || cams.some((c) => typeof c !== 'string')) {
      throw new DataError(file, 'sensor.cameras', 'must be a non-empty list of camera names', cams);
    }
    sensor.cameras = cams as string[];
  }
  const profilesRaw = obj(d.profiles, 'profiles');
  const profiles: Record<string, TypeProfile> = {};
  for (const [profile, pRaw] of Object.entries(profilesRaw)) {
    const p = obj(pRaw, `profiles.${profile}`);
    const encoder = obj(p.encoder, `profiles.${profile}.encoder`);
    const arch = encoder.arch;
    const wantArch = modality === 'lidar' ? ['pointpillars', 'pillar-fpn', 'external'] : ['lss'];
    if (!wantArch.includes(arch as string))
      throw new DataError(file, `profiles.${profile}.encoder.arch`, `a ${modality} type needs ${wantArch.map((a) => `"${a}"`).join(' or ')}`, arch);
    const join = p.join ?? 'backward';
    if (join !== 'backward' && join !== 'adapter') throw new DataError(file, `profiles.${profile}.join`, 'must be "backward" or "adapter"', join);
    if ((arch === 'external') !== (join === 'adapter'))
      throw new DataError(file, `profiles.${profile}.join`, 'a black-box encoder ("arch": "external") joins by "adapter", and only it does', join);
    const resolve = (v: unknown, field: string) => path.resolve(path.dirname(file), str(v, `profiles.${profile}.${field}`));
    if (arch === 'external') encoder.model = resolve(encoder.model, 'encoder.model');
    // A black box has no aligner: its adapter does that job.
    const aligner = arch === 'external' ? {} : obj(p.aligner, `profiles.${profile}.aligner`);
    // The declared cameras are the ones the encoder uses, in that order.
    if (sensor.cameras && encoder.cameras === undefined) encoder.cameras = [...sensor.cameras];
    const network = { type: name, encoder, aligner } as unknown as AgentNetworkConfig;
    const space = SPACES[profile];
    if (space) checkAgentNetworkConfig(network, space, `${file}: profiles.${profile}`);
    const tp: TypeProfile = { network, join };
    if (p.model !== undefined) tp.model = resolve(p.model, 'model');
    // A black box declared but not joined yet has no adapter: heal adapt writes the declaration that has one.
    if (join === 'adapter' && p.adapter !== undefined) {
      const a = obj(p.adapter, `profiles.${profile}.adapter`);
      tp.adapter = { model: resolve(a.model, 'adapter.model') };
      if (a.reverter !== undefined) tp.adapter.reverter = resolve(a.reverter, 'adapter.reverter');
      if (a.head !== undefined) tp.adapter.head = resolve(a.head, 'adapter.head');
      if ((tp.adapter.reverter === undefined) !== (tp.adapter.head === undefined))
        throw new DataError(file, `profiles.${profile}.adapter`, 'a reverter needs the head it reverts to, and a head its reverter: give both or neither', a);
    }
    profiles[profile] = tp;
  }
  if (Object.keys(profiles).length === 0) throw new DataError(file, 'profiles', 'declares no profile');
  return { name, description: typeof d.description === 'string' ? d.description : '', modality, sensor, profiles, file };
}

export class Registry {
  constructor(readonly types: Map<string, AgentType>) {}

  get(name: string): AgentType {
    const t = this.types.get(name);
    if (!t) throw new Error(`unknown agent type "${name}" (registered: ${[...this.types.keys()].join(', ')})`);
    return t;
  }

  profile(name: string, profile: string): TypeProfile {
    const t = this.get(name);
    const p = t.profiles[profile];
    if (!p) throw new DataError(t.file, `profiles.${profile}`, `agent type "${name}" has no "${profile}" profile (has: ${Object.keys(t.profiles).join(', ')})`);
    return p;
  }

  names(): string[] {
    return [...this.types.keys()];
  }
}

/** A built-in type's network config (synchronous, for code that needs no registry). */
export function builtinAgentConfig(type: string, profile: string): AgentNetworkConfig {
  const file = path.join(BUILTIN_TYPES_DIR, `${type}.json`);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    throw new Error(`unknown type "${type}": no built-in declaration ${file}`);
  }
  const p = parseDeclaration(text, file).profiles[profile];
  if (!p) throw new DataError(file, `profiles.${profile}`, `built-in type "${type}" has no "${profile}" profile`);
  return p.network;
}

/** Loads every *.json declaration of the built-in folder and of `extraDirs`; later folders override. */
export async function loadRegistry(extraDirs: string[] = []): Promise<Registry> {
  const types = new Map<string, AgentType>();
  for (const dir of [BUILTIN_TYPES_DIR, ...extraDirs]) {
    let names: string[];
    try {
      names = (await fs.readdir(dir)).filter((n) => n.endsWith('.json')).sort();
    } catch (err) {
      throw new DataError(dir, undefined, `cannot list agent-type declarations: ${(err as Error).message}`);
    }
    for (const n of names) {
      const file = path.join(dir, n);
      const t = parseDeclaration((await readFileChecked(file, 'agent-type declaration', READ_CAPS.json)).toString('utf8'), file);
      types.set(t.name, t);
    }
  }
  return new Registry(types);
}

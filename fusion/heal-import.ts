// A HEAL checkpoint loaded modality by modality. HEAL merges the checkpoints of its agent types
// into one file (encoder_<m>.*, backbone_<m>.*, aligner_<m>.* per modality m, plus the shared
// pyramid, shrink and heads). heal loads the shared part and every modality it has an agent type
// for whose layers it can hold (fusion/heal-checkpoint.ts maps the names), and leaves the others
// out with the reason, so that one merged file still runs the modalities heal supports. A shared
// key that cannot load is an error: it changes what every agent's features are fused by.

import type { GraphDesc } from '../models/graph.ts';
import type { StateDict } from '../models/pth.ts';
import { DataError } from '../datasets/io.ts';
import { importHealStateDict, ruleFor, type HealImport } from './heal-checkpoint.ts';

/** The modality a HEAL key belongs to (encoder_m1.… → m1); undefined for the shared modules. */
export function modalityOf(key: string): string | undefined {
  return /^(?:encoder|backbone|aligner)_([A-Za-z0-9]+)\./.exec(key)?.[1];
}

export interface LeftOutModality {
  modality: string;
  /** Why heal does not load it. */
  reason: string;
  /** Every key of the modality, each with its own reason where the key says more than the modality's. */
  keys: { key: string; reason: string }[];
}

export interface CheckpointImport extends HealImport {
  /** The agent types loaded (the modalities of the file heal holds), in the file's order. */
  types: string[];
  leftOut: LeftOutModality[];
}

function subset(sd: StateDict, keys: string[]): StateDict {
  return new Map(keys.map((k) => [k, sd.get(k)!]));
}

/**
 * Maps `sd` onto `ego` and, per modality of the file, onto `agents.get(modality)`. A modality
 * with no agent network here, or whose keys do not fit it (another encoder, other shapes, missing
 * layers), is left out with the reason; everything else must load as importHealStateDict demands.
 */
export function importHealModalities(sd: StateDict, ego: GraphDesc, agents: ReadonlyMap<string, GraphDesc>, source = 'checkpoint'): CheckpointImport {
  const byModality = new Map<string, string[]>();
  const shared: string[] = [];
  for (const key of sd.keys()) {
    const m = modalityOf(key);
    if (m === undefined) shared.push(key);
    else byModality.set(m, [...(byModality.get(m) ?? []), key]);
  }
  const loaded: string[] = [];
  const leftOut: LeftOutModality[] = [];
  for (const [m, keys] of byModality) {
    const ownReasons = keys.map((key) => {
      const rule = ruleFor(key, sd.get(key)!);
      return rule && 'unsupported' in rule ? rule.unsupported : undefined;
    });
    const desc = agents.get(m);
    let reason: string | undefined;
    // What the keys are (a SECOND encoder, another camera encoder) says more than a missing type.
    if (ownReasons.some((r) => r !== undefined)) {
      reason = [...new Set(ownReasons.filter((r) => r !== undefined))].join('; ');
    } else if (!desc) {
      reason = `modality ${m}: no agent type "${m}" is being loaded (${[...agents.keys()].join(', ') || 'none'})`;
    } else {
      try {
        importHealStateDict(subset(sd, keys), [desc], source);
      } catch (err) {
        if (!(err instanceof DataError)) throw err;
        reason = `modality ${m}: does not fit heal's ${m} network: ${err.detail}`;
      }
    }
    if (reason === undefined) {
      loaded.push(m);
      continue;
    }
    leftOut.push({ modality: m, reason, keys: keys.map((key, i) => ({ key, reason: ownReasons[i] ?? reason })) });
  }
  const keep = [...sd.keys()].filter((k) => {
    const m = modalityOf(k);
    return m === undefined || loaded.includes(m);
  });
  const imp = importHealStateDict(subset(sd, keep), [ego, ...loaded.map((m) => agents.get(m)!)], source);
  return { ...imp, types: loaded, leftOut };
}

/** The import in a few lines: what loaded where, and each modality left out with why. */
export function leftOutLines(imp: CheckpointImport): string[] {
  return imp.leftOut.map((l) => `left out ${l.modality} (${l.keys.length} keys): ${l.reason.split('\n')[0]}`);
}

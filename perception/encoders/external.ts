// A black-box encoder: an ONNX file a vehicle maker ships with its validated detector. heal never
// builds, trains or rewrites it; it only feeds it the declared preprocessing and reads the BEV map
// it outputs. An adapter (train/adapt.ts) maps that map into the shared space.
//
//   "encoder": { "arch": "external", "model": "m5.encoder.onnx", "input": "pillars",
//                "pillarSize": [0.8, 0.8], "maxPointsPerPillar": 16, "maxPillars": 8000,
//                "maskEgo": true, "outChannels": 24 }
//
// Input "pillars" gives it what a PointPillars encoder takes (perception/pillars.ts): "features"
// [pillars, maxPointsPerPillar, 10], "mask" [pillars, maxPointsPerPillar], "cellToPillar" [Hp·Wp]
// int32. Its output is [1, outChannels, H', W'] on the shared feature grid.

import type * as ort from 'onnxruntime-node';
import { DataError } from '../../datasets/io.ts';
import type { HostTensor } from '../../models/graph.ts';
import { runSession } from '../../models/runtime.ts';
import { featureGrid, type SharedSpace } from '../space.ts';
import { checkPillarInputs, pillarGridOf } from './pointpillars.ts';

export interface ExternalEncoderConfig {
  arch: 'external';
  /** The ONNX file, absolute once the registry has read the declaration. */
  model: string;
  /** What heal feeds it; only 'pillars' so far. */
  input: 'pillars';
  pillarSize: [number, number];
  maxPointsPerPillar: number;
  maxPillars: number;
  maskEgo: boolean;
  /** Channels of its BEV output. */
  outChannels: number;
  /** Its output holding the BEV map; default its first output. */
  output?: string;
  /** SHA-256 of the file the adapter was trained on: a changed encoder no longer fits its adapter. */
  sha256?: string;
}

const isPosInt = (v: unknown): v is number => Number.isInteger(v) && (v as number) > 0;

export function checkExternalEncoderConfig(cfg: ExternalEncoderConfig, space: SharedSpace, source: string): void {
  const need = (ok: boolean, f: string, detail: string, value: unknown) => {
    if (!ok) throw new DataError(source, `encoder.${f}`, detail, value);
  };
  need(typeof cfg.model === 'string' && cfg.model.length > 0, 'model', 'must name the ONNX file of the encoder', cfg.model);
  need(cfg.input === 'pillars', 'input', 'must be "pillars" (the inputs of a PointPillars encoder)', cfg.input);
  checkPillarInputs(cfg, need);
  need(isPosInt(cfg.outChannels), 'outChannels', 'must be a positive integer (channels of its BEV output)', cfg.outChannels);
  need(cfg.output === undefined || typeof cfg.output === 'string', 'output', 'must be the name of an output of the model', cfg.output);
  need(cfg.sha256 === undefined || /^[0-9a-f]{64}$/.test(String(cfg.sha256)), 'sha256', 'must be 64 hex digits', cfg.sha256);
  const ps = cfg.pillarSize;
  const [wp, hp] = pillarGridOf({ pillarSize: ps }, space);
  const [wf, hf] = featureGrid(space);
  need(wp % wf === 0 && hp % hf === 0, 'pillarSize', `gives a ${wp}×${hp} pillar grid, not a whole multiple of the ${wf}×${hf} feature grid`, ps);
}

/**
 * Runs a black-box encoder's session on agentInputs and returns its BEV map, checked against the
 * declaration: [1, outChannels, H', W'] on the shared feature grid.
 */
export async function runExternalEncoder(
  session: ort.InferenceSession,
  cfg: Pick<ExternalEncoderConfig, 'model' | 'outChannels' | 'output'>,
  space: SharedSpace,
  inputs: Record<string, HostTensor>,
): Promise<HostTensor> {
  const out = await runSession(session, inputs);
  const name = cfg.output ?? session.outputNames[0];
  const bev = out[name];
  if (!bev) throw new DataError(cfg.model, 'output', `the encoder has no output "${name}" (has: ${session.outputNames.join(', ')})`, name);
  const [w, h] = featureGrid(space);
  const s = bev.shape;
  if (s.length !== 4 || s[0] !== 1 || s[1] !== cfg.outChannels || s[2] !== h || s[3] !== w) {
    throw new DataError(cfg.model, 'output', `the encoder's map is [${s}], the declaration says [1, ${cfg.outChannels}, ${h}, ${w}]`, name);
  }
  return bev;
}

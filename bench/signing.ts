// What signing costs (`heal bench signing`): Ed25519 sign and verify per message of each kind heal
// sends on the small profile, beside decoding it, and the share of a whole collaborative frame
// (5 agents, pyramid fusion, float32) that signing and verifying take, signed against unsigned.

import { createAuthority, issueIdentity, signMessage, Verifier, ephemeralSecurity } from '../fusion/identity.ts';
import { decodeMessage, encodeMessage, gridForSpace, strongestCellsMask, type EncodeOptions } from '../fusion/messages.ts';
import { CollabPipeline, type AgentInput } from '../fusion/pipeline.ts';
import { openDataset } from '../datasets/open.ts';
import { loadRegistry } from '../perception/registry.ts';
import { SMALL_SPACE } from '../perception/space.ts';
import { median, timeIt } from './timing.ts';
import { world } from './inference.ts';

const REPEATS = 10;

export async function run(): Promise<Record<string, number | string>> {
  const out: Record<string, number | string> = {};
  const ds = await openDataset(await world());
  const ref = ds.frames()[0];
  const registry = await loadRegistry();
  const agents: AgentInput[] = [];
  for (const id of ref.agentIds) agents.push({ frame: await ds.readAgentFrame(ref, id, { lidar: 64, images: false }), type: 'm1' });
  const plain = await CollabPipeline.create({ space: SMALL_SPACE, registry, device: 'cpu', seed: 1 });
  const features = await plain.encode(agents[1]);
  const grid = gridForSpace(SMALL_SPACE);
  const msg = { agentId: '1', agentType: 'm1', timestamp: ref.timestamp, sequence: 1, pose: agents[1].frame.lidarPose, grid };
  const boxes = Float32Array.from({ length: 50 * 7 }, (_, i) => [5, 2, -1, 1.5, 1.8, 4.5, 0.3][i % 7]);
  const kinds: [string, Uint8Array][] = [
    ['float32 dense', encodeMessage({ ...msg, features }, { dtype: 'float32' })],
    ['float16 dense', encodeMessage({ ...msg, features }, { dtype: 'float16' })],
    ['int8 dense', encodeMessage({ ...msg, features }, { dtype: 'int8' })],
    ['float16 25% of cells', encodeMessage({ ...msg, features }, { dtype: 'float16', mask: strongestCellsMask(features, grid, 0.25) } as EncodeOptions)],
    ['late, 50 boxes', encodeMessage({ ...msg, detections: { boxes, scores: new Float32Array(50).fill(0.5) } }, { dtype: 'float32' })],
  ];
  const authority = createAuthority();
  const now = Date.now();
  const id = issueIdentity(authority, '1', 'm1', now - 60_000, now + 3_600_000);
  const verifier = new Verifier({ authorities: [authority] });
  for (const [name, payload] of kinds) {
    const withCert = signMessage(id, payload, now);
    const withDigest = signMessage(id, payload, now, true);
    out[`${name}.bytes`] = payload.length;
    out[`${name}.signed_overhead_bytes`] = `${withCert.length - payload.length} with the certificate, ${withDigest.length - payload.length} with its digest`;
    out[`${name}.sign_ms`] = timeIt(20, () => signMessage(id, payload, now, true), 3);
    out[`${name}.verify_first_ms`] = timeIt(10, () => new Verifier({ authorities: [authority] }).verify(withCert, now), 2);
    verifier.verify(withCert, now); // the ego now holds the certificate: later messages carry its digest
    out[`${name}.verify_ms`] = timeIt(20, () => verifier.verify(withDigest, now), 3);
    out[`${name}.decode_ms`] = timeIt(10, () => decodeMessage(payload), 2);
  }
  // A whole frame, signed and not: the same five agents, the same networks.
  const signed = await CollabPipeline.create({ space: SMALL_SPACE, registry, device: 'cpu', seed: 1, security: ephemeralSecurity() });
  for (const [name, p] of [
    ['unsigned', plain],
    ['signed', signed],
  ] as const) {
    const egoId = agents[0].frame.agentId;
    await p.runFrame(agents, egoId, { mode: 'intermediate' });
    const totals: number[] = [];
    const crypto: number[] = [];
    for (let r = 0; r < REPEATS; r++) {
      const t0 = performance.now();
      const res = await p.runFrame(agents, egoId, { mode: 'intermediate' });
      totals.push(performance.now() - t0);
      crypto.push((res.times.sign ?? 0) + (res.times.verify ?? 0));
    }
    out[`frame5.${name}.total_ms`] = median(totals);
    if (name === 'signed') {
      out['frame5.signed.sign+verify_ms'] = median(crypto);
      out['frame5.signed.share_of_frame'] = median(crypto.map((c, i) => c / totals[i]));
    }
  }
  return out;
}

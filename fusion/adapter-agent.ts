// An agent type that joined by an adapter (perception/registry.ts join "adapter"), at inference:
// its black-box encoder (its maker's ONNX file, run as it is), its adapter into the shared space,
// and, when declared, STAMP's reverter and its own head, so that as the ego it detects with its
// own head on the fused map brought back into its own space, and alone with its own detector.

import type * as ort from 'onnxruntime-node';
import { DataError, readFileChecked, sha256Hex } from '../datasets/io.ts';
import type { HostTensor } from '../models/graph.ts';
import { createSession, runSession, type Provider } from '../models/runtime.ts';
import { runExternalEncoder, type ExternalEncoderConfig } from '../perception/encoders/external.ts';
import type { TypeProfile } from '../perception/registry.ts';
import type { SharedSpace } from '../perception/space.ts';

export class AdapterAgent {
  private constructor(
    readonly type: string,
    readonly encoderConfig: ExternalEncoderConfig,
    private readonly encoder: ort.InferenceSession,
    private readonly adapter: ort.InferenceSession,
    private readonly reverter?: ort.InferenceSession,
    private readonly head?: ort.InferenceSession,
  ) {}

  static async create(type: string, profile: TypeProfile, provider: Provider): Promise<AdapterAgent> {
    const enc = profile.network.encoder;
    if (profile.join !== 'adapter' || enc.arch !== 'external') {
      throw new Error(`agent type ${type} did not join by an adapter (join "${profile.join}", encoder "${enc.arch}")`);
    }
    if (!profile.adapter) {
      throw new Error(
        `agent type ${type} has a black-box encoder but no adapter yet: heal adapt --type ${type} --encoder ${enc.model} trains one and writes its declaration`,
      );
    }
    const bytes = await readFileChecked(enc.model, `black-box encoder of agent type ${type}`);
    if (enc.sha256) {
      const sha = sha256Hex(bytes);
      if (sha !== enc.sha256) throw new DataError(enc.model, 'sha256', `is not the encoder agent type ${type}'s adapter was trained on (${enc.sha256})`, sha);
    }
    const session = async (file: string, what: string) =>
      (await createSession(await readFileChecked(file, `${what} of agent type ${type}`), { device: provider })).session;
    const files = profile.adapter;
    return new AdapterAgent(
      type,
      enc,
      (await createSession(bytes, { device: provider })).session,
      await session(files.model, 'adapter'),
      files.reverter ? await session(files.reverter, 'reverter') : undefined,
      files.head ? await session(files.head, 'own head') : undefined,
    );
  }

  /** Whether it detects with its own head (its maker's) as the ego and alone. */
  get ownHead(): boolean {
    return this.head !== undefined && this.reverter !== undefined;
  }

  /** The black box's map of the agent's inputs: [1, C_own, H, W]. */
  ownFeatures(space: SharedSpace, inputs: Record<string, HostTensor>): Promise<HostTensor> {
    return runExternalEncoder(this.encoder, this.encoderConfig, space, inputs);
  }

  /** Its map in the shared space, [C, H, W] flat. */
  async toShared(features: HostTensor): Promise<Float32Array> {
    return (await runSession(this.adapter, { features })).bev.data as Float32Array;
  }

  /** Its own head on a map of its own space: cls, reg, dir. */
  detectOwn(features: HostTensor): Promise<Record<string, HostTensor>> {
    if (!this.head) throw new Error(`agent type ${this.type} declares no own head`);
    return runSession(this.head, { features });
  }

  /** The fused shared map [1, C', H, W] back in its own space. */
  async revert(fused: HostTensor): Promise<HostTensor> {
    if (!this.reverter) throw new Error(`agent type ${this.type} declares no reverter`);
    return (await runSession(this.reverter, { fused })).features;
  }
}

// HEAL's trained weights (a HeterPyramidCollab state dict, models/pth.ts reads the file) as heal's
// parameters. HEAL's module paths map mechanically onto heal's layer names:
//   encoder_<m>.pillar_vfe.pfn_layers.0.linear|norm     → encoder.<m>.pfn.linear|bn
//   encoder_<m>.camencode.conv1|bn1 (ResNet-101 trunk)  → encoder.<m>.image.stem.conv|bn
//   encoder_<m>.camencode.layer<L>.<b>.…                → encoder.<m>.image.stage<L−1>.block<b>.… (block rule)
//   encoder_<m>.camencode.depth_head|image_head         → encoder.<m>.depth|context
//   aligner_<m>.channel_align.model.<i>.…  (ConvNeXt)   → aligner.<m>.block<i>.dwconv|norm|pwconv1|pwconv2|gamma
//   backbone_<m>.resnet.layer<L>.<b>.conv<k>|bn<k>      → encoder.<m>.backbone.level<L>.block<b>.conv<k>.conv|bn
//   pyramid_backbone.resnet.layer<L>.<b>.…              → fusion.level<L>.block<b>.… (same block rule)
//   ….downsample.0|1                                    → ….down.conv|bn
//   pyramid_backbone.single_head_<l>                    → fusion.occ_head<l>
//   pyramid_backbone.deblocks.<i>.0|1                   → fusion.deblock<i>.deconv|bn
//   shrink_conv.layers.0.double_conv.0|2                → fusion.shrink.conv1|conv2
//   cls_head|reg_head|dir_head                          → head.cls|reg|dir
// Batch norm weight/bias/running_mean/running_var become gamma/beta/mean/var, and
// num_batches_tracked (a training counter) is skipped. A linear weight is [out, in] in PyTorch and
// [in, out] in heal, so it is transposed; convolution and transposed-convolution weights have the
// same layout in both. HEAL's ConvNeXt Linear weights [out, in] are heal's 1×1 convolutions
// [out, in, 1, 1] and its layer scale [C] broadcasts as [C, 1, 1]: reshaped, not transposed. Every parameter of the networks being loaded must come from the file with
// its exact shape, and every key of the file must be used: what cannot be is named, with why.

import type { GraphDesc } from '../models/graph.ts';
import { sameShape, sizeOf } from '../models/graph.ts';
import { readStateDict, type StateDict, type TorchTensor } from '../models/pth.ts';
import type { Weights } from '../models/weights.ts';
import { DataError } from '../datasets/io.ts';

export interface MappedKey {
  /** The checkpoint's key. */
  from: string;
  /** heal's parameter name. */
  to: string;
  how: 'copy' | 'transpose' | 'reshape';
}

export interface HealImport {
  /** Every parameter of the networks given, by heal's names. */
  weights: Weights;
  /** Which checkpoint key went where, in the checkpoint's order. */
  mapped: MappedKey[];
  /** Keys deliberately not loaded (batch norm's num_batches_tracked). */
  skipped: string[];
}

const BN: Record<string, string> = { weight: 'gamma', bias: 'beta', running_mean: 'mean', running_var: 'var' };

type Rule = { to: string; how: MappedKey['how'] } | { skip: true } | { unsupported: string } | undefined;

/** The rest of a ResNet block's key (after `layer<L>.<b>.`) under heal's block names. */
function blockPart(rest: string): string | undefined {
  let m = /^conv(\d)\.weight$/.exec(rest);
  if (m) return `conv${m[1]}.conv.weight`;
  m = /^bn(\d)\.(weight|bias|running_mean|running_var)$/.exec(rest);
  if (m) return `conv${m[1]}.bn.${BN[m[2]]}`;
  if (rest === 'downsample.0.weight') return 'down.conv.weight';
  m = /^downsample\.1\.(weight|bias|running_mean|running_var)$/.exec(rest);
  if (m) return `down.bn.${BN[m[1]]}`;
  return undefined;
}

/** Why a modality's encoder keys cannot load, from what they look like. */
function encoderProblem(mod: string, key: string, t: TorchTensor): string {
  if (/spconv|conv_input|sparse/.test(key) || t.shape.length === 5) {
    return `modality ${mod}: a SECOND encoder (sparse 3-D convolutions, spconv; HEAL's m3): not supported, because heal's graph has no sparse 3-D convolution and a dense one over a voxel grid would not fit in memory`;
  }
  if (/camencode|depth|img_|trunk|bevencode|cam/.test(key)) {
    return `modality ${mod}: a camera (Lift-Splat) encoder layer other than HEAL's ResNet-101 trunk (m4's CamEncode_Resnet101): heal does not load it (e.g. m2's EfficientNet)`;
  }
  return `modality ${mod}: this encoder layer has no counterpart in heal's PointPillars encoder`;
}

export function ruleFor(key: string, t: TorchTensor): Rule {
  if (key.endsWith('.num_batches_tracked')) return { skip: true };
  let m = /^encoder_([A-Za-z0-9]+)\.pillar_vfe\.pfn_layers\.0\.(linear\.weight|norm\.(weight|bias|running_mean|running_var))$/.exec(key);
  if (m) return m[3] ? { to: `encoder.${m[1]}.pfn.bn.${BN[m[3]]}`, how: 'copy' } : { to: `encoder.${m[1]}.pfn.linear.weight`, how: 'transpose' };
  m = /^encoder_([A-Za-z0-9]+)\.camencode\.(conv1\.weight|bn1\.(weight|bias|running_mean|running_var))$/.exec(key);
  if (m) return { to: m[3] ? `encoder.${m[1]}.image.stem.bn.${BN[m[3]]}` : `encoder.${m[1]}.image.stem.conv.weight`, how: 'copy' };
  m = /^encoder_([A-Za-z0-9]+)\.camencode\.layer(\d+)\.(\d+)\.(.+)$/.exec(key);
  if (m) {
    const part = blockPart(m[4]);
    if (part && Number(m[2]) >= 1) return { to: `encoder.${m[1]}.image.stage${Number(m[2]) - 1}.block${m[3]}.${part}`, how: 'copy' };
  }
  m = /^encoder_([A-Za-z0-9]+)\.camencode\.(depth|image)_head\.(weight|bias)$/.exec(key);
  if (m) return { to: `encoder.${m[1]}.${m[2] === 'depth' ? 'depth' : 'context'}.${m[3]}`, how: 'copy' };
  m = /^encoder_([A-Za-z0-9]+)\.pillar_vfe\.pfn_layers\.(\d+)\./.exec(key);
  if (m) return { unsupported: `modality ${m[1]}: a pillar feature net with more than one layer (heal's has one)` };
  m = /^encoder_([A-Za-z0-9]+)\./.exec(key);
  if (m) return { unsupported: encoderProblem(m[1], key, t) };
  m = /^backbone_([A-Za-z0-9]+)\.resnet\.layer(\d+)\.(\d+)\.(.+)$/.exec(key);
  if (m) {
    const part = blockPart(m[4]);
    return part ? { to: `encoder.${m[1]}.backbone.level${m[2]}.block${m[3]}.${part}`, how: 'copy' } : undefined;
  }
  m = /^backbone_([A-Za-z0-9]+)\./.exec(key);
  if (m) {
    if (/spconv|conv_input|sparse/.test(key) || t.shape.length === 5) return { unsupported: encoderProblem(m[1], key, t) };
    return {
      unsupported: `modality ${m[1]}: a BEV backbone layer outside HEAL's ResNet levels (deblocks or other), which heal's encoder backbone does not have`,
    };
  }
  m = /^aligner_([A-Za-z0-9]+)\.channel_align\.model\.(\d+)\.(dwconv\.(?:weight|bias)|norm\.(weight|bias)|pwconv[12]\.(weight|bias)|gamma)$/.exec(key);
  if (m) {
    const to = `aligner.${m[1]}.block${m[2]}.`;
    if (m[4]) return { to: `${to}norm.${m[4] === 'weight' ? 'gamma' : 'beta'}`, how: 'copy' };
    // Linear [out, in] → 1×1 conv [out, in, 1, 1]; the layer scale [C] → [C, 1, 1].
    if (m[3] === 'gamma' || m[5] === 'weight') return { to: `${to}${m[3]}`, how: 'reshape' };
    return { to: `${to}${m[3]}`, how: 'copy' };
  }
  m = /^aligner_([A-Za-z0-9]+)\./.exec(key);
  if (m)
    return {
      unsupported: `modality ${m[1]}: an aligner layer outside HEAL's ConvNeXt blocks (channel_align.model.<i>.dwconv/norm/pwconv1/pwconv2/gamma)`,
    };
  m = /^pyramid_backbone\.resnet\.layer(\d+)\.(\d+)\.(.+)$/.exec(key);
  if (m) {
    const part = blockPart(m[3]);
    return part ? { to: `fusion.level${m[1]}.block${m[2]}.${part}`, how: 'copy' } : undefined;
  }
  m = /^pyramid_backbone\.single_head_(\d+)\.(weight|bias)$/.exec(key);
  if (m) return { to: `fusion.occ_head${m[1]}.${m[2]}`, how: 'copy' };
  m = /^pyramid_backbone\.deblocks\.(\d+)\.(0\.weight|1\.(weight|bias|running_mean|running_var))$/.exec(key);
  if (m) return { to: m[3] ? `fusion.deblock${m[1]}.bn.${BN[m[3]]}` : `fusion.deblock${m[1]}.deconv.weight`, how: 'copy' };
  m = /^shrink_conv\.layers\.0\.double_conv\.([02])\.(weight|bias)$/.exec(key);
  if (m) return { to: `fusion.shrink.conv${m[1] === '0' ? 1 : 2}.${m[2]}`, how: 'copy' };
  m = /^shrink_conv\.layers\.(\d+)\./.exec(key);
  if (m) return { unsupported: 'a shrink of more than one DoubleConv (heal has one)' };
  m = /^(cls|reg|dir)_head\.(weight|bias)$/.exec(key);
  if (m) return { to: `head.${m[1]}.${m[2]}`, how: 'copy' };
  if (/^compressor|^naive_compressor/.test(key)) return { unsupported: 'a feature compressor, which heal does not have' };
  return undefined;
}

const BN_BACK: Record<string, string> = Object.fromEntries(Object.entries(BN).map(([k, v]) => [v, k]));

function blockPartBack(part: string): string | undefined {
  let m = /^conv(\d)\.conv\.weight$/.exec(part);
  if (m) return `conv${m[1]}.weight`;
  m = /^conv(\d)\.bn\.(gamma|beta|mean|var)$/.exec(part);
  if (m) return `bn${m[1]}.${BN_BACK[m[2]]}`;
  if (part === 'down.conv.weight') return 'downsample.0.weight';
  m = /^down\.bn\.(gamma|beta|mean|var)$/.exec(part);
  if (m) return `downsample.1.${BN_BACK[m[1]]}`;
  return undefined;
}

/** The checkpoint key that fills heal's parameter `name`, or undefined when HEAL has none (the inverse of the rules above). */
export function healKeyFor(name: string): string | undefined {
  let m = /^encoder\.([^.]+)\.pfn\.(linear\.weight|bn\.(gamma|beta|mean|var))$/.exec(name);
  if (m) return `encoder_${m[1]}.pillar_vfe.pfn_layers.0.${m[3] ? `norm.${BN_BACK[m[3]]}` : 'linear.weight'}`;
  m = /^encoder\.([^.]+)\.image\.stem\.(conv\.weight|bn\.(gamma|beta|mean|var))$/.exec(name);
  if (m) return `encoder_${m[1]}.camencode.${m[3] ? `bn1.${BN_BACK[m[3]]}` : 'conv1.weight'}`;
  m = /^encoder\.([^.]+)\.image\.stage(\d+)\.block(\d+)\.(.+)$/.exec(name);
  if (m) {
    const part = blockPartBack(m[4]);
    return part && `encoder_${m[1]}.camencode.layer${Number(m[2]) + 1}.${m[3]}.${part}`;
  }
  m = /^encoder\.([^.]+)\.(depth|context)\.(weight|bias)$/.exec(name);
  if (m) return `encoder_${m[1]}.camencode.${m[2] === 'depth' ? 'depth' : 'image'}_head.${m[3]}`;
  m = /^aligner\.([^.]+)\.block(\d+)\.(dwconv\.weight|dwconv\.bias|norm\.(gamma|beta)|pwconv[12]\.(weight|bias)|gamma)$/.exec(name);
  if (m) {
    const part = m[4] ? `norm.${m[4] === 'gamma' ? 'weight' : 'bias'}` : m[3];
    return `aligner_${m[1]}.channel_align.model.${m[2]}.${part}`;
  }
  m = /^encoder\.([^.]+)\.backbone\.level(\d+)\.block(\d+)\.(.+)$/.exec(name);
  if (m) {
    const part = blockPartBack(m[4]);
    return part && `backbone_${m[1]}.resnet.layer${m[2]}.${m[3]}.${part}`;
  }
  m = /^fusion\.level(\d+)\.block(\d+)\.(.+)$/.exec(name);
  if (m) {
    const part = blockPartBack(m[3]);
    return part && `pyramid_backbone.resnet.layer${m[1]}.${m[2]}.${part}`;
  }
  m = /^fusion\.occ_head(\d+)\.(weight|bias)$/.exec(name);
  if (m) return `pyramid_backbone.single_head_${m[1]}.${m[2]}`;
  m = /^fusion\.deblock(\d+)\.(deconv\.weight|bn\.(gamma|beta|mean|var))$/.exec(name);
  if (m) return `pyramid_backbone.deblocks.${m[1]}.${m[3] ? `1.${BN_BACK[m[3]]}` : '0.weight'}`;
  m = /^fusion\.shrink\.conv([12])\.(weight|bias)$/.exec(name);
  if (m) return `shrink_conv.layers.0.double_conv.${m[1] === '1' ? 0 : 2}.${m[2]}`;
  m = /^head\.(cls|reg|dir)\.(weight|bias)$/.exec(name);
  if (m) return `${m[1]}_head.${m[2]}`;
  return undefined;
}

function float32Of(key: string, t: TorchTensor, source: string): Float32Array {
  if (t.dtype !== 'float32' && t.dtype !== 'float16' && t.dtype !== 'bfloat16') {
    throw new DataError(source, key, `is ${t.dtype}; heal's parameters are float32`, t.dtype);
  }
  return t.data as Float32Array;
}

function transpose2d(data: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(data.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = data[r * cols + c];
  return out;
}

/**
 * Maps a HEAL state dict onto the parameters of `descs` (e.g. the heal profile's m1 agent network
 * and its ego network). Throws a DataError naming the key when a parameter is missing, a shape
 * differs, or a key of the file has no place in these networks (with the reason).
 */
export function importHealStateDict(sd: StateDict, descs: GraphDesc[], source = 'checkpoint'): HealImport {
  const wanted = new Map(descs.flatMap((d) => d.params.map((p) => [p.name, { shape: p.shape, net: d.name }] as const)));
  const weights: Weights = new Map();
  const mapped: MappedKey[] = [];
  const skipped: string[] = [];
  const unused: string[] = [];
  const fromOf = new Map<string, string>();
  for (const [key, t] of sd) {
    const rule = ruleFor(key, t);
    if (rule && 'skip' in rule) {
      skipped.push(key);
      continue;
    }
    if (!rule || 'unsupported' in rule) {
      unused.push(`${key}: ${rule ? rule.unsupported : 'no counterpart in heal (an unknown HEAL module)'}`);
      continue;
    }
    const want = wanted.get(rule.to);
    if (!want) {
      const typeOf = (n: string) => /^(?:encoder|aligner)\.([^.]+)\./.exec(n)?.[1];
      const type = typeOf(rule.to);
      const loaded = [...new Set([...wanted.keys()].map(typeOf).filter(Boolean))];
      unused.push(
        type && !loaded.includes(type)
          ? `${key}: modality ${type} is in the checkpoint but not among the agent types being loaded (${loaded.join(', ') || 'none'})`
          : `${key}: would be heal's "${rule.to}", which the networks being loaded (${descs.map((d) => d.name).join(', ')}) do not have`,
      );
      continue;
    }
    if (fromOf.has(rule.to)) throw new DataError(source, key, `maps onto "${rule.to}", already filled from "${fromOf.get(rule.to)}"`);
    const data = float32Of(key, t, source);
    let shape = t.shape;
    let values = data;
    if (rule.how === 'transpose') {
      if (shape.length !== 2) throw new DataError(source, key, 'a linear weight must be 2-D [out, in]', shape);
      values = transpose2d(data, shape[0], shape[1]);
      shape = [shape[1], shape[0]];
    } else if (rule.how === 'reshape') {
      // Only trailing unit dims are added ([out, in] → [out, in, 1, 1], [C] → [C, 1, 1]); the values keep their order.
      const padded = [...shape, ...new Array<number>(Math.max(0, want.shape.length - shape.length)).fill(1)];
      if (sameShape(padded, want.shape)) shape = padded;
    }
    if (!sameShape(shape, want.shape)) {
      const shown = rule.how !== 'copy' ? ` (${rule.how === 'transpose' ? 'transposed' : 'reshaped'} from [${t.shape.join(', ')}])` : '';
      throw new DataError(
        source,
        key,
        `has shape [${shape.join(', ')}]${shown}, heal's "${rule.to}" in network "${want.net}" needs [${want.shape.join(', ')}]`,
      );
    }
    if (values.length !== sizeOf(shape)) throw new DataError(source, key, `has ${values.length} values for shape [${shape.join(', ')}]`);
    weights.set(rule.to, { shape: [...shape], data: values });
    fromOf.set(rule.to, key);
    mapped.push({ from: key, to: rule.to, how: rule.how });
  }
  if (unused.length > 0) {
    throw new DataError(source, undefined, `${unused.length} checkpoint key(s) cannot be loaded into heal's networks:\n  ${unused.join('\n  ')}`);
  }
  const missing = [...wanted.keys()].filter((n) => !weights.has(n));
  if (missing.length > 0) {
    const lines = missing.map((n) => {
      const key = healKeyFor(n);
      return key ? `${key} (for heal's "${n}")` : `heal's "${n}" (HEAL's network has no such layer: the configuration differs from HEAL's)`;
    });
    const shown = lines.slice(0, 12).join('\n  ') + (lines.length > 12 ? `\n  … ${lines.length - 12} more` : '');
    throw new DataError(
      source,
      healKeyFor(missing[0]) ?? missing[0],
      `${missing.length} key(s) that ${[...new Set(missing.map((n) => wanted.get(n)!.net))].join(', ')} need are missing:\n  ${shown}`,
    );
  }
  return { weights, mapped, skipped };
}

/** Reads a HEAL checkpoint (.pth) and maps it onto `descs` (see importHealStateDict). */
export async function loadHealCheckpoint(file: string, descs: GraphDesc[]): Promise<HealImport> {
  return importHealStateDict(await readStateDict(file), descs, file);
}

/** One line per top-level HEAL module: how many keys went where. */
export function describeImport(imp: HealImport): string[] {
  const groups = new Map<string, { n: number; to: string }>();
  for (const m of imp.mapped) {
    const from = m.from.split('.')[0];
    const to = m.to
      .split('.')
      .slice(0, m.to.startsWith('encoder.') ? 3 : m.to.startsWith('aligner.') ? 2 : 1)
      .join('.');
    const k = `${from} → ${to}`;
    const g = groups.get(k) ?? { n: 0, to };
    g.n++;
    groups.set(k, g);
  }
  const lines = [...groups].map(([k, g]) => `${k}.*: ${g.n} tensors`);
  lines.push(`skipped: ${imp.skipped.length} num_batches_tracked`);
  return lines;
}

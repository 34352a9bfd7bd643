// A network description plus its weights as an ONNX model (opset 17, IR version 8) for
// onnxruntime-node. Each op's ONNX nodes come from its entry in models/ops.ts; the protobuf
// schema is proto/onnx.proto, the subset of onnx.proto that heal writes.

import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import type { GraphDesc, TensorSpec, DType } from './graph.ts';
import { lowering, type OnnxAttr, type OnnxContext } from './ops.ts';
import { checkWeights, type Weights } from './weights.ts';

export const ONNX_OPSET = 17;
export const ONNX_IR_VERSION = 8;

let modelType: protobuf.Type | undefined;

/** The protobuf type of onnx.ModelProto, parsed once. Exposed for tests that decode exports. */
export function onnxModelType(): protobuf.Type {
  // keepCase: the exporter writes ONNX's own field names (op_type, raw_data, ...).
  modelType ??= new protobuf.Root().loadSync(fileURLToPath(new URL('../proto/onnx.proto', import.meta.url)), { keepCase: true }).lookupType('onnx.ModelProto');
  return modelType;
}

const FLOAT = 1;
const INT32 = 6;
const INT64 = 7;

interface TensorObj {
  name: string;
  dims: number[];
  data_type: number;
  raw_data: Uint8Array;
}

interface NodeObj {
  name: string;
  op_type: string;
  input: string[];
  output: string[];
  attribute: OnnxAttr[];
}

function rawBytes(a: Float32Array | Int32Array | BigInt64Array): Uint8Array {
  return new Uint8Array(a.buffer.slice(a.byteOffset, a.byteOffset + a.byteLength));
}

function floatTensor(name: string, dims: number[], data: Float32Array): TensorObj {
  return { name, dims, data_type: FLOAT, raw_data: rawBytes(data) };
}

function int64Tensor(name: string, dims: number[], values: number[]): TensorObj {
  return { name, dims, data_type: INT64, raw_data: rawBytes(BigInt64Array.from(values.map((v) => BigInt(v)))) };
}

function valueInfo(t: TensorSpec) {
  return {
    name: t.name,
    type: {
      tensor_type: {
        elem_type: elemType(t.dtype),
        shape: { dim: t.shape.map((d) => (typeof d === 'number' ? { dim_value: d } : { dim_param: d })) },
      },
    },
  };
}

function elemType(d: DType): number {
  return d === 'float32' ? FLOAT : INT32;
}

export interface ExportOptions {
  /** Free text stored in the model (e.g. the command and seed that trained the weights). */
  docString?: string;
  /** Key/value metadata stored in the model. */
  metadata?: Record<string, string>;
  producerVersion?: string;
}

/** Serialises `desc` with `weights` as ONNX ModelProto bytes. */
export function exportOnnx(desc: GraphDesc, weights: Weights, opts: ExportOptions = {}): Uint8Array {
  checkWeights(desc, weights);
  const initializers: TensorObj[] = [];
  const nodes: NodeObj[] = [];
  for (const p of desc.params) initializers.push(floatTensor(p.name, p.shape, weights.get(p.name)!.data));
  for (const c of desc.constants) {
    const data = c.dtype === 'float32' ? Float32Array.from(c.values) : Int32Array.from(c.values);
    initializers.push({ name: c.name, dims: c.shape, data_type: elemType(c.dtype), raw_data: rawBytes(data) });
  }
  const ctx: OnnxContext = {
    weights,
    node: (op_type, input, output, attribute = []) => nodes.push({ name: output, op_type, input, output: [output], attribute }),
    floatInitializer: (name, dims, data) => initializers.push(floatTensor(name, dims, data)),
    int64Initializer: (name, dims, values) => initializers.push(int64Tensor(name, dims, values)),
  };
  for (const node of desc.nodes) lowering(node).onnx(node, ctx);
  // Folded batch norms leave their raw parameters unread; onnxruntime warns about unused initializers.
  const read = new Set(nodes.flatMap((n) => n.input));
  const used = initializers.filter((t) => read.has(t.name));

  const model = {
    ir_version: ONNX_IR_VERSION,
    opset_import: [{ domain: '', version: ONNX_OPSET }],
    producer_name: 'heal',
    producer_version: opts.producerVersion ?? '0.1.0',
    doc_string: opts.docString ?? '',
    graph: {
      name: desc.name,
      node: nodes,
      initializer: used,
      input: desc.inputs.map(valueInfo),
      output: desc.outputs.map(valueInfo),
    },
    metadata_props: Object.entries(opts.metadata ?? {}).map(([key, value]) => ({ key, value })),
  };
  const type = onnxModelType();
  const err = type.verify(model);
  if (err) throw new Error(`ONNX export of "${desc.name}": ${err}`);
  return type.encode(type.fromObject(model)).finish();
}

/** ONNX operator types that `desc` exports to, in first-use order. */
export function onnxOpsOf(desc: GraphDesc): string[] {
  const bytes = exportOnnx(desc, zeroWeights(desc));
  const model = onnxModelType().decode(bytes) as unknown as { graph: { node: { op_type: string }[] } };
  return [...new Set(model.graph.node.map((n) => n.op_type))];
}

function zeroWeights(desc: GraphDesc): Weights {
  return new Map(desc.params.map((p) => [p.name, { shape: p.shape, data: new Float32Array(p.shape.reduce((a, b) => a * b, 1)) }]));
}

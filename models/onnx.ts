// A network description plus its weights as an ONNX model (opset 17, IR version 8) for
// onnxruntime-node. The protobuf schema below is the subset of onnx.proto that heal writes,
// with the field numbers of the public ONNX specification (onnx/onnx.proto3).

import protobuf from 'protobufjs';
import type { GraphDesc, Node, TensorSpec, DType } from './graph.ts';
import { checkWeights, type Weights } from './weights.ts';

export const ONNX_OPSET = 17;
export const ONNX_IR_VERSION = 8;

const ONNX_PROTO = `
syntax = "proto3";
package onnx;

message AttributeProto {
  enum AttributeType {
    UNDEFINED = 0; FLOAT = 1; INT = 2; STRING = 3; TENSOR = 4; GRAPH = 5;
    FLOATS = 6; INTS = 7; STRINGS = 8; TENSORS = 9; GRAPHS = 10;
  }
  string name = 1;
  string doc_string = 13;
  AttributeType type = 20;
  float f = 2;
  int64 i = 3;
  bytes s = 4;
  TensorProto t = 5;
  repeated float floats = 7;
  repeated int64 ints = 8;
  repeated bytes strings = 9;
}

message ValueInfoProto {
  string name = 1;
  TypeProto type = 2;
  string doc_string = 3;
}

message NodeProto {
  repeated string input = 1;
  repeated string output = 2;
  string name = 3;
  string op_type = 4;
  string domain = 7;
  repeated AttributeProto attribute = 5;
  string doc_string = 6;
}

message StringStringEntryProto {
  string key = 1;
  string value = 2;
}

message ModelProto {
  int64 ir_version = 1;
  repeated OperatorSetIdProto opset_import = 8;
  string producer_name = 2;
  string producer_version = 3;
  string domain = 4;
  int64 model_version = 5;
  string doc_string = 6;
  GraphProto graph = 7;
  repeated StringStringEntryProto metadata_props = 14;
}

message GraphProto {
  repeated NodeProto node = 1;
  string name = 2;
  repeated TensorProto initializer = 5;
  string doc_string = 10;
  repeated ValueInfoProto input = 11;
  repeated ValueInfoProto output = 12;
  repeated ValueInfoProto value_info = 13;
}

message TensorProto {
  enum DataType {
    UNDEFINED = 0; FLOAT = 1; UINT8 = 2; INT8 = 3; UINT16 = 4; INT16 = 5; INT32 = 6; INT64 = 7;
    STRING = 8; BOOL = 9; FLOAT16 = 10; DOUBLE = 11; UINT32 = 12; UINT64 = 13;
  }
  repeated int64 dims = 1;
  int32 data_type = 2;
  repeated float float_data = 4;
  repeated int32 int32_data = 5;
  repeated int64 int64_data = 7;
  string name = 8;
  string doc_string = 12;
  bytes raw_data = 9;
}

message TensorShapeProto {
  message Dimension {
    oneof value {
      int64 dim_value = 1;
      string dim_param = 2;
    }
    string denotation = 3;
  }
  repeated Dimension dim = 1;
}

message TypeProto {
  message Tensor {
    int32 elem_type = 1;
    TensorShapeProto shape = 2;
  }
  oneof value {
    Tensor tensor_type = 1;
  }
  string denotation = 6;
}

message OperatorSetIdProto {
  string domain = 1;
  int64 version = 2;
}
`;

let modelType: protobuf.Type | undefined;

/** The protobuf type of onnx.ModelProto, parsed once. Exposed for tests that decode exports. */
export function onnxModelType(): protobuf.Type {
  modelType ??= protobuf.parse(ONNX_PROTO, { keepCase: true }).root.lookupType('onnx.ModelProto');
  return modelType;
}

const FLOAT = 1;
const INT32 = 6;
const INT64 = 7;
const ATTR = { FLOAT: 1, INT: 2, STRING: 3, INTS: 7 } as const;

interface AttrObj {
  name: string;
  type: number;
  f?: number;
  i?: number;
  s?: Uint8Array;
  ints?: number[];
}

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
  attribute: AttrObj[];
}

const intAttr = (name: string, i: number): AttrObj => ({ name, type: ATTR.INT, i });
const intsAttr = (name: string, ints: number[]): AttrObj => ({ name, type: ATTR.INTS, ints });
const floatAttr = (name: string, f: number): AttrObj => ({ name, type: ATTR.FLOAT, f });
const stringAttr = (name: string, s: string): AttrObj => ({ name, type: ATTR.STRING, s: Buffer.from(s, 'utf8') });

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
  for (const node of desc.nodes) emitNode(node, weights, nodes, initializers);
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

function emitNode(node: Node, weights: Weights, nodes: NodeObj[], inits: TensorObj[]): void {
  const add = (op_type: string, input: string[], output: string, attribute: AttrObj[] = [], name = output) =>
    nodes.push({ name, op_type, input, output: [output], attribute });
  const n = node.name;
  switch (node.op) {
    case 'conv2d': {
      const p = node.pad;
      add('Conv', node.inputs, n, [
        intsAttr('kernel_shape', node.kernel),
        intsAttr('strides', [node.stride, node.stride]),
        intsAttr('pads', [p, p, p, p]),
        intsAttr('dilations', [1, 1]),
        intAttr('group', node.groups),
      ]);
      return;
    }
    case 'convTranspose2d':
      add('ConvTranspose', node.inputs, n, [intsAttr('kernel_shape', node.kernel), intsAttr('strides', [node.stride, node.stride]), intAttr('group', 1)]);
      return;
    case 'batchNorm': {
      if (node.axis === 1) {
        add('BatchNormalization', node.inputs, n, [floatAttr('epsilon', node.epsilon)]);
        return;
      }
      // ONNX BatchNormalization only normalises axis 1: fold the inference form into x·scale + shift.
      const [, gName, bName, mName, vName] = node.inputs;
      const [gamma, beta, mean, variance] = [gName, bName, mName, vName].map((k) => weights.get(k)!.data);
      const c = gamma.length;
      const scale = new Float32Array(c);
      const shift = new Float32Array(c);
      for (let i = 0; i < c; i++) {
        scale[i] = gamma[i] / Math.sqrt(variance[i] + node.epsilon);
        shift[i] = beta[i] - mean[i] * scale[i];
      }
      const dims = [c, ...new Array<number>(node.rank - 1 - node.axis).fill(1)];
      inits.push(floatTensor(`${n}/scale`, dims, scale), floatTensor(`${n}/shift`, dims, shift));
      add('Mul', [node.inputs[0], `${n}/scale`], `${n}/scaled`);
      add('Add', [`${n}/scaled`, `${n}/shift`], n);
      return;
    }
    case 'linear':
      if (node.inputs.length === 3) {
        add('MatMul', node.inputs.slice(0, 2), `${n}/matmul`);
        add('Add', [`${n}/matmul`, node.inputs[2]], n);
      } else {
        add('MatMul', node.inputs, n);
      }
      return;
    case 'relu':
    case 'sigmoid':
    case 'exp':
    case 'identity':
    case 'add':
    case 'sub':
    case 'mul':
    case 'div':
      add(node.op[0].toUpperCase() + node.op.slice(1), node.inputs, n);
      return;
    case 'concat':
      add('Concat', node.inputs, n, [intAttr('axis', node.axis)]);
      return;
    case 'reduceMax':
    case 'reduceMean':
      // Opset 17 still takes these axes as an attribute (an input only from opset 18).
      add(node.op === 'reduceMax' ? 'ReduceMax' : 'ReduceMean', node.inputs, n, [intsAttr('axes', [node.axis]), intAttr('keepdims', node.keepDims ? 1 : 0)]);
      return;
    case 'reduceSum':
      inits.push(int64Tensor(`${n}/axes`, [1], [node.axis]));
      add('ReduceSum', [node.inputs[0], `${n}/axes`], n, [intAttr('keepdims', node.keepDims ? 1 : 0)]);
      return;
    case 'softmax':
      add('Softmax', node.inputs, n, [intAttr('axis', node.axis)]);
      return;
    case 'cumsum':
      inits.push(int64Tensor(`${n}/axis`, [], [node.axis]));
      add('CumSum', [node.inputs[0], `${n}/axis`], n);
      return;
    case 'reshape':
      inits.push(int64Tensor(`${n}/shape`, [node.shape.length], node.shape));
      add('Reshape', [node.inputs[0], `${n}/shape`], n);
      return;
    case 'transpose':
      add('Transpose', node.inputs, n, [intsAttr('perm', node.perm)]);
      return;
    case 'gather':
      add('Gather', node.inputs, n, [intAttr('axis', node.axis)]);
      return;
    case 'maxPool':
      add('MaxPool', node.inputs, n, [intsAttr('kernel_shape', [node.kernel, node.kernel]), intsAttr('strides', [node.stride, node.stride])]);
      return;
    case 'gridSample':
      add('GridSample', node.inputs, n, [stringAttr('mode', 'bilinear'), stringAttr('padding_mode', 'zeros'), intAttr('align_corners', 0)]);
      return;
  }
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

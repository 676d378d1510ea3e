/**
 * Builds ONNX models in memory (protobuf via the generated schema): used for the SGEMM graphs and
 * by the TF.js → ONNX converter.
 * @module
 */
import { create, toBinary } from '@bufbuild/protobuf';
import {
  type AttributeProto,
  AttributeProtoSchema,
  AttributeProto_AttributeType as AttributeType,
  TensorProto_DataType as DataType,
  type ModelProto,
  ModelProtoSchema,
  type NodeProto,
  NodeProtoSchema,
  type TensorProto,
  TensorProtoSchema,
  type ValueInfoProto,
  ValueInfoProtoSchema,
} from './gen/onnx_pb.js';

export { DataType };

/** An attribute value: int(s) are given as `{ int }`/`{ ints }` to tell them from floats. */
export type AttributeValue =
  | { int: number }
  | { ints: readonly number[] }
  | { float: number }
  | { floats: readonly number[] }
  | { string: string }
  | { tensor: TensorProto };

function attribute(name: string, value: AttributeValue): AttributeProto {
  if ('int' in value)
    return create(AttributeProtoSchema, { name, type: AttributeType.INT, i: BigInt(value.int) });
  if ('ints' in value)
    return create(AttributeProtoSchema, { name, type: AttributeType.INTS, ints: value.ints.map(BigInt) });
  if ('float' in value)
    return create(AttributeProtoSchema, { name, type: AttributeType.FLOAT, f: value.float });
  if ('floats' in value)
    return create(AttributeProtoSchema, { name, type: AttributeType.FLOATS, floats: [...value.floats] });
  if ('string' in value) {
    const s = new TextEncoder().encode(value.string);
    return create(AttributeProtoSchema, { name, type: AttributeType.STRING, s });
  }
  return create(AttributeProtoSchema, { name, type: AttributeType.TENSOR, t: value.tensor });
}

/** A graph node. */
export function node(
  opType: string,
  inputs: readonly string[],
  outputs: readonly string[],
  attributes: Readonly<Record<string, AttributeValue>> = {},
  name = outputs[0] ?? opType,
): NodeProto {
  return create(NodeProtoSchema, {
    opType,
    name,
    input: [...inputs],
    output: [...outputs],
    attribute: Object.entries(attributes).map(([key, value]) => attribute(key, value)),
  });
}

/** A constant tensor from raw little-endian bytes. */
export function initializer(
  name: string,
  dataType: DataType,
  dims: readonly number[],
  data: ArrayBufferView,
): TensorProto {
  return create(TensorProtoSchema, {
    name,
    dataType,
    dims: dims.map(BigInt),
    rawData: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
  });
}

/** A typed graph input or output; a string dim is symbolic (e.g. the batch size). */
export function valueInfo(
  name: string,
  elemType: DataType,
  dims: readonly (number | string)[],
): ValueInfoProto {
  return create(ValueInfoProtoSchema, {
    name,
    type: {
      value: {
        case: 'tensorType',
        value: {
          elemType,
          shape: {
            dim: dims.map((d) => ({
              value:
                typeof d === 'string'
                  ? { case: 'dimParam' as const, value: d }
                  : { case: 'dimValue' as const, value: BigInt(d) },
            })),
          },
        },
      },
    },
  });
}

/** What {@link modelBytes} assembles. */
export interface GraphSpec {
  name: string;
  nodes: NodeProto[];
  inputs: ValueInfoProto[];
  outputs: ValueInfoProto[];
  initializers?: TensorProto[];
  /** Default opset 13. */
  opset?: number;
  docString?: string;
}

/** Serialises a graph as an ONNX model (IR version 8). */
export function modelBytes(spec: GraphSpec): Uint8Array {
  const model: ModelProto = create(ModelProtoSchema, {
    irVersion: 8n,
    producerName: 'vaccel-ts',
    opsetImport: [{ domain: '', version: BigInt(spec.opset ?? 13) }],
    docString: spec.docString,
    graph: {
      name: spec.name,
      node: spec.nodes,
      input: spec.inputs,
      output: spec.outputs,
      initializer: spec.initializers ?? [],
    },
  });
  return toBinary(ModelProtoSchema, model);
}

/**
 * TensorFlow graph → ONNX (opset 13): a TF.js `graph-model` (GraphDef as JSON + weight shards) or a
 * frozen `GraphDef` (.pb, the same graph in binary).
 *
 * Tensors keep TensorFlow's layout (NHWC): image ops are wrapped in Transposes to ONNX's NCHW,
 * which ONNX Runtime's transpose optimizer cancels between consecutive ops. Constant shape
 * arithmetic is folded on the host. Values are named as TensorFlow names tensors (`node:index`),
 * so inputs are `placeholder:0` and outputs e.g. `Identity:0`. An op outside the table fails with
 * `ENOTSUP` naming the op, the node, and every unsupported op of the graph.
 * @module
 */
import { fromBinary, fromJson, type JsonValue } from '@bufbuild/protobuf';
import { isVaccelError, VaccelError } from '@vaccel/core';
import { ConstantBudget } from './budget.js';
import { Conversion, type TfNode, tensorName } from './conversion.js';
import type { ValueInfoProto } from './gen/onnx_pb.js';
import { type GraphDef, GraphDefSchema, type NodeDef } from './gen/tensorflow_graph_pb.js';
import { modelBytes, valueInfo } from './onnx-graph.js';
import { tfOps } from './tf-ops.js';
import {
  checkedCount,
  decodeTensorProto,
  fromBytes,
  type HostTensor,
  onnxType,
  retyped,
  splatOf,
  storedSize,
  TfType,
  typeName,
} from './tf-tensor.js';
import { checkWireLimits, GRAPH_WIRE_LIMITS } from './wire-limits.js';

/** One weight of a TF.js weights manifest (graph models may quantize to uint8/uint16/float16). */
export interface GraphWeightSpec {
  name: string;
  shape: number[];
  dtype: string;
  quantization?: { dtype: string; min?: number; scale?: number };
}

/** A TF.js graph model's `model.json`. */
export interface TfjsGraphModel {
  format?: string;
  modelTopology: JsonValue;
  weightsManifest: { paths: string[]; weights: GraphWeightSpec[] }[];
  signature?: { inputs?: Record<string, unknown>; outputs?: Record<string, unknown> };
}

/** A parsed graph with its constants: what {@link convertTfGraph} takes. */
export interface TfGraph {
  graph: GraphDef;
  /** Weights given beside the graph (TF.js manifests), by Const node name. */
  weights: ReadonlyMap<string, HostTensor>;
  /** Output tensor names from the model's signature, when it has one. */
  outputs?: readonly string[];
}

const manifestTypes: Record<string, TfType> = {
  float32: TfType.DT_FLOAT,
  int32: TfType.DT_INT32,
  bool: TfType.DT_BOOL,
  float16: TfType.DT_HALF,
  uint8: TfType.DT_UINT8,
  uint16: TfType.DT_UINT16,
};

/** The byte budget options of the parsers and {@link convertTfGraph}. */
export interface ConstantLimits {
  /**
   * Bytes the model's constants may take on the host while converting (decoded weights and
   * constants, and those folding computes); over it the conversion fails with `E2BIG`. Default
   * {@link DEFAULT_MAX_CONSTANT_BYTES} (256 MiB). See `budget.ts`.
   */
  maxConstantBytes?: number;
}

/**
 * Decodes a TF.js weights manifest's shards (float32, int32, bool; uint8/uint16/float16 quantized),
 * charging each weight to `budget` before its array exists.
 */
export function decodeGraphWeights(
  manifest: TfjsGraphModel['weightsManifest'],
  data: Uint8Array,
  budget: ConstantBudget = new ConstantBudget(),
): Map<string, HostTensor> {
  const specs = manifest.flatMap((group) => group.weights);
  const stored = (spec: GraphWeightSpec) => {
    const type = manifestTypes[spec.quantization?.dtype ?? spec.dtype];
    if (type === undefined)
      throw new VaccelError(
        'ENOTSUP',
        `weight ${spec.name}: dtype ${spec.quantization?.dtype ?? spec.dtype}`,
      );
    return type;
  };
  // Every shape is checked, and the shards' length matched, before any weight is decoded.
  const sizes = specs.map((spec) => {
    if (!Array.isArray(spec.shape))
      throw new VaccelError('EINVAL', `weight ${spec.name}: the manifest gives no shape`);
    return checkedCount(spec.shape) * storedSize(stored(spec))!;
  });
  const total = sizes.reduce((a, b) => a + b, 0);
  if (total !== data.byteLength)
    throw new VaccelError(
      'EINVAL',
      `weights: the manifest describes ${total} bytes, the shards hold ${data.byteLength}`,
    );
  const weights = new Map<string, HostTensor>();
  let at = 0;
  for (const [k, spec] of specs.entries()) {
    const where = `weight ${spec.name}`;
    const q = spec.quantization;
    const type = manifestTypes[spec.dtype] ?? TfType.DT_FLOAT;
    const values = fromBytes(
      budget,
      stored(spec),
      data.subarray(at, at + sizes[k]!),
      spec.shape,
      type,
      where,
    );
    if (q && q.dtype !== 'float16') {
      const { min = 0, scale = 1 } = q;
      for (let i = 0; i < values.length; i++) values[i] = values[i]! * scale + min;
    }
    weights.set(spec.name, { type, dims: [...spec.shape], values });
    at += sizes[k]!;
  }
  return weights;
}

/**
 * Parses a TF.js graph model (its `model.json` object and the concatenated weight shards); the
 * weights are charged to `options.maxConstantBytes`.
 */
export function parseTfjsGraphModel(
  model: TfjsGraphModel,
  weightData: Uint8Array,
  options: ConstantLimits = {},
): TfGraph {
  if (model.format !== undefined && model.format !== 'graph-model')
    throw new VaccelError('EINVAL', `a TF.js model of format "${model.format}" is not a graph model`);
  let graph: GraphDef;
  try {
    graph = fromJson(GraphDefSchema, model.modelTopology, { ignoreUnknownFields: true });
  } catch (cause) {
    throw new VaccelError(
      'EINVAL',
      `the graph model's topology is not a GraphDef: ${(cause as Error).message}`,
      {
        cause,
      },
    );
  }
  const outputs = Object.keys(model.signature?.outputs ?? {});
  return {
    graph,
    weights: decodeGraphWeights(
      model.weightsManifest ?? [],
      weightData,
      new ConstantBudget(options.maxConstantBytes),
    ),
    ...(outputs.length > 0 ? { outputs } : {}),
  };
}

/**
 * Parses a frozen GraphDef (`.pb`): every weight is a Const node. The bytes are walked first
 * against {@link GRAPH_WIRE_LIMITS} (messages, repeated values, strings, depth), so the parser
 * never builds more than those allow. @throws VaccelError `E2BIG` past them, `EINVAL` for bytes
 * that are not a GraphDef.
 */
export function parseGraphDef(bytes: Uint8Array): TfGraph {
  checkWireLimits(GraphDefSchema, bytes, GRAPH_WIRE_LIMITS, 'the GraphDef');
  let graph: GraphDef;
  try {
    graph = fromBinary(GraphDefSchema, bytes);
  } catch (cause) {
    throw new VaccelError('EINVAL', `not a TensorFlow GraphDef: ${(cause as Error).message}`, { cause });
  }
  if (graph.node.length === 0) throw new VaccelError('EINVAL', 'the GraphDef has no nodes');
  return { graph, weights: new Map() };
}

/** Options of {@link convertTfGraph}. */
export interface TfConvertOptions extends ConstantLimits {
  /** Graph name and doc string. */
  name: string;
  docString?: string;
  /** Output tensors (`node:index`); default: the model's signature, else every node no other node reads. */
  outputs?: readonly string[];
}

const IGNORED_SINKS = new Set(['Const', 'NoOp', 'Placeholder', 'Assert', 'SaveV2', 'RestoreV2']);

function nodesOf(graph: GraphDef): Map<string, TfNode> {
  const nodes = new Map<string, TfNode>();
  for (const n of graph.node as NodeDef[]) {
    if (nodes.has(n.name)) throw new VaccelError('EINVAL', `the graph has two nodes named ${n.name}`);
    nodes.set(n.name, {
      name: n.name,
      op: n.op,
      inputs: n.input.filter((i) => !i.startsWith('^')).map(tensorName),
      attr: n.attr,
    });
  }
  return nodes;
}

/** Nodes needed for `outputs`, inputs first. @throws VaccelError `EINVAL` on a cycle or a dangling input. */
function schedule(nodes: ReadonlyMap<string, TfNode>, outputs: readonly string[]): TfNode[] {
  const order: TfNode[] = [];
  const state = new Map<string, 'open' | 'done'>();
  const stack: { node: TfNode; next: number }[] = [];
  const push = (tensor: string, from: string) => {
    const name = tensor.slice(0, tensor.lastIndexOf(':'));
    const n = nodes.get(name);
    if (!n) throw new VaccelError('EINVAL', `${from} reads ${tensor}, which no node produces`);
    const s = state.get(name);
    if (s === 'open') throw new VaccelError('EINVAL', `the graph has a cycle through ${name}`);
    if (s === undefined) {
      state.set(name, 'open');
      stack.push({ node: n, next: 0 });
    }
  };
  for (const out of outputs) {
    push(out, 'an output');
    while (stack.length > 0) {
      const top = stack[stack.length - 1]!;
      if (top.next < top.node.inputs.length) push(top.node.inputs[top.next++]!, top.node.name);
      else {
        stack.pop();
        state.set(top.node.name, 'done');
        order.push(top.node);
      }
    }
  }
  return order;
}

/**
 * Converts a parsed TensorFlow graph to ONNX bytes. The model's constants (its weights, the Const
 * nodes it needs, what folding computes) may take `options.maxConstantBytes` on the host; a big
 * single-valued Const is written as ConstantOfShape rather than expanded (it still counts).
 * @throws VaccelError `E2BIG` over that budget, `EINVAL` for a malformed graph, `ENOTSUP` for ops
 * or types the converter lacks.
 */
export function convertTfGraph(model: TfGraph, options: TfConvertOptions): Uint8Array {
  try {
    return convert(model, options);
  } catch (error) {
    if (error instanceof VaccelError) throw error;
    // Guest graphs are hostile input: whatever a check missed fails the load with a clear error.
    throw new VaccelError('EINVAL', `the graph cannot be converted: ${(error as Error).message}`, {
      cause: error,
    });
  }
}

function convert(model: TfGraph, options: TfConvertOptions): Uint8Array {
  const budget = new ConstantBudget(options.maxConstantBytes);
  // The weights were charged when they were decoded (perhaps to another budget): count them here.
  for (const [name, w] of model.weights) budget.reserve(w.values.byteLength, `weight ${name}`);
  const nodes = nodesOf(model.graph);
  const consumed = new Set(
    [...nodes.values()].flatMap((n) => n.inputs.map((i) => i.slice(0, i.lastIndexOf(':')))),
  );
  const outputs = (
    options.outputs ??
    model.outputs ??
    [...nodes.values()]
      .filter((n) => !consumed.has(n.name) && !IGNORED_SINKS.has(n.op))
      .map((n) => `${n.name}:0`)
  ).map(tensorName);
  if (outputs.length === 0) throw new VaccelError('EINVAL', 'the graph has no outputs');
  const order = schedule(nodes, outputs);
  const unsupported = [
    ...new Set(
      order.map((n) => n.op).filter((op) => !(op in tfOps) && op !== 'Const' && op !== 'Placeholder'),
    ),
  ];
  if (unsupported.length > 0)
    throw new VaccelError(
      'ENOTSUP',
      `the converter does not support TensorFlow op${unsupported.length > 1 ? 's' : ''} ${unsupported.join(', ')} (first at node ${order.find((n) => unsupported.includes(n.op))!.name})`,
    );

  const c = new Conversion(budget);
  const inputs: ValueInfoProto[] = [];
  const step = (n: TfNode): void => {
    if (n.op === 'Const') {
      const weight = model.weights.get(n.name);
      const tensor = n.attr.value?.value.case === 'tensor' ? n.attr.value.value.value : undefined;
      const splat = tensor && !weight ? splatOf(tensor, `node ${n.name}`) : undefined;
      if (weight) c.setConstant(`${n.name}:0`, declaredType(weight, n, budget));
      else if (splat) c.setSplat(`${n.name}:0`, splat, `node ${n.name}`);
      else if (tensor) c.setConstant(`${n.name}:0`, decodeTensorProto(tensor, `node ${n.name}`, budget));
      else throw new VaccelError('EINVAL', `Const ${n.name} has no value and no weight`);
      return;
    }
    if (n.op === 'Placeholder') {
      const type = n.attr.dtype?.value.case === 'type' ? n.attr.dtype.value.value : TfType.DT_FLOAT;
      const shape = n.attr.shape?.value.case === 'shape' ? n.attr.shape.value.value : undefined;
      const dims =
        shape?.unknownRank || !shape
          ? []
          : shape.dim.map((d, i) => (d.size >= 0n ? Number(d.size) : `${n.name}_${i}`));
      inputs.push(valueInfo(`${n.name}:0`, onnxType(type, n.name), dims));
      c.setType(`${n.name}:0`, type);
      return;
    }
    const convert = tfOps[n.op]!;
    // Folding takes constants held element by element: a splat is left to ONNX Runtime.
    const folded =
      convert.fold && n.inputs.every((i) => c.dense(i))
        ? convert.fold(
            n,
            n.inputs.map((i) => c.dense(i)!),
            budget,
          )
        : undefined;
    if (folded) for (const [k, t] of folded.entries()) c.setConstant(`${n.name}:${k}`, t);
    else convert.emit(n, c);
  };
  for (const n of order) {
    try {
      step(n);
    } catch (error) {
      // A converter assumes a well-formed node (its inputs, attribute types): whatever else a
      // malformed one makes it throw is the graph's fault, reported as such.
      if (isVaccelError(error)) throw error;
      throw new VaccelError('EINVAL', `node ${n.name} (${n.op}) is malformed: ${(error as Error).message}`, {
        cause: error,
      });
    }
  }
  const graphOutputs = outputs.map((out) => {
    let name = c.value(out);
    if (inputs.some((i) => i.name === name) || c.isConstant(out)) {
      // An ONNX graph output must be a node's output: route inputs and constants through Identity.
      name = `${out}/output`;
      c.emit('Identity', [c.value(out)], [name]);
    }
    return stripShape(valueInfo(name, onnxType(c.type(out), out), []));
  });
  return modelBytes({
    name: options.name,
    ...(options.docString ? { docString: options.docString } : {}),
    nodes: c.nodes,
    inputs,
    outputs: graphOutputs,
    initializers: c.initializers,
  });
}

/** Outputs are declared by type only (ONNX Runtime infers their shapes). */
const stripShape = (v: ValueInfoProto): ValueInfoProto => {
  if (v.type?.value.case === 'tensorType') v.type.value.value.shape = undefined;
  return v;
};

/** A TF.js weight carries its stored type (int64 is shipped as int32): take the node's. */
function declaredType(weight: HostTensor, n: TfNode, budget: ConstantBudget): HostTensor {
  const declared = n.attr.dtype?.value.case === 'type' ? n.attr.dtype.value.value : weight.type;
  if (declared === weight.type) return weight;
  if (!(declared in TfType)) throw new VaccelError('ENOTSUP', `Const ${n.name}: ${typeName(declared)}`);
  return retyped(budget, weight, declared, `Const ${n.name}`);
}

/**
 * Model intake: an ONNX model a guest supplies is parsed and checked here before ONNX Runtime sees
 * it.
 *
 * - **No external data.** A tensor whose `data_location` is `EXTERNAL`, or that has any
 *   `external_data` entry, makes ONNX Runtime open a file: relative to the working directory for
 *   a model given as bytes (measured: a guest read the agent's `./secret` back through model_run),
 *   or at a memory address for its special `_ORT_MEM_ADDR_` location. Every tensor is checked:
 *   initializers, sparse initializers, Constant and other node attributes (tensors, sparse
 *   tensors), the graphs nested in If/Loop/Scan attributes, model-local functions and training
 *   graphs. So are `EPContext` nodes, whose `ep_cache_context` may name a file.
 * - **A budget on declared constants.** A tensor's dims say how much memory it takes once loaded,
 *   whatever the bytes carry: a sparse initializer of dims [10⁶, 10⁶] with one value is
 *   densified to 4 TB. The declared sizes of all constants together must fit
 *   {@link IntakeLimits.maxConstantBytes} (`E2BIG` otherwise): the same budget, and the same
 *   `VACCEL_MODEL_MAX_CONSTANT_BYTES` variable, as the TensorFlow converter's.
 * - **Fields unknown here are refused** in the messages that can hold a tensor or a graph (model,
 *   graph, node, attribute, function, training info, tensor, sparse tensor): an ONNX version that
 *   adds a place for a tensor must be read here before a guest may use it.
 * - **Both parsers must read the same fields.** protobuf-es reads a known field whatever its wire
 *   type, while ONNX Runtime's protobuf (C++) skips a field whose wire type does not match: a
 *   `raw_data` sent as a varint would hide, from this check only, bytes that ONNX Runtime parses
 *   as `external_data`. So every known field's wire type is checked first, down every message.
 *   (Re-encoding the checked message closes the gap too, but `toBinary` of a 10 MB model takes
 *   20–220 ms here against 1–60 ms for the parse and this walk.)
 *
 * Messages never name a host path: they name the model (`what`), the tensor or node, and the rule.
 * @module
 */
import { type DescMessage, fromBinary, ScalarType } from '@bufbuild/protobuf';
import { BinaryReader, WireType } from '@bufbuild/protobuf/wire';
import { VaccelError } from '@vaccel/core';
import {
  type AttributeProto,
  TensorProto_DataLocation as DataLocation,
  TensorProto_DataType as DataType,
  type FunctionProto,
  type GraphProto,
  type ModelProto,
  ModelProtoSchema,
  type NodeProto,
  type SparseTensorProto,
  type TensorProto,
} from '@vaccel/tf2onnx/onnx';

/** What intake allows. */
export interface IntakeLimits {
  /**
   * Most bytes all constants of one model may declare (dense size from their dims and type;
   * sparse ones densified). Default {@link DEFAULT_MAX_CONSTANT_BYTES}.
   */
  maxConstantBytes: number;
}

/** 256 MiB, as for TensorFlow graphs the converter takes: raise it for bigger trusted models. */
export const DEFAULT_MAX_CONSTANT_BYTES = 256 * 2 ** 20;

/** The variable the plugin reads the budget from (bytes), shared with the TensorFlow converter. */
export const MAX_CONSTANT_BYTES_ENV = 'VACCEL_MODEL_MAX_CONSTANT_BYTES';

/** The default {@link IntakeLimits}. */
export const DEFAULT_INTAKE: Readonly<IntakeLimits> = Object.freeze({
  maxConstantBytes: DEFAULT_MAX_CONSTANT_BYTES,
});

/** Bytes per element once loaded, by ONNX data type; 4-bit types round up to a byte. */
const ELEMENT_BYTES: Partial<Record<number, number>> = {
  [DataType.FLOAT]: 4,
  [DataType.UINT8]: 1,
  [DataType.INT8]: 1,
  [DataType.UINT16]: 2,
  [DataType.INT16]: 2,
  [DataType.INT32]: 4,
  [DataType.INT64]: 8,
  // ONNX Runtime holds each string as a std::string (32 bytes) besides its characters.
  [DataType.STRING]: 32,
  [DataType.BOOL]: 1,
  [DataType.FLOAT16]: 2,
  [DataType.DOUBLE]: 8,
  [DataType.UINT32]: 4,
  [DataType.UINT64]: 8,
  [DataType.COMPLEX64]: 8,
  [DataType.COMPLEX128]: 16,
  [DataType.BFLOAT16]: 2,
};
/** Types newer than this table count as the widest one. */
const WIDEST = 16;

/** Graphs nest in attributes (If, Loop, Scan); protobuf's own recursion limit is 100 messages. */
const MAX_GRAPH_DEPTH = 32;

const NAME_SHOWN = 60;
const shown = (name: string) =>
  JSON.stringify(name.length > NAME_SHOWN ? `${name.slice(0, NAME_SHOWN)}…` : name);

class Intake {
  constant = 0n;
  readonly budget: bigint;

  constructor(
    readonly what: string,
    limits: IntakeLimits,
  ) {
    this.budget = BigInt(Math.floor(limits.maxConstantBytes));
  }

  refuse(reason: string, code: 'EINVAL' | 'E2BIG' = 'EINVAL'): never {
    throw new VaccelError(code, `${this.what}: cannot load the model: ${reason}`);
  }

  /** Refuses fields this schema does not know, where a tensor or a graph could hide. */
  known(message: { $typeName: string; $unknown?: { no: number }[] | undefined }): void {
    const unknown = message.$unknown;
    if (unknown && unknown.length > 0)
      this.refuse(
        `${message.$typeName} field ${unknown[0]!.no} is not accepted (an ONNX field this host does not check)`,
      );
  }

  count(dims: readonly bigint[], elementBytes: bigint, where: string): void {
    if (dims.some((d) => d < 0n)) this.refuse(`${where} has a negative dimension`);
    let bytes = dims.includes(0n) ? 0n : elementBytes;
    for (const d of dims) {
      // Stop multiplying once over budget: dims are guest numbers, their product is unbounded.
      if (bytes > this.budget) break;
      bytes *= d;
    }
    this.constant += bytes;
    if (this.constant > this.budget)
      this.refuse(
        `its constants declare more than ${this.budget} bytes (at ${where}); raise the plugin's maxConstantBytes or ${MAX_CONSTANT_BYTES_ENV} if the model is trusted`,
        'E2BIG',
      );
  }

  tensor(t: TensorProto, where: string): void {
    this.known(t);
    const place = t.name ? `${where} ${shown(t.name)}` : where;
    if (t.dataLocation !== DataLocation.DEFAULT || t.externalData.length > 0)
      this.refuse(
        `${place} keeps its data outside the model (external data); a model must carry its weights inline`,
      );
    const size = BigInt(ELEMENT_BYTES[t.dataType] ?? WIDEST);
    this.count(t.dims, size, place);
    if (t.dataType === DataType.STRING)
      this.constant += BigInt(t.stringData.reduce((sum, s) => sum + s.byteLength, 0));
  }

  sparse(s: SparseTensorProto, where: string): void {
    this.known(s);
    if (s.values) this.tensor(s.values, `${where} values`);
    if (s.indices) this.tensor(s.indices, `${where} indices`);
    // ONNX Runtime densifies sparse constants at load: the dense size is what they take.
    this.count(s.dims, BigInt(ELEMENT_BYTES[s.values?.dataType ?? 0] ?? WIDEST), `${where} (dense)`);
  }

  attribute(a: AttributeProto, node: string, depth: number): void {
    this.known(a);
    const where = `attribute ${shown(a.name)} of node ${node}`;
    if (a.t) this.tensor(a.t, where);
    for (const t of a.tensors) this.tensor(t, where);
    if (a.sparseTensor) this.sparse(a.sparseTensor, where);
    for (const s of a.sparseTensors) this.sparse(s, where);
    if (a.g) this.graph(a.g, depth + 1);
    for (const g of a.graphs) this.graph(g, depth + 1);
  }

  node(n: NodeProto, depth: number): void {
    this.known(n);
    const name = shown(n.name || n.opType);
    if (n.opType === 'EPContext')
      this.refuse(`node ${name} is an EPContext node (a compiled context that may name a file)`);
    for (const a of n.attribute) this.attribute(a, name, depth);
  }

  graph(g: GraphProto, depth: number): void {
    this.known(g);
    if (depth > MAX_GRAPH_DEPTH) this.refuse(`graphs nest deeper than ${MAX_GRAPH_DEPTH}`);
    for (const t of g.initializer) this.tensor(t, 'initializer');
    for (const s of g.sparseInitializer) this.sparse(s, 'sparse initializer');
    for (const n of g.node) this.node(n, depth);
  }

  func(f: FunctionProto): void {
    this.known(f);
    const name = shown(f.name);
    for (const a of f.attributeProto) this.attribute(a, `(function ${name} default)`, 0);
    for (const n of f.node) this.node(n, 0);
  }

  model(m: ModelProto): void {
    this.known(m);
    if (m.graph) this.graph(m.graph, 0);
    for (const f of m.functions) this.func(f);
    for (const info of m.trainingInfo) {
      this.known(info);
      if (info.initialization) this.graph(info.initialization, 0);
      if (info.algorithm) this.graph(info.algorithm, 0);
    }
  }
}

interface WireField {
  wire: WireType;
  /** A repeated number: packed (length-delimited) or one element at a time. */
  packable: boolean;
  message?: DescMessage;
}

const wireOf = (scalar: ScalarType): WireType => {
  switch (scalar) {
    case ScalarType.DOUBLE:
    case ScalarType.FIXED64:
    case ScalarType.SFIXED64:
      return WireType.Bit64;
    case ScalarType.FLOAT:
    case ScalarType.FIXED32:
    case ScalarType.SFIXED32:
      return WireType.Bit32;
    case ScalarType.STRING:
    case ScalarType.BYTES:
      return WireType.LengthDelimited;
    default:
      return WireType.Varint;
  }
};

const wireFields = new Map<DescMessage, Map<number, WireField>>();

function wireFieldsOf(desc: DescMessage): Map<number, WireField> {
  let fields = wireFields.get(desc);
  if (fields) return fields;
  fields = new Map();
  for (const f of desc.fields) {
    if (f.fieldKind === 'message' || (f.fieldKind === 'list' && f.listKind === 'message'))
      fields.set(f.number, { wire: WireType.LengthDelimited, packable: false, message: f.message });
    else if (f.fieldKind === 'scalar') fields.set(f.number, { wire: wireOf(f.scalar), packable: false });
    else if (f.fieldKind === 'enum') fields.set(f.number, { wire: WireType.Varint, packable: false });
    else if (f.fieldKind === 'list') {
      const wire = f.listKind === 'enum' ? WireType.Varint : wireOf(f.scalar);
      fields.set(f.number, { wire, packable: wire !== WireType.LengthDelimited });
    }
    // No maps in this schema.
  }
  wireFields.set(desc, fields);
  return fields;
}

/** Protobuf's own default nesting limit (C++ and protobuf-es). */
const MAX_MESSAGE_DEPTH = 100;

/**
 * Checks that every field `desc` knows, down every nested message, has the wire type the schema
 * gives it (a repeated number may be packed or not). Unknown fields are skipped, as both parsers do.
 * @returns what is wrong, or undefined.
 */
function wireMismatch(
  desc: DescMessage,
  reader: BinaryReader,
  end: number,
  depth: number,
): string | undefined {
  if (depth > MAX_MESSAGE_DEPTH) return `messages nest deeper than ${MAX_MESSAGE_DEPTH}`;
  const fields = wireFieldsOf(desc);
  while (reader.pos < end) {
    const [no, wire] = reader.tag();
    const field = fields.get(no);
    if (field?.message && wire === WireType.LengthDelimited) {
      const length = reader.uint32();
      const stop = reader.pos + length;
      if (stop > end) return `${desc.typeName} field ${no} runs past its message`;
      const inner = wireMismatch(field.message, reader, stop, depth + 1);
      if (inner) return inner;
      continue;
    }
    if (field && wire !== field.wire && !(field.packable && wire === WireType.LengthDelimited))
      return `${desc.typeName} field ${no} has wire type ${wire}, not ${field.wire}`;
    reader.skip(wire, no);
    if (reader.pos > end) return `${desc.typeName} field ${no} runs past its message`;
  }
  return undefined;
}

/**
 * Checks a guest's ONNX model (see the module's notes). Give ONNX Runtime the same bytes.
 * @param what Names the model in messages (e.g. `model 3`).
 * @throws VaccelError `EINVAL` for bytes that are not an ONNX model or a model the rules refuse,
 * `E2BIG` for constants over the budget; the message names the tensor or node, never a path.
 */
export function admitModel(bytes: Uint8Array, limits: IntakeLimits, what: string): void {
  let model: ModelProto;
  let mismatch: string | undefined;
  try {
    mismatch = wireMismatch(ModelProtoSchema, new BinaryReader(bytes), bytes.byteLength, 0);
    model = fromBinary(ModelProtoSchema, bytes);
  } catch (cause) {
    throw new VaccelError(
      'EINVAL',
      `${what}: cannot load the model: not ONNX (${(cause as Error).message})`,
      {
        cause,
      },
    );
  }
  const intake = new Intake(what, limits);
  if (mismatch) intake.refuse(mismatch);
  intake.model(model);
}

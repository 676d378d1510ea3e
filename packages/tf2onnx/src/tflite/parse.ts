/**
 * Reads a TFLite flatbuffer into plain objects, bounding it first: every offset is checked to lie
 * inside the buffer before it is followed, vector lengths are checked against the bytes they
 * claim, and the counts of tensors, operators and vector elements, shape ranks and dims, names
 * and constant sizes have ceilings. Constant data stays a view of the input (no copy).
 * @module
 */
import { isVaccelError, VaccelError } from '@vaccel/core';
import { ByteBuffer } from 'flatbuffers';
import { MAX_CONSTANT_ELEMENTS } from '../budget.js';
import {
  builtinName,
  CUSTOM_CODE,
  ELEMENT_BYTES,
  OPTION_FIELDS,
  TENSOR_TYPES,
  type TfliteDtype,
} from './schema.js';

/** What a TFLite model may hold before the parser refuses it (`E2BIG`). */
export const TFLITE_LIMITS = {
  /** Bytes of the flatbuffer (flatbuffers address 2 GiB). */
  maxBytes: 2 ** 31 - 1,
  /** Tensors of the main subgraph. */
  maxTensors: 2 ** 20,
  /** Operators of the main subgraph. */
  maxOperators: 2 ** 20,
  /** Vector elements read in all (shapes, operator inputs and outputs, quantization). */
  maxVectorElements: 2 ** 24,
  /** Rank of a tensor. */
  maxRank: 8,
  /** Bytes of a name or custom code. */
  maxStringBytes: 2 ** 16,
} as const;

/** Per-tensor or per-axis affine quantization: real = scale × (q − zeroPoint). */
export interface TfliteQuantization {
  scale: number[];
  zeroPoint: number[];
  /** The axis `scale` runs along when it has more than one value. */
  axis: number;
}

/** A tensor of the main subgraph. */
export interface TfliteTensor {
  name: string;
  shape: number[];
  dtype: TfliteDtype;
  /** Its constant value, little-endian, when the model holds one (a view of the input bytes). */
  data?: Uint8Array;
  quantization?: TfliteQuantization;
}

/** An operator, with its options decoded. */
export interface TfliteOperator {
  /** The builtin operator's name (`CONV_2D`) or, for a custom one, its custom code. */
  op: string;
  custom: boolean;
  /** Tensor indices; −1 for an omitted optional input. */
  inputs: number[];
  outputs: number[];
  /** The builtin options the converter reads (defaults filled in), by schema field name. */
  options: Record<string, number>;
  /** A builtin option vector (RESHAPE's `new_shape`). */
  newShape?: number[];
  customOptions?: Uint8Array;
}

/** A parsed model: its main subgraph. */
export interface TfliteModel {
  version: number;
  description: string;
  subgraphCount: number;
  name: string;
  tensors: TfliteTensor[];
  inputs: number[];
  outputs: number[];
  operators: TfliteOperator[];
}

class Reader {
  readonly bb: ByteBuffer;
  readonly size: number;
  #elements = 0;

  constructor(readonly bytes: Uint8Array) {
    this.bb = new ByteBuffer(bytes);
    this.size = bytes.byteLength;
  }

  /** Throws EINVAL unless [pos, pos + len) lies inside the buffer. */
  check(pos: number, len: number, what: string): void {
    if (!(Number.isSafeInteger(pos) && pos >= 0 && len >= 0 && pos + len <= this.size))
      throw new VaccelError(
        'EINVAL',
        `TFLite model: ${what} at ${pos} (+${len}) lies outside its ${this.size} bytes`,
      );
  }

  /** The position of the table `pos` points at through a uoffset. */
  indirect(pos: number, what: string): number {
    this.check(pos, 4, what);
    const target = pos + this.bb.readUint32(pos);
    this.table(target, what);
    return target;
  }

  /** Validates a table's vtable. */
  table(pos: number, what: string): void {
    this.check(pos, 4, what);
    const vtable = pos - this.bb.readInt32(pos);
    this.check(vtable, 4, `${what}'s vtable`);
    const vsize = this.bb.readUint16(vtable);
    if (vsize < 4 || vsize % 2 !== 0)
      throw new VaccelError('EINVAL', `TFLite model: ${what} has a malformed vtable`);
    this.check(vtable, vsize, `${what}'s vtable`);
  }

  /** The absolute position of field `index` of the table at `pos` (holding `width` bytes), or 0. */
  field(pos: number, index: number, width: number, what: string): number {
    const vtable = pos - this.bb.readInt32(pos);
    const slot = 4 + 2 * index;
    if (slot >= this.bb.readUint16(vtable)) return 0;
    const off = this.bb.readUint16(vtable + slot);
    if (off === 0) return 0;
    this.check(pos + off, width, what);
    return pos + off;
  }

  u8(pos: number, i: number, fallback: number, what: string): number {
    const p = this.field(pos, i, 1, what);
    return p ? this.bb.readUint8(p) : fallback;
  }
  i32(pos: number, i: number, fallback: number, what: string): number {
    const p = this.field(pos, i, 4, what);
    return p ? this.bb.readInt32(p) : fallback;
  }
  f32(pos: number, i: number, fallback: number, what: string): number {
    const p = this.field(pos, i, 4, what);
    return p ? this.bb.readFloat32(p) : fallback;
  }
  u64(pos: number, i: number, what: string): number {
    const p = this.field(pos, i, 8, what);
    if (!p) return 0;
    const v = this.bb.readUint64(p);
    return v > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(v);
  }
  child(pos: number, i: number, what: string): number {
    const p = this.field(pos, i, 4, what);
    return p ? this.indirect(p, what) : 0;
  }

  /** A vector field: its first element's position and length (elements of `width` bytes), or undefined. */
  vector(
    pos: number,
    i: number,
    width: number,
    what: string,
    max: number,
  ): { at: number; length: number } | undefined {
    const p = this.field(pos, i, 4, what);
    if (!p) return undefined;
    const v = p + this.bb.readUint32(p);
    this.check(v, 4, what);
    const length = this.bb.readUint32(v);
    if (length > max)
      throw new VaccelError(
        'E2BIG',
        `TFLite model: ${what} has ${length} elements, more than the ${max} the converter reads`,
      );
    this.check(v + 4, length * width, what);
    this.#elements += length;
    if (this.#elements > TFLITE_LIMITS.maxVectorElements)
      throw new VaccelError(
        'E2BIG',
        `TFLite model: holds over ${TFLITE_LIMITS.maxVectorElements} vector elements`,
      );
    return { at: v + 4, length };
  }

  ints(pos: number, i: number, what: string, max: number): number[] | undefined {
    const v = this.vector(pos, i, 4, what, max);
    if (!v) return undefined;
    return Array.from({ length: v.length }, (_, k) => this.bb.readInt32(v.at + 4 * k));
  }

  /** Tables of a vector field, each validated. */
  tables(pos: number, i: number, what: string, max: number): number[] {
    const v = this.vector(pos, i, 4, what, max);
    if (!v) return [];
    return Array.from({ length: v.length }, (_, k) => this.indirect(v.at + 4 * k, `${what}[${k}]`));
  }

  string(pos: number, i: number, what: string): string {
    const v = this.vector(pos, i, 1, what, TFLITE_LIMITS.maxStringBytes);
    if (!v) return '';
    return new TextDecoder().decode(this.bytes.subarray(v.at, v.at + v.length));
  }

  bytesOf(pos: number, i: number, what: string): Uint8Array | undefined {
    const v = this.vector(pos, i, 1, what, this.size);
    return v && this.bytes.subarray(v.at, v.at + v.length);
  }
}

/**
 * True when `bytes` carry TFLite's flatbuffer file identifier (`TFL3` at offset 4), which every
 * TFLite converter writes: how a model is recognised whatever its file is called.
 */
export function hasTfliteIdentifier(bytes: Uint8Array): boolean {
  return (
    bytes.byteLength >= 8 && bytes[4] === 0x54 && bytes[5] === 0x46 && bytes[6] === 0x4c && bytes[7] === 0x33
  );
}

/**
 * Parses and validates a TFLite flatbuffer's main subgraph.
 * @throws VaccelError `EINVAL` for bytes that are not a well-formed TFLite model, `E2BIG` past a
 * {@link TFLITE_LIMITS} bound.
 */
export function parseTflite(bytes: Uint8Array): TfliteModel {
  if (!(bytes instanceof Uint8Array)) throw new VaccelError('EINVAL', 'TFLite model: expected a Uint8Array');
  if (bytes.byteLength > TFLITE_LIMITS.maxBytes)
    throw new VaccelError(
      'E2BIG',
      `TFLite model: ${bytes.byteLength} bytes, more than a flatbuffer addresses`,
    );
  if (bytes.byteLength < 8) throw new VaccelError('EINVAL', 'TFLite model: too short to be a flatbuffer');
  try {
    return read(new Reader(bytes));
  } catch (error) {
    if (isVaccelError(error)) throw error;
    throw new VaccelError('EINVAL', `TFLite model: malformed (${(error as Error).message})`, {
      cause: error,
    });
  }
}

function read(r: Reader): TfliteModel {
  const bb = r.bb;
  const root = r.indirect(0, 'the model table');
  const version = r.i32(root, 0, 0, 'Model.version');
  const description = r.string(root, 3, 'Model.description');
  const codes = r.tables(root, 1, 'Model.operator_codes', TFLITE_LIMITS.maxOperators).map((t, k) => {
    const what = `operator_codes[${k}]`;
    const code = Math.max((r.u8(t, 0, 0, what) << 24) >> 24, r.i32(t, 3, 0, what));
    return code === CUSTOM_CODE
      ? { op: r.string(t, 1, `${what}.custom_code`) || 'CUSTOM', custom: true }
      : { op: builtinName(code), custom: false };
  });
  const subgraphs = r.tables(root, 2, 'Model.subgraphs', 2 ** 16);
  const main = subgraphs[0];
  if (main === undefined) throw new VaccelError('EINVAL', 'TFLite model: no subgraph');
  const bufferCount = r.vector(root, 4, 4, 'Model.buffers', r.size)?.length ?? 0;
  const bufferVec = bufferCount ? r.field(root, 4, 4, 'Model.buffers') : 0;
  const bufferData = (index: number, what: string): Uint8Array | undefined => {
    if (index === 0) return undefined; // buffer 0 is the empty sentinel
    if (!(index > 0 && index < bufferCount))
      throw new VaccelError('EINVAL', `TFLite model: ${what} names buffer ${index} of ${bufferCount}`);
    const vec = bufferVec + bb.readUint32(bufferVec) + 4;
    const table = r.indirect(vec + 4 * index, `buffers[${index}]`);
    const data = r.bytesOf(table, 0, `buffers[${index}].data`);
    if (data?.byteLength) return data;
    const offset = r.u64(table, 1, `buffers[${index}].offset`);
    const size = r.u64(table, 2, `buffers[${index}].size`);
    if (offset > 1) {
      r.check(offset, size, `buffers[${index}]'s external data`);
      return r.bytes.subarray(offset, offset + size);
    }
    return undefined;
  };

  const tensorTables = r.tables(main, 0, 'SubGraph.tensors', TFLITE_LIMITS.maxTensors);
  const tensors = tensorTables.map((t, k): TfliteTensor => {
    const what = `tensors[${k}]`;
    const shape = r.ints(t, 0, `${what}.shape`, TFLITE_LIMITS.maxRank) ?? [];
    if (!shape.every((d) => d >= 0))
      throw new VaccelError('EINVAL', `TFLite model: ${what} has shape [${shape}]`);
    const type = r.u8(t, 1, 0, `${what}.type`);
    const dtype = TENSOR_TYPES[type];
    if (dtype === undefined)
      throw new VaccelError('EINVAL', `TFLite model: ${what} has unknown type ${type}`);
    const tensor: TfliteTensor = { name: r.string(t, 3, `${what}.name`), shape, dtype };
    // Tensor.sparsity (field 6): weights stored compressed for DENSIFY, which is not converted.
    if (r.child(t, 6, `${what}.sparsity`))
      throw new VaccelError(
        'ENOTSUP',
        `TFLite model: ${what} (${tensor.name}) is stored sparse (DENSIFY), which is not converted; use the model's dense variant`,
      );
    const data = bufferData(r.i32(t, 2, 0, `${what}.buffer`) >>> 0, what);
    if (data) {
      const elements = shape.reduce((a, b) => a * b, 1);
      if (elements > MAX_CONSTANT_ELEMENTS)
        throw new VaccelError(
          'E2BIG',
          `TFLite model: ${what} holds ${elements} elements, more than ${MAX_CONSTANT_ELEMENTS}`,
        );
      const width = ELEMENT_BYTES[dtype];
      if (width && data.byteLength !== elements * width)
        throw new VaccelError(
          'EINVAL',
          `TFLite model: ${what} of shape [${shape}] ${dtype} holds ${data.byteLength} bytes`,
        );
      tensor.data = data;
    }
    const q = r.child(t, 4, `${what}.quantization`);
    if (q) {
      const scale = r.vector(q, 2, 4, `${what}.quantization.scale`, 2 ** 20);
      const zero = r.vector(q, 3, 8, `${what}.quantization.zero_point`, 2 ** 20);
      if (scale?.length) {
        tensor.quantization = {
          scale: Array.from({ length: scale.length }, (_, i) => bb.readFloat32(scale.at + 4 * i)),
          zeroPoint: Array.from({ length: zero?.length ?? 0 }, (_, i) =>
            Number(bb.readInt64(zero!.at + 8 * i)),
          ),
          axis: r.i32(q, 6, 0, `${what}.quantization.quantized_dimension`),
        };
      }
    }
    return tensor;
  });
  const index = (what: string, optional: boolean) => (i: number) => {
    if ((optional && i === -1) || (i >= 0 && i < tensors.length)) return i;
    throw new VaccelError('EINVAL', `TFLite model: ${what} names tensor ${i} of ${tensors.length}`);
  };
  const inputs = (r.ints(main, 1, 'SubGraph.inputs', TFLITE_LIMITS.maxTensors) ?? []).map(
    index('an input', false),
  );
  const outputs = (r.ints(main, 2, 'SubGraph.outputs', TFLITE_LIMITS.maxTensors) ?? []).map(
    index('an output', false),
  );
  const operators = r
    .tables(main, 3, 'SubGraph.operators', TFLITE_LIMITS.maxOperators)
    .map((t, k): TfliteOperator => {
      const what = `operators[${k}]`;
      const codeIndex = r.i32(t, 0, 0, `${what}.opcode_index`) >>> 0;
      const code = codes[codeIndex];
      if (!code)
        throw new VaccelError(
          'EINVAL',
          `TFLite model: ${what} names operator code ${codeIndex} of ${codes.length}`,
        );
      const operator: TfliteOperator = {
        op: code.op,
        custom: code.custom,
        inputs: (r.ints(t, 1, `${what}.inputs`, 2 ** 16) ?? []).map(index(`${what}'s input`, true)),
        outputs: (r.ints(t, 2, `${what}.outputs`, 2 ** 16) ?? []).map(index(`${what}'s output`, false)),
        options: {},
      };
      const options = r.child(t, 4, `${what}.builtin_options`);
      const fields = OPTION_FIELDS[code.op];
      if (!code.custom && fields) {
        fields.forEach((f, i) => {
          if (!f) return;
          const [name, type, fallback] = f;
          const w = `${what}.${name}`;
          operator.options[name] = !options
            ? fallback
            : type === 'i32'
              ? r.i32(options, i, fallback, w)
              : type === 'f32'
                ? r.f32(options, i, fallback, w)
                : r.u8(options, i, fallback, w);
        });
      }
      if (!code.custom && code.op === 'RESHAPE' && options)
        operator.newShape = r.ints(options, 0, `${what}.new_shape`, TFLITE_LIMITS.maxRank);
      if (code.custom) operator.customOptions = r.bytesOf(t, 5, `${what}.custom_options`);
      return operator;
    });
  return {
    version,
    description,
    subgraphCount: subgraphs.length,
    name: r.string(main, 4, 'SubGraph.name'),
    tensors,
    inputs,
    outputs,
    operators,
  };
}

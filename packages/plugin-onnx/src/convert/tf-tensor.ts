/**
 * Constant tensors of a TensorFlow graph, held on the host while converting: decoded from a
 * `TensorProto` or a TF.js weights manifest, folded when every input of a shape computation is
 * constant, and written out as ONNX initializers.
 * @module
 */
import { VaccelError } from '@vaccel/core';
import type { TensorProto as OnnxTensor } from '../gen/onnx_pb.js';
import { type TensorProto, DataType as TfType } from '../gen/tensorflow_graph_pb.js';
import { initializer, DataType as OnnxType } from '../graph.js';

export { TfType };

/**
 * A constant: values held as float32 for floating types, and as plain numbers (float64) for every
 * integer and bool type, which is exact for the shape arithmetic constants are used for.
 */
export interface HostTensor {
  readonly type: TfType;
  readonly dims: readonly number[];
  readonly values: Float32Array | Float64Array;
}

/** Largest constant the converter materialises (2^28 elements: 1 GiB of float32). */
export const MAX_CONSTANT_ELEMENTS = 2 ** 28;

/**
 * Elements of a constant of shape `dims`. A graph (perhaps a guest's) may declare any shape: this
 * caps what the converter allocates. @throws VaccelError `EINVAL` for a bad or too large shape.
 */
export function checkedCount(dims: readonly number[]): number {
  if (!dims.every((d) => Number.isSafeInteger(d) && d >= 0))
    throw new VaccelError('EINVAL', `a constant has an invalid shape [${dims}]`);
  const n = count(dims);
  if (n > MAX_CONSTANT_ELEMENTS)
    throw new VaccelError(
      'EINVAL',
      `a constant of shape [${dims}] has ${n} elements, more than the ${MAX_CONSTANT_ELEMENTS} the converter holds`,
    );
  return n;
}

/** ONNX element type of each TensorFlow type the converter handles. */
const onnxTypes: Partial<Record<TfType, OnnxType>> = {
  [TfType.DT_FLOAT]: OnnxType.FLOAT,
  [TfType.DT_DOUBLE]: OnnxType.DOUBLE,
  [TfType.DT_HALF]: OnnxType.FLOAT16,
  [TfType.DT_INT8]: OnnxType.INT8,
  [TfType.DT_UINT8]: OnnxType.UINT8,
  [TfType.DT_INT16]: OnnxType.INT16,
  [TfType.DT_UINT16]: OnnxType.UINT16,
  [TfType.DT_INT32]: OnnxType.INT32,
  [TfType.DT_UINT32]: OnnxType.UINT32,
  [TfType.DT_INT64]: OnnxType.INT64,
  [TfType.DT_UINT64]: OnnxType.UINT64,
  [TfType.DT_BOOL]: OnnxType.BOOL,
};

/** The name TensorFlow prints for a type (`float32`, `int64`…). */
export const typeName = (type: TfType): string =>
  (TfType[type] ?? `type#${type}`)
    .replace(/^DT_/, '')
    .toLowerCase()
    .replace(/^float$/, 'float32');

/** The ONNX element type of `type`. @throws VaccelError `ENOTSUP` for strings, resources and the like. */
export function onnxType(type: TfType, where: string): OnnxType {
  const t = onnxTypes[type];
  if (t === undefined) throw new VaccelError('ENOTSUP', `${where}: tensors of type ${typeName(type)}`);
  return t;
}

export const isFloat = (type: TfType): boolean =>
  type === TfType.DT_FLOAT || type === TfType.DT_DOUBLE || type === TfType.DT_HALF;

export const count = (dims: readonly number[]): number => dims.reduce((a, b) => a * b, 1);

/** A host tensor of `type` from numbers (rounded to the type's precision class). */
export function hostTensor(type: TfType, dims: readonly number[], values: ArrayLike<number>): HostTensor {
  const n = checkedCount(dims);
  if (values.length !== n && values.length !== 1)
    throw new VaccelError('EINVAL', `a constant of shape [${dims}] has ${values.length} values`);
  const out = isFloat(type) ? new Float32Array(n) : new Float64Array(n);
  if (values.length === 1) out.fill(values[0]!);
  else out.set(values);
  return { type, dims: [...dims], values: out };
}

/** Reads `count` elements of `type` from little-endian bytes. */
export function fromBytes(type: TfType, bytes: Uint8Array, n: number, where: string): ArrayLike<number> {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const size = { 1: 4, 2: 8, 3: 4, 4: 1, 5: 2, 6: 1, 9: 8, 10: 1, 17: 2, 19: 2, 22: 4, 23: 8 }[
    type as number
  ];
  if (size === undefined) throw new VaccelError('ENOTSUP', `${where}: constants of type ${typeName(type)}`);
  if (bytes.byteLength < n * size)
    throw new VaccelError('EINVAL', `${where}: ${bytes.byteLength} bytes for ${n} ${typeName(type)}s`);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const at = i * size;
    switch (type) {
      case TfType.DT_FLOAT:
        out[i] = view.getFloat32(at, true);
        break;
      case TfType.DT_DOUBLE:
        out[i] = view.getFloat64(at, true);
        break;
      case TfType.DT_HALF:
        out[i] = halfToFloat(view.getUint16(at, true));
        break;
      case TfType.DT_INT32:
        out[i] = view.getInt32(at, true);
        break;
      case TfType.DT_UINT32:
        out[i] = view.getUint32(at, true);
        break;
      case TfType.DT_INT64:
        out[i] = Number(view.getBigInt64(at, true));
        break;
      case TfType.DT_UINT64:
        out[i] = Number(view.getBigUint64(at, true));
        break;
      case TfType.DT_INT16:
        out[i] = view.getInt16(at, true);
        break;
      case TfType.DT_UINT16:
        out[i] = view.getUint16(at, true);
        break;
      case TfType.DT_INT8:
        out[i] = view.getInt8(at);
        break;
      default: // uint8, bool
        out[i] = view.getUint8(at);
    }
  }
  return out;
}

/** IEEE 754 half → number. */
export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * 2 ** -14 * (frac / 1024);
  if (exp === 31) return frac ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * 2 ** (exp - 15) * (1 + frac / 1024);
}

/** Decodes a `TensorProto` (packed content or the typed `*_val` lists, a single value broadcast). */
export function decodeTensorProto(t: TensorProto, where: string): HostTensor {
  if (t.tensorShape?.unknownRank) throw new VaccelError('EINVAL', `${where}: constant of unknown rank`);
  const dims = (t.tensorShape?.dim ?? []).map((d) => Number(d.size));
  const n = count(dims);
  if (t.tensorContent.byteLength > 0)
    return hostTensor(t.dtype, dims, fromBytes(t.dtype, t.tensorContent, n, where));
  const list: ArrayLike<number> | undefined = [
    t.floatVal,
    t.doubleVal,
    t.intVal,
    t.int64Val.map(Number),
    t.boolVal.map(Number),
    t.halfVal.map(halfToFloat),
    t.uint32Val,
    t.uint64Val.map(Number),
  ].find((l) => l.length > 0);
  if (t.stringVal.length > 0) throw new VaccelError('ENOTSUP', `${where}: string constants`);
  if (n === 0) return hostTensor(t.dtype, dims, []);
  if (!list) return hostTensor(t.dtype, dims, [0]);
  if (list.length !== n && list.length !== 1) {
    // TensorFlow repeats the last value to fill the tensor.
    const filled = Array.from({ length: n }, (_, i) => list[Math.min(i, list.length - 1)]!);
    return hostTensor(t.dtype, dims, filled);
  }
  return hostTensor(t.dtype, dims, list);
}

/** The ONNX initializer for a constant, in its own type. */
export function toInitializer(name: string, t: HostTensor, where: string): OnnxTensor {
  const type = onnxType(t.type, where);
  return initializer(name, type, t.dims, typedArray(type, t.values));
}

/** Re-types numbers into the typed array ONNX stores `type` in (bools and bytes as uint8). */
export function typedArray(type: OnnxType, values: ArrayLike<number>): ArrayBufferView {
  switch (type) {
    case OnnxType.FLOAT:
      return Float32Array.from(values);
    case OnnxType.DOUBLE:
      return Float64Array.from(values);
    case OnnxType.FLOAT16:
      return Uint16Array.from(values, floatToHalf);
    case OnnxType.INT64:
      return BigInt64Array.from(Array.from(values, (v) => BigInt(Math.trunc(v))));
    case OnnxType.UINT64:
      return BigUint64Array.from(Array.from(values, (v) => BigInt(Math.trunc(v))));
    case OnnxType.INT32:
      return Int32Array.from(values);
    case OnnxType.UINT32:
      return Uint32Array.from(values);
    case OnnxType.INT16:
      return Int16Array.from(values);
    case OnnxType.UINT16:
      return Uint16Array.from(values);
    case OnnxType.INT8:
      return Int8Array.from(values);
    default:
      return Uint8Array.from(values, (v) => (type === OnnxType.BOOL ? Number(v !== 0) : v));
  }
}

/** number → IEEE 754 half (round to nearest even through float32). */
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

export function floatToHalf(value: number): number {
  f32[0] = value;
  const x = u32[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = ((x >>> 23) & 0xff) - 127 + 15;
  const mant = x & 0x7fffff;
  if (exp >= 31) return sign | 0x7c00 | (((x >>> 23) & 0xff) === 0xff && mant ? 0x200 : 0);
  if (exp <= 0) {
    if (exp < -10) return sign;
    const m = (mant | 0x800000) >> (1 - exp);
    return sign | ((m + 0xfff + ((m >> 13) & 1)) >> 13);
  }
  return (
    sign | (((exp << 10) | (mant >> 13)) + ((mant & 0x1fff) > 0x1000 || (mant & 0x3fff) === 0x3000 ? 1 : 0))
  );
}

/** Row-major strides of `dims`. */
export const stridesOf = (dims: readonly number[]): number[] => dims.map((_, i) => count(dims.slice(i + 1)));

/** Permutes a dense row-major array: output dim i is input dim perm[i]. */
export function permute<T extends Float32Array | Float64Array>(
  values: T,
  dims: readonly number[],
  perm: readonly number[],
): T {
  const outDims = perm.map((p) => dims[p]!);
  const inStrides = stridesOf(dims);
  const strides = perm.map((p) => inStrides[p]!);
  const out = new (values.constructor as new (n: number) => T)(values.length);
  const index = new Array<number>(outDims.length).fill(0);
  for (let o = 0; o < out.length; o++) {
    let src = 0;
    for (let d = 0; d < index.length; d++) src += index[d]! * strides[d]!;
    out[o] = values[src]!;
    for (let d = index.length - 1; d >= 0; d--) {
      if (++index[d]! < outDims[d]!) break;
      index[d] = 0;
    }
  }
  return out;
}

/** Numpy broadcasting of two shapes. @throws VaccelError `EINVAL` when they do not broadcast. */
export function broadcastDims(a: readonly number[], b: readonly number[], where: string): number[] {
  const rank = Math.max(a.length, b.length);
  return Array.from({ length: rank }, (_, i) => {
    const x = a[a.length - rank + i] ?? 1;
    const y = b[b.length - rank + i] ?? 1;
    if (x !== y && x !== 1 && y !== 1)
      throw new VaccelError('EINVAL', `${where}: shapes [${a}] and [${b}] do not broadcast`);
    return x === 1 ? y : x;
  });
}

/** Applies `f` element-wise over broadcast inputs (host constant folding). */
export function elementwise(
  type: TfType,
  inputs: readonly HostTensor[],
  f: (...xs: number[]) => number,
  where: string,
): HostTensor {
  const dims = inputs.reduce<number[]>((d, t) => broadcastDims(d, t.dims, where), []);
  const n = checkedCount(dims);
  const out = new Float64Array(n);
  const outStrides = stridesOf(dims);
  const views = inputs.map((t) => {
    const s = stridesOf(t.dims);
    const offset = dims.length - t.dims.length;
    return dims.map((_, i) => (i < offset || t.dims[i - offset] === 1 ? 0 : s[i - offset]!));
  });
  const args = new Array<number>(inputs.length);
  for (let o = 0; o < n; o++) {
    for (let k = 0; k < inputs.length; k++) {
      let src = 0;
      let rest = o;
      for (let d = 0; d < dims.length; d++) {
        const i = Math.floor(rest / outStrides[d]!);
        rest -= i * outStrides[d]!;
        src += i * views[k]![d]!;
      }
      args[k] = inputs[k]!.values[src]!;
    }
    out[o] = f(...args);
  }
  return hostTensor(type, dims, out);
}

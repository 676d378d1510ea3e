/**
 * Constant tensors of a TensorFlow graph, held on the host while converting: decoded from a
 * `TensorProto` or a TF.js weights manifest, folded when every input of a shape computation is
 * constant, and written out as ONNX initializers.
 * @module
 */
import { VaccelError } from '@vaccel/core';
import { type ConstantBudget, MAX_CONSTANT_ELEMENTS } from './budget.js';
import type { TensorProto as OnnxTensor } from './gen/onnx_pb.js';
import { type TensorProto, DataType as TfType } from './gen/tensorflow_graph_pb.js';
import { initializer, DataType as OnnxType } from './onnx-graph.js';

export { MAX_CONSTANT_ELEMENTS, TfType };

/**
 * A constant: values held as float32 for floating types, and as plain numbers (float64) for every
 * integer and bool type, which is exact for the shape arithmetic constants are used for. Values are
 * never written once the tensor is made, so tensors of the same elements share them.
 */
export interface HostTensor {
  readonly type: TfType;
  readonly dims: readonly number[];
  readonly values: Float32Array | Float64Array;
}

/** Highest rank of a constant (TensorFlow's own limit is 254; real graphs stay under 8). */
export const MAX_RANK = 64;

/**
 * Elements of a constant of shape `dims`. A graph (perhaps a guest's) may declare any shape: this
 * caps what the converter allocates, whatever its byte budget. @throws VaccelError `EINVAL` for a
 * bad or too large shape.
 */
export function checkedCount(dims: readonly number[]): number {
  if (dims.length > MAX_RANK)
    throw new VaccelError('EINVAL', `a constant has rank ${dims.length}, more than ${MAX_RANK}`);
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

/** Bytes the converter holds per element of `type` (see {@link HostTensor}). */
export const hostBytes = (type: TfType): number => (isFloat(type) ? 4 : 8);

/**
 * A zeroed array for a constant of `type` and shape `dims`, charged to `budget` before it exists.
 * Every host constant's array is made here. @throws VaccelError `EINVAL` for a bad shape, `E2BIG`
 * over the budget.
 */
export function allocHost(
  budget: ConstantBudget,
  type: TfType,
  dims: readonly number[],
  where: string,
): Float32Array | Float64Array {
  const n = checkedCount(dims);
  budget.reserve(n * hostBytes(type), `${where}: a ${typeName(type)} constant of shape [${dims}]`);
  return isFloat(type) ? new Float32Array(n) : new Float64Array(n);
}

/** A host tensor of `type` from numbers (rounded to the type's precision class); one value fills it. */
export function hostTensor(
  budget: ConstantBudget,
  type: TfType,
  dims: readonly number[],
  values: ArrayLike<number>,
  where = 'a constant',
): HostTensor {
  const n = checkedCount(dims);
  if (values.length !== n && values.length !== 1)
    throw new VaccelError('EINVAL', `${where}: a constant of shape [${dims}] has ${values.length} values`);
  const out = allocHost(budget, type, dims, where);
  if (values.length === 1) out.fill(values[0]!);
  else out.set(values);
  return { type, dims: [...dims], values: out };
}

/** `t` in shape `dims` (same element count), sharing its values. @throws VaccelError `EINVAL`. */
export function reshaped(t: HostTensor, dims: readonly number[], where: string): HostTensor {
  if (checkedCount(dims) !== t.values.length)
    throw new VaccelError('EINVAL', `${where}: a constant of shape [${t.dims}] cannot take shape [${dims}]`);
  return { type: t.type, dims: [...dims], values: t.values };
}

/** `t` as `type`: its own values when both types are held alike, else a copy (charged). */
export function retyped(budget: ConstantBudget, t: HostTensor, type: TfType, where: string): HostTensor {
  if (isFloat(type) === isFloat(t.type)) return { type, dims: t.dims, values: t.values };
  return hostTensor(budget, type, t.dims, t.values, where);
}

/** Bytes per element of each type a constant's bytes may be stored in. */
const storedSizes: Partial<Record<TfType, number>> = {
  [TfType.DT_FLOAT]: 4,
  [TfType.DT_DOUBLE]: 8,
  [TfType.DT_INT32]: 4,
  [TfType.DT_UINT8]: 1,
  [TfType.DT_INT16]: 2,
  [TfType.DT_INT8]: 1,
  [TfType.DT_INT64]: 8,
  [TfType.DT_BOOL]: 1,
  [TfType.DT_UINT16]: 2,
  [TfType.DT_HALF]: 2,
  [TfType.DT_UINT32]: 4,
  [TfType.DT_UINT64]: 8,
};

/** Bytes per stored element of `type`, undefined for types a constant cannot hold. */
export const storedSize = (type: TfType): number | undefined => storedSizes[type];

/**
 * Decodes little-endian `bytes` of `stored` elements into a host array for a constant of `type`
 * and shape `dims`; the sizes are checked, then the array charged to `budget`, before it exists.
 */
export function fromBytes(
  budget: ConstantBudget,
  stored: TfType,
  bytes: Uint8Array,
  dims: readonly number[],
  type: TfType,
  where: string,
): Float32Array | Float64Array {
  const size = storedSize(stored);
  if (size === undefined) throw new VaccelError('ENOTSUP', `${where}: constants of type ${typeName(stored)}`);
  const n = checkedCount(dims);
  if (bytes.byteLength < n * size)
    throw new VaccelError('EINVAL', `${where}: ${bytes.byteLength} bytes for ${n} ${typeName(stored)}s`);
  const out = allocHost(budget, type, dims, where);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 0; i < n; i++) {
    const at = i * size;
    switch (stored) {
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

/** The typed `*_val` list a `TensorProto` holds its values in (the first non-empty one), as numbers. */
function valueList(t: TensorProto): { length: number; at(i: number): number } | undefined {
  const lists: readonly { length: number; at(i: number): number }[] = [
    { length: t.floatVal.length, at: (i) => t.floatVal[i]! },
    { length: t.doubleVal.length, at: (i) => t.doubleVal[i]! },
    { length: t.intVal.length, at: (i) => t.intVal[i]! },
    { length: t.int64Val.length, at: (i) => Number(t.int64Val[i]!) },
    { length: t.boolVal.length, at: (i) => Number(t.boolVal[i]!) },
    { length: t.halfVal.length, at: (i) => halfToFloat(t.halfVal[i]!) },
    { length: t.uint32Val.length, at: (i) => t.uint32Val[i]! },
    { length: t.uint64Val.length, at: (i) => Number(t.uint64Val[i]!) },
  ];
  return lists.find((l) => l.length > 0);
}

const dimsOf = (t: TensorProto, where: string): number[] => {
  if (t.tensorShape?.unknownRank) throw new VaccelError('EINVAL', `${where}: constant of unknown rank`);
  return (t.tensorShape?.dim ?? []).map((d) => Number(d.size));
};

/** A constant of one value repeated over a shape: kept as such, never expanded by the converter. */
export interface SplatTensor {
  readonly type: TfType;
  readonly dims: readonly number[];
  readonly value: number;
}

/**
 * Elements from which a single-valued `TensorProto` is kept as a {@link SplatTensor} (written out
 * as ONNX ConstantOfShape) instead of being expanded on the host. Smaller ones are expanded: shape
 * arithmetic folds on them.
 */
export const SPLAT_MIN_ELEMENTS = 2 ** 16;

/** The splat a big single-valued `TensorProto` is (no content, at most one `*_val`), else undefined. */
export function splatOf(t: TensorProto, where: string): SplatTensor | undefined {
  if (t.tensorContent.byteLength > 0 || t.stringVal.length > 0) return undefined;
  const dims = dimsOf(t, where);
  if (checkedCount(dims) < SPLAT_MIN_ELEMENTS) return undefined;
  const list = valueList(t);
  if (list && list.length > 1) return undefined;
  return { type: t.dtype, dims, value: list ? list.at(0) : 0 };
}

/**
 * Decodes a `TensorProto` (packed content or the typed `*_val` lists, the last value repeated to
 * fill the shape as TensorFlow does), charging its array to `budget` before it exists.
 */
export function decodeTensorProto(t: TensorProto, where: string, budget: ConstantBudget): HostTensor {
  const dims = dimsOf(t, where);
  const n = checkedCount(dims);
  if (t.tensorContent.byteLength > 0)
    return { type: t.dtype, dims, values: fromBytes(budget, t.dtype, t.tensorContent, dims, t.dtype, where) };
  if (t.stringVal.length > 0) throw new VaccelError('ENOTSUP', `${where}: string constants`);
  const list = valueList(t);
  const values = allocHost(budget, t.dtype, dims, where);
  if (!list || n === 0) return { type: t.dtype, dims, values };
  if (list.length === 1) values.fill(list.at(0));
  else for (let i = 0; i < n; i++) values[i] = list.at(Math.min(i, list.length - 1));
  return { type: t.dtype, dims, values };
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
      // A host float constant is already float32, and never written: the initializer shares it.
      return values instanceof Float32Array ? values : Float32Array.from(values);
    case OnnxType.DOUBLE:
      return Float64Array.from(values);
    case OnnxType.FLOAT16:
      return Uint16Array.from(values, floatToHalf);
    case OnnxType.INT64:
    case OnnxType.UINT64: {
      // Element by element: no array of BigInts as long as the constant on the JS heap.
      const out =
        type === OnnxType.INT64 ? new BigInt64Array(values.length) : new BigUint64Array(values.length);
      // Saturating, as a cast: a folded NaN is 0, values past the type's range its bounds.
      const [low, high] = type === OnnxType.INT64 ? [-(2 ** 63), 2 ** 63 - 1024] : [0, 2 ** 64 - 2048];
      for (let i = 0; i < values.length; i++) {
        const v = values[i]!;
        out[i] = BigInt(Number.isNaN(v) ? 0 : Math.trunc(Math.min(high, Math.max(low, v))));
      }
      return out;
    }
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

/** Permutes a dense row-major array: output dim i is input dim perm[i], written into `out`. */
export function permute<T extends Float32Array | Float64Array>(
  values: T,
  dims: readonly number[],
  perm: readonly number[],
  out: T = new (values.constructor as new (n: number) => T)(values.length),
): T {
  const outDims = perm.map((p) => dims[p]!);
  const inStrides = stridesOf(dims);
  const strides = perm.map((p) => inStrides[p]!);
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

/** `t` transposed by `perm` (a permutation of its axes), into a charged array. @throws VaccelError `EINVAL`. */
export function transposed(
  budget: ConstantBudget,
  t: HostTensor,
  perm: readonly number[],
  where: string,
): HostTensor {
  if (perm.length !== t.dims.length || !t.dims.every((_, i) => perm.includes(i)))
    throw new VaccelError('EINVAL', `${where}: [${perm}] is not a permutation of the axes of [${t.dims}]`);
  const dims = perm.map((p) => t.dims[p]!);
  return {
    type: t.type,
    dims,
    values: permute(t.values, t.dims, perm, allocHost(budget, t.type, dims, where)),
  };
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

/** Applies `f` element-wise over broadcast inputs (host constant folding), into a charged array. */
export function elementwise(
  budget: ConstantBudget,
  type: TfType,
  inputs: readonly HostTensor[],
  f: (...xs: number[]) => number,
  where: string,
): HostTensor {
  const dims = inputs.reduce<number[]>((d, t) => broadcastDims(d, t.dims, where), []);
  const out = allocHost(budget, type, dims, where);
  const n = out.length;
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
  return { type, dims, values: out };
}

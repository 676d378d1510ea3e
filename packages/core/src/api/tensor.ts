/**
 * Tensors for generic model ops, and their compact binary encoding inside one RAW arg.
 *
 * Encoding (little-endian): u32 count, then per tensor: u32 name length, UTF-8 name, u8 dtype
 * (ONNX TensorProto.DataType number), u8 rank, rank × i64 dims, u64 data length, data bytes.
 * @module
 */
import { copyBytes } from './arg.js';
import { VaccelError } from './error.js';

/** Element types, numbered as ONNX's TensorProto.DataType. */
export const DType = Object.freeze({
  float32: 1,
  uint8: 2,
  int8: 3,
  int32: 6,
  int64: 7,
  bool: 9,
  float16: 10,
} as const);
/** An element type name. */
export type DType = keyof typeof DType;

/** Typed-array view of each dtype's data (float16 travels as raw Uint16 bits; bool as Uint8). */
export interface TensorDataTypes {
  float32: Float32Array;
  uint8: Uint8Array;
  int8: Int8Array;
  int32: Int32Array;
  int64: BigInt64Array;
  bool: Uint8Array;
  float16: Uint16Array;
}

/** A dense tensor. */
export interface Tensor<D extends DType = DType> {
  dtype: D;
  dims: readonly number[];
  data: TensorDataTypes[D];
}

/** The typed array that holds each dtype's elements. */
export const TENSOR_ARRAYS = {
  float32: Float32Array,
  uint8: Uint8Array,
  int8: Int8Array,
  int32: Int32Array,
  int64: BigInt64Array,
  bool: Uint8Array,
  float16: Uint16Array,
} as const;
const dtypeByCode = new Map<number, DType>(
  Object.entries(DType).map(([name, code]) => [code, name as DType]),
);

/** Number of elements for `dims`. @throws VaccelError `EINVAL` for negative or non-integer dims. */
export function elementCount(dims: readonly number[]): number {
  let count = 1;
  for (const d of dims) {
    if (!Number.isSafeInteger(d) || d < 0) throw new VaccelError('EINVAL', `tensor dim ${d} is invalid`);
    count *= d;
  }
  return count;
}

/** Makes a tensor, checking that `data` matches `dtype` and `dims`. */
export function tensor<D extends DType>(
  dtype: D,
  dims: readonly number[],
  data: TensorDataTypes[D],
): Tensor<D> {
  checkTensor('tensor', { dtype, dims, data });
  return { dtype, dims: [...dims], data };
}

function checkTensor(name: string, t: Tensor): void {
  const ctor = TENSOR_ARRAYS[t.dtype];
  if (!ctor)
    throw new VaccelError(
      'EINVAL',
      `${name}: unsupported dtype ${String(t.dtype)} (supported: ${Object.keys(DType).join(', ')})`,
    );
  if (!(t.data instanceof ctor))
    throw new VaccelError('EINVAL', `${name}: ${t.dtype} data must be a ${ctor.name}`);
  const count = elementCount(t.dims);
  if (t.data.length !== count) {
    throw new VaccelError(
      'EINVAL',
      `${name}: dims [${t.dims.join(', ')}] need ${count} elements, data has ${t.data.length}`,
    );
  }
}

const utf8 = new TextEncoder();

/** Encodes named tensors into one buffer. */
export function encodeTensors(tensors: Readonly<Record<string, Tensor>>): Uint8Array {
  const entries = Object.entries(tensors);
  const names = entries.map(([name]) => utf8.encode(name));
  let size = 4;
  entries.forEach(([name, t], i) => {
    checkTensor(name, t);
    size += 4 + names[i]!.byteLength + 2 + 8 * t.dims.length + 8 + t.data.byteLength;
  });
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  let at = 0;
  view.setUint32(at, entries.length, true);
  at += 4;
  entries.forEach(([, t], i) => {
    const name = names[i]!;
    view.setUint32(at, name.byteLength, true);
    out.set(name, at + 4);
    at += 4 + name.byteLength;
    view.setUint8(at, DType[t.dtype]);
    view.setUint8(at + 1, t.dims.length);
    at += 2;
    for (const d of t.dims) {
      view.setBigInt64(at, BigInt(d), true);
      at += 8;
    }
    view.setBigUint64(at, BigInt(t.data.byteLength), true);
    out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), at + 8);
    at += 8 + t.data.byteLength;
  });
  return out;
}

/**
 * Decodes a buffer made by {@link encodeTensors}. Tensor data is copied into aligned arrays.
 * @throws VaccelError `EINVAL` for truncated or inconsistent input.
 */
export function decodeTensors(bytes: Uint8Array): Record<string, Tensor> {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = 0;
  const need = (n: number): void => {
    if (at + n > bytes.byteLength) throw new VaccelError('EINVAL', 'tensor encoding is truncated');
  };
  need(4);
  const count = view.getUint32(at, true);
  at += 4;
  const out: Record<string, Tensor> = {};
  for (let i = 0; i < count; i++) {
    need(4);
    const nameLength = view.getUint32(at, true);
    need(4 + nameLength + 2);
    const name = new TextDecoder().decode(bytes.subarray(at + 4, at + 4 + nameLength));
    at += 4 + nameLength;
    const dtype = dtypeByCode.get(view.getUint8(at));
    if (!dtype)
      throw new VaccelError('EINVAL', `tensor ${name}: unsupported dtype code ${view.getUint8(at)}`);
    const rank = view.getUint8(at + 1);
    at += 2;
    need(8 * rank + 8);
    const dims: number[] = [];
    for (let r = 0; r < rank; r++, at += 8) dims.push(Number(view.getBigInt64(at, true)));
    const length = Number(view.getBigUint64(at, true));
    at += 8;
    need(length);
    const ctor = TENSOR_ARRAYS[dtype];
    if (length % ctor.BYTES_PER_ELEMENT !== 0)
      throw new VaccelError('EINVAL', `tensor ${name}: data length ${length} is not whole ${dtype} elements`);
    const data = new ctor(copyBytes(bytes.subarray(at, at + length)).buffer);
    at += length;
    if (Object.hasOwn(out, name)) throw new VaccelError('EINVAL', `tensor ${name} appears twice`);
    const t = { dtype, dims, data } as Tensor;
    checkTensor(name, t);
    // defineProperty, not assignment: a tensor named "__proto__" must stay a tensor.
    Object.defineProperty(out, name, { value: t, enumerable: true, writable: true, configurable: true });
  }
  if (at !== bytes.byteLength) throw new VaccelError('EINVAL', 'tensor encoding has trailing bytes');
  return out;
}

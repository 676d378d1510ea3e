/**
 * Upstream's TensorFlow and TensorFlow Lite RPC tensors ↔ vAccel tensors, and TensorFlow node
 * names (`{name, id}` ↔ `name:id`). Both wire tensors are raw little-endian data with dims and a
 * dtype number: `vaccel.tf.Tensor` has int64 dims and tf.DataType numbers, `vaccel.tflite.Tensor`
 * int32 dims and TfLiteType numbers (docs/protocol.md §4). Shared by the agent (serving the RPCs)
 * and the RPC plugin (calling them on upstream agents).
 * @module
 */
import { type DType, TENSOR_ARRAYS, type Tensor, VaccelError } from '@vaccel/core';

/** tf.DataType numbers (docs/protocol.md §4) of the dtypes vAccel tensors have. */
export const TF_DATA_TYPES: Readonly<Record<DType, number>> = {
  float32: 1,
  int32: 3,
  uint8: 4,
  int8: 6,
  int64: 9,
  bool: 10,
  float16: 19,
};

/** TfLiteType numbers (what upstream really sends; its proto labels are shifted by one, §4). */
export const TFLITE_DATA_TYPES: Readonly<Record<DType, number>> = {
  float32: 1,
  int32: 2,
  uint8: 3,
  int64: 4,
  bool: 6,
  int8: 9,
  float16: 10,
};

/** A `vaccel.tf.Tensor` as the generated code holds it. */
export interface WireTfTensor {
  data: Uint8Array;
  dims: bigint[];
  type: number;
}

/** A `vaccel.tflite.Tensor` as the generated code holds it. */
export interface WireTfliteTensor {
  data: Uint8Array;
  dims: number[];
  type: number;
}

const inverse = (types: Readonly<Record<DType, number>>) =>
  new Map(Object.entries(types).map(([d, t]) => [t, d as DType]));
const TF_DTYPES = inverse(TF_DATA_TYPES);
const TFLITE_DTYPES = inverse(TFLITE_DATA_TYPES);

const MAX_DIM = 2 ** 31 - 1;

function tensorFromWire(
  family: string,
  dtypes: ReadonlyMap<number, DType>,
  t: { data: Uint8Array; dims: readonly (number | bigint)[]; type: number },
  where: string,
): Tensor {
  const dtype = dtypes.get(t.type);
  if (!dtype)
    throw new VaccelError(
      'EINVAL',
      `${where}: ${family} ${t.type} is not supported (float, int8/32/64, uint8, bool, half)`,
    );
  const dims = t.dims.map((d) => {
    if (d < 0 || d > MAX_DIM) throw new VaccelError('EINVAL', `${where}: dimension ${d} is out of range`);
    return Number(d);
  });
  const count = dims.reduce((a, b) => a * b, 1);
  const Typed = TENSOR_ARRAYS[dtype];
  if (t.data.byteLength !== count * Typed.BYTES_PER_ELEMENT)
    throw new VaccelError(
      'EINVAL',
      `${where}: ${t.data.byteLength} bytes for ${count} ${dtype} values of shape [${dims}]`,
    );
  // A copy: aligned for the typed array, and the message stays untouched.
  const copy = new Uint8Array(t.data);
  return { dtype, dims, data: new Typed(copy.buffer, 0, count) } as Tensor;
}

const bytesOf = (t: Tensor): Uint8Array =>
  new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);

/** A vAccel tensor from a TensorFlow wire tensor. @throws VaccelError `EINVAL`. */
export const tfTensorFromWire = (t: WireTfTensor, where: string): Tensor =>
  tensorFromWire('tf.DataType', TF_DTYPES, t, where);

/** The TensorFlow wire form of a vAccel tensor (a view of its data). */
export const tfTensorToWire = (t: Tensor): WireTfTensor => ({
  data: bytesOf(t),
  dims: t.dims.map(BigInt),
  type: TF_DATA_TYPES[t.dtype],
});

/** A vAccel tensor from a TensorFlow Lite wire tensor. @throws VaccelError `EINVAL`. */
export const tfliteTensorFromWire = (t: WireTfliteTensor, where: string): Tensor =>
  tensorFromWire('TfLiteType', TFLITE_DTYPES, t, where);

/** The TensorFlow Lite wire form of a vAccel tensor (a view of its data). */
export const tfliteTensorToWire = (t: Tensor): WireTfliteTensor => ({
  data: bytesOf(t),
  dims: [...t.dims],
  type: TFLITE_DATA_TYPES[t.dtype],
});

/** `{name, id}` → `name:id`. */
export const tfTensorName = (node: { name: string; id: number }): string => `${node.name}:${node.id}`;

/** `name:id` (or `name`, id 0) → `{name, id}`. */
export function tfNode(tensor: string): { name: string; id: number } {
  const colon = tensor.lastIndexOf(':');
  const id = colon > 0 ? Number(tensor.slice(colon + 1)) : Number.NaN;
  return Number.isInteger(id) && id >= 0 ? { name: tensor.slice(0, colon), id } : { name: tensor, id: 0 };
}

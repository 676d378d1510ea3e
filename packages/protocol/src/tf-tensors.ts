/**
 * Upstream's TensorFlow RPC tensors (`vaccel.tf.Tensor`: raw little-endian data, int64 dims, a
 * tf.DataType number) ↔ vAccel tensors, and TensorFlow node names (`{name, id}` ↔ `name:id`).
 * Shared by the agent (serving the RPCs) and the RPC plugin (calling them on upstream agents).
 * @module
 */
import { type Tensor, VaccelError } from '@vaccel/core';

/** tf.DataType numbers (docs/protocol.md §4) of the dtypes vAccel tensors have. */
export const TF_DATA_TYPES: Readonly<Record<Tensor['dtype'], number>> = {
  float32: 1,
  int32: 3,
  uint8: 4,
  int8: 6,
  int64: 9,
  bool: 10,
  float16: 19,
};
const dtypeOf = new Map(Object.entries(TF_DATA_TYPES).map(([d, t]) => [t, d as Tensor['dtype']]));
const SIZES: Record<Tensor['dtype'], number> = {
  float32: 4,
  int32: 4,
  uint8: 1,
  int8: 1,
  int64: 8,
  bool: 1,
  float16: 2,
};
const ARRAYS = {
  float32: Float32Array,
  int32: Int32Array,
  uint8: Uint8Array,
  int8: Int8Array,
  int64: BigInt64Array,
  bool: Uint8Array,
  float16: Uint16Array,
} as const;

/** A `vaccel.tf.Tensor` as the generated code holds it. */
export interface WireTfTensor {
  data: Uint8Array;
  dims: bigint[];
  type: number;
}

/** A vAccel tensor from a wire tensor (copied: aligned, and the message stays untouched). @throws VaccelError `EINVAL`. */
export function tfTensorFromWire(t: WireTfTensor, where: string): Tensor {
  const dtype = dtypeOf.get(t.type);
  if (!dtype)
    throw new VaccelError(
      'EINVAL',
      `${where}: tf.DataType ${t.type} is not supported (float, int8/32/64, uint8, bool, half)`,
    );
  const dims = t.dims.map((d) => {
    if (d < 0n || d > 2n ** 31n) throw new VaccelError('EINVAL', `${where}: dimension ${d} is out of range`);
    return Number(d);
  });
  const count = dims.reduce((a, b) => a * b, 1);
  if (t.data.byteLength !== count * SIZES[dtype])
    throw new VaccelError(
      'EINVAL',
      `${where}: ${t.data.byteLength} bytes for ${count} ${dtype} values of shape [${dims}]`,
    );
  const copy = new Uint8Array(t.data);
  return { dtype, dims, data: new ARRAYS[dtype](copy.buffer, 0, count) } as Tensor;
}

/** The wire form of a vAccel tensor (a view of its data). */
export const tfTensorToWire = (t: Tensor): WireTfTensor => ({
  data: new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength),
  dims: t.dims.map(BigInt),
  type: TF_DATA_TYPES[t.dtype],
});

/** `{name, id}` → `name:id`. */
export const tfTensorName = (node: { name: string; id: number }): string => `${node.name}:${node.id}`;

/** `name:id` (or `name`, id 0) → `{name, id}`. */
export function tfNode(tensor: string): { name: string; id: number } {
  const colon = tensor.lastIndexOf(':');
  const id = colon > 0 ? Number(tensor.slice(colon + 1)) : Number.NaN;
  return Number.isInteger(id) && id >= 0 ? { name: tensor.slice(0, colon), id } : { name: tensor, id: 0 };
}

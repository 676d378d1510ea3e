/**
 * Upstream's TensorFlow RPCs (TensorflowModelLoad/Run/Unload) on the runtime's tf_model ops: the
 * model is a resource registered with the session (a frozen GraphDef or a TF.js graph model, which
 * the ONNX plugin converts when it loads it). Nodes are `{name, id}` pairs, i.e. tensor `name:id`.
 * @module
 */
import {
  decodeTensors,
  OpType,
  opName,
  packModelLoad,
  packModelRun,
  packModelUnload,
  type Session,
  type Tensor,
  VaccelError,
} from '@vaccel/core';
import type { CallContext } from '@vaccel/ttrpc';

/** tf.DataType numbers (PROTOCOL.md §4) of the dtypes vAccel tensors have. */
const TF_TYPES: Record<Tensor['dtype'], number> = {
  float32: 1,
  int32: 3,
  uint8: 4,
  int8: 6,
  int64: 9,
  bool: 10,
  float16: 19,
};
const dtypeOf = new Map(Object.entries(TF_TYPES).map(([d, t]) => [t, d as Tensor['dtype']]));
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

interface WireTensor {
  data: Uint8Array;
  dims: bigint[];
  type: number;
}

/** A vAccel tensor from a wire tf.Tensor (raw little-endian data). @throws VaccelError `EINVAL`. */
function fromWire(t: WireTensor, where: string): Tensor {
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
  const copy = new Uint8Array(t.data); // aligned, and the caller's buffer stays untouched
  return { dtype, dims, data: new ARRAYS[dtype](copy.buffer, 0, count) } as Tensor;
}

const toWire = (t: Tensor): WireTensor => ({
  data: new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength),
  dims: t.dims.map(BigInt),
  type: TF_TYPES[t.dtype],
});

const modelIdOf = (id: bigint): number => {
  if (id <= 0n || id > BigInt(Number.MAX_SAFE_INTEGER))
    throw new VaccelError('EINVAL', `model id ${id} must be > 0`);
  return Number(id);
};

const OK = { code: 0, message: 'ok' };

/** The three TensorFlow RPCs over sessions found by `session`. */
export function tensorflowRpcs(
  session: (id: bigint, ctx: CallContext) => Session,
  opOf: WeakMap<CallContext, string>,
) {
  return {
    async tensorflowModelLoad(
      { sessionId, modelId }: { sessionId: bigint; modelId: bigint },
      ctx: CallContext,
    ) {
      opOf.set(ctx, opName(OpType.TfModelLoad));
      const { read, write } = packModelLoad(modelIdOf(modelId));
      await session(sessionId, ctx).doOperation(OpType.TfModelLoad, read, write, { signal: ctx.signal });
      return { graphDef: new Uint8Array(0), status: OK };
    },
    async tensorflowModelUnload(
      { sessionId, modelId }: { sessionId: bigint; modelId: bigint },
      ctx: CallContext,
    ) {
      opOf.set(ctx, opName(OpType.TfModelUnload));
      const { read, write } = packModelUnload(modelIdOf(modelId));
      await session(sessionId, ctx).doOperation(OpType.TfModelUnload, read, write, { signal: ctx.signal });
      return { status: OK };
    },
    async tensorflowModelRun(
      request: {
        sessionId: bigint;
        modelId: bigint;
        inNodes: { name: string; id: number }[];
        outNodes: { name: string; id: number }[];
        inTensors: WireTensor[];
      },
      ctx: CallContext,
    ) {
      opOf.set(ctx, opName(OpType.TfModelRun));
      const { inNodes, outNodes, inTensors } = request;
      if (inNodes.length !== inTensors.length)
        throw new VaccelError(
          'EINVAL',
          `tf model run: ${inNodes.length} input nodes but ${inTensors.length} input tensors`,
        );
      if (outNodes.length === 0) throw new VaccelError('EINVAL', 'tf model run: no output nodes');
      const name = (n: { name: string; id: number }) => `${n.name}:${n.id}`;
      const inputs: Record<string, Tensor> = {};
      for (const [i, node] of inNodes.entries())
        inputs[name(node)] = fromWire(inTensors[i]!, `input ${name(node)}`);
      const outputs = outNodes.map(name);
      const { read, write } = packModelRun(modelIdOf(request.modelId), inputs, outputs);
      await session(request.sessionId, ctx).doOperation(OpType.TfModelRun, read, write, {
        signal: ctx.signal,
      });
      const results = decodeTensors(write[0]!.buf);
      return { outTensors: outputs.map((o) => toWire(results[o]!)), status: OK };
    },
  };
}

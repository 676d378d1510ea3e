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
import { tfTensorFromWire, tfTensorName, tfTensorToWire, type WireTfTensor } from '@vaccel/remote';
import type { CallContext } from '@vaccel/ttrpc';

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
        inTensors: WireTfTensor[];
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
      const inputs: Record<string, Tensor> = {};
      for (const [i, node] of inNodes.entries())
        inputs[tfTensorName(node)] = tfTensorFromWire(inTensors[i]!, `input ${tfTensorName(node)}`);
      const outputs = outNodes.map(tfTensorName);
      const { read, write } = packModelRun(modelIdOf(request.modelId), inputs, outputs);
      await session(request.sessionId, ctx).doOperation(OpType.TfModelRun, read, write, {
        signal: ctx.signal,
      });
      const results = decodeTensors(write[0]!.buf);
      return { outTensors: outputs.map((o) => tfTensorToWire(results[o]!)), status: OK };
    },
  };
}

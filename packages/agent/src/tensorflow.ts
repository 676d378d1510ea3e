/**
 * Upstream's TensorFlow RPCs (TensorflowModelLoad/Run/Unload) on the runtime's tf_model ops: the
 * model is a resource registered with the session (a frozen GraphDef or a TF.js graph model, which
 * the ONNX plugin converts when it loads it). Nodes are `{name, id}` pairs, i.e. tensor `name:id`.
 * @module
 */
import {
  type Arg,
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
import { tfTensorFromWire, tfTensorName, tfTensorToWire, type WireTfTensor } from '@vaccel/protocol';
import type { CallContext } from '@vaccel/ttrpc';

/** A request's model id as the connection's resource id. @throws VaccelError `EINVAL` unless 1 … 2^53−1. */
export const modelIdOf = (id: bigint): number => {
  if (id <= 0n || id > BigInt(Number.MAX_SAFE_INTEGER))
    throw new VaccelError('EINVAL', `model id ${id} must be > 0`);
  return Number(id);
};

const OK = { code: 0, message: 'ok' };

/** How the RPCs reach sessions and run ops (the agent service's own, see service.ts and op-runner.ts). */
export interface TensorflowHost {
  session(id: bigint, ctx: CallContext): Session;
  /** The runtime's id of the connection's model resource `id`, registered with `session`. */
  model(session: Session, id: number, ctx: CallContext): number;
  run(ctx: CallContext, session: Session, op: OpType, read: Arg[], write: Arg[]): Promise<void>;
}

/** The three TensorFlow RPCs. */
export function tensorflowRpcs(host: TensorflowHost, opOf: WeakMap<CallContext, string>) {
  const target = (sessionId: bigint, modelId: bigint, ctx: CallContext) => {
    const session = host.session(sessionId, ctx);
    return { session, modelId: host.model(session, modelIdOf(modelId), ctx) };
  };
  return {
    async tensorflowModelLoad(
      { sessionId, modelId }: { sessionId: bigint; modelId: bigint },
      ctx: CallContext,
    ) {
      opOf.set(ctx, opName(OpType.TfModelLoad));
      const t = target(sessionId, modelId, ctx);
      const { read, write } = packModelLoad(t.modelId);
      await host.run(ctx, t.session, OpType.TfModelLoad, read, write);
      return { graphDef: new Uint8Array(0), status: OK };
    },
    async tensorflowModelUnload(
      { sessionId, modelId }: { sessionId: bigint; modelId: bigint },
      ctx: CallContext,
    ) {
      opOf.set(ctx, opName(OpType.TfModelUnload));
      const t = target(sessionId, modelId, ctx);
      const { read, write } = packModelUnload(t.modelId);
      await host.run(ctx, t.session, OpType.TfModelUnload, read, write);
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
      const t = target(request.sessionId, request.modelId, ctx);
      const { read, write } = packModelRun(t.modelId, inputs, outputs);
      await host.run(ctx, t.session, OpType.TfModelRun, read, write);
      const results = decodeTensors(write[0]!.buf);
      return { outTensors: outputs.map((o) => tfTensorToWire(results[o]!)), status: OK };
    },
  };
}

/**
 * Upstream's TensorFlow RPCs (TensorflowModelLoad/Run/Unload) on the runtime's tf_model ops: the
 * model is a resource registered with the session (a frozen GraphDef or a TF.js graph model, which
 * the ONNX plugin converts when it loads it). Nodes are `{name, id}` pairs, i.e. tensor `name:id`.
 * {@link modelCall} is how these and the TensorFlow Lite RPCs (tensorflow-lite.ts) run their ops.
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

const modelIdOf = (id: bigint): number => {
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

/** A model of a session, by the runtime's ids. */
export interface ModelTarget {
  session: Session;
  /** The runtime's id of the model resource. */
  modelId: number;
}

/**
 * Runs model op `op` on the connection's model `modelId` of session `sessionId`, with the args
 * `pack` makes for it; answers the target and the write args. Labels the call with the op.
 */
export type ModelCall = (
  ctx: CallContext,
  op: OpType,
  ids: { sessionId: bigint; modelId: bigint },
  pack: (target: ModelTarget) => { read: Arg[]; write: Arg[] },
) => Promise<{ target: ModelTarget; write: Arg[] }>;

/** The {@link ModelCall} of the RPCs over `host`. */
export function modelCall(host: TensorflowHost, opOf: WeakMap<CallContext, string>): ModelCall {
  return async (ctx, op, { sessionId, modelId }, pack) => {
    opOf.set(ctx, opName(op));
    const session = host.session(sessionId, ctx);
    const target = { session, modelId: host.model(session, modelIdOf(modelId), ctx) };
    const { read, write } = pack(target);
    await host.run(ctx, session, op, read, write);
    return { target, write };
  };
}

/** The three TensorFlow RPCs. */
export function tensorflowRpcs(call: ModelCall) {
  return {
    async tensorflowModelLoad(request: { sessionId: bigint; modelId: bigint }, ctx: CallContext) {
      await call(ctx, OpType.TfModelLoad, request, (t) => packModelLoad(t.modelId));
      return { graphDef: new Uint8Array(0), status: OK };
    },
    async tensorflowModelUnload(request: { sessionId: bigint; modelId: bigint }, ctx: CallContext) {
      await call(ctx, OpType.TfModelUnload, request, (t) => packModelUnload(t.modelId));
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
      const { write } = await call(ctx, OpType.TfModelRun, request, (t) =>
        packModelRun(t.modelId, inputs, outputs),
      );
      const results = decodeTensors(write[0]!.buf);
      return { outTensors: outputs.map((o) => tfTensorToWire(results[o]!)), status: OK };
    },
  };
}

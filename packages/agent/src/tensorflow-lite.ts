/**
 * Upstream's TensorFlow Lite RPCs (TensorflowLiteModelLoad/Run/Unload) on the runtime's
 * tflite_model ops: the model is a `.tflite` resource registered with the session, which the ONNX
 * plugin converts when it loads it. The RPCs are positional (tensors carry no names; the run asks
 * for the first `nr_out_tensors` outputs), so the load remembers the model's input and output
 * names, in the model's order, for the runs.
 * @module
 */
import {
  decodeTensors,
  type ModelInfo,
  OpType,
  opName,
  packModelLoad,
  packModelRun,
  packModelUnload,
  parseModelInfo,
  type Session,
  type Tensor,
  VaccelError,
} from '@vaccel/core';
import { tfliteTensorFromWire, tfliteTensorToWire, type WireTfliteTensor } from '@vaccel/protocol';
import type { CallContext } from '@vaccel/ttrpc';
import { modelIdOf, type TensorflowHost } from './tensorflow.js';

/** TfLiteStatus kTfLiteOk: upstream's run status carries the interpreter's code only. */
const TFLITE_OK = { code: 0, message: '' };

/** The three TensorFlow Lite RPCs. */
export function tensorflowLiteRpcs(host: TensorflowHost, opOf: WeakMap<CallContext, string>) {
  // Per session, the loaded models' names by runtime model id (dropped with the session).
  const loaded = new WeakMap<Session, Map<number, ModelInfo>>();
  const target = (sessionId: bigint, modelId: bigint, ctx: CallContext) => {
    const session = host.session(sessionId, ctx);
    return { session, modelId: host.model(session, modelIdOf(modelId), ctx) };
  };
  return {
    async tensorflowLiteModelLoad(
      { sessionId, modelId }: { sessionId: bigint; modelId: bigint },
      ctx: CallContext,
    ) {
      opOf.set(ctx, opName(OpType.TfliteModelLoad));
      const t = target(sessionId, modelId, ctx);
      const { read, write } = packModelLoad(t.modelId);
      await host.run(ctx, t.session, OpType.TfliteModelLoad, read, write);
      const models = loaded.get(t.session) ?? new Map<number, ModelInfo>();
      models.set(t.modelId, parseModelInfo(write[0]!.buf));
      loaded.set(t.session, models);
      return {};
    },
    async tensorflowLiteModelUnload(
      { sessionId, modelId }: { sessionId: bigint; modelId: bigint },
      ctx: CallContext,
    ) {
      opOf.set(ctx, opName(OpType.TfliteModelUnload));
      const t = target(sessionId, modelId, ctx);
      const { read, write } = packModelUnload(t.modelId);
      await host.run(ctx, t.session, OpType.TfliteModelUnload, read, write);
      loaded.get(t.session)?.delete(t.modelId);
      return {};
    },
    async tensorflowLiteModelRun(
      request: { sessionId: bigint; modelId: bigint; inTensors: WireTfliteTensor[]; nrOutTensors: bigint },
      ctx: CallContext,
    ) {
      opOf.set(ctx, opName(OpType.TfliteModelRun));
      const t = target(request.sessionId, request.modelId, ctx);
      const info = loaded.get(t.session)?.get(t.modelId);
      if (!info)
        throw new VaccelError(
          'EINVAL',
          `tflite model run: model ${request.modelId} is not loaded in this session; load it first (TensorflowLiteModelLoad)`,
        );
      const { inTensors, nrOutTensors } = request;
      if (inTensors.length !== info.inputs.length)
        throw new VaccelError(
          'EINVAL',
          `tflite model run: the model takes ${info.inputs.length} input tensors (${info.inputs.map((i) => i.name).join(', ')}), the request has ${inTensors.length}`,
        );
      if (nrOutTensors < 1n || nrOutTensors > BigInt(info.outputs.length))
        throw new VaccelError(
          'EINVAL',
          `tflite model run: nr_out_tensors ${nrOutTensors} must be 1 to the model's ${info.outputs.length} outputs`,
        );
      const inputs: Record<string, Tensor> = {};
      for (const [i, input] of info.inputs.entries())
        inputs[input.name] = tfliteTensorFromWire(inTensors[i]!, `input ${i} (${input.name})`);
      const outputs = info.outputs.slice(0, Number(nrOutTensors)).map((o) => o.name);
      const { read, write } = packModelRun(t.modelId, inputs, outputs);
      await host.run(ctx, t.session, OpType.TfliteModelRun, read, write);
      const results = decodeTensors(write[0]!.buf);
      return { outTensors: outputs.map((o) => tfliteTensorToWire(results[o]!)), status: TFLITE_OK };
    },
  };
}

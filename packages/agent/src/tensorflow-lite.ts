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
import type { ModelCall } from './tensorflow.js';

/** TfLiteStatus kTfLiteOk: upstream's run status carries the interpreter's code only. */
const TFLITE_OK = { code: 0, message: '' };

/** The three TensorFlow Lite RPCs. */
export function tensorflowLiteRpcs(call: ModelCall) {
  // Per session, the loaded models' names by runtime model id (dropped with the session).
  const loaded = new WeakMap<Session, Map<number, ModelInfo>>();
  return {
    async tensorflowLiteModelLoad(request: { sessionId: bigint; modelId: bigint }, ctx: CallContext) {
      const { target, write } = await call(ctx, OpType.TfliteModelLoad, request, (t) =>
        packModelLoad(t.modelId),
      );
      const models = loaded.get(target.session) ?? new Map<number, ModelInfo>();
      models.set(target.modelId, parseModelInfo(write[0]!.buf));
      loaded.set(target.session, models);
      return {};
    },
    async tensorflowLiteModelUnload(request: { sessionId: bigint; modelId: bigint }, ctx: CallContext) {
      const { target } = await call(ctx, OpType.TfliteModelUnload, request, (t) =>
        packModelUnload(t.modelId),
      );
      loaded.get(target.session)?.delete(target.modelId);
      return {};
    },
    async tensorflowLiteModelRun(
      request: { sessionId: bigint; modelId: bigint; inTensors: WireTfliteTensor[]; nrOutTensors: bigint },
      ctx: CallContext,
    ) {
      let outputs: string[] = [];
      const { write } = await call(ctx, OpType.TfliteModelRun, request, (t) => {
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
        outputs = info.outputs.slice(0, Number(nrOutTensors)).map((o) => o.name);
        return packModelRun(t.modelId, inputs, outputs);
      });
      const results = decodeTensors(write[0]!.buf);
      const missing = outputs.find((o) => !results[o]);
      if (missing !== undefined)
        throw new VaccelError('EPROTO', `tflite model run: the backend gave no output ${missing}`);
      return { outTensors: outputs.map((o) => tfliteTensorToWire(results[o]!)), status: TFLITE_OK };
    },
  };
}

/**
 * tf_model_* and tflite_model_* on an upstream agent: it serves them only as the
 * TensorflowModel* and TensorflowLiteModel* RPCs (its genop refuses ops 8–16), so the RPC plugin
 * translates the op's args to and from them.
 * @module
 */
import {
  type Arg,
  decodeTensors,
  encodeTensors,
  OpType,
  opInfo,
  opName,
  ReadArg,
  type Tensor,
  VaccelError,
} from '@vaccel/core';
import type { ServiceClient } from '@vaccel/protocol';
import {
  tfliteTensorFromWire,
  tfliteTensorToWire,
  tfNode,
  tfTensorFromWire,
  tfTensorName,
  tfTensorToWire,
} from '@vaccel/protocol';
import type { SyncAgentService } from '@vaccel/protocol/service';

type Stub = ServiceClient<(typeof SyncAgentService)['method']>;
type CallOptions = { signal?: AbortSignal | undefined; timeoutMs?: number | undefined };

/**
 * The model info of a load whose agent describes nothing (upstream's TensorflowModelLoad answers
 * an empty graph_def, its TensorflowLiteModelLoad nothing at all): loaded, declaring no inputs or
 * outputs.
 * @internal
 */
export const EMPTY_INFO = new TextEncoder().encode(JSON.stringify({ inputs: [], outputs: [] }));

/** True for ops an upstream agent serves only through its TensorFlow or TensorFlow Lite RPCs. */
export const viaModelRpc = (op: OpType): boolean => opInfo(op)?.upstreamRpc !== undefined;

/** A run's inputs and the output names it asks for (which upstream's RPCs need: they list nothing). */
function runArgs(op: OpType, read: readonly Arg[]): { inputs: [string, Tensor][]; outputs: string[] } {
  const inputs = decodeTensors(ReadArg.bytes(read[1], `${opName(op)} inputs`));
  const names = ReadArg.bytes(read[2], `${opName(op)} output names`);
  const outputs: string[] = names.byteLength > 0 ? JSON.parse(new TextDecoder().decode(names)) : [];
  if (outputs.length === 0)
    throw new VaccelError(
      'EINVAL',
      op === OpType.TfModelRun
        ? 'tf_model_run on an upstream agent needs the output names (node:index)'
        : "tflite_model_run on an upstream agent needs the output names: it returns the model's first outputs, as many as named, under those names",
    );
  return { inputs: Object.entries(inputs), outputs };
}

const checkStatus = (op: OpType, status: { code: number; message: string } | undefined): void => {
  if (status && status.code !== 0)
    throw new VaccelError('EPROTO', `agent ${opName(op)}: status ${status.code} ${status.message}`);
};

/** Runs a TensorFlow or TensorFlow Lite op through upstream's RPCs; `modelId` is already the agent's. */
export async function modelOpViaRpc(
  stub: Stub,
  op: OpType,
  sessionId: bigint,
  read: readonly Arg[],
  write: Arg[],
  options: CallOptions,
): Promise<void> {
  const modelId = BigInt(ReadArg.int64(read[0], `${opName(op)} model id`));
  const request = { sessionId, modelId };
  switch (op) {
    case OpType.TfModelLoad:
    case OpType.TfliteModelLoad:
      if (op === OpType.TfModelLoad)
        checkStatus(op, (await stub.tensorflowModelLoad(request, options)).status);
      else await stub.tensorflowLiteModelLoad(request, options);
      // Upstream describes no model (graph_def is always empty; TFLite answers Empty).
      if (write[0]) write[0].buf = EMPTY_INFO;
      return;
    case OpType.TfModelUnload:
      checkStatus(op, (await stub.tensorflowModelUnload(request, options)).status);
      return;
    case OpType.TfliteModelUnload:
      await stub.tensorflowLiteModelUnload(request, options);
      return;
  }
  const { inputs, outputs } = runArgs(op, read);
  const results: Record<string, Tensor> = {};
  if (op === OpType.TfModelRun) {
    const reply = await stub.tensorflowModelRun(
      {
        ...request,
        inNodes: inputs.map(([name]) => tfNode(name)),
        outNodes: outputs.map(tfNode),
        inTensors: inputs.map(([, t]) => tfTensorToWire(t)),
      },
      options,
    );
    checkStatus(op, reply.status);
    for (const [i, t] of reply.outTensors.entries()) {
      const name = outputs[i] === undefined ? `output:${i}` : tfTensorName(tfNode(outputs[i]!));
      results[name] = tfTensorFromWire(t, `agent output ${name}`);
    }
  } else {
    // Positional: inputs in the order given, the model's first outputs under the names asked for.
    const reply = await stub.tensorflowLiteModelRun(
      {
        ...request,
        inTensors: inputs.map(([, t]) => tfliteTensorToWire(t)),
        nrOutTensors: BigInt(outputs.length),
      },
      options,
    );
    checkStatus(op, reply.status);
    if (reply.outTensors.length !== outputs.length)
      throw new VaccelError(
        'EPROTO',
        `agent tflite_model_run: ${reply.outTensors.length} output tensors for the ${outputs.length} asked for`,
      );
    for (const [i, t] of reply.outTensors.entries())
      results[outputs[i]!] = tfliteTensorFromWire(t, `agent output ${outputs[i]}`);
  }
  if (write[0]) write[0].buf = encodeTensors(results);
}

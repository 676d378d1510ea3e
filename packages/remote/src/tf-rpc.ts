/**
 * tf_model_load/run/unload on an upstream agent: it serves them only as the TensorflowModel*
 * RPCs (its genop refuses ops 8–16), so the RPC plugin translates the op's args to and from them.
 * @module
 */
import {
  type Arg,
  decodeTensors,
  encodeTensors,
  OpType,
  ReadArg,
  type Tensor,
  VaccelError,
} from '@vaccel/core';
import type { ServiceClient } from '@vaccel/protocol';
import { tfNode, tfTensorFromWire, tfTensorName, tfTensorToWire } from '@vaccel/protocol';
import type { SyncAgentService } from '@vaccel/protocol/service';

/**
 * The model info of a TensorFlow load whose agent describes nothing (upstream's
 * TensorflowModelLoad answers an empty graph_def): loaded, declaring no inputs or outputs.
 * @internal
 */
export const EMPTY_INFO = new TextEncoder().encode(JSON.stringify({ inputs: [], outputs: [] }));

/** Runs a TensorFlow op through upstream's RPCs; `modelId` is already the agent's. */
export async function tensorflowViaRpc(
  stub: ServiceClient<(typeof SyncAgentService)['method']>,
  op: OpType,
  sessionId: bigint,
  read: readonly Arg[],
  write: Arg[],
  options: { signal?: AbortSignal | undefined; timeoutMs?: number | undefined },
): Promise<void> {
  const modelId = BigInt(ReadArg.int64(read[0], 'tf model id'));
  if (op === OpType.TfModelLoad) {
    await stub.tensorflowModelLoad({ sessionId, modelId }, options);
    // Upstream answers no description of the graph (graph_def is always empty).
    if (write[0]) write[0].buf = EMPTY_INFO;
    return;
  }
  if (op === OpType.TfModelUnload) {
    await stub.tensorflowModelUnload({ sessionId, modelId }, options);
    return;
  }
  const inputs = decodeTensors(ReadArg.bytes(read[1], 'tf_model_run inputs'));
  const names = ReadArg.bytes(read[2], 'tf_model_run output names');
  const outputs: string[] = names.byteLength > 0 ? JSON.parse(new TextDecoder().decode(names)) : [];
  if (outputs.length === 0)
    throw new VaccelError('EINVAL', 'tf_model_run on an upstream agent needs the output names (node:index)');
  const entries = Object.entries(inputs);
  const reply = await stub.tensorflowModelRun(
    {
      sessionId,
      modelId,
      inNodes: entries.map(([name]) => tfNode(name)),
      outNodes: outputs.map(tfNode),
      inTensors: entries.map(([, t]) => tfTensorToWire(t)),
    },
    options,
  );
  if (reply.status && reply.status.code !== 0)
    throw new VaccelError(
      'EPROTO',
      `agent tf_model_run: status ${reply.status.code} ${reply.status.message}`,
    );
  const results: Record<string, Tensor> = {};
  for (const [i, t] of reply.outTensors.entries()) {
    const name = outputs[i] === undefined ? `output:${i}` : tfTensorName(tfNode(outputs[i]!));
    results[name] = tfTensorFromWire(t, `agent output ${name}`);
  }
  if (write[0]) write[0].buf = encodeTensors(results);
}

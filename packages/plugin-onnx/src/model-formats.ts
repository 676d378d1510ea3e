/**
 * The model formats model_load and tf_model_load accept, all run on ONNX Runtime: ONNX itself, a
 * TensorFlow frozen GraphDef (`.pb`) and a TF.js graph model (`model.json` + its weight shards),
 * the last two converted to ONNX at load time.
 * @module
 */
import { type ErrorCode, ErrorCodes, type ResourceBlob, startModuleWorker, VaccelError } from '@vaccel/core';
import { convertTfGraph, parseGraphDef, parseTfjsGraphModel, type TfjsGraphModel } from './convert/index.js';

/** The ONNX bytes of a model resource, converting TensorFlow graphs. @throws VaccelError `EINVAL` / `ENOTSUP`. */
export function onnxModelOf(blobs: readonly ResourceBlob[], what: string): Uint8Array {
  const named = (suffix: string) => blobs.filter((b) => b.name.toLowerCase().endsWith(suffix));
  const [onnx, pb] = [named('.onnx'), named('.pb')];
  if (onnx.length === 1) return onnx[0]!.data;
  if (onnx.length > 1)
    throw new VaccelError('EINVAL', `${what}: a model resource needs one .onnx file, it has ${onnx.length}`);
  if (pb.length === 1) return convertTfGraph(parseGraphDef(pb[0]!.data), { name: pb[0]!.name });
  const json =
    blobs.find((b) => b.name === 'model.json') ??
    (named('.json').length === 1 ? named('.json')[0] : undefined);
  if (json) {
    let model: TfjsGraphModel;
    try {
      model = JSON.parse(new TextDecoder().decode(json.data)) as TfjsGraphModel;
    } catch (cause) {
      throw new VaccelError('EINVAL', `${what}: ${json.name} is not JSON`, { cause });
    }
    if (model?.format === 'graph-model' || (model?.modelTopology as { node?: unknown })?.node) {
      const byName = new Map(blobs.map((b) => [b.name, b.data]));
      const shards = (model.weightsManifest ?? [])
        .flatMap((group) => group.paths)
        .map((path) => {
          const data = byName.get(path) ?? byName.get(path.split('/').pop()!);
          if (!data)
            throw new VaccelError('EINVAL', `${what}: the graph model's weight shard ${path} is missing`);
          return data;
        });
      return convertTfGraph(parseTfjsGraphModel(model, new Uint8Array(Buffer.concat(shards))), {
        name: json.name,
      });
    }
  }
  throw new VaccelError(
    'EINVAL',
    `${what}: no model found (a model resource holds one .onnx, one frozen GraphDef .pb, or a TF.js graph model.json with its shards; it has ${blobs.map((b) => b.name).join(', ') || 'nothing'})`,
  );
}

/** True when `blobs` hold an ONNX model as such (no conversion needed). */
const isOnnx = (blobs: readonly ResourceBlob[]) => blobs.some((b) => b.name.toLowerCase().endsWith('.onnx'));

/**
 * {@link onnxModelOf} without blocking the event loop: a TensorFlow graph is converted on a worker
 * thread (a big graph takes seconds; an agent keeps serving its other guests meanwhile). Aborting
 * stops the worker.
 */
export async function onnxModelOffThread(
  blobs: readonly ResourceBlob[],
  what: string,
  signal?: AbortSignal,
): Promise<Uint8Array> {
  if (isOnnx(blobs)) return onnxModelOf(blobs, what);
  signal?.throwIfAborted();
  const worker = startModuleWorker('model-worker', import.meta.url);
  try {
    return await new Promise<Uint8Array>((resolve, reject) => {
      const onAbort = () => reject(signal!.reason);
      signal?.addEventListener('abort', onAbort, { once: true });
      worker.once('message', (reply: { bytes?: Uint8Array; error?: { code?: string; message: string } }) => {
        signal?.removeEventListener('abort', onAbort);
        if (reply.bytes) resolve(reply.bytes);
        else {
          const code = reply.error?.code ?? '';
          const known = Object.hasOwn(ErrorCodes, code) ? (code as ErrorCode) : 'EINVAL';
          reject(new VaccelError(known, reply.error?.message ?? `${what}: conversion failed`));
        }
      });
      worker.once('error', (error) =>
        reject(new VaccelError('EINVAL', `${what}: conversion failed: ${error.message}`, { cause: error })),
      );
      worker.postMessage({ blobs: blobs.map(({ name, data }) => ({ name, data })), what });
    });
  } finally {
    await worker.terminate();
  }
}

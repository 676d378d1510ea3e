/**
 * The model formats model_load, tf_model_load and tflite_model_load accept, all run on ONNX
 * Runtime: ONNX itself, a TensorFlow frozen GraphDef (`.pb`), a TF.js graph model (`model.json` +
 * its weight shards) and a TensorFlow Lite model (`.tflite`), the last three converted to ONNX at
 * load time.
 *
 * A guest's graph is hostile until converted: it converts on a worker thread with a byte budget
 * for its constants ({@link ConstantLimits}, `VACCEL_MODEL_MAX_CONSTANT_BYTES`) and V8 heap limits
 * sized from it, so a graph that asks for too much fails its own load (`E2BIG`, or `ENOMEM` when
 * the heap limit stops the worker) and the agent keeps serving everyone else.
 * @module
 */
import { type ErrorCode, ErrorCodes, type ResourceBlob, startModuleWorker, VaccelError } from '@vaccel/core';
import {
  type ConstantLimits,
  convertTfGraph,
  DEFAULT_MAX_CONSTANT_BYTES,
  MAX_CONSTANT_BYTES_ENV,
  parseGraphDef,
  parseTfjsGraphModel,
  type TfjsGraphModel,
} from '@vaccel/tf2onnx';
import { convertTflite, hasTfliteIdentifier } from '@vaccel/tf2onnx/tflite';

/**
 * Largest `model.json` parsed (16 MiB; real graph models' are under 1 MiB, their weights are in the
 * shards): `JSON.parse` builds the whole object graph at once, so its input is bounded first.
 */
export const MAX_MODEL_JSON_BYTES = 16 * 2 ** 20;

/**
 * The ONNX bytes of a model resource, converting TensorFlow graphs on the calling thread (see
 * {@link onnxModelOffThread} for guests' models). @throws VaccelError `EINVAL` / `ENOTSUP` /
 * `E2BIG` (constants over `options.maxConstantBytes`).
 */
export function onnxModelOf(
  blobs: readonly ResourceBlob[],
  what: string,
  options: ConstantLimits = {},
): Uint8Array {
  const named = (suffix: string) => blobs.filter((b) => b.name.toLowerCase().endsWith(suffix));
  const [onnx, pb, tflite] = [named('.onnx'), named('.pb'), named('.tflite')];
  if (onnx.length === 1) return onnx[0]!.data;
  if (onnx.length > 1)
    throw new VaccelError('EINVAL', `${what}: a model resource needs one .onnx file, it has ${onnx.length}`);
  if (pb.length === 1) return convertTfGraph(parseGraphDef(pb[0]!.data), { ...options, name: pb[0]!.name });
  if (tflite.length === 1) return convertTflite(tflite[0]!.data, options).onnx;
  // A lone TFLite flatbuffer under another name (an upstream client's buffer, a file called `model`).
  if (blobs.length === 1 && hasTfliteIdentifier(blobs[0]!.data))
    return convertTflite(blobs[0]!.data, options).onnx;
  const json =
    blobs.find((b) => b.name === 'model.json') ??
    (named('.json').length === 1 ? named('.json')[0] : undefined);
  if (json) {
    if (json.data.byteLength > MAX_MODEL_JSON_BYTES)
      throw new VaccelError(
        'E2BIG',
        `${what}: ${json.name} is ${json.data.byteLength} bytes, more than the ${MAX_MODEL_JSON_BYTES} a model.json may have (weights belong in the shards)`,
      );
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
      return convertTfGraph(parseTfjsGraphModel(model, new Uint8Array(Buffer.concat(shards)), options), {
        ...options,
        name: json.name,
      });
    }
  }
  throw new VaccelError(
    'EINVAL',
    `${what}: no model found (a model resource holds one .onnx, one frozen GraphDef .pb, one .tflite (or one blob that is a TFLite flatbuffer), or a TF.js graph model.json with its shards; it has ${blobs.map((b) => b.name).join(', ') || 'nothing'})`,
  );
}

/** True when `blobs` hold an ONNX model as such (no conversion needed). */
const isOnnx = (blobs: readonly ResourceBlob[]) => blobs.some((b) => b.name.toLowerCase().endsWith('.onnx'));

/**
 * The constant budget in `env[VACCEL_MODEL_MAX_CONSTANT_BYTES]` (bytes), else the default.
 * @throws VaccelError `EINVAL` naming the variable when it is not a non-negative integer.
 */
export function maxConstantBytesOf(env: Readonly<Record<string, string | undefined>>): number {
  const raw = env[MAX_CONSTANT_BYTES_ENV]?.trim();
  if (raw === undefined || raw === '') return DEFAULT_MAX_CONSTANT_BYTES;
  const bytes = /^\d+$/.test(raw) ? Number(raw) : Number.NaN;
  if (!Number.isSafeInteger(bytes))
    throw new VaccelError('EINVAL', `${MAX_CONSTANT_BYTES_ENV} must be a byte count, got "${raw}"`);
  return bytes;
}

/**
 * V8 heap of the converting worker for a constant budget: 256 MiB for the parsed graph and the
 * ONNX being built, plus the budget again (constants live in ArrayBuffers, outside the heap, but a
 * bigger budget means a bigger trusted model with more nodes); at most 4 GiB.
 */
export const converterHeapMb = (maxConstantBytes: number): number =>
  Math.min(4096, 256 + Math.ceil(maxConstantBytes / 2 ** 20));

/** Options of {@link onnxModelOffThread}. */
export interface OffThreadOptions extends ConstantLimits {
  /** Aborting stops the worker; the call rejects with the signal's reason. */
  signal?: AbortSignal;
}

/** The worker's one reply. */
interface Reply {
  bytes?: Uint8Array;
  error?: { code?: string; message: string };
}

/**
 * {@link onnxModelOf} without blocking the event loop or risking the process: a TensorFlow graph
 * is converted on a worker thread (a big graph takes seconds; an agent keeps serving its other
 * guests meanwhile) whose constants are held to `maxConstantBytes` (default: the
 * `VACCEL_MODEL_MAX_CONSTANT_BYTES` variable, else 256 MiB) and whose V8 heap is limited
 * ({@link converterHeapMb}). Aborting stops the worker.
 * @throws VaccelError `E2BIG` over the budget, `ENOMEM` when the worker runs out of heap,
 * `EPROTO` when it exits without an answer, else the converter's own error.
 */
export async function onnxModelOffThread(
  blobs: readonly ResourceBlob[],
  what: string,
  signalOrOptions?: AbortSignal | OffThreadOptions,
): Promise<Uint8Array> {
  const { signal, ...limits } =
    signalOrOptions instanceof AbortSignal ? { signal: signalOrOptions } : (signalOrOptions ?? {});
  if (isOnnx(blobs)) return onnxModelOf(blobs, what);
  signal?.throwIfAborted();
  const maxConstantBytes = limits.maxConstantBytes ?? maxConstantBytesOf(process.env);
  const heapMb = converterHeapMb(maxConstantBytes);
  const worker = startModuleWorker('model-worker', import.meta.url, {
    resourceLimits: { maxOldGenerationSizeMb: heapMb },
  });
  try {
    return await new Promise<Uint8Array>((resolve, reject) => {
      // The first of reply, error, exit or abort settles the call; the others find it settled.
      const onAbort = () => reject(signal!.reason);
      signal?.addEventListener('abort', onAbort, { once: true });
      const settle =
        <T>(f: (value: T) => void) =>
        (value: T) => {
          signal?.removeEventListener('abort', onAbort);
          f(value);
        };
      worker.once(
        'message',
        settle((reply: Reply) => {
          if (reply.bytes) resolve(reply.bytes);
          else {
            const code = reply.error?.code ?? '';
            const known = Object.hasOwn(ErrorCodes, code) ? (code as ErrorCode) : 'EINVAL';
            reject(new VaccelError(known, reply.error?.message ?? `${what}: conversion failed`));
          }
        }),
      );
      worker.once(
        'error',
        settle((error: Error & { code?: string }) =>
          reject(
            error.code === 'ERR_WORKER_OUT_OF_MEMORY'
              ? new VaccelError(
                  'ENOMEM',
                  `${what}: converting the model ran out of the converter's ${heapMb} MiB heap, so it was stopped (the heap grows with ${MAX_CONSTANT_BYTES_ENV}, ${maxConstantBytes} bytes now, if the model is trusted)`,
                  { cause: error },
                )
              : new VaccelError('EINVAL', `${what}: conversion failed: ${error.message}`, { cause: error }),
          ),
        ),
      );
      worker.once(
        'exit',
        settle((code: number) =>
          reject(new VaccelError('EPROTO', `${what}: the converter exited (code ${code}) without an answer`)),
        ),
      );
      worker.postMessage({ blobs: blobs.map(({ name, data }) => ({ name, data })), what, maxConstantBytes });
    });
  } finally {
    await worker.terminate();
  }
}

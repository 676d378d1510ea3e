/**
 * Generic model ops on a registered model resource (vaccel-ts extension ops 67–69).
 *
 * - MODEL_LOAD (67) — read: model resource id (INT64); write: info (RAW, sized by the plugin): UTF-8
 *   JSON {@link ModelInfo}.
 * - MODEL_RUN (68) — read: model resource id (INT64), inputs (RAW: tensors encoded with
 *   {@link encodeTensors}), output names (RAW: UTF-8 JSON string array; empty = all outputs);
 *   write: outputs (RAW, sized by the plugin: encoded tensors).
 * - MODEL_UNLOAD (69) — read: model resource id (INT64); no write args.
 * @module
 */
import { type Arg, Args, ReadArg } from '../api/arg.js';
import { VaccelError } from '../api/error.js';
import { decodeTensors, encodeTensors, type Tensor } from '../api/tensor.js';
import type { OpContext, OpHandler } from '../runtime/plugin.js';

/** One model input or output, as the model declares it. */
export interface TensorInfo {
  name: string;
  dtype: string;
  /** Dimensions; a string or -1 marks a dynamic one. */
  dims: readonly (number | string)[];
}

/** What a loaded model declares. */
export interface ModelInfo {
  inputs: TensorInfo[];
  outputs: TensorInfo[];
}

/** Arguments of a model run, as a plugin receives them. */
export interface ModelRunArgs {
  modelId: number;
  inputs: Record<string, Tensor>;
  /** Requested outputs; empty means all. */
  outputs: string[];
}

/** What a plugin implements to serve the model ops. */
export interface ModelBackend {
  load(modelId: number, ctx: OpContext): Promise<ModelInfo>;
  run(args: ModelRunArgs, ctx: OpContext): Promise<Record<string, Tensor>>;
  unload(modelId: number, ctx: OpContext): Promise<void>;
}

const utf8 = new TextEncoder();
const EMPTY = new Uint8Array(0);

export const packModelLoad = (modelId: number): { read: Arg[]; write: Arg[] } => ({
  read: [Args.int64(modelId)],
  write: [Args.raw()],
});

export const packModelUnload = (modelId: number): { read: Arg[]; write: Arg[] } => ({
  read: [Args.int64(modelId)],
  write: [],
});

export function packModelRun(
  modelId: number,
  inputs: Readonly<Record<string, Tensor>>,
  outputs: readonly string[] = [],
): { read: Arg[]; write: Arg[] } {
  return {
    read: [
      Args.int64(modelId),
      Args.raw(encodeTensors(inputs)),
      Args.raw(outputs.length > 0 ? utf8.encode(JSON.stringify(outputs)) : EMPTY),
    ],
    write: [Args.raw()],
  };
}

function modelIdOf(read: readonly Arg[], what: string): number {
  const id = ReadArg.int64(read[0], `${what} model id`);
  if (id <= 0) throw new VaccelError('EINVAL', `${what}: model id must be > 0, got ${id}`);
  return id;
}

function counts(what: string, read: readonly Arg[], write: readonly Arg[], r: number, w: number): void {
  if (read.length !== r || write.length !== w) {
    throw new VaccelError(
      'EINVAL',
      `${what} takes ${r} read and ${w} write args, got ${read.length} and ${write.length}`,
    );
  }
}

function parseOutputNames(bytes: Uint8Array): string[] {
  if (bytes.byteLength === 0) return [];
  let names: unknown;
  try {
    names = JSON.parse(new TextDecoder().decode(bytes));
  } catch (cause) {
    throw new VaccelError('EINVAL', 'model_run output names are not JSON', { cause });
  }
  if (!Array.isArray(names) || !names.every((n) => typeof n === 'string')) {
    throw new VaccelError('EINVAL', 'model_run output names must be a JSON array of strings');
  }
  return names;
}

/** Makes the three model op handlers from a {@link ModelBackend}. */
export function modelHandlers(backend: ModelBackend): { load: OpHandler; run: OpHandler; unload: OpHandler } {
  return {
    load: async ({ read, write }, ctx) => {
      counts('model_load', read, write, 1, 1);
      write[0]!.buf = utf8.encode(JSON.stringify(await backend.load(modelIdOf(read, 'model_load'), ctx)));
    },
    run: async ({ read, write }, ctx) => {
      counts('model_run', read, write, 3, 1);
      const args: ModelRunArgs = {
        modelId: modelIdOf(read, 'model_run'),
        inputs: decodeTensors(ReadArg.bytes(read[1], 'model_run inputs')),
        outputs: parseOutputNames(ReadArg.bytes(read[2], 'model_run output names')),
      };
      write[0]!.buf = encodeTensors(await backend.run(args, ctx));
    },
    unload: async ({ read, write }, ctx) => {
      counts('model_unload', read, write, 1, 0);
      await backend.unload(modelIdOf(read, 'model_unload'), ctx);
    },
  };
}

/** Parses a model_load result. @throws VaccelError `EPROTO` if malformed. */
export function parseModelInfo(bytes: Uint8Array): ModelInfo {
  try {
    const info = JSON.parse(new TextDecoder().decode(bytes)) as ModelInfo;
    if (Array.isArray(info?.inputs) && Array.isArray(info.outputs)) return info;
  } catch (cause) {
    throw new VaccelError('EPROTO', 'malformed model info', { cause });
  }
  throw new VaccelError('EPROTO', 'malformed model info');
}

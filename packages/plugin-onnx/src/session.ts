/**
 * ONNX Runtime sessions for model resources: created once per model content (by digest), with the
 * plugin's execution providers and threads, from bytes that passed model intake; inputs checked
 * against the model's metadata.
 * @module
 */
import { type ModelInfo, type Tensor, type TensorInfo, VaccelError } from '@vaccel/core';
import * as ort from 'onnxruntime-node';
import { admitModel, DEFAULT_INTAKE, type IntakeLimits } from './intake.js';

/** How sessions are made. */
export interface SessionSettings {
  /** Execution providers, best first (default `['cpu']`); a GPU provider drops in here. */
  executionProviders: readonly string[];
  /** Threads per op (default: all cores). */
  intraOpThreads: number;
  /** Let idle ORT threads spin-wait for the next op (lower latency, busy cores; default false). */
  spin?: boolean;
  /** What model intake allows (default {@link DEFAULT_INTAKE}). */
  intake?: IntakeLimits;
  /**
   * Keep freed tensor memory in ONNX Runtime's arena for the next run (default true). A runner
   * shared by tenants turns it off: one tenant's peak would stay allocated under the next one's.
   */
  memoryArena?: boolean;
}

/** ORT tensor type for each vAccel dtype. */
const ortTypes = {
  float32: 'float32',
  float16: 'float16',
  int8: 'int8',
  uint8: 'uint8',
  int32: 'int32',
  int64: 'int64',
  bool: 'bool',
} as const satisfies Record<Tensor['dtype'], string>;

const vaccelTypes = new Map(Object.entries(ortTypes).map(([v, o]) => [o as string, v as Tensor['dtype']]));

/**
 * Creates an inference session from ONNX bytes, once they pass model intake ({@link admitModel}).
 * @throws VaccelError `EINVAL` for a bad or refused model.
 */
export async function createSession(bytes: Uint8Array, settings: SessionSettings, what: string) {
  admitModel(bytes, settings.intake ?? DEFAULT_INTAKE, what);
  try {
    return await ort.InferenceSession.create(bytes, {
      executionProviders: [...settings.executionProviders],
      intraOpNumThreads: settings.intraOpThreads,
      interOpNumThreads: 1,
      graphOptimizationLevel: 'all',
      enableCpuMemArena: settings.memoryArena ?? true,
      // Idle ORT threads spin by default, burning the cores that other sessions, other guests'
      // calls and other processes on the host need: an agent serving many guests must not.
      extra: { session: { intra_op: { allow_spinning: settings.spin ? '1' : '0' } } },
    });
  } catch (cause) {
    throw new VaccelError(
      'EINVAL',
      `${what}: ONNX Runtime cannot load the model: ${(cause as Error).message}`,
      {
        cause,
      },
    );
  }
}

export type OrtSession = Awaited<ReturnType<typeof createSession>>;

const infoOf = (m: ort.InferenceSession.ValueMetadata): TensorInfo =>
  m.isTensor
    ? { name: m.name, dtype: vaccelTypes.get(m.type) ?? m.type, dims: [...m.shape] }
    : { name: m.name, dtype: 'non-tensor', dims: [] };

/** The inputs and outputs a session declares. */
export const describeSession = (session: OrtSession): ModelInfo => ({
  inputs: session.inputMetadata.map(infoOf),
  outputs: session.outputMetadata.map(infoOf),
});

/**
 * Checks run arguments against what a model declares: input names, dtypes and static dims, and the
 * requested output names.
 * @throws VaccelError `EINVAL` naming the input or output and what is wrong.
 */
export function checkRun(
  info: ModelInfo,
  inputs: Readonly<Record<string, Tensor>>,
  outputs: readonly string[],
  what: string,
): void {
  const declared = new Map(info.inputs.map((m) => [m.name, m]));
  for (const name of Object.keys(inputs)) {
    if (!declared.has(name))
      throw new VaccelError(
        'EINVAL',
        `${what}: the model has no input "${name}" (inputs: ${[...declared.keys()].join(', ')})`,
      );
  }
  for (const [name, meta] of declared) {
    const t = inputs[name];
    if (!t) throw new VaccelError('EINVAL', `${what}: input "${name}" is missing`);
    if (meta.dtype === 'non-tensor') continue;
    if (t.dtype !== meta.dtype)
      throw new VaccelError('EINVAL', `${what}: input "${name}" must be ${meta.dtype}, got ${t.dtype}`);
    const ok =
      meta.dims.length === t.dims.length &&
      meta.dims.every((d, i) => typeof d !== 'number' || d < 0 || d === t.dims[i]);
    if (!ok)
      throw new VaccelError(
        'EINVAL',
        `${what}: input "${name}" must have shape [${meta.dims.join(', ')}], got [${t.dims.join(', ')}]`,
      );
  }
  const known = info.outputs.map((o) => o.name);
  for (const name of outputs) {
    if (!known.includes(name))
      throw new VaccelError(
        'EINVAL',
        `${what}: the model has no output "${name}" (outputs: ${known.join(', ')})`,
      );
  }
}

/** The ONNX Runtime error a failed allocation gives (the BFC arena's, or a caught std::bad_alloc). */
const OUT_OF_MEMORY = /Failed to allocate memory|bad_alloc|out of memory/i;

/**
 * Runs a session on named vAccel tensors that {@link checkRun} accepted.
 * @throws VaccelError `ENOMEM` when ONNX Runtime cannot allocate, `EINVAL` for other run failures,
 * `ENOTSUP` for an output of a type vAccel tensors do not carry.
 */
export async function runChecked(
  session: OrtSession,
  inputs: Readonly<Record<string, Tensor>>,
  outputs: readonly string[],
  what: string,
): Promise<Record<string, Tensor>> {
  const feeds: Record<string, ort.Tensor> = {};
  for (const [name, t] of Object.entries(inputs))
    feeds[name] = new ort.Tensor(ortTypes[t.dtype], t.data as never, t.dims);
  let results: ort.InferenceSession.ReturnType;
  try {
    results = outputs.length > 0 ? await session.run(feeds, [...outputs]) : await session.run(feeds);
  } catch (cause) {
    const message = (cause as Error).message;
    if (OUT_OF_MEMORY.test(message))
      throw new VaccelError('ENOMEM', `${what}: the run needs more memory than it may have: ${message}`, {
        cause,
      });
    throw new VaccelError('EINVAL', `${what}: ONNX Runtime failed: ${message}`, { cause });
  }
  const out: Record<string, Tensor> = {};
  for (const [name, value] of Object.entries(results)) {
    const dtype = vaccelTypes.get(value.type);
    if (!dtype)
      throw new VaccelError('ENOTSUP', `${what}: output "${name}" has unsupported type ${value.type}`);
    out[name] = { dtype, dims: [...value.dims], data: value.data as never };
  }
  return out;
}

/**
 * Runs a session on named vAccel tensors, after checking names, dtypes and static dims.
 * @throws VaccelError `EINVAL` naming the input and what is wrong.
 */
export async function runSession(
  session: OrtSession,
  inputs: Readonly<Record<string, Tensor>>,
  outputs: readonly string[],
  what: string,
): Promise<Record<string, Tensor>> {
  checkRun(describeSession(session), inputs, outputs, what);
  return runChecked(session, inputs, outputs, what);
}

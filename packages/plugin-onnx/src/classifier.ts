/**
 * An image classifier: a descriptor, its labels and an ONNX Runtime session.
 * @module
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { type Classification, type ResourceBlob, type Tensor, VaccelError } from '@vaccel/core';
import { hasTfliteIdentifier } from '@vaccel/tf2onnx/tflite';
import { type ModelDescriptor, parseDescriptor, parseLabels } from './descriptor.js';
import { type OffThreadOptions, onnxModelOffThread } from './model-formats.js';
import type { ModelCallOptions } from './model-host.js';
import { inProcessSession, type ModelSession, type SessionOpener } from './model-session.js';
import { preprocess } from './preprocess.js';
import type { SessionSettings } from './session.js';

/** Where the time of one classification went, in ms. */
export interface ClassifyTimings {
  decode: number;
  normalize: number;
  inference: number;
  total: number;
}

/** Top-k classes, best first, with the time taken. */
export interface ClassifyResult {
  classes: Classification[];
  timings: ClassifyTimings;
}

/** Descriptor file name inside a model folder or resource. */
export const DESCRIPTOR = 'model.json';

/**
 * Reads a model folder (its `model.json`, `.onnx` or `.tflite` model and `.txt` labels; or given
 * its `model.json`, or a bare `.onnx`) into blobs. @throws VaccelError `ENOENT`.
 */
export async function readModelBlobs(path: string): Promise<ResourceBlob[]> {
  let dir = path;
  try {
    if (!(await stat(path)).isDirectory()) {
      if (path.endsWith('.onnx'))
        return [{ name: basename(path), data: new Uint8Array(await readFile(path)) }];
      dir = dirname(path);
    }
    const names = (await readdir(dir)).filter(
      (n) => n === DESCRIPTOR || n.endsWith('.onnx') || n.endsWith('.tflite') || n.endsWith('.txt'),
    );
    return await Promise.all(
      names.map(async (name) => ({ name, data: new Uint8Array(await readFile(join(dir, name))) })),
    );
  } catch (cause) {
    throw new VaccelError('ENOENT', `model ${path} cannot be read: ${(cause as Error).message}`, { cause });
  }
}

function softmaxTopK(values: Float32Array, logits: boolean, k: number): { index: number; score: number }[] {
  let scores: Float32Array = values;
  if (logits) {
    let max = Number.NEGATIVE_INFINITY;
    for (const v of values) max = Math.max(max, v);
    scores = new Float32Array(values.length);
    let sum = 0;
    for (let i = 0; i < values.length; i++) sum += scores[i] = Math.exp(values[i]! - max);
    for (let i = 0; i < scores.length; i++) scores[i]! /= sum;
  }
  const order = Array.from(scores.keys()).sort((a, b) => scores[b]! - scores[a]!);
  return order.slice(0, k).map((index) => ({ index, score: scores[index]! }));
}

/** A model opened from its blobs: descriptor, labels and session. */
export interface DescribedModel {
  descriptor: ModelDescriptor;
  labels: string[];
  session: ModelSession;
  inputName: string;
}

/**
 * Where a described model's session runs: settings for one in this process (the host's own
 * models), or an opener (a guest's model, on the plugin's runners).
 */
export type SessionSource = SessionSettings | SessionOpener;

const openerOf = (source: SessionSource): SessionOpener =>
  typeof source === 'function' ? source : inProcessSession(source);

/** The image tensor a descriptor's input takes. @internal */
export const imageTensor = (data: Float32Array | Int32Array, dims: readonly number[]): Tensor =>
  data instanceof Int32Array
    ? { dtype: 'int32', dims: [...dims], data }
    : { dtype: 'float32', dims: [...dims], data };

/**
 * The ONNX bytes of a described model's file: a TensorFlow Lite model (`.tflite`, or bytes with
 * the TFLite identifier) converted on a worker thread under the constant budget, as model_load
 * converts a guest's; anything else as it is.
 */
async function onnxOf(
  file: string,
  data: Uint8Array,
  what: string,
  limits: Pick<OffThreadOptions, 'maxConstantBytes'>,
): Promise<Uint8Array> {
  const named = file.toLowerCase().endsWith('.tflite');
  if (!named && !hasTfliteIdentifier(data)) return data;
  // Named .tflite for the converter, whatever the file is called; no caller's signal: the load is
  // shared by every caller that waits for the model.
  return onnxModelOffThread([{ name: named ? file : `${file}.tflite`, data }], what, {
    maxConstantBytes: limits.maxConstantBytes,
  });
}

/**
 * Opens a described model (`model.json` + its ONNX or TFLite file + labels) for `task`.
 * @throws VaccelError `EINVAL` when the descriptor, model or labels do not fit together or the
 * model is for another task.
 */
export async function openDescribedModel(
  blobs: readonly ResourceBlob[],
  source: SessionSource,
  what: string,
  task: ModelDescriptor['task'],
  limits: Pick<OffThreadOptions, 'maxConstantBytes'> = {},
): Promise<DescribedModel> {
  const byName = new Map(blobs.map((b) => [b.name, b.data]));
  const json = byName.get(DESCRIPTOR);
  if (!json)
    throw new VaccelError('EINVAL', `${what}: ${task} needs a ${DESCRIPTOR} descriptor beside the ONNX file`);
  const descriptor = parseDescriptor(json);
  if (descriptor.task !== task)
    throw new VaccelError(
      'EINVAL',
      `${what}: ${descriptor.name} is a ${descriptor.task} model, not a ${task} model`,
    );
  const onnx = byName.get(descriptor.file);
  if (!onnx)
    throw new VaccelError('EINVAL', `${what}: ${DESCRIPTOR} names ${descriptor.file}, which is missing`);
  const labelBytes = descriptor.labels === undefined ? undefined : byName.get(descriptor.labels);
  if (descriptor.labels !== undefined && !labelBytes)
    throw new VaccelError(
      'EINVAL',
      `${what}: ${DESCRIPTOR} names labels ${descriptor.labels}, which are missing`,
    );
  const session = await openerOf(source)(await onnxOf(descriptor.file, onnx, what, limits), what);
  const inputName = descriptor.input.name ?? session.inputNames[0]!;
  if (!session.inputNames.includes(inputName)) {
    await session.release();
    throw new VaccelError('EINVAL', `${what}: the model has no input ${inputName}`);
  }
  return { descriptor, labels: labelBytes ? parseLabels(labelBytes) : [], session, inputName };
}

/** A loaded classifier. */
export class Classifier {
  private constructor(
    readonly descriptor: ModelDescriptor,
    readonly labels: readonly string[],
    private readonly session: ModelSession,
    private readonly inputName: string,
    private readonly outputName: string,
  ) {}

  /**
   * Loads a classifier from a model's blobs: `model.json` + its ONNX file + labels. `source` says
   * where its session runs: settings for this process, or an opener (see {@link SessionSource}).
   * @throws VaccelError `EINVAL` when the descriptor, model or labels do not fit together.
   */
  static async load(
    blobs: readonly ResourceBlob[],
    source: SessionSource,
    what = 'model',
    limits: Pick<OffThreadOptions, 'maxConstantBytes'> = {},
  ): Promise<Classifier> {
    const model = await openDescribedModel(blobs, source, what, 'classification', limits);
    const outputName = model.descriptor.outputName ?? model.session.outputNames[0]!;
    if (!model.session.outputNames.includes(outputName)) {
      await model.session.release();
      throw new VaccelError('EINVAL', `${what}: the model has no output ${outputName}`);
    }
    return new Classifier(model.descriptor, model.labels, model.session, model.inputName, outputName);
  }

  /**
   * Classifies encoded image bytes. `options.signal` stops the work (a contained run at once);
   * `options.logger` hears what a model runner said before it died.
   * @throws VaccelError `EINVAL` for undecodable images or a model whose output is not float32.
   */
  async classify(image: Uint8Array, topK: number, options: ModelCallOptions = {}): Promise<ClassifyResult> {
    const started = performance.now();
    const input = await preprocess(image, this.descriptor.input, options.signal);
    const inferStart = performance.now();
    const out = await this.session.run(
      { [this.inputName]: imageTensor(input.tensor, input.dims) },
      [this.outputName],
      options,
    );
    const inference = performance.now() - inferStart;
    const output = out[this.outputName];
    if (output?.dtype !== 'float32' || !(output.data instanceof Float32Array))
      throw new VaccelError(
        'EINVAL',
        `${this.descriptor.name}: output ${this.outputName} is ${output?.dtype ?? 'missing'}, not float32`,
      );
    const scores = output.data;
    const classes = softmaxTopK(scores, this.descriptor.outputKind === 'logits', topK).map(
      ({ index, score }) => ({
        label: this.labels[index] ?? `class ${index}`,
        index,
        score,
      }),
    );
    return {
      classes,
      timings: {
        decode: input.decodeMs,
        normalize: input.normalizeMs,
        inference,
        total: performance.now() - started,
      },
    };
  }

  /** Frees the ONNX Runtime session. */
  async release(): Promise<void> {
    await this.session.release();
  }
}

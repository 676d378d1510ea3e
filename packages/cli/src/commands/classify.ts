import { readFile, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { isVaccelErrorCode, ResourceType, type Vaccel, VaccelError } from '@vaccel/core';
import { parse, positiveInt, printJson, println, UsageError } from '../io.js';
import { openRuntime } from '../runtime.js';
import { COMMON_HELP, type Command } from './command.js';

export const classifyCommand: Command = {
  name: 'classify',
  summary: 'classify an image (top-k labels with scores)',
  help: `Usage: vaccel classify [--top K] [--model PATH] IMAGE [options]

Classifies a JPEG, PNG, WebP, GIF, TIFF or AVIF image with the best plugin that provides image
classification and prints the top-K labels with their scores and the time taken. Embedded, the
ONNX plugin runs it with its shipped model (MobileNetV2 image moderation: Drawing, Hentai,
Neutral, Porn, Sexy); with VACCEL_RPC_ADDRESS set, the agent runs it. An upstream vAccel
agent has no top-K classification: its image_classify runs instead, and its text is printed.

  --top K        how many classes to print (default 5)
  --model PATH   an ONNX classifier: its folder, or its model.json descriptor (which names the
                 .onnx file and labels), e.g. ../shared/models/darknet-tiny-imagenet

${COMMON_HELP}`,
  async run(args, io) {
    const { values, positionals } = parse(args, { top: { type: 'string' }, model: { type: 'string' } }, true);
    if (positionals.length !== 1) throw new UsageError('classify takes exactly one IMAGE');
    const path = positionals[0]!;
    const topK = positiveInt(values.top, 'top', 5);
    const image = await readImage(path);
    await using vaccel = await openRuntime(io, values);
    await using session = await vaccel.createSession();
    await using model = values.model === undefined ? undefined : await openModel(vaccel, values.model);
    if (model) session.registerResource(model);
    const started = performance.now();
    const result = await provided(vaccel, 'image classification', () =>
      session.imageClassify(image, { topK, ...(model ? { model } : {}) }),
    );
    const ms = performance.now() - started;
    if (values.json) {
      printJson(io, { image: path, ms, classes: result });
      return 0;
    }
    if (result[0]?.upstream)
      // An upstream agent: its image_classify text, with no classes or scores.
      println(io, `upstream agent, image_classify: ${result[0].label || '(no text)'}`);
    else
      for (const { label, score } of result)
        println(io, `${(score * 100).toFixed(2).padStart(6)}%  ${label}`);
    println(io, `(${ms.toFixed(1)} ms)`);
    return 0;
  },
};

/** Reads an image file. @throws VaccelError `ENOENT` naming the file. */
export async function readImage(path: string): Promise<Uint8Array> {
  try {
    return new Uint8Array(await readFile(path));
  } catch (cause) {
    throw new VaccelError('ENOENT', `cannot read image ${path}: ${(cause as Error).message}`, { cause });
  }
}

/** Runs `call`, turning ENOTSUP into "no plugin provides <what>", with the plugins loaded. */
export async function provided<T>(vaccel: Vaccel, what: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    if (!isVaccelErrorCode(error, 'ENOTSUP')) throw error;
    const loaded =
      vaccel
        .plugins()
        .map((p) => p.name)
        .join(', ') || 'none';
    throw new VaccelError('ENOTSUP', `no plugin provides ${what} (plugins loaded: ${loaded})`, {
      cause: error,
    });
  }
}

/** A model resource from a folder or its model.json: the descriptor, the ONNX file and labels it names. */
export async function openModel(vaccel: Vaccel, path: string) {
  let dir = path;
  try {
    if (!(await stat(path)).isDirectory()) dir = dirname(path);
  } catch (cause) {
    throw new VaccelError('ENOENT', `cannot read model ${path}: ${(cause as Error).message}`, { cause });
  }
  const descriptorPath = join(dir, 'model.json');
  let descriptor: { file?: unknown; labels?: unknown };
  try {
    descriptor = JSON.parse(await readFile(descriptorPath, 'utf8'));
  } catch (cause) {
    throw new VaccelError(
      'EINVAL',
      `model ${path} needs a readable model.json: ${(cause as Error).message}`,
      {
        cause,
      },
    );
  }
  const names = [descriptor.file ?? 'model.onnx', descriptor.labels].filter((n) => typeof n === 'string');
  return vaccel.createResource({
    type: ResourceType.Model,
    paths: [descriptorPath, ...names.map((name) => join(dir, name as string))],
  });
}

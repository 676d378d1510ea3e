import { readFile } from 'node:fs/promises';
import { isVaccelErrorCode, VaccelError } from '@vaccel/core';
import { parse, positiveInt, printJson, println, UsageError } from '../io.js';
import { openRuntime } from '../runtime.js';
import { COMMON_HELP, type Command } from './command.js';

export const classifyCommand: Command = {
  name: 'classify',
  summary: 'classify an image (top-k labels with scores)',
  help: `Usage: vaccel classify [--top K] IMAGE [options]

Classifies a JPEG, PNG or WebP image with the best plugin that provides image classification
and prints the top-K labels with their scores and the time taken.

  --top K      how many classes to print (default 5)

${COMMON_HELP}`,
  async run(args, io) {
    const { values, positionals } = parse(args, { top: { type: 'string' } }, true);
    if (positionals.length !== 1) throw new UsageError('classify takes exactly one IMAGE');
    const path = positionals[0]!;
    const topK = positiveInt(values.top, 'top', 5);
    let image: Uint8Array;
    try {
      image = new Uint8Array(await readFile(path));
    } catch (cause) {
      throw new VaccelError('ENOENT', `cannot read image ${path}: ${(cause as Error).message}`, { cause });
    }
    await using vaccel = await openRuntime(io, values);
    await using session = await vaccel.createSession();
    const started = performance.now();
    let result: Awaited<ReturnType<typeof session.imageClassify>>;
    try {
      result = await session.imageClassify(image, { topK });
    } catch (error) {
      if (!isVaccelErrorCode(error, 'ENOTSUP')) throw error;
      const loaded =
        vaccel
          .plugins()
          .map((p) => p.name)
          .join(', ') || 'none';
      throw new VaccelError(
        'ENOTSUP',
        `no plugin provides image classification (plugins loaded: ${loaded})`,
        { cause: error },
      );
    }
    const ms = performance.now() - started;
    if (values.json) {
      printJson(io, { image: path, ms, classes: result });
      return 0;
    }
    for (const { label, score } of result) println(io, `${(score * 100).toFixed(2).padStart(6)}%  ${label}`);
    println(io, `(${ms.toFixed(1)} ms)`);
    return 0;
  },
};

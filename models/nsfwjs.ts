/**
 * Reads the MobileNetV2 moderation model out of the pinned npm package `nsfwjs@4.4.0`: its
 * `model.json` and weight shard are UMD modules (the topology + manifest object, and a base64
 * string per shard).
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { convertLayersModel, type TfjsLayersModel } from '@vaccel/tf2onnx';

export const NSFWJS_VERSION = '4.4.0';
export const LABELS = ['Drawing', 'Hentai', 'Neutral', 'Porn', 'Sexy'];

const require = createRequire(import.meta.url);

/** The TF.js model and its concatenated weight bytes. @throws when the installed nsfwjs is not the pinned one. */
export function loadNsfwjsModel(): { model: TfjsLayersModel; weights: Uint8Array } {
  // The package's exports map hides dist/models, so resolve its root and load the files by path.
  const root = dirname(dirname(dirname(require.resolve('nsfwjs'))));
  const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };
  if (version !== NSFWJS_VERSION)
    throw new Error(`nsfwjs ${version} is installed; the model is pinned to ${NSFWJS_VERSION}`);
  const dir = join(root, 'dist', 'models', 'mobilenet_v2');
  const model = require(join(dir, 'model.min.js')) as TfjsLayersModel;
  const shards = model.weightsManifest.flatMap((group) => group.paths);
  const parts = shards.map((path) =>
    Buffer.from(require(join(dir, `${path.replace(/\.bin$/, '')}.min.js`)) as string, 'base64'),
  );
  return { model, weights: new Uint8Array(Buffer.concat(parts)) };
}

/** The default model's ONNX bytes, converted from the pinned package (deterministic). */
export function convertDefaultModel(): Uint8Array {
  const { model, weights } = loadNsfwjsModel();
  return convertLayersModel(model, weights, {
    name: 'mobilenet_v2_moderation',
    docString: `MobileNetV2 image-moderation classifier from nsfwjs@${NSFWJS_VERSION} (MIT)`,
  });
}

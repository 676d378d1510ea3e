/**
 * Rebuilds the default classification model from the pinned npm package nsfwjs@4.4.0 (MIT):
 * TF.js layers → ONNX with our converter, into packages/plugin-onnx/models/mobilenet-v2-moderation/.
 *
 *   npm run model:build    convert and write model.onnx, labels.txt, model.json; print the sha256
 *   npm run model:check    convert in memory and check the bytes against models/SHA256SUMS
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { convertDefaultModel, LABELS, NSFWJS_VERSION } from './nsfwjs.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const out = join(here, '..', 'packages', 'plugin-onnx', 'models', 'mobilenet-v2-moderation');
const sums = join(here, 'SHA256SUMS');

const descriptor = {
  name: 'mobilenet-v2-moderation',
  task: 'image-classification',
  source: `npm nsfwjs@${NSFWJS_VERSION} dist/models/mobilenet_v2 (MIT), converted by models/build-default-model.ts`,
  file: 'model.onnx',
  labels: 'labels.txt',
  input: {
    name: 'input_1',
    layout: 'NHWC',
    shape: [1, 224, 224, 3],
    dtype: 'float32',
    color: 'RGB',
    resize: 'bilinear, stretch to 224x224',
    scale: 1 / 255,
    mean: [0, 0, 0],
    std: [1, 1, 1],
  },
  output: { name: 'output', shape: [1, LABELS.length], kind: 'probabilities' },
};

const onnx = convertDefaultModel();
const sha = createHash('sha256').update(onnx).digest('hex');
if (process.argv.includes('--check')) {
  const expected = /^([0-9a-f]{64})\s+\S*model\.onnx$/m.exec(readFileSync(sums, 'utf8'))?.[1];
  const committed = createHash('sha256')
    .update(readFileSync(join(out, 'model.onnx')))
    .digest('hex');
  console.log(`rebuilt ${sha}\ncommitted ${committed}\nexpected ${expected}`);
  process.exitCode = sha === expected && committed === expected ? 0 : 1;
  if (process.exitCode) console.error('model.onnx does not match models/SHA256SUMS');
} else {
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'model.onnx'), onnx);
  writeFileSync(join(out, 'labels.txt'), `${LABELS.join('\n')}\n`);
  writeFileSync(join(out, 'model.json'), `${JSON.stringify(descriptor, null, 2)}\n`);
  writeFileSync(sums, `${sha}  packages/plugin-onnx/models/mobilenet-v2-moderation/model.onnx\n`);
  console.log(`wrote ${out} (model.onnx ${onnx.byteLength} bytes, sha256 ${sha})`);
}

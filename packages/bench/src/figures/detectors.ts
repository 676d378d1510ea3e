/**
 * The detectors the accuracy figure measures: those @vaccel/plugin-onnx ships (its models folder),
 * and those that ship inside npm packages, made into model folders: read from node_modules,
 * nothing downloaded.
 *
 * objectron-ssd-oidv4: the SSD MobileNetV2 object detector (Open Images V4, 23 classes) that
 * `@mediapipe/objectron@0.4.1675468480` (Apache-2.0) packs into
 * `objectron_solution_packed_assets.data` (byte ranges from `objectron_solution_packed_assets_loader.js`),
 * run as MediaPipe's objectron graph runs it (modules/objectron/object_detection_oid_v4_cpu.pbtxt):
 * the photo stretched to 300×300, RGB, values to −1..1; raw SSD outputs decoded against the
 * SsdAnchorsCalculator anchors configured there (1917), sigmoid scores, background class 0 ignored.
 * @module
 */
import { readdirSync, readFileSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

/** A detector the ONNX plugin ships: a model folder whose model.json has `task: object-detection`. */
export interface Detector {
  name: string;
  dir: string;
  labels: Set<string>;
}

/** Every object-detection model in the plugin's models folder (the default detector first). */
export async function shippedDetectors(): Promise<Detector[]> {
  const { DEFAULT_VISION_MODELS } = await import('@vaccel/plugin-onnx');
  const root = dirname(DEFAULT_VISION_MODELS.detect);
  const detectors: Detector[] = [];
  for (const entry of readdirSync(root, { withFileTypes: true })) {
    if (!entry.isDirectory()) continue;
    const dir = join(root, entry.name);
    let descriptor: { name?: string; task?: string; labels?: string };
    try {
      descriptor = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8'));
    } catch {
      continue; // not a described model (or one being written right now)
    }
    if (descriptor.task !== 'object-detection') continue;
    const labels = readFileSync(join(dir, descriptor.labels ?? 'labels.txt'), 'utf8')
      .split('\n')
      .map((line) => line.trim())
      .filter(Boolean);
    detectors.push({ name: descriptor.name ?? entry.name, dir, labels: new Set(labels) });
  }
  const isDefault = (d: Detector) => join(d.dir, '/') === join(DEFAULT_VISION_MODELS.detect, '/');
  return detectors.sort(
    (a, b) => Number(isDefault(b)) - Number(isDefault(a)) || a.name.localeCompare(b.name),
  );
}

/** The pinned package. */
export const OBJECTRON_PACKAGE = '@mediapipe/objectron';
export const OBJECTRON_VERSION = '0.4.1675468480';

/** The packed file's parts (`objectron_solution_packed_assets_loader.js`): name, start, end. */
const PACKED = 'objectron_solution_packed_assets.data';
const LABELMAP = { name: 'object_detection_oidv4_labelmap.txt', start: 0, end: 184 };
const MODEL = { name: 'object_detection_ssd_mobilenetv2_oidv4_fp16.tflite', start: 184, end: 9987912 };

/**
 * Open Images classes of the label map spelled as COCO spells the same class, so that the accuracy
 * figure matches them with examples/eval's labels; the others keep their own names.
 */
export const OIDV4_TO_COCO: Readonly<Record<string, string>> = {
  Person: 'person',
  Bicycle: 'bicycle',
  Laptop: 'laptop',
  Chair: 'chair',
  Cat: 'cat',
  Bottle: 'bottle',
  Dog: 'dog',
  Book: 'book',
  Car: 'car',
  Mug: 'cup',
  'Coffee cup': 'cup',
  Cattle: 'cow',
  Table: 'dining table',
  'Computer monitor': 'tv',
  'Computer mouse': 'mouse',
};

/** The descriptor of the objectron SSD, as plugin-onnx reads it. */
export const OBJECTRON_SSD_DESCRIPTOR = {
  name: 'objectron-ssd-oidv4',
  task: 'object-detection',
  source: `npm ${OBJECTRON_PACKAGE}@${OBJECTRON_VERSION} ${PACKED} bytes ${MODEL.start}–${MODEL.end} (${MODEL.name}) and ${LABELMAP.start}–${LABELMAP.end} (${LABELMAP.name}, classes renamed to COCO's where COCO has them); MediaPipe Objectron's SSD MobileNetV2 Open Images V4 detector (Google), decoded as modules/objectron/object_detection_oid_v4_cpu.pbtxt configures it`,
  license: 'Apache-2.0',
  file: MODEL.name,
  labels: 'labels.txt',
  input: {
    name: 'normalized_input_image_tensor',
    layout: 'NHWC',
    shape: [1, 300, 300, 3],
    dtype: 'float32',
    color: 'RGB',
    // ImageTransformationCalculator's default scale mode (STRETCH), then TfLiteConverterCalculator's
    // zero_center: (v − 127.5) / 127.5, i.e. −1..1.
    resize: 'bilinear, stretch',
    scale: 1,
    mean: [127.5, 127.5, 127.5],
    std: [127.5, 127.5, 127.5],
  },
  output: {
    decoder: 'ssd',
    boxesOutput: 'raw_outputs/box_encodings',
    scoresOutput: 'raw_outputs/class_predictions',
    activation: 'sigmoid',
    background: 0,
    boxScale: [10, 10, 5, 5],
    boxOrder: 'yxhw',
    anchors: {
      numLayers: 6,
      minScale: 0.2,
      maxScale: 0.95,
      strides: [16, 32, 64, 128, 256, 512],
      aspectRatios: [1.0, 2.0, 0.5, 3.0, 0.3333],
      reduceBoxesInLowestLayer: true,
      interpolatedScaleAspectRatio: 1.0,
      offsetX: 0.5,
      offsetY: 0.5,
    },
  },
} as const;

/**
 * The objectron SSD's .tflite bytes and its label map, read from the installed package.
 * @throws when the package is missing, not the pinned version, or its packed file is not as expected.
 */
export async function readObjectronSsd(): Promise<{ tflite: Uint8Array; labelmap: string[] }> {
  const require = createRequire(import.meta.url);
  const root = dirname(require.resolve(`${OBJECTRON_PACKAGE}/package.json`));
  const { version } = JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as { version: string };
  if (version !== OBJECTRON_VERSION)
    throw new Error(
      `${OBJECTRON_PACKAGE} ${version} is installed; the detector is pinned to ${OBJECTRON_VERSION}`,
    );
  const packed = new Uint8Array(await readFile(join(root, PACKED)));
  if (packed.byteLength !== MODEL.end)
    throw new Error(`${PACKED} is ${packed.byteLength} bytes, not the ${MODEL.end} of ${OBJECTRON_VERSION}`);
  const tflite = packed.slice(MODEL.start, MODEL.end);
  if (String.fromCharCode(...tflite.subarray(4, 8)) !== 'TFL3')
    throw new Error(`${PACKED} bytes ${MODEL.start}– are not a TFLite model`);
  const labelmap = new TextDecoder()
    .decode(packed.subarray(LABELMAP.start, LABELMAP.end))
    .split('\n')
    .filter((line) => line !== '');
  return { tflite, labelmap };
}

/**
 * Writes the objectron SSD's model folder into `dir`: the .tflite (converted to ONNX when the
 * plugin loads it), labels.txt (class 0 is the background) and model.json.
 */
export async function writeObjectronSsd(dir: string): Promise<Detector> {
  const { tflite, labelmap } = await readObjectronSsd();
  const labels = labelmap.map((name, i) => (i === 0 ? 'background' : (OIDV4_TO_COCO[name] ?? name)));
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, MODEL.name), tflite);
  await writeFile(join(dir, 'labels.txt'), `${labels.join('\n')}\n`);
  await writeFile(join(dir, 'model.json'), `${JSON.stringify(OBJECTRON_SSD_DESCRIPTOR, null, 2)}\n`);
  return { name: OBJECTRON_SSD_DESCRIPTOR.name, dir, labels: new Set(labels.slice(1)) };
}

/** Every detector a package ships, each written into its own folder under `tmpDir`. */
export async function packagedDetectors(tmpDir: string): Promise<Detector[]> {
  return [await writeObjectronSsd(join(tmpDir, OBJECTRON_SSD_DESCRIPTOR.name))];
}

/**
 * Face detection on photos with faces through the tflite ops: MediaPipe's BlazeFace short-range
 * detector (`face_detection_short_range.tflite` as @mediapipe/face_detection ships it), converted
 * to ONNX at load. The photos are prepared as MediaPipe's face_detection_short_range graph does
 * (ImageToTensorCalculator: keep_aspect_ratio, BORDER_ZERO, 128×128, float range [-1, 1]) and the
 * outputs decoded as its TensorsToDetectionsCalculator and NonMaxSuppressionCalculator are
 * configured there (SSD anchors, sigmoid scores clipped at 100, min score 0.5, weighted NMS at
 * IoU 0.3). The decoding below is a test oracle, kept here: nothing in src needs it. The raw
 * outputs also equal LiteRT.js's (the TFLite runtime, WASM) on the same input.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { ResourceType, tensor, Vaccel } from '@vaccel/core';
import { type InputSpec, onnxPlugin, preprocess } from '@vaccel/plugin-onnx';
import sharp from 'sharp';
import { runLiteRt } from '../../tf2onnx/test/litert.js';
import type { Rect } from '../src/preprocess.js';
import { photo } from './helpers.js';

const require = createRequire(import.meta.url);
const faceTflite = join(
  dirname(require.resolve('@mediapipe/face_detection/package.json')),
  'face_detection_short_range.tflite',
);
const evalPhoto = (name: string): Uint8Array =>
  new Uint8Array(readFileSync(new URL(`../../../examples/eval/${name}`, import.meta.url)));

/** BlazeFace's input side, in pixels: the anchors' and the box regressions' scale. */
const SIDE = 128;

/**
 * MediaPipe's preprocessing: scaled to fit 128×128 with the aspect ratio kept, centred, padded with
 * black (pixel 0, i.e. -1 after normalising), RGB, value / 127.5 − 1 (`scale`, then − mean / std).
 */
const blazeFaceInput: InputSpec = {
  layout: 'NHWC',
  width: SIDE,
  height: SIDE,
  color: 'RGB',
  scale: 1 / 127.5,
  mean: [1, 1, 1],
  std: [1, 1, 1],
  dtype: 'float32',
  kernel: 'linear',
  fit: 'letterbox',
};

/** An SSD anchor's centre, normalised to the input (0–1); its size is fixed at 1 × 1. */
interface Anchor {
  x: number;
  y: number;
}

/**
 * MediaPipe's SsdAnchorsCalculator as face_detection_short_range configures it: 4 layers of
 * strides 8, 16, 16, 16, one aspect ratio (1) plus one interpolated scale per layer, so 2 anchors
 * per layer; layers of the same stride share their grid. Stride 8: 16×16 cells × 2 = 512; stride
 * 16: 8×8 cells × 6 = 384; 896 in all, in the order the model emits its boxes (cell by cell, row
 * by row). anchor_offset 0.5 puts each at its cell's centre; fixed_anchor_size makes the sizes 1.
 */
function shortRangeAnchors(): Anchor[] {
  const strides = [8, 16, 16, 16];
  const anchors: Anchor[] = [];
  for (let layer = 0; layer < strides.length; ) {
    const stride = strides[layer]!;
    let perCell = 0;
    for (; layer < strides.length && strides[layer] === stride; layer++) perCell += 2;
    const cells = Math.ceil(SIDE / stride);
    for (let y = 0; y < cells; y++)
      for (let x = 0; x < cells; x++)
        for (let k = 0; k < perCell; k++) anchors.push({ x: (x + 0.5) / cells, y: (y + 0.5) / cells });
  }
  return anchors;
}

/** A box normalised to the model input (0–1), corners. */
interface Box {
  xmin: number;
  ymin: number;
  xmax: number;
  ymax: number;
}

interface Face {
  score: number;
  box: Box;
}

const sigmoid = (v: number): number => 1 / (1 + Math.exp(-v));

/**
 * TensorsToDetectionsCalculator with face_detection_short_range's options: per anchor, 16 values
 * (reverse_output_order: x centre, y centre, width, height, then 6 keypoints, unused here), each
 * regression divided by the box scale 128 and added to its anchor's centre; the score a sigmoid of
 * the logit clipped to ±100; boxes under min_score_thresh 0.5 dropped.
 */
function decodeFaces(regressors: Float32Array, logits: Float32Array, anchors: readonly Anchor[]): Face[] {
  const faces: Face[] = [];
  anchors.forEach((anchor, i) => {
    const score = sigmoid(Math.min(100, Math.max(-100, logits[i]!)));
    if (score < 0.5) return;
    const r = regressors.subarray(i * 16, i * 16 + 4);
    const cx = r[0]! / SIDE + anchor.x;
    const cy = r[1]! / SIDE + anchor.y;
    const w = r[2]! / SIDE;
    const h = r[3]! / SIDE;
    faces.push({ score, box: { xmin: cx - w / 2, ymin: cy - h / 2, xmax: cx + w / 2, ymax: cy + h / 2 } });
  });
  return faces;
}

function iou(a: Box, b: Box): number {
  const w = Math.min(a.xmax, b.xmax) - Math.max(a.xmin, b.xmin);
  const h = Math.min(a.ymax, b.ymax) - Math.max(a.ymin, b.ymin);
  if (w <= 0 || h <= 0) return 0;
  const inter = w * h;
  const area = (c: Box) => (c.xmax - c.xmin) * (c.ymax - c.ymin);
  return inter / (area(a) + area(b) - inter);
}

/**
 * NonMaxSuppressionCalculator's WEIGHTED algorithm at IoU 0.3: the best remaining face and every
 * remaining one overlapping it by more than 0.3 become one face, the best one's score and the
 * score-weighted mean of their boxes; best first.
 */
function weightedNms(faces: readonly Face[]): Face[] {
  let remaining = [...faces].sort((a, b) => b.score - a.score);
  const kept: Face[] = [];
  while (remaining.length > 0) {
    const best = remaining[0]!;
    const group = remaining.filter((f) => iou(best.box, f.box) > 0.3);
    remaining = remaining.filter((f) => !group.includes(f));
    const total = group.reduce((s, f) => s + f.score, 0);
    const mean = (key: keyof Box) => group.reduce((s, f) => s + f.box[key] * f.score, 0) / total;
    kept.push({
      score: best.score,
      box: { xmin: mean('xmin'), ymin: mean('ymin'), xmax: mean('xmax'), ymax: mean('ymax') },
    });
  }
  return kept;
}

/** A box in the model input (normalised) back to the photo's pixels, through the letterbox. */
function toPhoto(box: Box, content: Rect, source: { width: number; height: number }): Rect {
  const x = (v: number) => ((v * SIDE - content.x) / content.width) * source.width;
  const y = (v: number) => ((v * SIDE - content.y) / content.height) * source.height;
  return {
    x: x(box.xmin),
    y: y(box.ymin),
    width: x(box.xmax) - x(box.xmin),
    height: y(box.ymax) - y(box.ymin),
  };
}

/**
 * The photos, each with its face as measured by hand: the photo enlarged 3× with a 10-pixel grid
 * drawn on it (sharp, SVG overlay), the skin of the face read off the grid from cheek (or ear) to
 * cheek (or nose tip) and hairline to chin, in the photo's pixels. `face: undefined`: no face.
 */
const photos: { name: string; image: () => Promise<Uint8Array>; face?: Rect }[] = [
  // Eileen Collins, frontal: cheeks x 180–272, hairline y 75 to chin y 180.
  {
    name: 'astronaut.jpg',
    image: async () => evalPhoto('astronaut.jpg'),
    face: { x: 180, y: 75, width: 92, height: 105 },
  },
  // The cameraman in profile, facing right, his eye at the camera's viewfinder: ear x 183 to nose
  // tip x 257, hairline y 112 to chin y 197 (grey, as its file is: the model sees R = G = B).
  {
    name: 'camera.jpg',
    image: async () => evalPhoto('camera.jpg'),
    face: { x: 183, y: 112, width: 74, height: 85 },
  },
  // A landscape crop of the astronaut (x 100–500, y 20–270, PNG: lossless): the letterbox pads it
  // above and below, and the box must come back through it. The face is the one above, shifted.
  {
    name: 'astronaut crop 400×250',
    image: async () =>
      new Uint8Array(
        await sharp(evalPhoto('astronaut.jpg'))
          .extract({ left: 100, top: 20, width: 400, height: 250 })
          .png()
          .toBuffer(),
      ),
    face: { x: 80, y: 55, width: 92, height: 105 },
  },
  { name: 'eagle.jpg', image: async () => photo('eagle.jpg') },
  {
    name: 'uniform grey 640×480',
    image: async () =>
      new Uint8Array(
        await sharp({
          create: { width: 640, height: 480, channels: 3, background: { r: 128, g: 128, b: 128 } },
        })
          .png()
          .toBuffer(),
      ),
  },
];

test('tflite ops run BlazeFace short range: faces found where they are, none where there is none', async (t) => {
  await using vaccel = await Vaccel.open({ plugins: [onnxPlugin({ threads: 2 })] });
  await using session = await vaccel.createSession();
  await using model = await vaccel.createResource({ type: ResourceType.Model, paths: faceTflite });
  session.registerResource(model);
  const info = await session.modelLoad(model, { tflite: true });
  assert.deepEqual(info.inputs, [{ name: 'input', dtype: 'float32', dims: [1, SIDE, SIDE, 3] }]);
  assert.deepEqual(info.outputs, [
    { name: 'regressors', dtype: 'float32', dims: [1, 896, 16] },
    { name: 'classificators', dtype: 'float32', dims: [1, 896, 1] },
  ]);
  const anchors = shortRangeAnchors();
  assert.equal(anchors.length, 896);

  for (const p of photos) {
    const pre = await preprocess(await p.image(), blazeFaceInput);
    const outputs = await session.modelRun(
      model,
      { input: tensor('float32', [1, SIDE, SIDE, 3], pre.tensor as Float32Array) },
      { tflite: true },
    );
    const regressors = outputs.regressors!.data as Float32Array;
    const logits = outputs.classificators!.data as Float32Array;
    const faces = weightedNms(decodeFaces(regressors, logits, anchors)).map((f) => ({
      score: f.score,
      box: toPhoto(f.box, pre.content, pre.source),
    }));
    const top = sigmoid(Math.max(...logits));
    t.diagnostic(
      `${p.name}: highest anchor score ${top.toFixed(3)}; ${faces.length} face(s) ${faces
        .map(
          ({ score, box: b }) =>
            `${score.toFixed(3)} [x ${b.x.toFixed(1)}, y ${b.y.toFixed(1)}, ${b.width.toFixed(1)}×${b.height.toFixed(1)}]`,
        )
        .join(', ')}`,
    );
    if (!p.face) {
      assert.equal(faces.length, 0, `${p.name}: no face above 0.5`);
      continue;
    }
    assert.ok(faces.length >= 1, `${p.name}: a face is found`);
    // Each photo shows one face: NMS merges the anchors that found it into one box (decoding the
    // regressions in the wrong order leaves boxes apart that NMS then keeps).
    assert.equal(faces.length, 1, `${p.name}: one face`);
    const { box } = faces[0]!;
    const [cx, cy] = [box.x + box.width / 2, box.y + box.height / 2];
    const hand = p.face;
    assert.ok(
      cx >= hand.x && cx <= hand.x + hand.width && cy >= hand.y && cy <= hand.y + hand.height,
      `${p.name}: the best box's centre (${cx.toFixed(1)}, ${cy.toFixed(1)}) is in the face`,
    );
    // Plausible size: BlazeFace's box spans roughly brows to chin, so between half and 1.5 times the
    // hand-measured face on each side, and about square.
    for (const [side, measured] of [
      [box.width, hand.width],
      [box.height, hand.height],
    ] as const)
      assert.ok(
        side > 0.5 * measured && side < 1.5 * measured,
        `${p.name}: box ${side.toFixed(1)} vs face ${measured}`,
      );
    assert.ok(box.width / box.height > 0.7 && box.width / box.height < 1.4, `${p.name}: box about square`);
  }
  await session.modelUnload(model, { tflite: true });
});

test('BlazeFace short range: the ONNX outputs equal LiteRT.js running the .tflite on the same photos', async (t) => {
  await using vaccel = await Vaccel.open({ plugins: [onnxPlugin({ threads: 2 })] });
  await using session = await vaccel.createSession();
  await using model = await vaccel.createResource({ type: ResourceType.Model, paths: faceTflite });
  session.registerResource(model);
  await session.modelLoad(model, { tflite: true });
  const bytes = new Uint8Array(readFileSync(faceTflite));
  for (const name of ['astronaut.jpg', 'camera.jpg']) {
    const x = (await preprocess(evalPhoto(name), blazeFaceInput)).tensor as Float32Array;
    const ours = await session.modelRun(
      model,
      { input: tensor('float32', [1, SIDE, SIDE, 3], x) },
      { tflite: true },
    );
    const [regressors, logits] = await runLiteRt(bytes, [{ data: x, shape: [1, SIDE, SIDE, 3] }]);
    for (const [what, a, b, tolerance] of [
      ['regressors', ours.regressors!.data as Float32Array, regressors!, 1e-3],
      ['classificators', ours.classificators!.data as Float32Array, logits!, 1e-3],
    ] as const) {
      assert.equal(a.length, b.length, `${name} ${what}: sizes`);
      let error = 0;
      let magnitude = 0;
      for (let i = 0; i < a.length; i++) {
        error = Math.max(error, Math.abs(a[i]! - b[i]!));
        magnitude = Math.max(magnitude, Math.abs(b[i]!));
      }
      t.diagnostic(
        `${name} ${what}: max abs error ${error.toExponential(2)} (max |LiteRT| ${magnitude.toFixed(2)})`,
      );
      assert.ok(error < tolerance, `${name} ${what}: max abs error ${error}`);
    }
  }
  await session.modelUnload(model, { tflite: true });
});

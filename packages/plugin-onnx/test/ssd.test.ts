/**
 * The `ssd` decoder: raw SSD outputs (box encodings against generated anchors, class scores with a
 * background class). The anchors as MediaPipe's SsdAnchorsCalculator makes them, checked by hand
 * for the two layouts MediaPipe uses (Objectron's SSD MobileNetV2, BlazeFace); one encoding decoded
 * by hand; the descriptor's errors. The decoder on a real model, the objectron SSD that
 * `@mediapipe/objectron` packs: packages/bench/test/detectors.test.ts.
 */
import assert from 'node:assert/strict';
import { suite, test } from 'node:test';
import { VaccelError } from '@vaccel/core';
import { parseDescriptor, type SsdDecoderSpec, ssdAnchors } from '@vaccel/plugin-onnx';
import { decodeSsd, type Frame, ssdAnchorCount } from '../src/decoders.js';

/**
 * Objectron's SSD anchors as modules/objectron/object_detection_oid_v4_cpu.pbtxt configures
 * SsdAnchorsCalculator (the proto's defaults for the rest).
 */
const OBJECTRON_ANCHORS = {
  minScale: 0.2,
  maxScale: 0.95,
  strides: [16, 32, 64, 128, 256, 512],
  aspectRatios: [1, 2, 0.5, 3, 0.3333],
  reduceBoxesInLowestLayer: true,
  interpolatedScaleAspectRatio: 1,
  offsetX: 0.5,
  offsetY: 0.5,
};

/** An SSD detector's descriptor, with `output` fields replaced. */
const ssdDescriptor = (output: Record<string, unknown> = {}, task = 'object-detection') => ({
  name: 'ssd-test',
  task,
  file: 'model.tflite',
  labels: 'labels.txt',
  input: { layout: 'NHWC', shape: [1, 300, 300, 3], dtype: 'float32', color: 'RGB' },
  output: {
    decoder: 'ssd',
    boxesOutput: 'raw_outputs/box_encodings',
    scoresOutput: 'raw_outputs/class_predictions',
    anchors: OBJECTRON_ANCHORS,
    ...output,
  },
});

/** The objectron SSD's decoder, as a descriptor gives it. */
const objectronSpec = () => parseDescriptor(JSON.stringify(ssdDescriptor())).decoder as SsdDecoderSpec;

const close = (actual: number, expected: number, what: string) =>
  assert.ok(Math.abs(actual - expected) < 1e-5, `${what}: ${actual}, expected ${expected}`);

suite('ssd anchors', () => {
  test('objectron: 1917 anchors, laid out as SsdAnchorsCalculator lays them', () => {
    const spec = objectronSpec();
    const anchors = ssdAnchors(spec.anchors);
    // Stride 16: ⌈300/16⌉ = 19, 19×19 cells × 3 (the reduced lowest layer); strides 32…512: 10, 5,
    // 3, 2, 1 cells a side × (5 ratios + 1 interpolated).
    assert.equal(anchors.length, 19 * 19 * 3 + (100 + 25 + 9 + 4 + 1) * 6);
    assert.equal(anchors.length, 1917);
    assert.equal(ssdAnchorCount(spec.anchors), 1917);
    const expect = (i: number, cx: number, cy: number, w: number, h: number) => {
      const a = anchors[i]!;
      close(a.cx, cx, `anchor ${i} cx`);
      close(a.cy, cy, `anchor ${i} cy`);
      close(a.w, w, `anchor ${i} w`);
      close(a.h, h, `anchor ${i} h`);
    };
    // Cell (0, 0) of 19: centre 0.5/19; (scale 0.1, ratio 1), then the first layer's scale 0.2 at
    // ratios 2 (w = 0.2·√2, h = 0.2/√2) and 0.5.
    expect(0, 0.5 / 19, 0.5 / 19, 0.1, 0.1);
    expect(1, 0.5 / 19, 0.5 / 19, 0.2 * Math.SQRT2, 0.2 / Math.SQRT2);
    expect(2, 0.5 / 19, 0.5 / 19, 0.2 / Math.SQRT2, 0.2 * Math.SQRT2);
    // The next cell to the right: x moves, y does not.
    expect(3, 1.5 / 19, 0.5 / 19, 0.1, 0.1);
    // The first cell of the second row.
    expect(19 * 3, 0.5 / 19, 1.5 / 19, 0.1, 0.1);
    // Layer 1 (stride 32, 10×10): scale 0.2 + 0.75·1/5 = 0.35; ratio 3 is 0.35·√3 wide; the
    // interpolated anchor is √(0.35 · 0.5) square.
    expect(1083, 0.05, 0.05, 0.35, 0.35);
    expect(1083 + 3, 0.05, 0.05, 0.35 * Math.sqrt(3), 0.35 / Math.sqrt(3));
    expect(1083 + 5, 0.05, 0.05, Math.sqrt(0.35 * 0.5), Math.sqrt(0.35 * 0.5));
    // The last: one cell, scale 0.95, interpolated with 1.
    expect(1916, 0.5, 0.5, Math.sqrt(0.95), Math.sqrt(0.95));
  });

  test('layers of one stride share a grid, as BlazeFace short range lays them (896)', () => {
    const anchors = ssdAnchors({
      inputWidth: 128,
      inputHeight: 128,
      minScale: 0.1484375,
      maxScale: 0.75,
      strides: [8, 16, 16, 16],
      aspectRatios: [1],
      reduceBoxesInLowestLayer: false,
      interpolatedScaleAspectRatio: 1,
      offsetX: 0.5,
      offsetY: 0.5,
      fixedAnchorSize: true,
    });
    // Stride 8: 16×16 cells × 2; stride 16: 8×8 cells × 6 (3 layers × 2), each cell's 6 together.
    assert.equal(anchors.length, 16 * 16 * 2 + 8 * 8 * 6);
    for (let i = 512; i < 518; i++) assert.deepEqual(anchors[i], { cx: 0.5 / 8, cy: 0.5 / 8, w: 1, h: 1 });
    assert.deepEqual(anchors[518], { cx: 1.5 / 8, cy: 0.5 / 8, w: 1, h: 1 });
  });

  test('decoding an encoding: (ty, tx, th, tw) against the anchor, y first', () => {
    const spec = objectronSpec();
    const anchors = ssdAnchors(spec.anchors);
    const n = anchors.length;
    const boxes = new Float32Array(n * 4);
    const scores = new Float32Array(n * 24).fill(-10);
    // Anchor 1083 (centre 0.05, 0.05, 0.35 square): moved down by 0.35 (ty = 10), right by half
    // that (tx = 5), twice as high (th = 5 ln 2), as wide; class 4 at logit 0 (sigmoid 0.5), the
    // background higher (ignored).
    boxes.set([10, 5, 5 * Math.LN2, 0], 1083 * 4);
    scores[1083 * 24 + 4] = 0;
    scores[1083 * 24] = 5;
    // Anchor 7: a confident class but an encoding that overflows (exp(1e6)): no box, not NaN.
    boxes.set([0, 0, 1e6, 0], 7 * 4);
    scores[7 * 24 + 2] = 8;
    const frame: Frame = { inputWidth: 300, inputHeight: 300, width: 1000, height: 1000 };
    const found = decodeSsd(
      { dims: [1, n, 4], data: boxes },
      { dims: [1, n, 24], data: scores },
      anchors,
      spec,
      frame,
      0.3,
      [],
    );
    assert.equal(found.length, 1);
    const [d] = found;
    assert.equal(d!.index, 4);
    close(d!.score, 0.5, 'score');
    // Centre (0.05 + 0.175, 0.05 + 0.35) = (0.225, 0.4); 0.35 wide, 0.7 high; in 1000-pixel units.
    close(d!.box.x / 1000, 0.225 - 0.175, 'x');
    close(d!.box.y / 1000, 0.4 - 0.35, 'y');
    close(d!.box.width / 1000, 0.35, 'width');
    close(d!.box.height / 1000, 0.7, 'height');
  });
});

suite('ssd descriptors', () => {
  const described = (output: Record<string, unknown>, task = 'object-detection') =>
    JSON.stringify(ssdDescriptor(output, task));
  const rejects = (json: string, message: RegExp) =>
    assert.throws(
      () => parseDescriptor(json),
      (e: unknown) => e instanceof VaccelError && e.code === 'EINVAL' && message.test(e.message),
    );

  test('an ssd descriptor parses, with the defaults of MediaPipe and the TF Object Detection API; its file a .tflite', () => {
    const descriptor = parseDescriptor(JSON.stringify(ssdDescriptor()));
    assert.equal(descriptor.file, 'model.tflite');
    assert.deepEqual(descriptor.decoder, {
      kind: 'ssd',
      // The input's size and fixedAnchorSize (false) come from defaults.
      anchors: { inputWidth: 300, inputHeight: 300, ...OBJECTRON_ANCHORS, fixedAnchorSize: false },
      boxScale: [10, 10, 5, 5],
      boxOrder: 'yxhw',
      activation: 'sigmoid',
      background: 0,
      boxesOutput: 'raw_outputs/box_encodings',
      scoresOutput: 'raw_outputs/class_predictions',
    });
  });

  test('a bad ssd configuration is EINVAL naming the field', () => {
    const anchors = OBJECTRON_ANCHORS;
    rejects(described({ anchors: undefined }), /output\.anchors must be an object/);
    rejects(
      described({ anchors: { ...anchors, strides: [16, 0] } }),
      /output\.anchors\.strides must be positive integers/,
    );
    rejects(described({ anchors: { ...anchors, numLayers: 5 } }), /numLayers is 5 but strides has 6 layers/);
    // Bounded before any anchor is made: a guest's descriptor cannot ask for millions of them.
    rejects(
      described({ anchors: { ...anchors, strides: new Array(17).fill(16) } }),
      /strides has 17 layers, more than 16/,
    );
    rejects(
      described({ anchors: { ...anchors, aspectRatios: new Array(17).fill(1) } }),
      /aspectRatios has 17 ratios, more than 16/,
    );
    rejects(
      described({ anchors: { ...anchors, strides: [1] } }),
      /makes 270000 anchors, more than the 100000/,
    );
    rejects(described({ anchors: { ...anchors, maxScale: 1e308 } }), /maxScale ≤ 10/);
    rejects(described({ anchors: { ...anchors, minScale: 0.9, maxScale: 0.2 } }), /minScale ≤ maxScale/);
    rejects(
      described({ anchors: { ...anchors, aspectRatios: [1, -2] } }),
      /aspectRatios must be positive numbers/,
    );
    rejects(
      described({ anchors: { ...anchors, reduceBoxesInLowestLayer: 'yes' } }),
      /reduceBoxesInLowestLayer must be true or false/,
    );
    rejects(described({ anchors: { ...anchors, offsetX: 2 } }), /offsetX must be a number in 0–1/);
    rejects(described({ boxScale: [10, 10, 5] }), /output\.boxScale must be 4 positive numbers/);
    rejects(described({ boxOrder: 'yx' }), /output\.boxOrder must be yxhw or xywh/);
    rejects(described({ activation: 'relu' }), /output\.activation must be sigmoid, softmax or none/);
    rejects(described({ background: -1 }), /output\.background must be a class index/);
    rejects(described({ boxesOutput: 3 }), /output\.boxesOutput must be an output name/);
    rejects(described({}, 'pose-estimation'), /ssd is for object-detection models, not pose/);
    // No background class is allowed, said with null.
    assert.equal(
      (parseDescriptor(described({ background: null })).decoder as SsdDecoderSpec).background,
      null,
    );
  });
});

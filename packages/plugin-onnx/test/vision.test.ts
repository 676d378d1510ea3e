/**
 * Detection, pose and segmentation with the shipped models: expected objects on the darknet photos,
 * outputs equal to the TF.js originals, upstream layouts, and clear errors for bad input.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, suite, test } from 'node:test';
import '@tensorflow/tfjs-backend-cpu';
import { loadGraphModel } from '@tensorflow/tfjs-converter';
import * as tf from '@tensorflow/tfjs-core';
import { Args, type Detection, OpType, ResourceType, type Session, Vaccel } from '@vaccel/core';
import { DEFAULT_VISION_MODELS, onnxPlugin, parseDescriptor, preprocess } from '@vaccel/plugin-onnx';
import * as ort from 'onnxruntime-node';
import { loadHumanModel } from '../../../models/human.js';
import { photo } from './helpers.js';

const labels = (found: Detection[]) => new Set(found.map((d) => d.label));
const inside = (x: number, y: number, d: Detection, slack = 0.1) =>
  x >= d.box.x - slack * d.box.width &&
  x <= d.box.x + (1 + slack) * d.box.width &&
  y >= d.box.y - slack * d.box.height &&
  y <= d.box.y + (1 + slack) * d.box.height;

suite('vision ops on the shipped models', () => {
  let vaccel: Vaccel;
  let session: Session;
  before(async () => {
    vaccel = await Vaccel.open({ plugins: [onnxPlugin({ threads: 2 })] });
    session = await vaccel.createSession();
  });
  after(() => vaccel.close());

  test('detection finds the objects of the darknet photos, in pixels, best first', async () => {
    const dog = await session.imageDetect(photo('dog.jpg'));
    for (const label of ['dog', 'bicycle', 'truck'])
      assert.ok(labels(dog.result).has(label), `dog.jpg: ${label}`);
    const person = await session.imageDetect(photo('person.jpg'));
    for (const label of ['person', 'horse', 'dog'])
      assert.ok(labels(person.result).has(label), `person.jpg: ${label}`);
    for (const d of [...dog.result, ...person.result]) {
      assert.ok(d.box.x >= 0 && d.box.y >= 0 && d.box.width > 0 && d.box.height > 0);
      assert.ok(d.box.x + d.box.width <= 768 + 1e-6 && d.box.y + d.box.height <= 576 + 1e-6);
    }
    assert.deepEqual(
      dog.result.map((d) => d.score),
      dog.result.map((d) => d.score).sort((a, b) => b - a),
    );
    // dog.jpg's dog sits in the lower left, the truck in the upper right.
    const [d, t] = ['dog', 'truck'].map((l) => dog.result.find((x) => x.label === l)!);
    assert.ok(d!.box.x + d!.box.width / 2 < 384 && d!.box.y + d!.box.height / 2 > 288);
    assert.ok(t!.box.x + t!.box.width / 2 > 384 && t!.box.y + t!.box.height / 2 < 288);
    assert.equal(dog.annotated, undefined);
  });

  test('options: minScore, maxResults, iouThreshold; annotate returns a JPEG of the image size', async () => {
    const all = await session.imageDetect(photo('dog.jpg'), { minScore: 0.05, annotate: true });
    assert.ok(all.result.length > 3);
    assert.ok(all.result.every((d) => d.score >= 0.05));
    const two = await session.imageDetect(photo('dog.jpg'), { minScore: 0.05, maxResults: 2 });
    assert.deepEqual(two.result, all.result.slice(0, 2));
    const image = all.annotated!;
    assert.deepEqual([...image.subarray(0, 3)], [0xff, 0xd8, 0xff]);
    const sharp = (await import('sharp')).default;
    const meta = await sharp(image).metadata();
    assert.deepEqual([meta.width, meta.height], [768, 576]);
    await assert.rejects(session.imageDetect(photo('dog.jpg'), { minScore: 2 }), {
      code: 'EINVAL',
      message: /minScore/,
    });
  });

  test('pose: 17 named keypoints on the person of person.jpg', async () => {
    const [person] = (await session.imageDetect(photo('person.jpg'))).result.filter(
      (d) => d.label === 'person',
    );
    const { result: pose, annotated } = await session.imagePose(photo('person.jpg'), { annotate: true });
    assert.equal(pose.keypoints.length, 17);
    assert.equal(pose.keypoints[0]!.name, 'nose');
    assert.equal(pose.skeleton.length, 16);
    const confident = pose.keypoints.filter((k) => k.score >= 0.3);
    assert.ok(confident.length >= 8, `${confident.length} keypoints score ≥ 0.3`);
    for (const k of confident)
      assert.ok(inside(k.x, k.y, person!), `${k.name} at ${k.x},${k.y} lies on the person`);
    const y = (name: string) => pose.keypoints.find((k) => k.name === name)!.y;
    assert.ok(
      y('right_shoulder') < y('right_hip') &&
        y('right_hip') < y('right_knee') &&
        y('right_knee') < y('right_ankle'),
    );
    assert.ok(annotated && annotated.byteLength > 1000);
  });

  test('segmentation: a person mask of the image size, inside the detected person', async () => {
    const [person] = (await session.imageDetect(photo('person.jpg'))).result.filter(
      (d) => d.label === 'person',
    );
    const { result } = await session.imageSegment(photo('person.jpg'));
    assert.equal(result.label, 'person');
    assert.deepEqual([result.width, result.height, result.mask.length], [640, 424, 640 * 424]);
    let on = 0;
    let within = 0;
    for (let i = 0; i < result.mask.length; i++) {
      if (result.mask[i]! < 128) continue;
      on++;
      if (inside(i % 640, Math.floor(i / 640), person!)) within++;
    }
    assert.ok(on / result.mask.length > 0.02, `coverage ${on / result.mask.length}`);
    assert.ok(within / on > 0.8, `${within} of ${on} mask pixels lie in the person's box`);
    assert.ok(Math.abs(result.coverage - on / result.mask.length) < 1e-9);
  });

  test('upstream layouts: one image in, a NUL-padded summary out', async () => {
    for (const [op, pattern] of [
      [OpType.ImageDetect, /bicycle 0\.\d\d \[\d+,\d+,\d+,\d+\].*dog/],
      [OpType.ImagePose, /^pose 0\.\d\d: nose \d+,\d+/],
      [OpType.ImageSegment, /^person \d+\.\d% of 768x576$/],
    ] as const) {
      const out = Args.raw(new Uint8Array(1024));
      await session.doOperation(op, [Args.buffer(photo('dog.jpg'))], [out]);
      const text = Buffer.from(out.buf).toString('utf8').replace(/\0+$/, '');
      assert.match(text, pattern);
      await assert.rejects(session.doOperation(op, [Args.buffer(photo('dog.jpg'))], []), {
        code: 'EINVAL',
        message: /takes 1 read arg and 1 write arg/,
      });
    }
  });

  test('bad input: corrupt images, wrong-task models, malformed options are EINVAL', async () => {
    await assert.rejects(session.imageDetect(new Uint8Array([1, 2, 3])), {
      code: 'EINVAL',
      message: /cannot decode image/,
    });
    await assert.rejects(session.imagePose(new Uint8Array()), {
      code: 'EINVAL',
      message: /must not be empty/,
    });
    await using classifier = await vaccel.createResource({
      type: ResourceType.Model,
      paths: ['model.json', 'model.onnx', 'labels.txt'].map((f) => join(DEFAULT_VISION_MODELS.pose, f)),
    });
    session.registerResource(classifier);
    await assert.rejects(session.imageDetect(photo('dog.jpg'), { model: classifier }), {
      code: 'EINVAL',
      message: /movenet-lightning is a pose model, not a detection model/,
    });
    const [read, write] = [
      [Args.buffer(photo('dog.jpg')), Args.int64(0), Args.raw(Buffer.from('{"annotate": 1}'))],
      [Args.raw(), Args.raw()],
    ];
    await assert.rejects(session.doOperation(OpType.ImageDetectBoxes, read, write), {
      code: 'EINVAL',
      message: /annotate/,
    });
    // The session still works after every failure.
    assert.ok((await session.imageDetect(photo('dog.jpg'))).result.length > 0);
  });
});

suite('converted models equal their TF.js originals', () => {
  for (const [name, dir] of [
    ['movenet-lightning', DEFAULT_VISION_MODELS.pose],
    ['selfie', DEFAULT_VISION_MODELS.segment],
    ['nanodet', DEFAULT_VISION_MODELS.detect],
  ] as const) {
    test(`${name}: max |Δ| ≤ 1e-4 on a photo`, async () => {
      await tf.setBackend('cpu');
      const descriptor = parseDescriptor(readFileSync(join(dir, 'model.json')));
      const input = await preprocess(photo('person.jpg'), descriptor.input);
      const session = await ort.InferenceSession.create(join(dir, 'model.onnx'));
      const type = input.tensor instanceof Int32Array ? 'int32' : 'float32';
      const ours = await session.run({
        [session.inputNames[0]!]: new ort.Tensor(type, input.tensor, input.dims),
      });
      const { model, weights } = loadHumanModel(name);
      const graph = await loadGraphModel({
        load: async () => ({
          modelTopology: model.modelTopology as never,
          weightSpecs: model.weightsManifest.flatMap((w) => w.weights) as never,
          weightData: weights.slice().buffer,
          format: 'graph-model',
        }),
      });
      const x = tf.tensor(input.tensor, input.dims, type);
      const refs = graph.execute(x, [...session.outputNames]) as tf.Tensor | tf.Tensor[];
      const list = Array.isArray(refs) ? refs : [refs];
      for (const [k, out] of session.outputNames.entries()) {
        const reference = (await list[k]!.data()) as Float32Array;
        const got = ours[out]!.data as Float32Array;
        assert.equal(got.length, reference.length);
        let worst = 0;
        for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i]! - reference[i]!));
        assert.ok(worst <= 1e-4, `${out}: max |Δ| ${worst}`);
      }
      tf.dispose([x, ...list]);
      graph.dispose();
      await session.release();
    });
  }
});

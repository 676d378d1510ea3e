/**
 * The detectors that ship inside npm packages, as the accuracy figure gets them: the objectron SSD
 * that `@mediapipe/objectron` packs, written as a model folder (its .tflite, COCO-named labels, a
 * descriptor for plugin-onnx's `ssd` decoder) and run through the public API: the person, cat and
 * dog of the labelled photos are found where labels.json puts them.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, suite, test } from 'node:test';
import { type Session, Vaccel, VaccelError } from '@vaccel/core';
import { onnxPlugin } from '@vaccel/plugin-onnx';
import { type Box, EVAL_DIR, iou, readEvalSet } from '../src/figures/accuracy.js';
import { OBJECTRON_SSD_DESCRIPTOR, packagedDetectors, writeObjectronSsd } from '../src/figures/detectors.js';

const photos = readEvalSet();
const labelled = (file: string, cls: string): Box =>
  photos.find((p) => p.file === file)!.objects.find((o) => o.class === cls)!.box;
const evalPhoto = (file: string) => new Uint8Array(readFileSync(join(EVAL_DIR, file)));

suite('the objectron SSD from @mediapipe/objectron', () => {
  let tmp: string;
  let vaccel: Vaccel;
  let session: Session;
  let dir: string;
  before(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'vaccel-packaged-'));
    const detectors = await packagedDetectors(tmp);
    assert.deepEqual(
      detectors.map((d) => d.name),
      ['objectron-ssd-oidv4'],
    );
    dir = detectors[0]!.dir;
    vaccel = await Vaccel.open({ plugins: [onnxPlugin({ threads: 2, visionModels: { detect: dir } })] });
    session = await vaccel.createSession();
  });
  after(async () => {
    await vaccel?.close();
    rmSync(tmp, { recursive: true, force: true });
  });

  test('its folder: the .tflite, COCO-named labels (background first), an ssd descriptor', async () => {
    const descriptor = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8'));
    assert.equal(descriptor.task, 'object-detection');
    assert.equal(descriptor.license, 'Apache-2.0');
    assert.equal(descriptor.output.decoder, 'ssd');
    const model = readFileSync(join(dir, descriptor.file));
    assert.equal(model.subarray(4, 8).toString('latin1'), 'TFL3');
    // COCO's names where COCO has the class; Mug and Coffee cup both cup.
    const labels = readFileSync(join(dir, 'labels.txt'), 'utf8').trim().split('\n');
    assert.equal(labels.length, 24);
    assert.deepEqual(labels.slice(0, 5), ['background', 'bicycle', 'Boot', 'laptop', 'person']);
    assert.deepEqual(
      [labels[12], labels[13], labels[15], labels[10], labels[9]],
      ['cup', 'cup', 'dining table', 'tv', 'mouse'],
    );
  });

  test('finds the person of camera.jpg and astronaut.jpg (IoU ≥ 0.5 with labels.json), best first', async () => {
    for (const file of ['camera.jpg', 'astronaut.jpg']) {
      const { result } = await session.imageDetect(evalPhoto(file));
      const person = result.find((d) => d.label === 'person');
      assert.ok(person, `${file}: no person in ${result.map((d) => d.label).join(', ')}`);
      assert.equal(result[0], person, `${file}: the person is not the top detection`);
      const { x, y, width, height } = person.box;
      const overlap = iou([x, y, width, height], labelled(file, 'person'));
      assert.ok(overlap >= 0.5, `${file}: the person's box ${JSON.stringify(person.box)} has IoU ${overlap}`);
    }
  });

  test('finds the cat of cat.jpg and chelsea.jpg and the dog of dog.jpg, with COCO names', async () => {
    // The cats fill their photos; dog.jpg's dog sits low and left of centre, so a box decoded
    // with x and y swapped, or from the wrong anchor, misses it.
    for (const [file, cls] of [
      ['../images/cat.jpg', 'cat'],
      ['chelsea.jpg', 'cat'],
      ['../images/dog.jpg', 'dog'],
    ] as const) {
      const { result } = await session.imageDetect(evalPhoto(file));
      const top = result[0];
      assert.equal(top?.label, cls, `${file}: top detection ${top?.label}`);
      const { x, y, width, height } = top!.box;
      const overlap = iou([x, y, width, height], labelled(file, cls));
      assert.ok(overlap >= 0.5, `${file}: the ${cls}'s box ${JSON.stringify(top!.box)} has IoU ${overlap}`);
    }
  });

  test('anchors that are not the model’s boxes are EINVAL naming both counts', async () => {
    const wrong = join(tmp, 'wrong-anchors');
    await writeObjectronSsd(wrong);
    const output = OBJECTRON_SSD_DESCRIPTOR.output;
    writeFileSync(
      join(wrong, 'model.json'),
      JSON.stringify({
        ...OBJECTRON_SSD_DESCRIPTOR,
        output: { ...output, anchors: { ...output.anchors, reduceBoxesInLowestLayer: false } },
      }),
    );
    await using other = await Vaccel.open({
      plugins: [onnxPlugin({ threads: 2, visionModels: { detect: wrong } })],
    });
    await using s = await other.createSession();
    await assert.rejects(
      s.imageDetect(evalPhoto('camera.jpg')),
      (e: unknown) =>
        e instanceof VaccelError &&
        e.code === 'EINVAL' &&
        /gives 1917 boxes but output\.anchors makes 3000 anchors/.test(e.message),
    );
  });
});

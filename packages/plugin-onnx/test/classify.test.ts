import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { suite, test } from 'node:test';
import { ResourceType, Vaccel, VaccelError } from '@vaccel/core';
import { DEFAULT_MODEL_DIR, onnxPlugin, parseDescriptor } from '@vaccel/plugin-onnx';
import sharp from 'sharp';
import { IMAGENET_DIR, imagenetSkip, photo } from './helpers.js';

const code = (expected: string) => (error: unknown) =>
  error instanceof VaccelError && error.code === expected;

async function open() {
  const vaccel = await Vaccel.open({ plugins: [onnxPlugin({ threads: 2 })] });
  return { vaccel, session: await vaccel.createSession() };
}

suite('model descriptors', () => {
  test('the shipped and shared descriptors parse', () => {
    const own = parseDescriptor(readFileSync(`${DEFAULT_MODEL_DIR}model.json`));
    assert.deepEqual(
      [own.input.width, own.input.height, own.input.layout, own.outputKind],
      [224, 224, 'NHWC', 'probabilities'],
    );
    if (!imagenetSkip)
      assert.equal(parseDescriptor(readFileSync(`${IMAGENET_DIR}model.json`)).outputKind, 'logits');
  });

  test('bad descriptors name the bad field', () => {
    for (const [json, field] of [
      ['nope', /not JSON/],
      ['{"input":{"layout":"HWC"}}', /input\.layout/],
      ['{"input":{"shape":[1,224,224]}}', /input\.shape/],
      ['{"input":{"shape":[1,224,224,4]}}', /3 channels/],
      ['{"input":{"width":0,"height":5}}', /width/],
      ['{"input":{"width":5,"height":5,"std":[1,0,1]}}', /std/],
      ['{"input":{"width":5,"height":5},"output":{"kind":"boxes"}}', /output\.kind/],
    ] as const) {
      assert.throws(
        () => parseDescriptor(json),
        (e: unknown) => code('EINVAL')(e) && field.test((e as Error).message),
      );
    }
  });
});

suite('image classification', () => {
  test('the default model finds every example photo safe (Neutral first)', async () => {
    const { vaccel, session } = await open();
    for (const name of ['cat.jpg', 'coffee.jpg', 'eagle.jpg']) {
      const [best, ...rest] = await session.imageClassify(photo(name), { topK: 5 });
      assert.equal(best?.label, 'Neutral', name);
      assert.equal(rest.length, 4);
      const total = [best!, ...rest].reduce((sum, c) => sum + c.score, 0);
      assert.ok(Math.abs(total - 1) < 1e-4, `${name}: probabilities sum to 1`);
    }
    await vaccel.close();
  });

  test('the ImageNet model through its descriptor: each photo gets its class in the top 3', {
    skip: imagenetSkip,
  }, async () => {
    const { vaccel, session } = await open();
    await using model = await vaccel.createResource({ type: ResourceType.Model, paths: IMAGENET_DIR });
    session.registerResource(model);
    const expected: Record<string, string[]> = {
      'cat.jpg': ['tabby', 'tiger cat', 'Egyptian cat'],
      'coffee.jpg': ['cup', 'coffee mug', 'espresso'],
      'eagle.jpg': ['bald eagle'],
    };
    for (const [name, labels] of Object.entries(expected)) {
      const top = await session.imageClassify(photo(name), { topK: 3, model });
      assert.ok(
        top.some((c) => labels.includes(c.label)),
        `${name}: ${top.map((c) => c.label).join(', ')} holds one of ${labels.join(', ')}`,
      );
    }
    await vaccel.close();
  });

  test('any size and format: a PNG, a WebP, a 1×1 and a 3000×2000 image with alpha', async () => {
    const { vaccel, session } = await open();
    const cat = photo('cat.jpg');
    const inputs = [
      await sharp(cat).png().toBuffer(),
      await sharp(cat).webp().toBuffer(),
      await sharp({ create: { width: 1, height: 1, channels: 3, background: '#808080' } })
        .png()
        .toBuffer(),
      await sharp(cat).resize(3000, 2000).ensureAlpha(0.5).png().toBuffer(),
      await sharp(cat).greyscale().jpeg().toBuffer(),
    ];
    for (const image of inputs) assert.equal((await session.imageClassify(new Uint8Array(image))).length, 5);
    await vaccel.close();
  });

  test('corrupt, truncated and empty images reject with EINVAL; the plugin keeps working', async () => {
    const { vaccel, session } = await open();
    const cat = photo('cat.jpg');
    for (const bad of [
      new Uint8Array([1, 2, 3, 4]),
      cat.subarray(0, 200),
      new TextEncoder().encode('<svg'),
    ]) {
      await assert.rejects(session.imageClassify(bad), code('EINVAL'));
    }
    await assert.rejects(session.imageClassify(new Uint8Array(0)), code('EINVAL'));
    assert.equal((await session.imageClassify(cat, { topK: 1 }))[0]?.label, 'Neutral');
    await vaccel.close();
  });

  test('a model without a descriptor, or an unknown model, is refused clearly', async () => {
    const { vaccel, session } = await open();
    await using bare = await vaccel.createResource({
      type: ResourceType.Model,
      paths: `${DEFAULT_MODEL_DIR}model.onnx`,
    });
    session.registerResource(bare);
    await assert.rejects(session.imageClassify(photo('cat.jpg'), { model: bare }), /model\.json descriptor/);
    await using other = await vaccel.createResource({
      type: ResourceType.Data,
      blobs: [{ name: 'x', data: new Uint8Array(1) }],
    });
    await assert.rejects(session.imageClassify(photo('cat.jpg'), { model: other }), code('ENOENT')); // not registered here
    assert.equal((await session.imageClassify(photo('cat.jpg')))[0]?.label, 'Neutral');
    await vaccel.close();
  });
});

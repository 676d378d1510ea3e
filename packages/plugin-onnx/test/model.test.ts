import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { suite, test } from 'node:test';
import { ResourceType, tensor, Vaccel, VaccelError } from '@vaccel/core';
import { sgemmJsPlugin } from '@vaccel/core/plugins';
import { DEFAULT_MODEL_DIR, onnxPlugin, parseDescriptor, preprocess } from '@vaccel/plugin-onnx';
import fc from 'fast-check';
import * as ort from 'onnxruntime-node';
import { convertDefaultModel } from '../../../models/nsfwjs.js';
import { tfjsReference } from '../../../models/parity.js';
import { photo } from './helpers.js';

const code = (expected: string) => (error: unknown) =>
  error instanceof VaccelError && error.code === expected;
const MODEL = `${DEFAULT_MODEL_DIR}model.onnx`;

async function inputsOf(names: string[]): Promise<Float32Array[]> {
  const { input } = parseDescriptor(readFileSync(`${DEFAULT_MODEL_DIR}model.json`));
  return Promise.all(
    names.map(async (name) => (await preprocess(photo(name), input)).tensor as Float32Array),
  );
}

suite('model load / run / unload', () => {
  test('modelRun equals a direct onnxruntime run; wrong inputs are EINVAL and the model keeps working', async () => {
    const vaccel = await Vaccel.open({ plugins: [onnxPlugin({ threads: 2 })] });
    const session = await vaccel.createSession();
    await using model = await vaccel.createResource({ type: ResourceType.Model, paths: MODEL });
    session.registerResource(model);
    await assert.rejects(session.modelRun(model, {}), /not loaded/);
    const info = await session.modelLoad(model);
    assert.deepEqual(info.inputs, [{ name: 'input_1', dtype: 'float32', dims: ['batch', 224, 224, 3] }]);
    assert.deepEqual(info.outputs, [{ name: 'output', dtype: 'float32', dims: ['batch', 5] }]);
    const [x] = await inputsOf(['cat.jpg']);
    const ours = await session.modelRun(model, { input_1: tensor('float32', [1, 224, 224, 3], x!) });
    const direct = await (await ort.InferenceSession.create(MODEL)).run({
      input_1: new ort.Tensor('float32', x!, [1, 224, 224, 3]),
    });
    assert.deepEqual(ours.output?.dims, [1, 5]);
    assert.deepEqual([...(ours.output!.data as Float32Array)], [...(direct.output!.data as Float32Array)]);
    const bad = [
      [{ nope: tensor('float32', [1], new Float32Array(1)) }, /no input "nope"/],
      [
        { input_1: tensor('int32', [1, 224, 224, 3], new Int32Array(224 * 224 * 3)) },
        /must be float32, got int32/,
      ],
      [{ input_1: tensor('float32', [1, 224, 3, 224], x!) }, /must have shape \[batch, 224, 224, 3\]/],
      [{}, /input "input_1" is missing/],
    ] as const;
    for (const [inputs, message] of bad) {
      await assert.rejects(
        session.modelRun(model, inputs),
        (e) => code('EINVAL')(e) && message.test((e as Error).message),
      );
    }
    await assert.rejects(
      session.modelRun(model, { input_1: tensor('float32', [1, 224, 224, 3], x!) }, { outputs: ['nope'] }),
      code('EINVAL'),
    );
    const batch = new Float32Array(2 * x!.length);
    batch.set(x!);
    batch.set(x!, x!.length);
    const two = await session.modelRun(model, { input_1: tensor('float32', [2, 224, 224, 3], batch) });
    assert.deepEqual(
      [...(two.output!.data as Float32Array).subarray(5)],
      [...(ours.output!.data as Float32Array)],
    );
    await session.modelUnload(model);
    await assert.rejects(session.modelUnload(model), code('EINVAL'));
    await assert.rejects(session.modelRun(model, {}), /not loaded/);
    await vaccel.close();
  });

  test('an unknown model id and a file that is not ONNX are refused', async () => {
    const vaccel = await Vaccel.open({ plugins: [onnxPlugin({ threads: 1 })] });
    const session = await vaccel.createSession();
    await using junk = await vaccel.createResource({
      type: ResourceType.Model,
      blobs: [{ name: 'm.onnx', data: new Uint8Array([1, 2, 3]) }],
    });
    session.registerResource(junk);
    await assert.rejects(
      session.modelLoad(junk),
      (e) => code('EINVAL')(e) && /cannot load the model/.test((e as Error).message),
    );
    await using unregistered = await vaccel.createResource({ type: ResourceType.Model, paths: MODEL });
    await assert.rejects(session.modelLoad(unregistered), code('ENOENT'));
    await vaccel.close();
  });
});

suite('sgemm on ONNX Runtime', () => {
  test('matches sgemm-js within 1e-4 relative for random shapes, alpha/beta and strides (property)', async () => {
    const onnx = await Vaccel.open({ plugins: [onnxPlugin({ threads: 2 })] });
    const js = await Vaccel.open({ plugins: [sgemmJsPlugin({ threads: 0 })] });
    const [a, b] = [await onnx.createSession(), await js.createSession()];
    const dim = fc.integer({ min: 1, max: 40 });
    await fc.assert(
      fc.asyncProperty(
        dim,
        dim,
        dim,
        fc.nat(3),
        fc.constantFrom(1, 0.5, -2),
        fc.constantFrom(0, 1, 0.25),
        async (m, n, k, pad, alpha, beta) => {
          const random = (length: number) => Float32Array.from({ length }, () => Math.random() * 2 - 1);
          const p = { m, n, k, alpha, beta, lda: k + pad, ldb: n + pad, ldc: n + pad };
          const A = random(m * p.lda);
          const B = random(k * p.ldb);
          const C = random(m * p.ldc);
          const ours = await a.sgemm({ ...p, a: A, b: B, c: C.slice() });
          const ref = await b.sgemm({ ...p, a: A, b: B, c: C.slice() });
          for (let i = 0; i < ref.length; i++) {
            const tolerance = 1e-4 * Math.max(1, Math.abs(ref[i]!));
            if (Math.abs(ours[i]! - ref[i]!) > tolerance) return false;
          }
          return true;
        },
      ),
      { numRuns: 40 },
    );
    await assert.rejects(
      a.sgemm({ m: 2, n: 2, k: 2, a: new Float32Array(3), b: new Float32Array(4) }),
      code('EINVAL'),
    );
    await Promise.all([onnx.close(), js.close()]);
  });
});

suite('default model', () => {
  test('rebuilding it from nsfwjs@4.4.0 gives the committed bytes (sha256 of models/SHA256SUMS)', () => {
    const rebuilt = convertDefaultModel();
    const sha = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');
    const expected = readFileSync(new URL('../../../models/SHA256SUMS', import.meta.url), 'utf8').split(
      /\s+/,
    )[0];
    assert.equal(sha(rebuilt), expected);
    assert.equal(sha(readFileSync(MODEL)), expected);
  });

  test('ONNX outputs equal the original TF.js model within 1e-4 on the example photos', async () => {
    const inputs = await inputsOf(['cat.jpg', 'coffee.jpg', 'eagle.jpg']);
    const reference = await tfjsReference(inputs);
    const session = await ort.InferenceSession.create(MODEL);
    for (const [i, x] of inputs.entries()) {
      const y = (await session.run({ input_1: new ort.Tensor('float32', x, [1, 224, 224, 3]) })).output!
        .data as Float32Array;
      const diff = Math.max(...y.map((v, j) => Math.abs(v - reference[i]![j]!)));
      assert.ok(diff < 1e-4, `photo ${i}: max |Δ| ${diff}`);
    }
  });
});

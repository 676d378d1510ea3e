/**
 * Hostile TFLite bytes: malformed or oversized models fail with a VaccelError (EINVAL, E2BIG,
 * ENOTSUP), never another exception, a hang or a huge allocation.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { isVaccelError } from '@vaccel/core';
import fc from 'fast-check';
import { convertTflite, parseTflite, TFLITE_LIMITS } from '../src/tflite/index.js';
import { buildTflite, f32, type ModelSpec, OPTIONS } from './tflite-builder.js';

const require = createRequire(import.meta.url);

/** A small valid model: a 3×3 convolution with constant weights and a RELU. */
const conv = (over: Partial<ModelSpec> = {}): ModelSpec => ({
  tensors: [
    { shape: [1, 6, 6, 2] },
    { shape: [3, 3, 3, 2], data: f32(Array.from({ length: 54 }, (_, i) => i / 54)) },
    { shape: [3], data: f32([0.1, 0.2, 0.3]) },
    { shape: [1, 6, 6, 3] },
    { shape: [1, 6, 6, 3] },
  ],
  inputs: [0],
  outputs: [4],
  operators: [
    {
      op: 'CONV_2D',
      inputs: [0, 1, 2],
      outputs: [3],
      optionsType: OPTIONS.Conv2D,
      options: [
        [1, 'i32', 1],
        [2, 'i32', 1],
      ],
    },
    { op: 'RELU', inputs: [3], outputs: [4] },
  ],
  ...over,
});

/** Runs parse and convert; returns the error code, or 'ok'. Any non-VaccelError fails the test. */
function outcome(bytes: Uint8Array, maxConstantBytes?: number): string {
  try {
    convertTflite(bytes, { maxConstantBytes });
    return 'ok';
  } catch (error) {
    if (!isVaccelError(error)) throw error;
    return error.code;
  }
}

describe('hostile TFLite models', () => {
  it('converts the valid baseline', () => {
    assert.equal(outcome(buildTflite(conv())), 'ok');
  });

  it('refuses bytes that are not a flatbuffer', () => {
    assert.equal(outcome(new Uint8Array()), 'EINVAL');
    assert.equal(outcome(new TextEncoder().encode('definitely not a model')), 'EINVAL');
    assert.equal(outcome(Uint8Array.of(0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0)), 'EINVAL');
  });

  it('refuses a truncated model', () => {
    const bytes = buildTflite(conv());
    for (const n of [8, 16, bytes.length >> 2, bytes.length >> 1, (3 * bytes.length) >> 2])
      assert.equal(outcome(bytes.subarray(0, n)), 'EINVAL', `cut at ${n}`);
  });

  it('refuses out-of-range tensor and buffer indices', () => {
    const base = conv();
    assert.equal(outcome(buildTflite(conv({ inputs: [99] }))), 'EINVAL');
    assert.equal(
      outcome(buildTflite(conv({ operators: [{ ...base.operators[0]!, inputs: [0, 1, 42] }] }))),
      'EINVAL',
    );
    const tensors = base.tensors.map((t, i) => (i === 1 ? { ...t, data: undefined, buffer: 77 } : t));
    assert.equal(outcome(buildTflite(conv({ tensors }))), 'EINVAL');
  });

  it('refuses a constant whose bytes do not match its shape', () => {
    const tensors = conv().tensors.map((t, i) => (i === 2 ? { ...t, data: f32([1, 2]) } : t));
    assert.throws(() => parseTflite(buildTflite(conv({ tensors }))), { code: 'EINVAL' });
  });

  it('refuses negative dims and ranks past the bound', () => {
    const withShape = (shape: number[]) =>
      buildTflite(conv({ tensors: conv().tensors.map((t, i) => (i === 0 ? { ...t, shape } : t)) }));
    assert.equal(outcome(withShape([1, -6, 6, 2])), 'EINVAL');
    assert.equal(outcome(withShape(new Array(TFLITE_LIMITS.maxRank + 1).fill(1))), 'E2BIG');
  });

  it('refuses tensors of the wrong rank for an operator', () => {
    const tensors = conv().tensors.map((t, i) => (i === 3 ? { ...t, shape: [36, 3] } : t));
    assert.equal(outcome(buildTflite(conv({ tensors }))), 'EINVAL');
  });

  it('charges constants to the byte budget', () => {
    const bytes = buildTflite(conv());
    assert.equal(outcome(bytes, 64), 'E2BIG');
    assert.equal(outcome(bytes, 1024), 'ok');
  });

  it('refuses a vector whose length runs past the buffer', () => {
    const bytes = buildTflite(conv()).slice();
    const model = parseTflite(bytes);
    assert.equal(model.tensors.length, 5);
    // Find the tensors vector (length 5 followed by five offsets) and claim 2^30 elements.
    const view = new DataView(bytes.buffer);
    let patched = 0;
    for (let p = 0; p + 4 <= bytes.length; p += 4)
      if (view.getUint32(p, true) === 5 && p + 24 <= bytes.length) {
        const copy = bytes.slice();
        new DataView(copy.buffer).setUint32(p, 2 ** 30, true);
        const code = outcome(copy);
        assert.ok(code === 'EINVAL' || code === 'E2BIG' || code === 'ok', code);
        if (code !== 'ok') patched++;
      }
    assert.ok(patched > 0);
  });

  it('gives a VaccelError, never another exception, for random bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 2048 }), (bytes) => {
        outcome(bytes);
      }),
      { numRuns: 500 },
    );
  });

  it('gives a VaccelError or a model, never another exception, for mutated models', () => {
    const base = buildTflite(conv());
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat({ max: base.length - 1 }), fc.integer({ min: 0, max: 255 })), {
          minLength: 1,
          maxLength: 8,
        }),
        (edits) => {
          const bytes = base.slice();
          for (const [at, value] of edits) bytes[at] = value;
          outcome(bytes);
        },
      ),
      { numRuns: 1000 },
    );
  });

  it('gives a VaccelError or a model for mutated MediaPipe models', () => {
    const base = new Uint8Array(
      readFileSync(
        join(
          dirname(require.resolve('@mediapipe/face_detection/package.json')),
          'face_detection_short_range.tflite',
        ),
      ),
    );
    // The structure (not the weights) is in the first and last few KiB.
    const structure = fc.oneof(
      fc.nat({ max: 4095 }),
      fc.integer({ min: base.length - 16384, max: base.length - 1 }),
    );
    fc.assert(
      fc.property(
        fc.array(fc.tuple(structure, fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }),
        (edits) => {
          const bytes = base.slice();
          for (const [at, value] of edits) bytes[at] = value;
          outcome(bytes);
        },
      ),
      { numRuns: 60 },
    );
  });
});

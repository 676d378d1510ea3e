import assert from 'node:assert/strict';
import { suite, test } from 'node:test';
import { decodeTensors, encodeTensors, type Tensor, tensor, VaccelError } from '@vaccel/core';
import fc from 'fast-check';

suite('tensor encoding', () => {
  const arbitraryTensor = fc
    .tuple(
      fc.array(fc.integer({ min: 0, max: 4 }), { maxLength: 4 }),
      fc.constantFrom('float32', 'int32', 'uint8', 'int64', 'bool', 'float16', 'int8'),
    )
    .map(([dims, dtype]): Tensor => {
      const count = dims.reduce((a, b) => a * b, 1);
      const data = {
        float32: () => Float32Array.from({ length: count }, (_, i) => i / 3),
        int32: () => Int32Array.from({ length: count }, (_, i) => -i),
        uint8: () => Uint8Array.from({ length: count }, (_, i) => i),
        int64: () => BigInt64Array.from({ length: count }, (_, i) => BigInt(i) - 5n),
        bool: () => Uint8Array.from({ length: count }, (_, i) => i % 2),
        float16: () => Uint16Array.from({ length: count }, (_, i) => 0x3c00 + i),
        int8: () => Int8Array.from({ length: count }, (_, i) => -i),
      }[dtype]();
      return { dtype, dims, data } as Tensor;
    });

  test('round-trips any set of named tensors', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string({ maxLength: 12 }), arbitraryTensor, { maxKeys: 4 }), (tensors) => {
        const back = decodeTensors(encodeTensors(tensors));
        assert.deepEqual(Object.keys(back), Object.keys(tensors));
        for (const [name, t] of Object.entries(tensors)) {
          assert.equal(back[name]!.dtype, t.dtype);
          assert.deepEqual(back[name]!.dims, t.dims);
          assert.deepEqual([...back[name]!.data], [...t.data]);
        }
      }),
    );
  });

  test('names that are special in JavaScript stay plain keys', () => {
    const tensors: Record<string, Tensor> = {};
    for (const name of ['__proto__', 'constructor', 'toString', 'hasOwnProperty']) {
      Object.defineProperty(tensors, name, {
        value: tensor('int32', [1], new Int32Array([7])),
        enumerable: true,
      });
    }
    const back = decodeTensors(encodeTensors(tensors));
    assert.deepEqual(Object.keys(back), ['__proto__', 'constructor', 'toString', 'hasOwnProperty']);
    assert.equal(Object.getPrototypeOf(back), Object.prototype);
    assert.deepEqual([...back.__proto__!.data], [7]);
  });

  test('truncated or corrupt encodings are EINVAL, never a crash', () => {
    const bytes = encodeTensors({ x: tensor('float32', [2, 2], new Float32Array(4)) });
    for (let cut = 0; cut < bytes.byteLength; cut++) {
      assert.throws(() => decodeTensors(bytes.subarray(0, cut)), VaccelError);
    }
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (junk) => {
        try {
          decodeTensors(junk);
        } catch (error) {
          assert.ok(error instanceof VaccelError, String(error));
        }
      }),
    );
  });

  test('mismatched data is EINVAL', () => {
    assert.throws(() => tensor('float32', [3], new Float32Array(2)), /need 3 elements, data has 2/);
    assert.throws(() => tensor('int32', [2], new Float32Array(2) as never), /must be a Int32Array/);
    assert.throws(() => tensor('float32', [-1], new Float32Array(0)), /dim -1/);
  });
});

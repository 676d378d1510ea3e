import assert from 'node:assert/strict';
import { suite, test } from 'node:test';
import { type Arg, Args, ArgType, ReadArg, VaccelError, validateArg } from '@vaccel/core';

const bytes = (n: number, fill = 1): Uint8Array => new Uint8Array(n).fill(fill);

suite('args', () => {
  // Upstream's unpack rules (docs/protocol.md §4): [type, size, valid?]
  // biome-ignore format: a table reads better aligned
  const cases: [keyof typeof ArgType, Uint8Array, boolean][] = [
    ['Int64', bytes(8), true], ['Int64', bytes(4), false], ['Uint8', bytes(1), true], ['Uint8', bytes(2), false],
    ['Float32', bytes(4), true], ['Float32', bytes(8), false], ['Bool', bytes(1), true], ['Char', bytes(0), false],
    ['Float32Array', bytes(8), true], ['Float32Array', bytes(6), false], ['Float32Array', bytes(0), false],
    ['Int64Array', bytes(16), true], ['Int64Array', bytes(12), false], ['Uint8Array', bytes(3), true],
    ['String', new Uint8Array([104, 105, 0]), true], ['String', new Uint8Array([104, 105]), false],
    ['String', new Uint8Array(0), false], ['Buffer', bytes(1), true], ['Buffer', bytes(0), false],
    ['Raw', bytes(0), true], ['Raw', bytes(7), true], ['Custom', bytes(0), true],
  ];
  for (const [type, buf, valid] of cases) {
    test(`${type} with ${buf.byteLength} bytes is ${valid ? 'valid' : 'rejected with EINVAL'}`, () => {
      const arg: Arg = { type: ArgType[type], buf };
      if (valid) validateArg(arg, 'x');
      else
        assert.throws(
          () => validateArg(arg, 'x'),
          (e: unknown) => e instanceof VaccelError && e.code === 'EINVAL' && e.message.startsWith('x:'),
        );
    });
  }

  test('unknown arg type is EINVAL', () => {
    assert.throws(() => validateArg({ type: 99 as ArgType, buf: bytes(1) }, 'y'), { code: 'EINVAL' });
  });

  test('builders and readers round-trip, little-endian', () => {
    assert.equal(ReadArg.int64(Args.int64(-5), 'a'), -5);
    assert.equal(ReadArg.uint64(Args.uint64(2 ** 40), 'a'), 2 ** 40);
    assert.equal(ReadArg.float32(Args.float32(1.5), 'a'), 1.5);
    assert.equal(ReadArg.uint32(Args.uint32(0xdeadbeef), 'a'), 0xdeadbeef);
    assert.equal(ReadArg.string(Args.string('héllo'), 'a'), 'héllo');
    assert.deepEqual([...Args.int64(1).buf], [1, 0, 0, 0, 0, 0, 0, 0]);
    const values = new Float32Array([1, 2, 3]);
    const arg = Args.float32Array(values);
    assert.equal(arg.buf.buffer, values.buffer, 'typed arrays are wrapped, not copied');
    assert.deepEqual([...ReadArg.float32Array(arg, 'a')], [1, 2, 3]);
  });

  test('readers reject the wrong type, naming the argument', () => {
    assert.throws(() => ReadArg.int64(Args.int32(1), 'sgemm m'), /sgemm m: expected Int64, got Int32/);
    assert.throws(() => ReadArg.int64(undefined, 'sgemm n'), /sgemm n: missing argument/);
    assert.throws(() => ReadArg.int64(Args.int64(2n ** 62n), 'big'), { code: 'EINVAL' });
    assert.throws(
      () => ReadArg.string({ type: ArgType.String, buf: new Uint8Array([0xff, 0]) }, 's'),
      /UTF-8/,
    );
  });

  test('float32 arrays inside a Node Buffer pool slab are read correctly', () => {
    const slab = Buffer.alloc(8191); // odd-sized slab, like the socket read pool
    const view = slab.subarray(3, 15);
    new DataView(view.buffer, view.byteOffset).setFloat32(4, -7.25, true);
    const got = ReadArg.float32Array({ type: ArgType.Float32Array, buf: view }, 'a');
    assert.deepEqual([...got], [0, -7.25, 0]);
  });

  test('float32 arrays at odd offsets are copied into aligned arrays', () => {
    const raw = new Uint8Array(13);
    new DataView(raw.buffer).setFloat32(1, 2.5, true);
    const got = ReadArg.float32Array({ type: ArgType.Float32Array, buf: raw.subarray(1, 13) }, 'a');
    assert.equal(got[0], 2.5);
    assert.equal(got.length, 3);
  });
});

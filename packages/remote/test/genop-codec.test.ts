import assert from 'node:assert/strict';
import { test } from 'node:test';
import { create, toBinary } from '@bufbuild/protobuf';
import fc from 'fast-check';
import { RequestSchema, ResponseSchema } from '../src/gen/genop_pb.js';
import { encodeGenopRequest, encodeGenopResponse } from '../src/genop-codec.js';

const concat = (parts: Uint8Array[]) => new Uint8Array(Buffer.concat(parts));

const arg = fc.record({
  buf: fc.oneof(
    fc.uint8Array({ maxLength: 40 }),
    fc.integer({ min: 16 * 1024 - 2, max: 40_000 }).map((n) => new Uint8Array(n).fill(n & 0xff)),
  ),
  argType: fc.integer({ min: 0, max: 29 }),
  customTypeId: fc.oneof(fc.constant(0), fc.nat()),
  parts: fc.nat({ max: 3 }),
  partNo: fc.nat({ max: 3 }),
});

test('genop parts encode to exactly the bytes protobuf-es writes, big buffers by reference (property)', () => {
  fc.assert(
    fc.property(
      fc.bigInt({ min: 0n, max: 2n ** 62n }),
      fc.array(arg, { maxLength: 5 }),
      fc.array(arg, { maxLength: 5 }),
      (sessionId, read, write) => {
        const withSize = (args: typeof read) => args.map((a) => ({ ...a, size: a.buf.byteLength }));
        const request = { sessionId, readArgs: withSize(read), writeArgs: withSize(write) };
        const parts = encodeGenopRequest(request);
        assert.deepEqual(concat(parts), toBinary(RequestSchema, create(RequestSchema, request)));
        for (const a of [...read, ...write]) {
          if (a.buf.byteLength >= 16 * 1024) assert.ok(parts.includes(a.buf), 'big buffers are not copied');
        }
        const response = { writeArgs: withSize(write) };
        assert.deepEqual(
          concat(encodeGenopResponse(response)),
          toBinary(ResponseSchema, create(ResponseSchema, response)),
        );
      },
    ),
    { numRuns: 200 },
  );
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import fc from 'fast-check';
import { RequestSchema, ResponseSchema } from '../src/gen/genop_pb.js';
import {
  decodeGenopRequest,
  decodeGenopResponse,
  encodeGenopRequest,
  encodeGenopResponse,
} from '../src/genop-codec.js';

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

test('unaligned, genop parts encode to exactly the bytes protobuf-es writes, big buffers by reference (property)', () => {
  fc.assert(
    fc.property(
      fc.bigInt({ min: 0n, max: 2n ** 62n }),
      fc.array(arg, { maxLength: 5 }),
      fc.array(arg, { maxLength: 5 }),
      (sessionId, read, write) => {
        const withSize = (args: typeof read) => args.map((a) => ({ ...a, size: a.buf.byteLength }));
        const request = { sessionId, readArgs: withSize(read), writeArgs: withSize(write) };
        const parts = encodeGenopRequest(request, { align: false });
        assert.deepEqual(concat(parts), toBinary(RequestSchema, create(RequestSchema, request)));
        for (const a of [...read, ...write]) {
          if (a.buf.byteLength >= 16 * 1024) assert.ok(parts.includes(a.buf), 'big buffers are not copied');
        }
        const response = { writeArgs: withSize(write) };
        assert.deepEqual(
          concat(encodeGenopResponse(response, { align: false })),
          toBinary(ResponseSchema, create(ResponseSchema, response)),
        );
      },
    ),
    { numRuns: 200 },
  );
});

/** Strips protobuf-es's bookkeeping ($typeName, $unknown) for comparing with our decoder. */
const plain = (
  args: readonly {
    buf: Uint8Array;
    size: number;
    argType: number;
    customTypeId: number;
    parts: number;
    partNo: number;
  }[],
) =>
  args.map(({ buf, size, argType, customTypeId, parts, partNo }) => ({
    buf: [...buf],
    size,
    argType,
    customTypeId,
    parts,
    partNo,
  }));

test('aligned: every big buffer starts at an 8-byte-aligned offset; protobuf-es and our decoder read the same message (property)', () => {
  fc.assert(
    fc.property(
      fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
      fc.array(arg, { maxLength: 5 }),
      fc.array(arg, { maxLength: 5 }),
      (sessionId, read, write) => {
        const withSize = (args: typeof read) => args.map((a) => ({ ...a, size: a.buf.byteLength }));
        const request = { sessionId, readArgs: withSize(read), writeArgs: withSize(write) };
        const bytes = concat(encodeGenopRequest(request));
        const reference = fromBinary(RequestSchema, bytes);
        const ours = decodeGenopRequest(bytes);
        assert.equal(ours.sessionId, reference.sessionId);
        assert.deepEqual(plain(ours.readArgs), plain(reference.readArgs));
        assert.deepEqual(plain(ours.writeArgs), plain(reference.writeArgs));
        assert.deepEqual(plain(ours.readArgs), plain(request.readArgs));
        for (const a of [...ours.readArgs, ...ours.writeArgs]) {
          if (a.buf.byteLength >= 16 * 1024) assert.equal((a.buf.byteOffset - bytes.byteOffset) % 8, 0);
        }
        const response = concat(encodeGenopResponse({ writeArgs: withSize(write) }));
        const decoded = decodeGenopResponse(response);
        assert.deepEqual(plain(decoded.writeArgs), plain(fromBinary(ResponseSchema, response).writeArgs));
        for (const a of decoded.writeArgs) {
          if (a.buf.byteLength >= 16 * 1024) assert.equal((a.buf.byteOffset - response.byteOffset) % 8, 0);
        }
      },
    ),
    { numRuns: 200 },
  );
});

test('the decoders reject what protobuf-es rejects: truncated bytes and wrong wire types', () => {
  const good = concat(
    encodeGenopRequest({ sessionId: 5n, readArgs: [{ buf: new Uint8Array([1, 2, 3]), argType: 9 }] }),
  );
  for (let cut = 1; cut < good.byteLength; cut++) {
    const truncated = good.subarray(0, cut);
    let reference: unknown;
    try {
      reference = fromBinary(RequestSchema, truncated);
    } catch {
      reference = 'threw';
    }
    if (reference === 'threw') assert.throws(() => decodeGenopRequest(truncated));
  }
  // read_args (field 2) as a varint instead of a message.
  assert.throws(() => decodeGenopRequest(new Uint8Array([0x10, 0x01])));
});

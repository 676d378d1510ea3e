import assert from 'node:assert/strict';
import { test } from 'node:test';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { VaccelError } from '@vaccel/core';
import fc from 'fast-check';
import { ArgSchema, RequestSchema, ResponseSchema } from '../src/gen/genop_pb.js';
import { SharedRefSchema } from '../src/gen/shared_memory_pb.js';
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

test('malformed genop bytes are EBADMSG, never a plain Error (property)', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
      for (const decode of [decodeGenopRequest, decodeGenopResponse]) {
        try {
          decode(bytes);
        } catch (error) {
          assert.ok(error instanceof VaccelError, `a ${(error as Error).constructor.name}: ${error}`);
          assert.equal(error.code, 'EBADMSG');
        }
      }
    }),
  );
  // A truncated length-delimited field, for certain.
  assert.throws(() => decodeGenopRequest(Uint8Array.of(0x12, 0x05, 0x01)), { code: 'EBADMSG' });
});

const sharedRef = fc.record({
  regionId: fc.nat(),
  offset: fc.oneof(fc.nat(), fc.constant(2 ** 40)),
  length: fc.nat(),
});

test('genop.Arg field 16 (SharedRef) is what its generated schema reads and writes (property)', () => {
  const field16 = (arg: Uint8Array): Uint8Array => {
    // Arg's field 16 is unknown to the generated Arg: protobuf-es keeps it as its length and bytes.
    const parsed = fromBinary(ArgSchema, arg);
    const unknown = parsed.$unknown?.find((u) => u.no === 16);
    assert.ok(unknown, 'field 16 present');
    return unknown.data.subarray(1 + (unknown.data[0]! >= 0x80 ? 1 : 0));
  };
  fc.assert(
    fc.property(sharedRef, fc.integer({ min: 0, max: 29 }), (ref, argType) => {
      // Ours → the schema.
      const request = concat(
        encodeGenopRequest({ readArgs: [{ ref, size: ref.length, argType, buf: new Uint8Array(0) }] }),
      );
      const parsed = fromBinary(RequestSchema, request);
      const argBytes = toBinary(ArgSchema, parsed.readArgs[0]!);
      const theirs = fromBinary(SharedRefSchema, field16(argBytes));
      assert.deepEqual(
        { regionId: theirs.regionId, offset: Number(theirs.offset), length: Number(theirs.length) },
        { ...ref },
      );
      // The schema → ours.
      const refBytes = toBinary(
        SharedRefSchema,
        create(SharedRefSchema, { ...ref, offset: BigInt(ref.offset), length: BigInt(ref.length) }),
      );
      const arg = concat([
        toBinary(ArgSchema, create(ArgSchema, { size: ref.length, argType })),
        Uint8Array.of(0x82, 0x01, refBytes.byteLength),
        refBytes,
      ]);
      const ours = decodeGenopRequest(concat([Uint8Array.of(0x12, arg.byteLength), arg])).readArgs[0]!;
      assert.deepEqual({ ...ours.ref }, { ...ref });
    }),
  );
});

test('arg fields outside their proto types are EINVAL naming the field, never bytes protobuf-es would not write', () => {
  const cases: [Record<string, number>, string][] = [
    [{ argType: -1 }, 'argType'],
    [{ argType: 2 ** 31 }, 'argType'],
    [{ customTypeId: -1 }, 'customTypeId'],
    [{ customTypeId: 2 ** 32 }, 'customTypeId'],
    [{ customTypeId: 1.5 }, 'customTypeId'],
    [{ parts: Number.NaN }, 'parts'],
    [{ size: -4 }, 'size'],
  ];
  for (const [fields, name] of cases)
    for (const buf of [new Uint8Array(4), new Uint8Array(70_000)]) // the small path and the parts path
      for (const encode of [
        () => encodeGenopRequest({ sessionId: 1n, readArgs: [{ buf, ...fields }] }),
        () => encodeGenopResponse({ writeArgs: [{ buf, ...fields }] }),
      ])
        assert.throws(
          encode,
          (e: unknown) => e instanceof VaccelError && e.code === 'EINVAL' && e.message.includes(name),
          `${JSON.stringify(fields)} (${buf.byteLength} bytes)`,
        );
});

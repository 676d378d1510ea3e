import assert from 'node:assert/strict';
import { suite, test } from 'node:test';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { BinaryWriter, WireType } from '@bufbuild/protobuf/wire';
import { AnySchema } from '@bufbuild/protobuf/wkt';
import { Client, Code, RequestSchema, ResponseSchema, Server, StatusSchema, TtrpcError } from '@vaccel/ttrpc';
import fc from 'fast-check';
import {
  decodeRequest,
  decodeResponse,
  decodeStatus,
  errorResponse,
  okResponseParts,
  requestParts,
} from '../src/envelope.js';
import { ALIGN_FROM, PAD_FIELD } from '../src/wire.js';
import { bytes, duplexPair, text } from './helpers.js';

const int64 = fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n });
const metadata = fc.array(fc.record({ key: fc.string(), value: fc.string() }), { maxLength: 6 });
/** Unknown fields of every wire type, as another implementation might add them. */
const unknownFields = fc.array(
  fc.oneof(
    fc.record({ no: fc.integer({ min: 6, max: 5000 }), varint: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }) }),
    fc.record({ no: fc.integer({ min: 6, max: 5000 }), bytes: fc.uint8Array({ maxLength: 20 }) }),
    fc.record({ no: fc.integer({ min: 6, max: 5000 }), fixed32: fc.nat() }),
  ),
  { maxLength: 4 },
);

type Unknown = typeof unknownFields extends fc.Arbitrary<infer T> ? T : never;

function withUnknown(encoded: Uint8Array, unknown: Unknown): Uint8Array {
  const writer = new BinaryWriter();
  for (const field of unknown) {
    if ('varint' in field) writer.tag(field.no, WireType.Varint).uint64(field.varint);
    else if ('bytes' in field) writer.tag(field.no, WireType.LengthDelimited).bytes(field.bytes);
    else writer.tag(field.no, WireType.Bit32).fixed32(field.fixed32);
  }
  return Buffer.concat([writer.finish(), encoded]);
}

suite('envelopes', () => {
  test('decodeRequest reads what protobuf-es reads, unknown fields and all (property)', () => {
    fc.assert(
      fc.property(
        fc.string(),
        fc.string(),
        fc.uint8Array({ maxLength: 64 }),
        int64,
        metadata,
        unknownFields,
        (service, method, payload, timeoutNano, md, unknown) => {
          const message = create(RequestSchema, { service, method, payload, timeoutNano, metadata: md });
          const encoded = withUnknown(toBinary(RequestSchema, message), unknown);
          const reference = fromBinary(RequestSchema, encoded);
          const ours = decodeRequest(encoded);
          assert.equal(ours.service, reference.service);
          assert.equal(ours.method, reference.method);
          assert.deepEqual([...ours.payload], [...reference.payload]);
          assert.equal(ours.timeoutNano, reference.timeoutNano);
          assert.deepEqual(
            ours.metadata,
            reference.metadata.map(({ key, value }) => [key, value]),
          );
        },
      ),
    );
  });

  test('requestParts and okResponseParts write what protobuf-es writes, byte for byte (property)', () => {
    fc.assert(
      fc.property(
        fc.string(),
        fc.string(),
        fc.uint8Array({ maxLength: 200 }),
        int64,
        fc.dictionary(fc.string(), fc.string(), { maxKeys: 4 }),
        (service, method, payload, timeoutNano, md) => {
          const ours = Buffer.concat(requestParts(service, method, payload, timeoutNano, md));
          const metadataList = Object.entries(md).map(([key, value]) => ({ key, value }));
          const reference = toBinary(
            RequestSchema,
            create(RequestSchema, { service, method, payload, timeoutNano, metadata: metadataList }),
          );
          assert.ok(ours.equals(reference));
          const reply = Buffer.concat(okResponseParts(payload));
          assert.ok(reply.equals(toBinary(ResponseSchema, create(ResponseSchema, { payload }))));
          assert.deepEqual([...decodeResponse(reply).payload], [...payload]);
        },
      ),
    );
  });

  test('big payloads start 8-byte aligned in the frame, behind a pad field every decoder skips (property)', () => {
    fc.assert(
      fc.property(
        fc.string(),
        fc.string(),
        fc.integer({ min: ALIGN_FROM, max: ALIGN_FROM + 64 }),
        (service, method, size) => {
          const payload = new Uint8Array(size).fill(3);
          const frame = Buffer.concat(requestParts(service, method, payload, 0n, undefined));
          const decoded = fromBinary(RequestSchema, frame);
          assert.equal(decoded.service, service);
          assert.equal(decoded.payload.byteLength, size);
          assert.equal(decodeRequest(frame).payload.byteOffset % 8, frame.byteOffset % 8);
          assert.equal(decoded.$unknown?.[0]?.no, PAD_FIELD);
          const reply = Buffer.concat(okResponseParts(payload));
          const at = decodeResponse(reply).payload.byteOffset - reply.byteOffset;
          assert.equal(at % 8, 0);
          assert.equal(fromBinary(ResponseSchema, reply).payload.byteLength, size);
        },
      ),
    );
  });

  test('the server answers random legal envelopes by the spec, and keeps serving (property)', async () => {
    const server = new Server();
    server.register('svc.A', {
      Echo: (payload) => payload,
      Meta: (_p, ctx) => bytes(JSON.stringify(ctx.metadataPairs)),
    });
    const [a, b] = duplexPair();
    server.serve(b);
    const replies = new Map<number, (frame: Buffer) => void>();
    let buffered = Buffer.alloc(0);
    a.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      while (buffered.byteLength >= 10 && buffered.byteLength >= 10 + buffered.readUInt32BE(0)) {
        const length = buffered.readUInt32BE(0);
        replies.get(buffered.readUInt32BE(4))?.(buffered.subarray(10, 10 + length));
        buffered = buffered.subarray(10 + length);
      }
    });
    let id = 1;
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom('svc.A', 'svc.B', ''),
        fc.constantFrom('Echo', 'Meta', 'Nope'),
        fc.uint8Array({ maxLength: 64 }),
        fc.oneof(fc.constant(0n), int64, fc.bigInt({ min: 1_000_000_000n, max: 2n ** 63n - 1n })),
        metadata,
        unknownFields,
        async (service, method, payload, timeoutNano, md, unknown) => {
          const body = withUnknown(
            toBinary(
              RequestSchema,
              create(RequestSchema, { service, method, payload, timeoutNano, metadata: md }),
            ),
            unknown,
          );
          const streamId = id;
          id += 2;
          const header = Buffer.alloc(10);
          header.writeUInt32BE(body.byteLength, 0);
          header.writeUInt32BE(streamId, 4);
          header[8] = 1;
          const got = new Promise<Buffer>((resolve) => replies.set(streamId, resolve));
          a.write(Buffer.concat([header, body]));
          const response = fromBinary(ResponseSchema, await got);
          const code = response.status?.code ?? Code.OK;
          if (service !== 'svc.A' || method === 'Nope') assert.equal(code, Code.UNIMPLEMENTED);
          else if (timeoutNano < 0n) assert.equal(code, Code.DEADLINE_EXCEEDED);
          else if (code === Code.DEADLINE_EXCEEDED)
            assert.ok(timeoutNano < 10_000_000n, `expired under ${timeoutNano} ns`);
          else if (method === 'Echo') assert.deepEqual([...response.payload], [...payload]);
          else
            assert.deepEqual(
              JSON.parse(text(response.payload)),
              md.map(({ key, value }) => [key, value]),
            );
        },
      ),
      { numRuns: 300 },
    );
    const client = new Client(a);
    await assert.rejects(
      client.call('svc.B', 'Echo', bytes('')),
      (error: unknown) => error instanceof TtrpcError,
    );
    assert.equal(server.pendingDeadlines, 0);
    await client.close();
  });
});

suite('status envelopes without the reflection runtime', () => {
  const details = fc.array(fc.record({ typeUrl: fc.string(), value: fc.uint8Array({ maxLength: 16 }) }), {
    maxLength: 3,
  });
  const code = fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 });

  test('errorResponse writes the bytes protobuf-es writes', () => {
    fc.assert(
      fc.property(code, fc.string(), details, (c, message, d) => {
        const anys = d.map((x) => create(AnySchema, x));
        const expected = toBinary(
          ResponseSchema,
          create(ResponseSchema, { status: { code: c, message, details: anys } }),
        );
        assert.deepEqual(Buffer.from(errorResponse(c, message, anys)), Buffer.from(expected));
      }),
    );
  });

  test('decodeStatus equals fromBinary, merges repeated statuses, skips unknown fields', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(code, fc.string(), details), { minLength: 1, maxLength: 3 }),
        unknownFields,
        (parts, unknown) => {
          const encoded = parts.map(([c, message, d]) =>
            toBinary(
              StatusSchema,
              create(StatusSchema, { code: c, message, details: d.map((x) => create(AnySchema, x)) }),
            ),
          );
          const joined = withUnknown(Buffer.concat(encoded), unknown);
          const ours = decodeStatus(joined);
          const theirs = fromBinary(StatusSchema, joined);
          assert.equal(ours.code, theirs.code);
          assert.equal(ours.message, theirs.message);
          assert.deepEqual(
            ours.details.map((a) => [a.typeUrl, [...a.value]]),
            theirs.details.map((a) => [a.typeUrl, [...a.value]]),
          );
        },
      ),
    );
  });
});

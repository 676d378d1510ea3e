/**
 * The codec seam: one map of codecs by message type name, used by the service binder (agent
 * handlers, generated client) and the light stub alike. Each hand codec writes and reads what
 * protobuf-es does with the generated schema, for any init shape (fields left out included), and
 * malformed bytes fail with EBADMSG.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { create, type DescMessage, type MessageInitShape, toBinary } from '@bufbuild/protobuf';
import { isVaccelError } from '@vaccel/core';
import {
  type CodecMap,
  HAND_CODECS,
  handDecoder,
  handEncoder,
  MESSAGE,
  type MessageCodec,
} from '@vaccel/protocol';
import { AgentService, SyncAgentService, serviceClient, serviceHandlers } from '@vaccel/protocol/service';
import type { CallContext, Client, Payload } from '@vaccel/ttrpc';
import fc from 'fast-check';
import {
  RequestSchema as GenopRequestSchema,
  ResponseSchema as GenopResponseSchema,
} from '../src/gen/genop_pb.js';
import { RegisterRequestSchema, RegisterResponseSchema } from '../src/gen/resource_pb.js';
import { CreateRequestSchema, CreateResponseSchema, DestroyRequestSchema } from '../src/gen/session_pb.js';

const joined = (payload: Payload): Uint8Array =>
  payload instanceof Uint8Array ? payload : new Uint8Array(Buffer.concat(payload as Uint8Array[]));

test('the map names the generated descriptors', () => {
  const schemas: Record<keyof typeof MESSAGE, DescMessage> = {
    genopRequest: GenopRequestSchema,
    genopResponse: GenopResponseSchema,
    createSessionRequest: CreateRequestSchema,
    createSessionResponse: CreateResponseSchema,
    destroySessionRequest: DestroyRequestSchema,
    registerResourceRequest: RegisterRequestSchema,
    registerResourceResponse: RegisterResponseSchema,
  };
  for (const [key, schema] of Object.entries(schemas))
    assert.equal(MESSAGE[key as keyof typeof MESSAGE], schema.typeName, key);
  assert.deepEqual([...HAND_CODECS.keys()].sort(), Object.values(MESSAGE).sort());
});

const int64 = fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n });
const maybe = <T>(arb: fc.Arbitrary<T>) => fc.option(arb, { nil: undefined });

test('hand-encoded requests are protobuf-es bytes, for any init shape', () => {
  const same = <D extends DescMessage>(schema: D, init: MessageInitShape<D>) =>
    assert.deepEqual(
      joined(handEncoder<MessageInitShape<D>>(schema.typeName)(init)),
      toBinary(schema, create(schema, init)),
    );
  fc.assert(
    fc.property(
      maybe(fc.array(fc.string(), { maxLength: 3 })),
      maybe(
        fc.array(
          fc.record(
            {
              type: fc.constantFrom(0, 1, 2),
              name: fc.string(),
              data: fc.uint8Array({ maxLength: 64 }),
              size: fc.nat(),
            },
            { requiredKeys: [] },
          ),
          { maxLength: 3 },
        ),
      ),
      maybe(int64),
      maybe(int64),
      maybe(fc.constantFrom(0, 1, 2, 3)),
      (paths, blobs, sessionId, resourceId, resourceType) => {
        const init = Object.fromEntries(
          Object.entries({ paths, blobs, sessionId, resourceId, resourceType }).filter(
            ([, v]) => v !== undefined,
          ),
        );
        same(RegisterRequestSchema, init);
      },
    ),
  );
  fc.assert(
    fc.property(maybe(fc.nat({ max: 2 ** 32 - 1 })), (flags) => same(CreateRequestSchema, { flags })),
  );
  fc.assert(fc.property(maybe(int64), (sessionId) => same(DestroyRequestSchema, { sessionId })));
});

test('hand-decoded replies are what protobuf-es reads, and malformed ones are EBADMSG', () => {
  fc.assert(
    fc.property(int64, (id) => {
      const session = create(CreateResponseSchema, { sessionId: id });
      assert.deepEqual(
        handDecoder(MESSAGE.createSessionResponse)(toBinary(CreateResponseSchema, session)),
        session,
      );
      const resource = create(RegisterResponseSchema, { resourceId: id });
      assert.deepEqual(
        handDecoder(MESSAGE.registerResourceResponse)(toBinary(RegisterResponseSchema, resource)),
        resource,
      );
    }),
  );
  for (const type of Object.values(MESSAGE)) {
    const decode = HAND_CODECS.get(type)?.decode;
    if (!decode) continue;
    // A varint field cut short: the tag of field 1, then a continuation byte and nothing.
    assert.throws(
      () => decode(Uint8Array.of(0x08, 0x80)),
      (e: unknown) => isVaccelError(e) && e.code === 'EBADMSG' && e.message.includes('malformed'),
      type,
    );
  }
});

test('the binder and the generated client take their codecs from the map they are given', async () => {
  // A map whose CreateSession codecs tag what passes through them: both ends must use them.
  const seen: string[] = [];
  const codecs: CodecMap = new Map<string, MessageCodec<never>>([
    ...HAND_CODECS,
    [
      MESSAGE.createSessionRequest,
      {
        encode: () => {
          seen.push('client encode');
          return Uint8Array.of(0x08, 7);
        },
        decode: (bytes: Uint8Array) => {
          seen.push('agent decode');
          return { flags: bytes[1]! * 2 };
        },
      },
    ],
  ] as [string, MessageCodec<never>][]);
  const handlers = serviceHandlers(
    SyncAgentService,
    { createSession: ({ flags }) => ({ sessionId: BigInt(flags) }) },
    codecs,
  );
  const method = handlers.CreateSession as (payload: Uint8Array, ctx: CallContext) => Promise<Payload>;
  const client = {
    call: async (_service: string, _method: string, payload: Payload) =>
      joined(await method(joined(payload), {} as CallContext)),
  } as unknown as Client;
  const stub = serviceClient(client, SyncAgentService, undefined, codecs);
  const reply = await stub.createSession({ flags: 1 });
  assert.equal(reply.sessionId, 14n); // 7 sent by the map's encoder, doubled by its decoder
  assert.deepEqual(seen, ['client encode', 'agent decode']);
});

test("a stream's messages (GenopStream) are the schema's bytes: no hand codec, no alignment pad", async () => {
  const sent: Uint8Array[] = [];
  const client = {
    callStream: async (_service: string, _method: string, payloads: Iterable<Uint8Array>) => {
      sent.push(...payloads);
      return new Uint8Array(0);
    },
  } as unknown as Client;
  const stub = serviceClient(client, AgentService);
  const chunk = {
    sessionId: 5n,
    readArgs: [{ buf: new Uint8Array(70_000).fill(7), size: 70_000, argType: 9, parts: 1, partNo: 0 }],
  };
  await stub.genopStream!([chunk]);
  assert.deepEqual(sent, [toBinary(GenopRequestSchema, create(GenopRequestSchema, chunk))]);
});

test('a reply field of the wrong wire type is EBADMSG, as protobuf-es refuses it', () => {
  for (const type of [MESSAGE.createSessionResponse, MESSAGE.registerResourceResponse])
    assert.throws(
      () => handDecoder(type)(Uint8Array.of(0x0a, 0x01, 0x00)), // field 1 as bytes, not a varint
      (e: unknown) => isVaccelError(e) && e.code === 'EBADMSG',
      type,
    );
});

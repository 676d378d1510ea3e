/**
 * The guest's hand-written codecs for the hot agent RPCs write and read what protobuf-es does with
 * the generated schemas, and use the service name the generated descriptor has.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { create, toBinary } from '@bufbuild/protobuf';
import { AGENT_SERVICE_SYNC } from '@vaccel/protocol/service';
import type { Client } from '@vaccel/ttrpc';
import fc from 'fast-check';
import { RegisterRequestSchema, RegisterResponseSchema } from '../src/gen/resource_pb.js';
import { CreateRequestSchema, CreateResponseSchema, DestroyRequestSchema } from '../src/gen/session_pb.js';
import { AGENT_SERVICE, agentStub } from '../src/light-client.js';

/** A client that records what it is asked to send and answers `reply`. */
function recorder(reply: Uint8Array) {
  const sent: { service: string; method: string; payload: Uint8Array }[] = [];
  const client = {
    call: async (service: string, method: string, payload: Uint8Array) => {
      sent.push({ service, method, payload });
      return reply;
    },
  } as unknown as Client;
  return { sent, client };
}

const int64 = fc.bigInt({ min: 0n, max: 2n ** 63n - 1n });

test('the light stub names the generated service', () => assert.equal(AGENT_SERVICE, AGENT_SERVICE_SYNC));

test('CreateSession and DestroySession: requests and replies as protobuf-es', async () => {
  await fc.assert(
    fc.asyncProperty(fc.nat({ max: 0xffff }), int64, async (flags, sessionId) => {
      const { sent, client } = recorder(
        toBinary(CreateResponseSchema, create(CreateResponseSchema, { sessionId })),
      );
      const stub = agentStub(client);
      assert.equal((await stub.createSession({ flags })).sessionId, sessionId);
      await stub.destroySession({ sessionId });
      assert.deepEqual(
        sent.map((s) => [s.service, s.method, Buffer.from(s.payload)]),
        [
          [
            AGENT_SERVICE,
            'CreateSession',
            Buffer.from(toBinary(CreateRequestSchema, create(CreateRequestSchema, { flags }))),
          ],
          [
            AGENT_SERVICE,
            'DestroySession',
            Buffer.from(toBinary(DestroyRequestSchema, create(DestroyRequestSchema, { sessionId }))),
          ],
        ],
      );
    }),
  );
});

test('RegisterResource: blobs, type and ids as protobuf-es writes them', async () => {
  const blob = fc.record({
    type: fc.constantFrom(0, 1, 2),
    name: fc.string(),
    data: fc.uint8Array({ maxLength: 32 }),
    size: fc.nat({ max: 2 ** 32 - 1 }),
  });
  await fc.assert(
    fc.asyncProperty(
      int64,
      int64,
      fc.constantFrom(0, 1, 2),
      fc.array(blob, { maxLength: 3 }),
      async (sessionId, resourceId, resourceType, blobs) => {
        const { sent, client } = recorder(
          toBinary(RegisterResponseSchema, create(RegisterResponseSchema, { resourceId })),
        );
        const reply = await agentStub(client).registerResource({
          sessionId,
          resourceId,
          resourceType,
          blobs,
        });
        assert.equal(reply.resourceId, resourceId);
        const expected = toBinary(
          RegisterRequestSchema,
          create(RegisterRequestSchema, { sessionId, resourceId, resourceType, blobs }),
        );
        assert.deepEqual(Buffer.from(sent[0]!.payload), Buffer.from(expected));
      },
    ),
  );
});

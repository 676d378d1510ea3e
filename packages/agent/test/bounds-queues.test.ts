/**
 * The agent bounds its queues (issue 22): a peer that does not read its replies, a stream that
 * never ends. Each test runs a real agent with tiny bounds and waits for the agent's own events
 * (log lines, metrics), never for time.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { suite, test } from 'node:test';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import {
  AGENT_SERVICE_ASYNC,
  AGENT_SERVICE_SYNC,
  AgentService,
  SyncAgentService,
} from '@vaccel/protocol/service';
import { encodeHeader, FrameFlag, FrameType, RequestSchema } from '@vaccel/ttrpc';
import { MiB, metricTotal, rawGuest, requestFrame } from './bounds-helpers.js';
import { freePort, startAgent, tempDir } from './helpers.js';
import { guest as tenant } from './walls-helpers.js';

suite('agent bounds', () => {
  test('a guest that does not read its replies stops being read; its unsent bytes stay bounded; others are served', async () => {
    const dir = tempDir();
    const path = join(dir, 'bp.sock');
    const port = await freePort();
    const agent = await startAgent([
      '-a',
      `unix://${path}`,
      '--metrics',
      `127.0.0.1:${port}`,
      '--max-unsent-bytes',
      '1M',
      '--no-shared-memory',
    ]);
    try {
      const guest = await rawGuest(path);
      const sync = SyncAgentService.method;
      guest.socket.write(requestFrame(1, AGENT_SERVICE_SYNC, 'CreateSession', sync.createSession.input, {}));
      const { sessionId } = fromBinary(sync.createSession.output, (await guest.response(1)).payload);
      const blob = new Uint8Array(4 * MiB).fill(7);
      guest.socket.write(
        requestFrame(3, AGENT_SERVICE_SYNC, 'RegisterResource', sync.registerResource.input, {
          sessionId,
          resourceType: 2,
          blobs: [{ name: 'big', data: blob, size: blob.byteLength }],
        }),
      );
      const registered = await guest.response(3);
      assert.equal(registered.code, 0, registered.message);
      const { resourceId } = fromBinary(sync.registerResource.output, registered.payload);
      // From now on the guest reads nothing: 40 syncs of 4 MiB (160 MiB of replies) in one write.
      guest.socket.pause();
      const syncs = (from: number) =>
        Buffer.concat(
          Array.from({ length: 40 }, (_, i) =>
            requestFrame(from + 2 * i, AGENT_SERVICE_SYNC, 'SyncResource', sync.syncResource.input, {
              resourceId,
            }),
          ),
        );
      guest.socket.write(syncs(5));
      await agent.until(
        (logs) => logs.some((l) => l.msg === 'guest is not reading its replies; its connection is paused'),
        'the connection is paused',
      );
      // At most one reply (4 MiB) and what fits under twice the bound wait; the rest were refused.
      const unsent = await metricTotal(port, 'vaccel_agent_unsent_bytes');
      assert.ok(unsent > 1 * MiB && unsent <= 2 * MiB + 4 * MiB + 64 * 1024, `unsent ${unsent}`);
      assert.equal(await metricTotal(port, 'vaccel_agent_paused_connections'), 1);
      assert.ok((await metricTotal(port, 'vaccel_agent_read_pauses_total')) >= 1);
      // It is not read while it does not read: neither the rest of the first batch nor a second
      // one runs, while another tenant is served.
      const ran = await metricTotal(port, 'vaccel_agent_requests_total', 'method="SyncResource"');
      assert.ok(ran < 40, `${ran} syncs ran`);
      await new Promise<void>((resolve) => guest.socket.write(syncs(85), () => resolve()));
      const other = await tenant(`unix://${path}`);
      await other.session.noop();
      await other.vaccel.close();
      assert.equal(await metricTotal(port, 'vaccel_agent_requests_total', 'method="SyncResource"'), ran);
      // Once it reads, the agent reads it again: the second batch is served.
      guest.socket.resume();
      await guest.response(85 + 2 * 39);
      assert.equal(await metricTotal(port, 'vaccel_agent_requests_total', 'method="SyncResource"'), 80);
      // Replies past the bound were refused, not held: those the guest got are whole or RESOURCE_EXHAUSTED.
      const codes = new Set([...guest.responses.values()].map((r) => r.code));
      assert.ok(codes.has(8) && codes.has(0), [...codes].join(','));
      assert.ok((await metricTotal(port, 'vaccel_agent_replies_refused_total')) >= 1);
      guest.socket.destroy();
    } finally {
      await agent.kill();
    }
  });

  test('a stream past --max-stream-bytes fails with RESOURCE_EXHAUSTED before it ends', async () => {
    const path = join(tempDir(), 'st.sock');
    const agent = await startAgent([
      '-a',
      `unix://${path}`,
      '--max-stream-bytes',
      '1M',
      '--no-shared-memory',
    ]);
    try {
      const guest = await rawGuest(path);
      const stream = AgentService.method.genopStream;
      const payload = toBinary(
        stream.input,
        create(stream.input, {
          sessionId: 1n,
          readArgs: [{ buf: new Uint8Array(256 * 1024), size: 256 * 1024, argType: 9, parts: 1, partNo: 0 }],
        }),
      );
      // The request opens the stream (its own payload is empty); data frames follow, never closed.
      const open = toBinary(
        RequestSchema,
        create(RequestSchema, {
          service: AGENT_SERVICE_ASYNC,
          method: 'GenopStream',
          payload: new Uint8Array(0),
        }),
      );
      guest.socket.write(
        Buffer.concat([encodeHeader(open.byteLength, 1, FrameType.Request, FrameFlag.RemoteOpen), open]),
      );
      for (let i = 0; i < 8; i++)
        guest.socket.write(Buffer.concat([encodeHeader(payload.byteLength, 1, FrameType.Data, 0), payload]));
      const reply = await guest.response(1);
      assert.equal(reply.code, 8, reply.message); // RESOURCE_EXHAUSTED
      guest.socket.destroy();
    } finally {
      await agent.kill();
    }
  });
});

/**
 * The agent bounds its connections (issue 22): idle and half-sent connections, too many
 * connections, too many from one peer. Each test runs a real agent with tiny bounds and waits for
 * the agent's own events (log lines, metrics, socket closes), never for time.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { suite, test } from 'node:test';
import { nativeAvailable } from '@vaccel/memory';
import { connect } from '@vaccel/protocol';
import { AGENT_SERVICE_SYNC, SyncAgentService, serviceClient } from '@vaccel/protocol/service';
import { Client, encodeHeader, FrameType } from '@vaccel/ttrpc';
import { count, MiB, metricTotal, noopGenop, rawGuest } from './bounds-helpers.js';
import { freePort, startAgent, tempDir } from './helpers.js';

suite('agent bounds', () => {
  test('an idle connection is closed after --idle-timeout; one holding a session is kept', async () => {
    const path = join(tempDir(), 'idle.sock');
    const port = await freePort();
    const agent = await startAgent([
      '-a',
      `unix://${path}`,
      '--idle-timeout',
      '100ms',
      '--metrics',
      `127.0.0.1:${port}`,
      '--no-shared-memory',
    ]);
    try {
      // The session holder goes first, so it has been silent at least as long as the idle one.
      const holder = new Client(await connect(`unix://${path}`));
      const stub = serviceClient(holder, SyncAgentService, AGENT_SERVICE_SYNC);
      const { sessionId } = await stub.createSession({ flags: 0 });
      const idle = await rawGuest(path);
      await idle.closed;
      await agent.until((logs) => logs.some((l) => l.reason === 'idle_timeout'), 'the idle close is logged');
      assert.equal(
        await metricTotal(port, 'vaccel_agent_connections_dropped_total', 'reason="idle_timeout"'),
        1,
      );
      await stub.genop(noopGenop(sessionId)); // same connection, still open
      await holder.close();
    } finally {
      await agent.kill();
    }
  });

  test('a half-sent frame is dropped after --frame-timeout', async () => {
    const path = join(tempDir(), 'half.sock');
    const port = await freePort();
    const agent = await startAgent([
      '-a',
      `unix://${path}`,
      '--frame-timeout',
      '100ms',
      '--metrics',
      `127.0.0.1:${port}`,
      '--no-shared-memory',
    ]);
    try {
      const guest = await rawGuest(path);
      guest.socket.write(Buffer.concat([encodeHeader(1 * MiB, 1, FrameType.Request, 0), Buffer.alloc(1000)]));
      await guest.closed;
      await agent.until((logs) => logs.some((l) => l.reason === 'frame_timeout'), 'the drop is logged');
      assert.equal(
        await metricTotal(port, 'vaccel_agent_connections_dropped_total', 'reason="frame_timeout"'),
        1,
      );
      const failed = agent.logs.find((l) => l.msg === 'guest connection failed');
      assert.match(String(failed?.reason), /not finished within 100 ms/);
    } finally {
      await agent.kill();
    }
  });

  test('--max-connections N: the N+1th is closed at once, logged and counted; the others are served', async () => {
    const path = join(tempDir(), 'max.sock');
    const port = await freePort();
    const agent = await startAgent([
      '-a',
      `unix://${path}`,
      '--max-connections',
      '2',
      '--metrics',
      `127.0.0.1:${port}`,
      '--no-shared-memory',
    ]);
    try {
      const clients = await Promise.all(
        [0, 1].map(async () => {
          const client = new Client(await connect(`unix://${path}`));
          return { client, stub: serviceClient(client, SyncAgentService, AGENT_SERVICE_SYNC) };
        }),
      );
      const sessions = await Promise.all(clients.map(({ stub }) => stub.createSession({ flags: 0 })));
      const third = await rawGuest(path);
      await third.closed;
      await agent.until((logs) => logs.some((l) => l.reason === 'max_connections'), 'the refusal is logged');
      assert.equal(
        await metricTotal(port, 'vaccel_agent_connections_dropped_total', 'reason="max_connections"'),
        1,
      );
      await Promise.all(clients.map(({ stub }, i) => stub.genop(noopGenop(sessions[i]!.sessionId))));
      // A slot freed is a slot taken.
      await clients[0]!.client.close();
      await agent.until(() => count(agent, 'guest disconnected') >= 1, 'the first one is freed');
      const again = new Client(await connect(`unix://${path}`));
      await serviceClient(again, SyncAgentService, AGENT_SERVICE_SYNC).createSession({ flags: 0 });
      await Promise.all([again.close(), clients[1]!.client.close()]);
    } finally {
      await agent.kill();
    }
  });

  test('--max-peer-connections: a peer (unix uid) over its cap is refused', {
    skip: !nativeAvailable(),
  }, async () => {
    const path = join(tempDir(), 'peer.sock');
    const agent = await startAgent([
      '-a',
      `unix://${path}`,
      '--max-peer-connections',
      '1',
      '--no-shared-memory',
    ]);
    try {
      const first = new Client(await connect(`unix://${path}`));
      const stub = serviceClient(first, SyncAgentService, AGENT_SERVICE_SYNC);
      await stub.createSession({ flags: 0 });
      const second = await rawGuest(path);
      await second.closed;
      await agent.until(
        (logs) => logs.some((l) => l.reason === 'max_peer_connections'),
        'the refusal is logged',
      );
      const refusal = agent.logs.find((l) => l.reason === 'max_peer_connections');
      assert.equal(refusal?.peer, `uid:${process.getuid?.()}`);
      await stub.createSession({ flags: 0 });
      await first.close();
    } finally {
      await agent.kill();
    }
  });
});

/**
 * The agent bounds every queue and connection (issue 22): a peer that does not read its replies,
 * a stream that never ends, idle and half-sent connections, too many connections, a handover
 * flood. Each test runs a real agent with tiny bounds and waits for the agent's own events (log
 * lines, metrics, socket closes), never for time.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { connect as netConnect } from 'node:net';
import { join } from 'node:path';
import { suite, test } from 'node:test';
import { create, type DescMessage, fromBinary, type MessageInitShape, toBinary } from '@bufbuild/protobuf';
import { OpType, Vaccel } from '@vaccel/core';
import { native, nativeAvailable } from '@vaccel/memory';
import { connect } from '@vaccel/protocol';
import {
  AGENT_SERVICE_ASYNC,
  AGENT_SERVICE_SYNC,
  AgentService,
  SharedMemoryService,
  SyncAgentService,
  serviceClient,
} from '@vaccel/protocol/service';
import { remotePlugin } from '@vaccel/remote';
import {
  Client,
  encodeHeader,
  FrameDecoder,
  FrameFlag,
  FrameType,
  RequestSchema,
  ResponseSchema,
} from '@vaccel/ttrpc';
import { freePort, type RunningAgent, startAgent, tempDir } from './helpers.js';

const MiB = 1024 ** 2;

/** Every sample of a metric (all its label sets) added up. */
async function metric(port: number, name: string, labels = ''): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name) || !(line[name.length] === ' ' || line[name.length] === '{')) continue;
    if (labels && !line.includes(labels)) continue;
    sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

/** A request frame, built by hand. */
function requestFrame<D extends DescMessage>(
  id: number,
  service: string,
  method: string,
  schema: D,
  value: MessageInitShape<D>,
  flags = 0,
): Buffer {
  const payload = toBinary(schema, create(schema, value));
  const request = toBinary(RequestSchema, create(RequestSchema, { service, method, payload }));
  return Buffer.concat([encodeHeader(request.byteLength, id, FrameType.Request, flags), request]);
}

/** A raw guest: writes frames, collects the responses it reads (by stream id). */
async function rawGuest(path: string) {
  const socket = netConnect(path);
  socket.on('error', () => {});
  await new Promise((resolve) => socket.once('connect', resolve));
  const responses = new Map<number, { code: number; message: string; payload: Uint8Array }>();
  const waiters = new Map<number, () => void>();
  const decoder = new FrameDecoder(
    1 << 30,
    (frame) => {
      const response = fromBinary(ResponseSchema, frame.payload);
      responses.set(frame.streamId, {
        code: response.status?.code ?? 0,
        message: response.status?.message ?? '',
        payload: response.payload,
      });
      waiters.get(frame.streamId)?.();
    },
    () => {},
  );
  socket.on('data', (chunk: Buffer) => decoder.push(chunk));
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  return {
    socket,
    closed,
    responses,
    response(id: number) {
      const got = responses.get(id);
      if (got) return Promise.resolve(got);
      return new Promise<{ code: number; message: string; payload: Uint8Array }>((resolve) =>
        waiters.set(id, () => resolve(responses.get(id)!)),
      );
    },
  };
}

const noopGenop = (sessionId: bigint) => ({
  sessionId,
  readArgs: [{ buf: new Uint8Array([OpType.Noop]), size: 1, argType: 9 }],
  writeArgs: [],
});

async function tenant(address: string) {
  const vaccel = await Vaccel.open({ plugins: [remotePlugin({ address })] });
  return { vaccel, session: await vaccel.createSession() };
}

const count = (agent: RunningAgent, msg: string) => agent.logs.filter((l) => l.msg === msg).length;

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
      const unsent = await metric(port, 'vaccel_agent_unsent_bytes');
      assert.ok(unsent > 1 * MiB && unsent <= 2 * MiB + 4 * MiB + 64 * 1024, `unsent ${unsent}`);
      assert.equal(await metric(port, 'vaccel_agent_paused_connections'), 1);
      assert.ok((await metric(port, 'vaccel_agent_read_pauses_total')) >= 1);
      // It is not read while it does not read: neither the rest of the first batch nor a second
      // one runs, while another tenant is served.
      const ran = await metric(port, 'vaccel_agent_requests_total', 'method="SyncResource"');
      assert.ok(ran < 40, `${ran} syncs ran`);
      await new Promise<void>((resolve) => guest.socket.write(syncs(85), () => resolve()));
      const other = await tenant(`unix://${path}`);
      await other.session.noop();
      await other.vaccel.close();
      assert.equal(await metric(port, 'vaccel_agent_requests_total', 'method="SyncResource"'), ran);
      // Once it reads, the agent reads it again: the second batch is served.
      guest.socket.resume();
      await guest.response(85 + 2 * 39);
      assert.equal(await metric(port, 'vaccel_agent_requests_total', 'method="SyncResource"'), 80);
      // Replies past the bound were refused, not held: those the guest got are whole or RESOURCE_EXHAUSTED.
      const codes = new Set([...guest.responses.values()].map((r) => r.code));
      assert.ok(codes.has(8) && codes.has(0), [...codes].join(','));
      assert.ok((await metric(port, 'vaccel_agent_replies_refused_total')) >= 1);
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
      assert.equal(await metric(port, 'vaccel_agent_connections_dropped_total', 'reason="idle_timeout"'), 1);
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
      assert.equal(await metric(port, 'vaccel_agent_connections_dropped_total', 'reason="frame_timeout"'), 1);
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
        await metric(port, 'vaccel_agent_connections_dropped_total', 'reason="max_connections"'),
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

  test('a handover flood from one process does not block another tenant’s Attach', {
    skip: !nativeAvailable(),
  }, async () => {
    const path = join(tempDir(), 'ho.sock');
    const agent = await startAgent(['-a', `unix://${path}`]);
    let flood: ReturnType<typeof spawn> | undefined;
    try {
      const handoverPath = String(agent.logs.find((l) => l.msg === 'listening')?.handover);
      assert.ok(handoverPath.endsWith('.shm'));
      // Another process opens 300 handover connections, one after another, and sends nothing.
      flood = spawn(
        process.execPath,
        [
          '-e',
          `const net = require('node:net'); const held = []; let n = 0;
           const next = () => { if (n++ === 300) { process.stdout.write(held.length + '\\n'); return; }
             const s = net.connect(process.argv[1]); s.on('error', () => {}); held.push(s);
             s.once('connect', next); s.once('error', next); };
           next(); setInterval(() => {}, 1e6);`,
          handoverPath,
        ],
        { stdio: ['ignore', 'pipe', 'inherit'] },
      );
      const connected = await new Promise<number>((resolve) =>
        flood!.stdout!.once('data', (d: Buffer) => resolve(Number(String(d).trim()))),
      );
      assert.ok(connected > 200, `flood connected ${connected}`);
      // All but 4 (the per-process cap) are refused, each logged with the peer.
      await agent.until(
        (logs) => logs.filter((l) => l.reason === 'handover_peer').length === connected - 4,
        'the flood is refused',
      );
      assert.equal(agent.logs.find((l) => l.reason === 'handover_peer')?.pid, flood.pid);
      // Another tenant (this process) attaches a region meanwhile.
      const socket = netConnect(path);
      await new Promise((resolve) => socket.once('connect', resolve));
      const client = new Client(socket);
      const memory = serviceClient(client, SharedMemoryService);
      const lib = native();
      const fd = lib.memfd('bounds-test', 4096, true);
      const offer = await memory.offer({});
      const handover = lib.connect(offer.handoverPath);
      lib.sendmsg(handover, offer.nonce, [fd]);
      lib.close(handover);
      lib.close(fd);
      const { regionId } = await memory.attach({ nonce: offer.nonce });
      assert.ok(regionId > 0);
      await client.close();
    } finally {
      flood?.kill('SIGKILL');
      await agent.kill();
    }
  });
});

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { join } from 'node:path';
import { suite, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { OpType, Vaccel, VaccelError } from '@vaccel/core';
import { connect } from '@vaccel/protocol';
import { AGENT_SERVICE_SYNC, SyncAgentService, serviceClient } from '@vaccel/protocol/service';
import { remotePlugin } from '@vaccel/remote';
import { Client, encodeHeader } from '@vaccel/ttrpc';
import fc from 'fast-check';
import { GATE_PLUGIN, gatedNoop, openGate } from './gate.js';
import { freePort, startAgent, tempDir } from './helpers.js';

const code = (expected: string) => (error: unknown) =>
  error instanceof VaccelError && error.code === expected;

async function metric(port: number, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return Number(line?.split(' ')[1] ?? Number.NaN);
}

async function remote(address: string, options = {}) {
  const vaccel = await Vaccel.open({ plugins: [remotePlugin({ address, ...options })] });
  return { vaccel, session: await vaccel.createSession() };
}

suite('agent under load', () => {
  test('1,000 concurrent requests on one connection and 100 connections at once', async () => {
    const address = `unix://${join(tempDir(), 'a.sock')}`;
    const agent = await startAgent(['-a', address]);
    try {
      const { vaccel, session } = await remote(address);
      const key = new Uint8Array(16).fill(1);
      const iv = new Uint8Array(16).fill(2);
      const calls = Array.from({ length: 1000 }, async (_, i) => {
        const data = new Uint8Array(32 + (i % 50)).fill(i & 0xff);
        const { data: sealed } = await session.encrypt({ algorithm: 'aes-128-cbc', key, iv, data });
        return Buffer.from(await session.decrypt({ algorithm: 'aes-128-cbc', key, iv, data: sealed })).equals(
          Buffer.from(data),
        );
      });
      assert.ok((await Promise.all(calls)).every(Boolean));
      await vaccel.close();
      const clients = await Promise.all(Array.from({ length: 100 }, () => remote(address)));
      const results = await Promise.all(
        clients.map(
          async ({ session }, i) =>
            (
              await session.sgemm({ m: 1, n: 1, k: 1, a: new Float32Array([i]), b: new Float32Array([2]) })
            )[0],
        ),
      );
      assert.deepEqual(
        results,
        Array.from({ length: 100 }, (_, i) => 2 * i),
      );
      await Promise.all(clients.map(({ vaccel: v }) => v.close()));
    } finally {
      await agent.stop();
    }
  });
});

suite('agent faults', () => {
  test('agent killed mid-call: the call rejects with ECONNRESET; ops fail at once while it is down; it reconnects after a restart', async () => {
    const address = `unix://${join(tempDir(), 'k.sock')}`;
    await using gate = await openGate();
    let agent = await startAgent(['-a', address, '--plugins', `noop:sgemm-js:${GATE_PLUGIN}`], gate.env);
    const { vaccel, session } = await remote(address);
    try {
      const call = gatedNoop(session, 'killed');
      await gate.entered('killed'); // running in the agent now
      await agent.kill();
      const outcome = await call;
      assert.ok(
        !outcome.ok && code('ECONNRESET')(outcome.error),
        `rejected with ECONNRESET: ${outcome.ok || String(outcome.error)}`,
      );
      // Nothing listens: the reconnect is refused at once (ECONNRESET), no connect timeout (ETIMEDOUT).
      await assert.rejects(session.noop(), code('ECONNRESET'));
      agent = await startAgent(['-a', address, '--plugins', 'noop:sgemm-js']);
      await session.noop(); // a new connection, a new agent session, transparently
      assert.deepEqual(
        [...(await session.sgemm({ m: 1, n: 1, k: 1, a: new Float32Array([3]), b: new Float32Array([4]) }))],
        [12],
      );
    } finally {
      await vaccel.close();
      await agent.kill();
    }
  });

  test('client killed: the agent frees its sessions (visible in metrics)', async () => {
    const address = `unix://${join(tempDir(), 'c.sock')}`;
    const metricsPort = await freePort();
    const agent = await startAgent(['-a', address, '--metrics', `127.0.0.1:${metricsPort}`]);
    const fixture = fileURLToPath(new URL('./fixtures/idle-client.ts', import.meta.url));
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', '--conditions=@vaccel/source', fixture, address],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    await new Promise<void>((resolve) =>
      child.stdout!.on('data', (d) => String(d).includes('ready') && resolve()),
    );
    assert.equal(await metric(metricsPort, 'vaccel_agent_sessions'), 5);
    assert.equal(await metric(metricsPort, 'vaccel_agent_connections'), 1);
    child.kill('SIGKILL');
    // The agent logs this once it has freed what the connection owned (and counted it).
    await agent.until(
      (logs) => logs.some((l) => l.msg === 'guest disconnected' && l.sessionsFreed === 5),
      'the killed client was disconnected',
    );
    assert.equal(await metric(metricsPort, 'vaccel_agent_sessions'), 0);
    assert.equal(await metric(metricsPort, 'vaccel_agent_connections'), 0);
    assert.ok((await metric(metricsPort, 'vaccel_agent_received_bytes_total')) > 0);
    await agent.stop();
  });

  test('counts payload bytes by the address each connection came in on', async () => {
    const quiet = `unix://${join(tempDir(), 'quiet.sock')}`;
    const busy = `unix://${join(tempDir(), 'busy.sock')}`;
    const metricsPort = await freePort();
    const agent = await startAgent(['-a', quiet, '-a', busy, '--metrics', `127.0.0.1:${metricsPort}`]);
    try {
      const { vaccel, session } = await remote(busy);
      await session.noop();
      await session.sgemm({ m: 4, n: 4, k: 4, a: new Float32Array(16), b: new Float32Array(16) });
      await vaccel.close();
      const listener = (name: string, address: string) =>
        metric(metricsPort, `vaccel_agent_listener_${name}_bytes_total{listener="${address}"}`);
      const received = await listener('received', busy);
      assert.ok(received >= 2 * 16 * 4, `received ${received}`);
      assert.equal(received, await metric(metricsPort, 'vaccel_agent_received_bytes_total'));
      assert.equal(await listener('sent', busy), await metric(metricsPort, 'vaccel_agent_sent_bytes_total'));
      // Nothing came in on the other address: it has no series at all.
      assert.ok(Number.isNaN(await listener('received', quiet)));
    } finally {
      await agent.stop();
    }
  });

  test('hostile frames get an error or a clean close, and other connections keep working (fuzz)', async () => {
    const path = join(tempDir(), 'f.sock');
    const agent = await startAgent(['-a', `unix://${path}`, '--max-frame', '65536']);
    const { vaccel, session } = await remote(`unix://${path}`);
    try {
      // Connections this test opened: the agent logs 'guest disconnected' once for each, when it
      // has freed it (after 'guest connection failed', if it failed).
      let opened = 1; // the session's
      const disconnected = () => agent.logs.filter((l) => l.msg === 'guest disconnected').length;
      // Junk, then our end of the stream: the agent answers or closes; either way it then closes
      // (the connection is done when it has read everything, whatever it made of it).
      const send = (bytes: Uint8Array) =>
        new Promise<void>((resolve) => {
          opened++;
          const socket = netConnect(path);
          socket.on('error', () => {});
          socket.on('close', () => resolve());
          socket.resume();
          socket.end(bytes);
        });
      const frame = fc
        .tuple(
          fc.integer({ min: 0, max: 1 << 20 }),
          fc.nat(),
          fc.integer({ min: 0, max: 5 }),
          fc.nat({ max: 7 }),
          fc.uint8Array({ maxLength: 120 }),
        )
        .map(([length, id, type, flags, body]) =>
          Buffer.concat([encodeHeader(length, id, type, flags), body]),
        );
      await fc.assert(
        fc.asyncProperty(fc.oneof(frame, fc.uint8Array({ maxLength: 200 })), async (junk) => {
          await send(junk);
          await session.noop();
        }),
        { numRuns: 60 },
      );
      // Envelopes that decode but name nothing real: unknown service and method.
      const client = new Client(await connect(`unix://${path}`));
      opened++;
      await assert.rejects(client.call('vaccel.Nope', 'Genop', new Uint8Array(0)), { code: 12 });
      await assert.rejects(client.call(AGENT_SERVICE_SYNC, 'Nope', new Uint8Array(0)), { code: 12 });
      await assert.rejects(client.call(AGENT_SERVICE_SYNC, 'Genop', new Uint8Array([0xff, 0xff])), /.+/);
      await client.close();
      await session.noop();
      // A frame cut off mid-payload: the connection's end is logged once, with the reason. First,
      // every earlier connection but the session's is freed (and its failure, if any, logged), so
      // the next failure logged is the cut-off one.
      await agent.until(() => disconnected() === opened - 1, 'the earlier connections were freed');
      const failures = () => agent.logs.filter((l) => l.msg === 'guest connection failed');
      const before = failures().length;
      opened++;
      await new Promise<void>((resolve) => {
        const socket = netConnect(path, () => {
          socket.end(Buffer.concat([encodeHeader(100, 1, 1, 0), Buffer.alloc(10)]));
        });
        socket.on('close', () => resolve());
      });
      await agent.until(() => disconnected() === opened - 1, 'the cut-off connection was freed');
      const failed = failures().slice(before);
      assert.equal(failed.length, 1, JSON.stringify(failed));
      assert.match(String(failed[0]!.reason), /mid-frame/);
      await vaccel.close();
      assert.equal(await agent.stop(), 0);
    } finally {
      await vaccel.close();
      await agent.kill();
    }
  });

  test('sessions are scoped to their connection; limits and the token are enforced', async () => {
    const dir = tempDir();
    const tokenFile = join(dir, 'token');
    writeFileSync(tokenFile, 's3cret\n');
    const address = `unix://${join(dir, 't.sock')}`;
    const agent = await startAgent([
      '-a',
      address,
      '--token-file',
      tokenFile,
      '--max-sessions',
      '2',
      '--max-resource-bytes',
      '1000',
    ]);
    try {
      const noToken = await remote(address);
      await assert.rejects(noToken.session.noop(), code('EACCES'));
      await noToken.vaccel.close();
      const wrong = await remote(address, { token: 'guess' });
      await assert.rejects(wrong.session.noop(), code('EACCES'));
      await wrong.vaccel.close();
      const stub = async () => {
        const client = new Client(await connect(address), { metadata: { authorization: 'Bearer s3cret' } });
        return { client, stub: serviceClient(client, SyncAgentService, AGENT_SERVICE_SYNC) };
      };
      const one = await stub();
      const two = await stub();
      const { sessionId } = await one.stub.createSession({ flags: 0 });
      const genop = {
        sessionId,
        readArgs: [{ buf: new Uint8Array([OpType.Noop]), size: 1, argType: 9 }],
        writeArgs: [],
      };
      await one.stub.genop(genop);
      await assert.rejects(two.stub.genop(genop), { code: 5 }); // NOT_FOUND on another connection
      await assert.rejects(two.stub.destroySession({ sessionId }), { code: 5 });
      await one.stub.createSession({ flags: 0 });
      await assert.rejects(one.stub.createSession({ flags: 0 }), { code: 8 }); // RESOURCE_EXHAUSTED
      await assert.rejects(
        one.stub.registerResource({
          sessionId,
          resourceType: 2,
          blobs: [{ name: 'big', data: new Uint8Array(2000), size: 2000 }],
        }),
        { code: 8 },
      );
      await assert.rejects(
        one.stub.registerResource({ sessionId, resourceType: 2, paths: ['/etc/passwd'] }),
        { code: 7 },
      ); // PERMISSION_DENIED
      await assert.rejects(
        one.stub.genop({ ...genop, readArgs: [{ buf: new Uint8Array([0, 0]), size: 1, argType: 9 }] }),
        { code: 3 },
      ); // INVALID_ARGUMENT: the status follows the error
      await Promise.all([one.client.close(), two.client.close()]);
    } finally {
      await agent.stop();
    }
  });

  test('SIGTERM drains: an op in flight completes, new calls are refused meanwhile, then the agent exits 0', async () => {
    const address = `unix://${join(tempDir(), 'd.sock')}`;
    await using gate = await openGate();
    const agent = await startAgent(['-a', address, '--plugins', `noop:${GATE_PLUGIN}`], gate.env);
    const { vaccel, session } = await remote(address);
    try {
      await session.noop(); // connected, with an agent session
      const call = gatedNoop(session, 'in flight');
      const held = await gate.entered('in flight');
      const stopped = agent.stop(); // SIGTERM
      await agent.until((logs) => logs.some((l) => l.msg === 'draining'), 'the agent took the signal');
      // The agent logs 'draining' and stops accepting in one turn of its event loop, so anything
      // sent from here on finds it draining: new calls and new connections are refused.
      await assert.rejects(session.noop(), code('ECONNRESET'));
      const late = await remote(address);
      await assert.rejects(late.session.noop(), code('ECONNRESET'));
      await late.vaccel.close();
      assert.equal(agent.process.exitCode, null, 'still running while an op is in flight');
      held.release();
      assert.deepEqual(await call, { ok: true });
      assert.equal(await stopped, 0);
      assert.ok(agent.logs.some((l) => l.msg === 'stopped'));
    } finally {
      await vaccel.close();
      await agent.kill();
    }
  });
});

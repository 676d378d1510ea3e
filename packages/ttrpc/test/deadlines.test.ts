import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { mkdtempSync } from 'node:fs';
import { createConnection, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite, test } from 'node:test';
import { MessageChannel } from 'node:worker_threads';
import { Client, Code, type Method, Server, TtrpcError } from '@vaccel/ttrpc';
import fc from 'fast-check';
import { Deadlines, now } from '../src/deadlines.js';
import { requestParts } from '../src/envelope.js';
import { bytes, duplexPair, HeldCalls, text } from './helpers.js';

const timers = (): number => process.getActiveResourcesInfo().filter((kind) => kind === 'Timeout').length;
/** A connected unix socket (a connected net.Socket gets the channel's onread path). */
const connected = (path: string): Promise<Socket> =>
  new Promise((resolve, reject) => {
    const socket = createConnection(path, () => resolve(socket));
    socket.once('error', reject);
  });

suite('deadline heap', () => {
  test('fires in expiry order, never early, never a removed entry, with one timer however many wait (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ delay: fc.integer({ min: 0, max: 30 }), remove: fc.boolean() }), {
          maxLength: 40,
        }),
        async (specs) => {
          const deadlines = new Deadlines();
          const fired: { i: number; at: number }[] = [];
          const kept = specs.flatMap((spec, i) => (spec.remove ? [] : [i]));
          let allFired!: () => void;
          const done = new Promise<void>((resolve) => {
            allFired = resolve;
          });
          const start = now();
          const entries = specs.map((spec, i) =>
            deadlines.add(start + spec.delay, () => {
              fired.push({ i, at: now() });
              if (fired.length === kept.length) allFired();
            }),
          );
          assert.ok(timers() <= 1 + 1, 'one timer for the heap (and none of the test harness)');
          for (const [i, spec] of specs.entries()) if (spec.remove) deadlines.remove(entries[i]!);
          // Waits for the entries themselves, however late the timer runs (the heap's timer is
          // unref'd, so something else keeps the process up meanwhile).
          if (kept.length > 0) {
            const { port1 } = new MessageChannel();
            port1.ref();
            await done;
            port1.close();
          }
          assert.deepEqual(
            fired.map((f) => f.i).sort((a, b) => a - b),
            kept,
            'every kept entry fired once, no removed one',
          );
          for (const [n, { i, at }] of fired.entries()) {
            assert.ok(at >= start + specs[i]!.delay, `entry ${i} fired before its deadline`);
            if (n > 0) assert.ok(specs[fired[n - 1]!.i]!.delay <= specs[i]!.delay, 'expiry order');
          }
          // Nothing left to fire later: no entry, no timer.
          assert.equal(deadlines.size, 0);
          assert.equal(deadlines.armed, false);
        },
      ),
      { numRuns: 25 },
    );
  });

  test('deadlines past setTimeout’s 24.8-day range arm a capped timer instead of throwing', () => {
    const deadlines = new Deadlines();
    const entry = deadlines.add(now() + Number(0x7fffffffffffffffn) / 1e6, () => assert.fail('fired'));
    assert.equal(deadlines.armed, true);
    deadlines.remove(entry);
    assert.equal(deadlines.armed, false);
  });
});

/** A server whose `Hold` handler runs until its signal aborts (the test never releases it). */
function holdingServer(): { server: Server; held: HeldCalls } {
  const held = new HeldCalls();
  const server = new Server();
  const methods: Record<string, Method> = {
    Echo: (payload) => payload,
    Hold: held.method,
  };
  server.register('test.Deadline', methods);
  return { server, held };
}

suite('server deadlines', () => {
  test('an expiring deadline answers DEADLINE_EXCEEDED, aborts the handler, and the connection goes on', async () => {
    const { server, held } = holdingServer();
    const [a, b] = duplexPair();
    server.serve(b);
    const client = new Client(a);
    // A deadline that cannot be met: the handler never finishes on its own. (Not so short that
    // it could expire between the server reading the call and starting its handler.)
    await assert.rejects(
      client.call('test.Deadline', 'Hold', bytes('x'), { timeoutMs: 250 }),
      (error: unknown) => error instanceof TtrpcError && error.code === Code.DEADLINE_EXCEEDED,
    );
    const [call] = await held.entered(1);
    const reason = await call!.aborted; // the server's own deadline aborts its handler
    assert.ok(reason instanceof TtrpcError && reason.code === Code.DEADLINE_EXCEEDED);
    assert.equal(held.aborts, 1);
    assert.equal(
      text(await client.call('test.Deadline', 'Echo', bytes('next'), { timeoutMs: 60_000 })),
      'next',
    );
    assert.equal(server.pendingDeadlines, 0);
    await client.close();
  });

  test('fractional, 1 ns, negative and int64-max timeout_nano: a status each, never a dropped connection', async () => {
    const { server } = holdingServer();
    const [a, b] = duplexPair();
    const connection = server.serve(b);
    const client = new Client(a);
    const statusOf = async (timeoutNano: bigint, method = 'Hold', payload = 'x') => {
      const frames: Buffer[] = [];
      const got = new Promise<void>((resolve) => {
        const onData = (chunk: Buffer) => {
          frames.push(chunk);
          a.off('data', onData);
          resolve();
        };
        a.on('data', onData);
      });
      const parts = requestParts('test.Deadline', method, bytes(payload), timeoutNano, undefined);
      const body = Buffer.concat(parts);
      const header = Buffer.alloc(10);
      header.writeUInt32BE(body.byteLength, 0);
      header.writeUInt32BE(1001, 4);
      header[8] = 1;
      a.write(Buffer.concat([header, body]));
      await got;
      return Buffer.concat(frames);
    };
    for (const timeoutNano of [1n, -1n, -(2n ** 63n), 1_500_001n]) {
      const reply = await statusOf(timeoutNano);
      assert.equal(reply[8], 2, 'a Response frame');
      // status {code 4} is the envelope's first field: 0a <len> 08 04
      assert.equal(reply[12], 0x08);
      assert.equal(reply[13], Code.DEADLINE_EXCEEDED, `timeout_nano ${timeoutNano}`);
    }
    const max = await statusOf(2n ** 63n - 1n, 'Echo', 'long');
    assert.equal(max[8], 2);
    assert.ok(max.subarray(10).includes(Buffer.from('long')));
    assert.equal(connection.closed, false);
    assert.equal(server.pendingDeadlines, 0);
    await client.close();
  });

  test('after 10,000 calls with deadlines (some expiring, some aborted) no timer, deadline or listener is left', async () => {
    const { server, held } = holdingServer();
    const path = join(mkdtempSync(join(tmpdir(), 'ttrpc-deadlines-')), 's.sock');
    const listener = createServer();
    server.listen(listener);
    await new Promise<void>((resolve) => listener.listen(path, resolve));
    const client = new Client(await connected(path));
    const baseline = timers();
    const controller = new AbortController();
    let expired = 0;
    let inFlightTimers = 0;
    for (let batch = 0; batch < 20; batch++) {
      const calls = Array.from({ length: 500 }, (_, i) => {
        const slow = i % 50 === 0;
        return client
          .call('test.Deadline', slow ? 'Hold' : 'Echo', bytes('x'), {
            timeoutMs: slow ? 5 : 30_000 + i,
            signal: controller.signal,
          })
          .catch((error: unknown) => {
            assert.ok(error instanceof TtrpcError && error.code === Code.DEADLINE_EXCEEDED, String(error));
            expired++;
          });
      });
      inFlightTimers = Math.max(inFlightTimers, timers() - baseline);
      await Promise.all(calls);
    }
    assert.equal(expired, 200);
    assert.ok(
      inFlightTimers <= 2,
      `at most one timer each for the client's and the server's deadlines, saw ${inFlightTimers}`,
    );
    // The client may have given up on a held call before the server read it. A last call on the
    // connection is answered only after the server has dispatched everything sent before it;
    // then each held handler that started is aborted by its server-side deadline (which leaves
    // the heap as it fires). One that arrived already expired never started.
    assert.equal(text(await client.call('test.Deadline', 'Echo', bytes('last'))), 'last');
    await held.abortedCalls(held.calls.length);
    assert.equal(client.pendingDeadlines, 0);
    assert.equal(server.pendingDeadlines, 0);
    assert.equal(
      getEventListeners(controller.signal, 'abort').length,
      0,
      'no abort listener outlives its call',
    );
    assert.equal(timers(), baseline, 'no timer outlives its call');
    await client.close();
    server.close();
  });
});

import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite, test } from 'node:test';
import { Client, Code, encodeHeader, Server, TtrpcClosedError, TtrpcError } from '@vaccel/ttrpc';
import fc from 'fast-check';
import { bytes, duplexPair, text } from './helpers.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function echoServer(options = {}): Server {
  const server = new Server(options);
  server.register('test.Echo', {
    Echo: (payload) => payload,
    Upper: (payload) => bytes(text(payload).toUpperCase()),
    Slow: async (payload, ctx) => {
      const ms = Number(text(payload));
      await new Promise((resolve, reject) => {
        const timer = setTimeout(resolve, ms);
        ctx.signal.addEventListener('abort', () => {
          clearTimeout(timer);
          reject(ctx.signal.reason);
        });
      });
      return payload;
    },
    Fail: () => {
      throw new TtrpcError(Code.NOT_FOUND, 'no such thing');
    },
    Crash: () => {
      throw new Error('handler bug');
    },
    Meta: (_payload, ctx) => bytes(ctx.metadata.get('token') ?? ''),
    Sum: {
      kind: 'client-stream',
      async handler(payloads) {
        let sum = 0;
        for await (const payload of payloads) sum += Number(text(payload));
        return bytes(String(sum));
      },
    },
  });
  return server;
}

function connected(server: Server, options = {}): Client {
  const [a, b] = duplexPair();
  server.serve(b);
  return new Client(a, options);
}

const withCode = (code: number, pattern?: RegExp) => (error: unknown) =>
  error instanceof TtrpcError && error.code === code && (!pattern || pattern.test(error.message));

suite('ttrpc client and server', () => {
  test('unary calls, metadata and replies', async () => {
    const client = connected(echoServer(), { metadata: { token: 'secret' } });
    assert.equal(text(await client.call('test.Echo', 'Upper', bytes('hi'))), 'HI');
    assert.equal(text(await client.call('test.Echo', 'Echo', new Uint8Array(0))), '');
    assert.equal(text(await client.call('test.Echo', 'Meta', new Uint8Array(0))), 'secret');
    await client.close();
  });

  test('1,000 concurrent calls on one connection each get their own reply', async () => {
    const client = connected(echoServer());
    const replies = await Promise.all(
      Array.from({ length: 1000 }, (_, i) =>
        client.call('test.Echo', i % 2 ? 'Echo' : 'Slow', bytes(String(i % 7))),
      ),
    );
    for (const [i, reply] of replies.entries()) assert.equal(text(reply), String(i % 7));
    await client.close();
  });

  test('errors: status from handler, UNKNOWN for bugs, UNIMPLEMENTED for unknown service/method', async () => {
    const client = connected(echoServer());
    await assert.rejects(
      client.call('test.Echo', 'Fail', bytes('')),
      withCode(Code.NOT_FOUND, /no such thing/),
    );
    await assert.rejects(client.call('test.Echo', 'Crash', bytes('')), withCode(Code.UNKNOWN, /handler bug/));
    await assert.rejects(
      client.call('test.Nope', 'Echo', bytes('')),
      withCode(Code.UNIMPLEMENTED, /service test.Nope/),
    );
    await assert.rejects(
      client.call('test.Echo', 'Nope', bytes('')),
      withCode(Code.UNIMPLEMENTED, /test.Echo\/Nope/),
    );
    assert.equal(text(await client.call('test.Echo', 'Echo', bytes('still fine'))), 'still fine');
  });

  test('deadlines: the client rejects and the server aborts the handler', async () => {
    const client = connected(echoServer());
    const started = performance.now();
    await assert.rejects(
      client.call('test.Echo', 'Slow', bytes('5000'), { timeoutMs: 50 }),
      withCode(Code.DEADLINE_EXCEEDED),
    );
    assert.ok(performance.now() - started < 1000);
    await assert.rejects(
      client.call('test.Echo', 'Slow', bytes('5000'), { signal: AbortSignal.timeout(30) }),
      /TimeoutError|aborted/i,
    );
    await assert.rejects(
      client.call('test.Echo', 'Echo', bytes(''), { signal: AbortSignal.abort(new Error('never')) }),
      /never/,
    );
    assert.equal(client.inflight, 0);
  });

  test('maxFrame is checked against what the 32-bit length can carry', () => {
    assert.throws(
      () => new Server({ maxFrame: 2 ** 32 }),
      /maxFrame must be a whole number of bytes from 1 to 4294967295/,
    );
    assert.throws(() => new Server({ maxFrame: 0 }), RangeError);
    assert.throws(() => new Client(duplexPair()[0], { maxFrame: 1.5 }), /Client: maxFrame/);
    assert.ok(new Server({ maxFrame: 2 ** 32 - 1 }));
  });

  test('client streaming', async () => {
    const client = connected(echoServer());
    assert.equal(text(await client.callStream('test.Echo', 'Sum', ['1', '2', '39'].map(bytes))), '42');
    await assert.rejects(
      client.call('test.Echo', 'Sum', bytes('1')),
      withCode(Code.INVALID_ARGUMENT, /client-streaming/),
    );
  });

  test('oversized frames: refused locally when sending, RESOURCE_EXHAUSTED from the server, connection goes on', async () => {
    const server = echoServer({ maxFrame: 1024 });
    const [a, b] = duplexPair();
    server.serve(b);
    const small = new Client(a, { maxFrame: 1 << 20 });
    await assert.rejects(
      small.call('test.Echo', 'Echo', new Uint8Array(4096)),
      withCode(Code.RESOURCE_EXHAUSTED, /over the limit of 1024/),
    );
    assert.equal(text(await small.call('test.Echo', 'Echo', bytes('ok'))), 'ok');
    const tight = connected(echoServer(), { maxFrame: 64 });
    await assert.rejects(
      tight.call('test.Echo', 'Echo', new Uint8Array(100)),
      withCode(Code.RESOURCE_EXHAUSTED),
    );
  });

  test('too many calls in flight on one connection: RESOURCE_EXHAUSTED', async () => {
    const client = connected(echoServer({ maxInflight: 2 }));
    const results = await Promise.allSettled(
      [1, 2, 3].map(() => client.call('test.Echo', 'Slow', bytes('50'))),
    );
    assert.deepEqual(
      results.map((r) => r.status),
      ['fulfilled', 'fulfilled', 'rejected'],
    );
    assert.ok(withCode(Code.RESOURCE_EXHAUSTED)((results[2] as PromiseRejectedResult).reason));
  });

  test('a closed connection rejects pending calls with one closed error, and the server aborts handlers', async () => {
    const server = echoServer();
    const client = connected(server);
    const pending = client.call('test.Echo', 'Slow', bytes('10000'));
    await sleep(10);
    assert.equal(server.connections()[0]!.inflight, 1);
    await client.close();
    await assert.rejects(pending, TtrpcClosedError);
    await assert.rejects(client.call('test.Echo', 'Echo', bytes('')), TtrpcClosedError);
    await sleep(5);
    assert.equal(server.connections().length, 0);
  });

  test('shutdown drains in-flight calls, refuses new ones, then closes', async () => {
    const server = echoServer();
    const client = connected(server);
    const slow = client.call('test.Echo', 'Slow', bytes('80'));
    await sleep(5);
    const done = server.shutdown();
    await assert.rejects(client.call('test.Echo', 'Echo', bytes('')), withCode(Code.UNAVAILABLE));
    assert.equal(text(await slow), '80');
    await done;
    await client.whenClosed();
  });
});

suite('ttrpc server against hostile input (unix sockets)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ttrpc-'));

  async function listening(): Promise<{ server: Server; path: string; close(): void }> {
    const server = echoServer({ maxFrame: 1 << 16 });
    const path = join(dir, `s${Math.random().toString(36).slice(2)}.sock`);
    const listener = createServer();
    server.listen(listener);
    await new Promise<void>((resolve) => listener.listen(path, resolve));
    return { server, path, close: () => server.close() };
  }

  /** Sends raw bytes; resolves with everything read when the server closes, or after `waitMs`. */
  function raw(path: string, data: Uint8Array, waitMs = 150): Promise<{ bytes: Buffer; closed: boolean }> {
    return new Promise((resolve) => {
      const socket = createConnection(path);
      const chunks: Buffer[] = [];
      const finish = (closed: boolean): void => {
        clearTimeout(timer);
        socket.destroy();
        resolve({ bytes: Buffer.concat(chunks), closed });
      };
      const timer = setTimeout(() => finish(false), waitMs);
      socket.on('data', (chunk) => chunks.push(chunk));
      socket.on('error', () => {});
      socket.on('close', () => finish(true));
      socket.write(data);
    });
  }

  test('garbage, truncated, unknown-type and wrong-direction frames: an error reply, ignored, or a clean close', async () => {
    const { path, close } = await listening();
    const envelopeJunk = Buffer.concat([encodeHeader(3, 1, 1, 0), Buffer.from([0xff, 0xff, 0xff])]);
    const unknownType = Buffer.concat([encodeHeader(0, 1, 9, 0)]);
    const response = Buffer.concat([encodeHeader(0, 1, 2, 0)]);
    const truncated = encodeHeader(100, 1, 1, 0).subarray(0, 7);
    const oversized = encodeHeader(1 << 20, 1, 1, 0);
    const replyToJunk = await raw(path, envelopeJunk);
    assert.equal(replyToJunk.bytes[8], 2, 'a Response frame');
    assert.equal(replyToJunk.closed, false);
    // Frame types a server does not take are ignored, as containerd/ttrpc's server does.
    assert.deepEqual(await raw(path, unknownType), { bytes: Buffer.alloc(0), closed: false });
    assert.deepEqual(await raw(path, response), { bytes: Buffer.alloc(0), closed: false });
    assert.equal((await raw(path, truncated)).bytes.byteLength, 0);
    const big = await raw(path, oversized);
    assert.equal(big.bytes[8], 2, 'RESOURCE_EXHAUSTED reply before the payload arrives');
    // Other connections were never disturbed.
    const socket = createConnection(path);
    const client = new Client(socket);
    assert.equal(text(await client.call('test.Echo', 'Upper', bytes('alive'))), 'ALIVE');
    await client.close();
    close();
  });

  test('fuzz: random byte streams never crash the server, which keeps serving (property)', async () => {
    const { path, close } = await listening();
    const client = new Client(createConnection(path));
    const header = fc.record({
      length: fc.nat({ max: 200 }),
      streamId: fc.nat(),
      type: fc.integer({ min: 0, max: 4 }),
      flags: fc.integer({ min: 0, max: 7 }),
    });
    const frame = fc
      .tuple(header, fc.uint8Array({ maxLength: 200 }))
      .map(([h, body]) => Buffer.concat([encodeHeader(h.length, h.streamId, h.type, h.flags), body]));
    await fc.assert(
      fc.asyncProperty(fc.oneof(fc.uint8Array({ maxLength: 300 }), frame), async (junk) => {
        await raw(path, junk, 25);
        assert.equal(text(await client.call('test.Echo', 'Echo', bytes('ok'))), 'ok');
      }),
      { numRuns: 40 },
    );
    await client.close();
    close();
  });
});

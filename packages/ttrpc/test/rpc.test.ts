import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite, test } from 'node:test';
import { Client, Code, encodeHeader, Server, TtrpcClosedError, TtrpcError } from '@vaccel/ttrpc';
import fc from 'fast-check';
import { requestParts } from '../src/envelope.js';
import { bytes, duplexPair, HeldCalls, text } from './helpers.js';

function echoServer(options = {}, held = new HeldCalls()): Server {
  const server = new Server(options);
  server.register('test.Echo', {
    Hold: held.method,
    Echo: (payload) => payload,
    Upper: (payload) => bytes(text(payload).toUpperCase()),
    // Replies after `payload` turns of the event loop: calls finish out of order, no time involved.
    Later: async (payload) => {
      for (let turns = Number(text(payload)); turns > 0; turns--)
        await new Promise((resolve) => setImmediate(resolve));
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
        client.call('test.Echo', i % 2 ? 'Echo' : 'Later', bytes(String(i % 7))),
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
    const held = new HeldCalls();
    const client = connected(echoServer({}, held));
    // Deadlines that cannot be met: held calls never finish on their own.
    await assert.rejects(
      client.call('test.Echo', 'Hold', bytes('1'), { timeoutMs: 50 }),
      withCode(Code.DEADLINE_EXCEEDED),
    );
    const [first] = await held.entered(1);
    assert.ok(withCode(Code.DEADLINE_EXCEEDED)(await first!.aborted), 'the server aborted its handler');
    const controller = new AbortController();
    const aborted = client.call('test.Echo', 'Hold', bytes('2'), { signal: controller.signal });
    const [, second] = await held.entered(2);
    controller.abort(new Error('gave up'));
    await assert.rejects(aborted, /gave up/);
    await assert.rejects(
      client.call('test.Echo', 'Echo', bytes(''), { signal: AbortSignal.abort(new Error('never')) }),
      /never/,
    );
    assert.equal(client.inflight, 0);
    // ttRPC has no cancel message: the server learns of it when the connection closes.
    await client.close();
    assert.ok(withCode(Code.CANCELLED)(await second!.aborted));
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
    const held = new HeldCalls();
    const client = connected(echoServer({ maxInflight: 2 }, held));
    const calls = [1, 2, 3].map((i) =>
      client.call('test.Echo', 'Hold', bytes(String(i))).then(
        (reply) => text(reply),
        (error: unknown) => error,
      ),
    );
    assert.ok(withCode(Code.RESOURCE_EXHAUSTED)(await calls[2]), 'the third is refused');
    for (const call of await held.entered(2)) call.release();
    assert.deepEqual(await Promise.all(calls.slice(0, 2)), ['1', '2']);
    assert.equal(held.calls.length, 2, 'the refused call never reached its handler');
  });

  test('a closed connection rejects pending calls with one closed error, and the server aborts handlers', async () => {
    const held = new HeldCalls();
    const server = echoServer({}, held);
    const client = connected(server);
    const pending = client.call('test.Echo', 'Hold', bytes('x'));
    const [call] = await held.entered(1);
    const [connection] = server.connections();
    assert.equal(connection!.inflight, 1);
    const closed = new Promise((resolve) => connection!.once('close', resolve));
    await client.close();
    await assert.rejects(pending, TtrpcClosedError);
    await assert.rejects(client.call('test.Echo', 'Echo', bytes('')), TtrpcClosedError);
    assert.ok(withCode(Code.CANCELLED)(await call!.aborted), 'the server aborted the handler');
    await closed;
    assert.equal(server.connections().length, 0);
  });

  test('shutdown drains in-flight calls, refuses new ones, then closes', async () => {
    const held = new HeldCalls();
    const server = echoServer({}, held);
    const client = connected(server);
    const inFlight = client.call('test.Echo', 'Hold', bytes('in flight'));
    const [call] = await held.entered(1);
    let drained = false;
    const done = server.shutdown().then(() => {
      drained = true;
    });
    await assert.rejects(client.call('test.Echo', 'Echo', bytes('')), withCode(Code.UNAVAILABLE));
    assert.equal(drained, false, 'shutdown waits for the call in flight');
    call!.release();
    assert.equal(text(await inFlight), 'in flight');
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

  /** The complete frames in `bytes`: stream id and type of each. */
  const framesIn = (bytes: Buffer): { streamId: number; type: number }[] => {
    const frames = [];
    for (let at = 0; at + 10 <= bytes.length; at += 10 + bytes.readUInt32BE(at)) {
      if (at + 10 + bytes.readUInt32BE(at) > bytes.length) break;
      frames.push({ streamId: bytes.readUInt32BE(at + 4), type: bytes[at + 8]! });
    }
    return frames;
  };
  /** Stream id of the well-formed request {@link raw} sends after the bytes under test. */
  const PROBE = 1001;

  /**
   * Sends raw bytes on a new connection and resolves with every byte the server sent once it
   * closed the connection, or once `done(frames)` holds for the complete frames it sent. With
   * `probe`, a well-formed Echo request (stream {@link PROBE}) follows the bytes: the server reads
   * it only after them, so its reply says they were dealt with. With `end`, our side ends after
   * the bytes, so the server closes once it has read them.
   */
  function raw(
    path: string,
    data: Uint8Array,
    options: { probe?: boolean; end?: boolean; done?: (frames: { streamId: number }[]) => boolean } = {},
  ): Promise<{ bytes: Buffer; closed: boolean }> {
    const { probe = false, end = false } = options;
    const done = options.done ?? (probe ? (frames) => frames.some((f) => f.streamId === PROBE) : () => false);
    return new Promise((resolve) => {
      const socket = createConnection(path);
      const chunks: Buffer[] = [];
      let finished = false;
      const finish = (closed: boolean): void => {
        if (finished) return;
        finished = true;
        socket.destroy();
        resolve({ bytes: Buffer.concat(chunks), closed });
      };
      socket.on('data', (chunk) => {
        chunks.push(chunk);
        if (done(framesIn(Buffer.concat(chunks)))) finish(false);
      });
      socket.on('error', () => {});
      socket.on('close', () => finish(true));
      socket.write(data);
      if (probe) {
        const body = Buffer.concat(requestParts('test.Echo', 'Echo', bytes('probe'), 0n, undefined));
        socket.write(Buffer.concat([encodeHeader(body.byteLength, PROBE, 1, 0), body]));
      }
      if (end) socket.end();
    });
  }

  test('garbage, truncated, unknown-type and wrong-direction frames: an error reply, ignored, or a clean close', async () => {
    const { path, close } = await listening();
    const envelopeJunk = Buffer.concat([encodeHeader(3, 1, 1, 0), Buffer.from([0xff, 0xff, 0xff])]);
    const unknownType = Buffer.concat([encodeHeader(0, 1, 9, 0)]);
    const response = Buffer.concat([encodeHeader(0, 1, 2, 0)]);
    const truncated = encodeHeader(100, 1, 1, 0).subarray(0, 7);
    const oversized = encodeHeader(1 << 20, 1, 1, 0);
    const replyToJunk = await raw(path, envelopeJunk, { probe: true });
    assert.deepEqual(framesIn(replyToJunk.bytes), [
      { streamId: 1, type: 2 }, // an error Response
      { streamId: PROBE, type: 2 },
    ]);
    assert.equal(replyToJunk.closed, false);
    // Frame types a server does not take are ignored, as containerd/ttrpc's server does: the
    // probe's reply is all that comes back.
    for (const ignored of [unknownType, response]) {
      const reply = await raw(path, ignored, { probe: true });
      assert.deepEqual(framesIn(reply.bytes), [{ streamId: PROBE, type: 2 }]);
      assert.equal(reply.bytes.byteLength, 10 + reply.bytes.readUInt32BE(0));
      assert.equal(reply.closed, false);
    }
    // A header cut short, then the end: nothing to answer, the connection closes.
    assert.deepEqual(await raw(path, truncated, { end: true }), { bytes: Buffer.alloc(0), closed: true });
    const big = await raw(path, oversized, { done: (frames) => frames.length > 0 });
    assert.deepEqual(
      framesIn(big.bytes),
      [{ streamId: 1, type: 2 }],
      'RESOURCE_EXHAUSTED before the payload',
    );
    assert.equal(big.closed, false);
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
        await raw(path, junk, { end: true });
        assert.equal(text(await client.call('test.Echo', 'Echo', bytes('ok'))), 'ok');
      }),
      { numRuns: 40 },
    );
    await client.close();
    close();
  });
});

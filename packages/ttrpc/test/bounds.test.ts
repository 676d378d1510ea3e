/**
 * Connection bounds at the ttRPC layer (Connection.bound): a peer that does not read its replies
 * stops being read, its unsent bytes stay bounded, and a frame that never finishes closes the
 * connection. Over real unix sockets (the zero-copy reader is the socket path). Tests wait for the
 * bound's own callbacks and the sockets' events.
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { createConnection, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite, test } from 'node:test';
import { type Connection, encodeHeader, FrameDecoder, Server } from '@vaccel/ttrpc';
import { requestParts } from '../src/envelope.js';

const KiB = 1024;

/** A server on a fresh unix socket; `bound` is applied to each connection. */
async function serve(server: Server): Promise<{ path: string; close(): void }> {
  const path = join(mkdtempSync(join(tmpdir(), 'ttrpc-bounds-')), 's.sock');
  const listener = createServer();
  server.listen(listener);
  await new Promise<void>((resolve) => listener.listen(path, resolve));
  return {
    path,
    close: () => {
      server.close();
      listener.close();
    },
  };
}

async function rawPeer(path: string): Promise<Socket> {
  const socket = createConnection(path);
  socket.on('error', () => {});
  await new Promise((resolve) => socket.once('connect', resolve));
  return socket;
}

const request = (id: number): Buffer => {
  const parts = requestParts('svc', 'Big', new Uint8Array(0), 0n, undefined);
  const body = Buffer.concat(parts);
  return Buffer.concat([encodeHeader(body.byteLength, id, 1, 0), body]);
};

suite('connection bounds', () => {
  test('a peer that does not read is not read; unsent bytes stay under twice the bound plus one reply', async () => {
    let ran = 0;
    let connection!: Connection;
    let paused!: () => void;
    const pausedOnce = new Promise<void>((resolve) => {
      paused = resolve;
    });
    let resumed!: () => void;
    const resumedOnce = new Promise<void>((resolve) => {
      resumed = resolve;
    });
    const reply = new Uint8Array(256 * KiB).fill(1);
    const server = new Server({
      onConnection: (c) => {
        connection = c;
        c.bound({ maxUnsent: 64 * KiB, paused: () => paused(), resumed: () => resumed() });
      },
    });
    server.register('svc', {
      // Async, as the agent's handlers are: replies of one read's frames are written after all ran.
      Big: async () => {
        ran++;
        return reply;
      },
    });
    const { path, close } = await serve(server);
    try {
      const peer = await rawPeer(path);
      peer.pause(); // reads nothing
      peer.write(Buffer.concat(Array.from({ length: 40 }, (_, i) => request(1 + 2 * i))));
      await pausedOnce;
      assert.ok(connection.readPaused);
      assert.ok(connection.unsentBytes <= 2 * 64 * KiB + reply.byteLength, `${connection.unsentBytes}`);
      // Only the frames of one read's first few ran; the rest wait, unread, in the reader.
      assert.ok(ran < 40, `${ran} ran`);
      const before = ran;
      // Once the peer reads, the server reads again and every request runs.
      let answered = 0;
      const codes = new Set<number>();
      const all = new Promise<void>((resolve) => {
        const decoder = new FrameDecoder(
          1 << 24,
          (frame) => {
            // A status (field 1) comes first in an error response; ok ones start with the payload.
            codes.add(frame.payload.byteLength < 1000 ? 8 : 0);
            if (++answered === 40) resolve();
          },
          () => {},
        );
        peer.on('data', (chunk: Buffer) => decoder.push(chunk));
      });
      peer.resume();
      await resumedOnce;
      await all;
      assert.equal(ran, 40);
      assert.ok(before < ran);
      // Replies over the bound were refused (small error statuses), not held.
      assert.ok(codes.has(8) && codes.has(0), [...codes].join(','));
      peer.destroy();
    } finally {
      close();
    }
  });

  test('a frame that does not finish within frameTimeout closes the connection', async () => {
    let stalled!: () => void;
    const stalledOnce = new Promise<void>((resolve) => {
      stalled = resolve;
    });
    const server = new Server({
      onConnection: (c) => c.bound({ frameTimeout: 20, stalled: () => stalled() }),
    });
    const { path, close } = await serve(server);
    try {
      const peer = await rawPeer(path);
      const closed = new Promise<void>((resolve) => peer.once('close', () => resolve()));
      peer.write(Buffer.concat([encodeHeader(100 * KiB, 1, 1, 0), Buffer.alloc(10)]));
      await stalledOnce;
      await closed;
    } finally {
      close();
    }
  });
});

/**
 * AF_VSOCK and descriptor adoption. This machine may be a VM with vsock but no loopback (no CID 1
 * transport) and a host we do not control, so no vsock pair can be connected here: the adoption
 * of connected and listening sockets (family-independent: dup3 into a placeholder that Node
 * wrapped) is tested on AF_UNIX sockets standing in, and vsock itself through what a lone VM can
 * do (listen, close, connects that fail). vsock tests skip where the kernel has no AF_VSOCK.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { fstatSync, mkdtempSync, rmSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import {
  adoptServer,
  adoptSocket,
  connectVsock,
  listenVsock,
  native,
  nativeAvailable,
  VMADDR_CID_ANY,
  VMADDR_PORT_ANY,
  vsockUnavailable,
} from '@vaccel/memory';

const closed = (fd: number): boolean => {
  try {
    fstatSync(fd);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EBADF';
  }
};

const once = <T>(emitter: NodeJS.EventEmitter, event: string): Promise<T> =>
  new Promise((resolve, reject) => {
    emitter.once(event, resolve);
    if (event !== 'error') emitter.once('error', reject);
  });

describe('descriptor adoption', {
  skip: nativeAvailable() ? false : 'the @vaccel/memory addon is not built',
}, () => {
  const dir = mkdtempSync(join(tmpdir(), 'vaccel-adopt-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('makes a connected socket a net.Socket: bytes both ways, backpressure, end and close', async () => {
    const lib = native();
    const path = join(dir, 'stream.sock');
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(path, resolve));
    const accepted = once<Socket>(server, 'connection');
    const fd = lib.connect(path);
    const socket = adoptSocket(fd);
    assert.ok(closed(fd), 'the original descriptor is closed: its socket lives on in the Socket');
    const peer = await accepted;
    try {
      socket.write('ping');
      assert.equal(String(await once<Buffer>(peer, 'data')), 'ping');
      peer.write('pong');
      assert.equal(String(await once<Buffer>(socket, 'data')), 'pong');

      // 16 MiB is far more than the socket buffers: it drains only as the peer reads, and arrives whole.
      const big = Buffer.alloc(16 << 20);
      for (let i = 0; i < big.length; i += 4096) big.writeUInt32LE(i, i);
      peer.pause();
      assert.equal(socket.write(big), false, 'a full socket applies backpressure');
      const received = createHash('sha256');
      let bytes = 0;
      const all = new Promise<void>((resolve) => {
        peer.on('data', (chunk: Buffer) => {
          received.update(chunk);
          bytes += chunk.length;
          if (bytes === big.length) resolve();
        });
      });
      const drained = once(socket, 'drain');
      peer.resume();
      await Promise.all([drained, all]);
      assert.equal(received.digest('hex'), createHash('sha256').update(big).digest('hex'));

      // Half-close each way, then both sides close.
      const peerEnded = once(peer, 'end');
      socket.end();
      await peerEnded;
      const socketEnded = once(socket, 'end');
      const socketClosed = once(socket, 'close');
      peer.end();
      await Promise.all([socketEnded, socketClosed]);
    } finally {
      socket.destroy();
      peer.destroy();
      server.close();
    }
  });

  it('makes a listening socket a net.Server that accepts, names itself and closes', async () => {
    const lib = native();
    const path = join(dir, 'listen.sock');
    const fd = lib.listen(path);
    const server: Server = adoptServer(fd, 'stand-in');
    assert.ok(closed(fd));
    assert.equal(server.address(), 'stand-in');
    server.on('connection', (socket: Socket) => socket.end('hello'));
    const client = createConnection(path);
    const chunks: Buffer[] = [];
    client.on('data', (chunk: Buffer) => chunks.push(chunk));
    await once(client, 'end');
    assert.equal(Buffer.concat(chunks).toString(), 'hello');
    client.destroy();
    await new Promise<void>((resolve, reject) =>
      server.close((error) => (error ? reject(error) : resolve())),
    );
    // The listening socket itself is gone, not just the Server.
    const refused = createConnection(path);
    const error = await once<NodeJS.ErrnoException>(refused, 'error');
    assert.equal(error.code, 'ECONNREFUSED');
  });

  it('refuses a descriptor that is not open', () => {
    // Far above any descriptor this process has (a just-closed one would be the placeholder's).
    assert.throws(() => adoptSocket(1 << 20), { code: 'EBADF' });
  });
});

describe('AF_VSOCK', { skip: vsockUnavailable() ?? false }, () => {
  it('listens on any CID and a kernel-chosen port, and closes (the port is free again)', async () => {
    const first = listenVsock(VMADDR_CID_ANY, VMADDR_PORT_ANY);
    const address = first.address();
    assert.match(String(address), /^vsock:\/\/-1:\d+$/);
    const port = Number(String(address).split(':').at(-1));
    assert.throws(() => listenVsock(VMADDR_CID_ANY, port), { code: 'EADDRINUSE' });
    await new Promise<void>((resolve) => first.close(() => resolve()));
    const again = listenVsock(VMADDR_CID_ANY, port);
    assert.equal(again.address(), `vsock://-1:${port}`);
    await new Promise<void>((resolve) => again.close(() => resolve()));
  });

  it('refuses to bind a CID that is not this machine', () => {
    const local = native().vsockLocalCid();
    assert.throws(() => listenVsock(local + 1, VMADDR_PORT_ANY), { code: 'EADDRNOTAVAIL' });
  });

  it('fails to connect to its own CID (no route) with the system error', async () => {
    const local = native().vsockLocalCid();
    await assert.rejects(connectVsock(local, 1234), (error: NodeJS.ErrnoException) => {
      // ENODEV with no loopback transport; with one, nothing listens there.
      assert.ok(['ENODEV', 'ECONNRESET', 'ECONNREFUSED'].includes(error.code ?? ''), String(error.code));
      assert.equal(error.syscall, 'connect');
      return true;
    });
  });

  it('completes a connect when the socket turns writable: the host resets one to a port nobody serves', async (t) => {
    // Every vsock host answers a guest's connect (virtio-vsock: a reset when nothing listens), so
    // this waits for that answer, not for a timer; a connect whose completion went unnoticed
    // would end in ETIMEDOUT instead.
    const port = 3_999_999_999;
    try {
      const socket = await connectVsock(2, port, { timeoutMs: 60_000 });
      socket.destroy(); // someone does serve it: connected is as good an answer
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENODEV') t.skip('no route to CID 2: this machine is not a VM');
      else assert.equal(code, 'ECONNRESET');
    }
  });

  it('gives up on an unanswered connect with ETIMEDOUT (or a reset, where CID 1 has a transport)', async () => {
    await assert.rejects(connectVsock(1, 1234, { timeoutMs: 50 }), (error: NodeJS.ErrnoException) => {
      assert.ok(['ETIMEDOUT', 'ECONNRESET', 'ENODEV'].includes(error.code ?? ''), String(error.code));
      return true;
    });
  });

  it('stops connecting when the signal aborts', async () => {
    const controller = new AbortController();
    const reason = new Error('stop');
    const pending = connectVsock(1, 1234, { signal: controller.signal, timeoutMs: 60_000 });
    controller.abort(reason);
    await assert.rejects(pending, (error) => error === reason);
    await assert.rejects(connectVsock(1, 1234, { signal: controller.signal }), (error) => error === reason);
  });

  it('rejects CIDs and ports outside 32 bits, and bad timeouts', async () => {
    for (const [cid, port] of [
      [-1, 1],
      [2, 2 ** 32],
      [2.5, 1],
    ] as const)
      await assert.rejects(connectVsock(cid, port), TypeError, `${cid}:${port}`);
    await assert.rejects(connectVsock(2, 1, { timeoutMs: 0 }), TypeError);
    assert.throws(() => listenVsock(VMADDR_CID_ANY, -5), TypeError);
  });
});

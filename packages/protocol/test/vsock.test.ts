/**
 * vsock:// addresses: parsing, connect and listen through the @vaccel/memory addon, and the
 * errors they map to. No vsock pair can be connected on a lone VM (no CID 1 loopback, a host we do
 * not control), so ttRPC over an adopted socket runs on AF_UNIX stand-ins (adoption does not care
 * about the family); vsock tests skip where the addon or AF_VSOCK is missing.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import type { Server as NetServer, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { isVaccelError } from '@vaccel/core';
import {
  adoptServer,
  adoptSocket,
  listenVsock,
  native,
  nativeAvailable,
  VMADDR_CID_ANY,
  VMADDR_PORT_ANY,
  vsockUnavailable,
} from '@vaccel/memory';
import { connect, formatAddress, listen, parseAddress, VSOCK_CID_ANY } from '@vaccel/protocol';
import { Client, type Connection, Server } from '@vaccel/ttrpc';

/** Asserts a VaccelError with `code` whose message names `address`. */
const vaccelError =
  (code: string, address: string) =>
  (error: unknown): boolean => {
    assert.ok(isVaccelError(error), String(error));
    assert.equal(error.code, code, error.message);
    assert.ok(error.message.includes(address), error.message);
    return true;
  };

describe('vsock addresses', () => {
  it('parse and format, with -1 and any for every CID and 32-bit ports', () => {
    for (const [text, cid, port, canonical] of [
      ['vsock://2:2048', 2, 2048, 'vsock://2:2048'],
      ['vsock://-1:1024', VSOCK_CID_ANY, 1024, 'vsock://-1:1024'],
      ['vsock://any:1024', VSOCK_CID_ANY, 1024, 'vsock://-1:1024'],
      ['vsock://4294967295:7', VSOCK_CID_ANY, 7, 'vsock://-1:7'],
      ['vsock://3:4294967294', 3, 4294967294, 'vsock://3:4294967294'],
    ] as const) {
      const parsed = parseAddress(text);
      assert.deepEqual(parsed, { kind: 'vsock', cid, port }, text);
      assert.equal(formatAddress(parsed), canonical);
    }
  });

  it('refuse CIDs and ports outside their ranges', () => {
    for (const text of [
      'vsock://2:0',
      'vsock://2:4294967295',
      'vsock://4294967296:1',
      'vsock://-2:1',
      'vsock://2',
      'vsock://host:1',
    ])
      assert.throws(() => parseAddress(text), { code: 'EINVAL' }, text);
  });

  it('refuse connecting to any CID (that is for listening)', async () => {
    await assert.rejects(connect('vsock://-1:1024'), vaccelError('EINVAL', 'vsock://-1:1024'));
  });

  it('need the addon: ENOTSUP without it, saying how to build it', async () => {
    const code = `
      import { connect, listen } from '@vaccel/protocol';
      for (const run of [() => connect('vsock://2:1024'), () => listen('vsock://-1:1024')]) {
        try { await run(); console.log('no error'); }
        catch (error) { console.log(JSON.stringify({ code: error.code, message: error.message })); }
      }`;
    const child = spawn(
      process.execPath,
      [
        '--import',
        import.meta.resolve('tsx'),
        '--conditions=@vaccel/source',
        '--input-type=module',
        '-e',
        code,
      ],
      { env: { ...process.env, VACCEL_NO_NATIVE: '1' }, stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk;
    });
    const status = await new Promise((resolve) => child.on('close', resolve));
    assert.equal(status, 0);
    const lines = out.trim().split('\n');
    assert.equal(lines.length, 2, out);
    for (const line of lines) {
      const { code: errorCode, message } = JSON.parse(line) as { code: string; message: string };
      assert.equal(errorCode, 'ENOTSUP');
      assert.match(message, /@vaccel\/memory/);
      assert.match(message, /npm rebuild @vaccel\/memory/);
    }
  });
});

describe('vsock transport', { skip: vsockUnavailable() ?? false }, () => {
  it('listens on vsock://-1:PORT as a net.Server, and closes', async () => {
    // A free port: the kernel's choice, released again (vsock ports are not reused at once).
    const probe = listenVsock(VMADDR_CID_ANY, VMADDR_PORT_ANY);
    const port = Number(String(probe.address()).split(':').at(-1));
    await new Promise((resolve) => probe.close(resolve));
    const address = `vsock://-1:${port}`;
    const server = await listen(address);
    try {
      assert.equal(server.address(), address);
      assert.ok(server.listening);
      await assert.rejects(listen(`vsock://any:${port}`), vaccelError('EIO', address));
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
    assert.equal(server.listening, false);
  });

  it('refuses to listen on a CID that is not this machine, saying what to use', async () => {
    const cid = native().vsockLocalCid() + 1;
    await assert.rejects(listen(`vsock://${cid}:1024`), (error) => {
      vaccelError('EIO', `vsock://${cid}:1024`)(error);
      assert.match((error as Error).message, /vsock:\/\/-1:PORT/);
      return true;
    });
  });

  it('maps an unreachable CID to ECONNRESET naming the address', async () => {
    const address = `vsock://${native().vsockLocalCid()}:1024`;
    await assert.rejects(connect(address), vaccelError('ECONNRESET', address));
  });

  it('maps a connect that gets no answer to ETIMEDOUT (or a reset, where CID 1 has a transport)', async () => {
    await assert.rejects(connect('vsock://1:1024', { timeoutMs: 50 }), (error) => {
      assert.ok(isVaccelError(error) && ['ETIMEDOUT', 'ECONNRESET'].includes(error.code), String(error));
      assert.match(error.message, /vsock:\/\/1:1024/);
      return true;
    });
  });

  it('rejects with the abort reason, not a VaccelError', async () => {
    const controller = new AbortController();
    const pending = connect('vsock://1:1024', { signal: controller.signal, timeoutMs: 60_000 });
    const reason = new Error('stop');
    controller.abort(reason);
    await assert.rejects(pending, (error) => error === reason);
  });
});

describe('ttRPC over adopted sockets', {
  skip: nativeAvailable() ? false : 'the @vaccel/memory addon is not built',
}, () => {
  const dir = mkdtempSync(join(tmpdir(), 'vaccel-vsock-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('serves calls, with both channels reading through onread on the adopted handles', async () => {
    const lib = native();
    const path = join(dir, 'ttrpc.sock');
    let connection!: Connection;
    let accepted!: Socket;
    const server = new Server({ onConnection: (c) => (connection = c) });
    server.register('test.Echo', { Echo: (payload) => payload });
    const listener: NetServer = adoptServer(lib.listen(path), `unix://${path}`);
    listener.on('connection', (socket: Socket) => (accepted = socket));
    server.listen(listener);
    const socket = adoptSocket(lib.connect(path));
    const client = new Client(socket);
    try {
      const big = new Uint8Array(8 << 20).map((_, i) => i * 7);
      for (const payload of [Uint8Array.of(1, 2, 3), big]) {
        const reply = await client.call('test.Echo', 'Echo', payload);
        assert.deepEqual(Buffer.from(reply), Buffer.from(payload));
      }
      // The channels took the adopted sockets' handles over (the zero-copy reader), as on a
      // socket Node made itself: the wrappers they were given are left without one.
      assert.equal((socket as unknown as { _handle: unknown })._handle, null);
      assert.equal((accepted as unknown as { _handle: unknown })._handle, null);
      assert.notEqual(connection.stream, accepted);
    } finally {
      await client.close();
      server.close();
    }
  });
});

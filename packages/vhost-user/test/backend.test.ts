import assert from 'node:assert/strict';
import { createCipheriv, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  CryptoBackend,
  DESC_F_NEXT,
  Direction,
  encodeMessage,
  encodeRequestHeader,
  LoopbackFrontend as FakeFrontend,
  Flags,
  native,
  Opcode,
  Request,
  readU64,
  Status,
  SymOp,
  USER_BASE,
  u64,
  vringState,
} from '@vaccel/vhost-user';
import pino from 'pino';
import { logTap } from './helpers.js';

const quiet = pino({ level: 'silent' });
const dir = mkdtempSync(join(tmpdir(), 'vaccel-vhost-'));
const socket = join(dir, 'crypto.sock');
let backend: CryptoBackend;
/** The backend's log: tests wait for what it says it did. */
const log = logTap();

before(async () => {
  backend = await CryptoBackend.listen({ socket, logger: log.logger });
});
after(async () => {
  await backend.close();
  rmSync(dir, { recursive: true, force: true });
});

const header = (session: bigint, length: number, opcode: number = Opcode.CIPHER_ENCRYPT) =>
  encodeRequestHeader({
    opcode,
    algorithm: 3,
    sessionId: session,
    opType: SymOp.CIPHER,
    ivLength: 16,
    sourceLength: length,
    destinationLength: length,
  });

const openssl = (key: Uint8Array, iv: Uint8Array, data: Uint8Array) => {
  const cipher = createCipheriv(`aes-${key.byteLength * 8}-cbc`, key, iv);
  cipher.setAutoPadding(false);
  return Buffer.concat([cipher.update(data), cipher.final()]);
};

async function connected(): Promise<FakeFrontend> {
  const frontend = new FakeFrontend(socket);
  await frontend.setup();
  return frontend;
}

describe('CryptoBackend with an in-process front-end', () => {
  it('encrypts and decrypts AES-CBC (128/192/256) exactly like OpenSSL, over split buffers', async () => {
    const frontend = await connected();
    try {
      for (const bytes of [16, 24, 32]) {
        const key = randomBytes(bytes);
        const iv = randomBytes(16);
        const data = randomBytes(4096);
        const enc = await frontend.createSession(key, Direction.ENCRYPT);
        const dec = await frontend.createSession(key, Direction.DECRYPT);
        assert.ok(enc > 0n && dec > 0n && enc !== dec);
        // Source split in three pieces, destination in two plus the status byte, as Linux does.
        const { out } = frontend.submit(
          [header(enc, data.byteLength), iv, data.subarray(0, 1000), data.subarray(1000)],
          [3000, 1096, 1],
        );
        const [done] = await frontend.completions(1);
        assert.equal(done!.written, 4097);
        const ciphertext = Buffer.concat([frontend.read(out[0]!, 3000), frontend.read(out[1]!, 1096)]);
        assert.deepEqual(ciphertext, openssl(key, iv, data));
        assert.equal(frontend.read(out[2]!, 1)[0], Status.OK);
        const back = frontend.submit([header(dec, 4096, Opcode.CIPHER_DECRYPT), iv, ciphertext], [4096, 1]);
        await frontend.completions(1);
        assert.deepEqual(Buffer.from(frontend.read(back.out[0]!, 4096)), data);
      }
    } finally {
      frontend.close();
    }
  });

  it('serves a burst of requests from one kick, each with its own status', async () => {
    const frontend = await connected();
    try {
      const key = randomBytes(16);
      const session = await frontend.createSession(key, Direction.ENCRYPT);
      const submitted = [];
      // 12 chains of 5 descriptors fill most of the 64-entry table.
      for (let i = 0; i < 12; i++) {
        const data = randomBytes(16 * (i + 1));
        const iv = randomBytes(16);
        // Every third request names a session that does not exist.
        const id = i % 3 === 2 ? 999n : session;
        const chain = frontend.submit([header(id, data.byteLength), iv, data], [data.byteLength, 1], false);
        submitted.push({ data, iv, id, ...chain });
      }
      native().eventfdWrite(frontend.kick, 1);
      const done = await frontend.completions(12);
      assert.deepEqual(
        done.map((d) => d.head),
        submitted.map((s) => s.head),
      );
      for (const request of submitted) {
        const status = frontend.read(request.out[1]!, 1)[0];
        if (request.id === 999n) assert.equal(status, Status.INVSESS);
        else {
          assert.equal(status, Status.OK);
          assert.deepEqual(
            Buffer.from(frontend.read(request.out[0]!, request.data.byteLength)),
            openssl(key, request.iv, request.data),
          );
        }
      }
    } finally {
      frontend.close();
    }
  });

  it('answers bad requests with their status and keeps serving', async () => {
    const frontend = await connected();
    try {
      const session = await frontend.createSession(randomBytes(16), Direction.ENCRYPT);
      const cases: [string, Uint8Array[], number[], number][] = [
        [
          'hash opcode',
          [header(session, 16, 0x100), randomBytes(16), randomBytes(16)],
          [16, 1],
          Status.NOTSUPP,
        ],
        ['short header', [randomBytes(40)], [16, 1], Status.BADMSG],
        ['not whole blocks', [header(session, 20), randomBytes(16), randomBytes(20)], [20, 1], Status.BADMSG],
        ['source missing', [header(session, 64), randomBytes(16), randomBytes(16)], [64, 1], Status.BADMSG],
        [
          'no room for output',
          [header(session, 64), randomBytes(16), randomBytes(64)],
          [16, 1],
          Status.NOSPACE,
        ],
      ];
      for (const [what, readable, writable, status] of cases) {
        const { out } = frontend.submit(readable, writable);
        await frontend.completions(1);
        assert.equal(frontend.read(out.at(-1)!, 1)[0], status, what);
      }
      // Closed sessions are gone.
      await frontend.send(Request.CLOSE_CRYPTO_SESSION, u64(session));
      const closed = frontend.submit([header(session, 16), randomBytes(16), randomBytes(16)], [16, 1]);
      await frontend.completions(1);
      assert.equal(frontend.read(closed.out[1]!, 1)[0], Status.INVSESS);
    } finally {
      frontend.close();
    }
  });

  it('refuses sessions it cannot serve with session id -1', async () => {
    const frontend = await connected();
    try {
      assert.equal(await frontend.createSession(randomBytes(17), Direction.ENCRYPT), -1n); // bad key length
      assert.equal(await frontend.createSession(randomBytes(16), Direction.ENCRYPT, 8), -1n); // 3DES-CBC
      assert.equal(await frontend.createSession(randomBytes(16), 7), -1n); // no such direction
      assert.ok((await frontend.createSession(randomBytes(32), Direction.ENCRYPT, 4)) > 0n); // AES-CTR
    } finally {
      frontend.close();
    }
  });

  it('returns malformed chains unread and keeps the device working', async () => {
    const frontend = await connected();
    try {
      const key = randomBytes(16);
      const session = await frontend.createSession(key, Direction.ENCRYPT);
      const failedBefore = backend.stats().failed;
      // A descriptor that chains to itself, then one that points outside guest memory.
      frontend.writeDescriptor(40, frontend.place(header(session, 16)), 72, DESC_F_NEXT, 40);
      frontend.makeAvailable(40);
      frontend.writeDescriptor(41, 0x7fff_0000, 72, 0, 0);
      frontend.makeAvailable(41);
      const done = await frontend.completions(2);
      assert.deepEqual(done, [
        { head: 40, written: 0 },
        { head: 41, written: 0 },
      ]);
      assert.equal(backend.stats().failed, failedBefore + 2);
      const data = randomBytes(32);
      const iv = randomBytes(16);
      const { out } = frontend.submit([header(session, 32), iv, data], [32, 1]);
      await frontend.completions(1);
      assert.deepEqual(Buffer.from(frontend.read(out[0]!, 32)), openssl(key, iv, data));
    } finally {
      frontend.close();
    }
  });

  it('acks ring setups with REPLY_ACK: rings outside guest memory are refused', async () => {
    const frontend = await connected();
    try {
      const refused = await frontend.send(
        Request.SET_VRING_ADDR,
        frontend.vringAddress(1, { descriptors: USER_BASE + 0x10_0000_0000 }),
        [],
        Flags.VERSION | Flags.NEED_REPLY,
      );
      await frontend.send(Request.SET_VRING_NUM, vringState(1, 64));
      const kick = native().eventfd(0);
      const ack = await frontend.send(
        Request.SET_VRING_KICK,
        u64(1),
        [kick],
        Flags.VERSION | Flags.NEED_REPLY,
      );
      assert.equal(readU64(refused!.payload, 'ack'), 0n); // nothing to start yet
      assert.notEqual(readU64(ack!.payload, 'ack'), 0n); // now it cannot start
      native().close(kick);
      // Ring 0 still works.
      const session = await frontend.createSession(randomBytes(16), Direction.ENCRYPT);
      const { out } = frontend.submit([header(session, 16), randomBytes(16), randomBytes(16)], [16, 1]);
      await frontend.completions(1);
      assert.equal(frontend.read(out[1]!, 1)[0], Status.OK);
    } finally {
      frontend.close();
    }
  });

  it('stops a ring whose available index jumps past it, and reports where it got to', async () => {
    const frontend = await connected();
    try {
      const session = await frontend.createSession(randomBytes(16), Direction.ENCRYPT);
      frontend.submit([header(session, 16), randomBytes(16), randomBytes(16)], [16, 1]);
      await frontend.completions(1);
      const stops = () => log.lines.filter((l) => l.msg === 'vring stopped: its rings are corrupt').length;
      const before = stops();
      frontend.setAvailableIndex(1 + 500); // and kicks
      await log.until(() => stops() > before);
      const base = await frontend.send(Request.GET_VRING_BASE, vringState(0, 0));
      assert.equal(new DataView(base!.payload.buffer, base!.payload.byteOffset).getUint32(4, true), 1);
    } finally {
      frontend.close();
    }
  });

  it('closes connections that break the protocol, and serves new ones', async () => {
    for (const garbage of [
      Uint8Array.of(1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0), // version 2
      new Uint8Array([1, 0, 0, 0, 1, 0, 0, 0, 0xff, 0xff, 0, 0]), // 64 KiB payload
    ]) {
      const frontend = new FakeFrontend(socket);
      native().sendmsg(frontend.fd, garbage);
      await frontend.waitClosed();
      frontend.close();
    }
    const frontend = await connected();
    frontend.close();
  });

  it('drops a front-end that stops reading its replies, without stalling the others', async () => {
    const flooder = native().connect(socket);
    const request = encodeMessage(Request.GET_FEATURES, Flags.VERSION);
    let closedAfter = -1;
    for (let i = 0; i < 200_000 && closedAfter < 0; i++) {
      try {
        native().sendmsg(flooder, request, [], 0);
      } catch (error) {
        const code = (error as { code?: string }).code;
        if (code === 'EPIPE' || code === 'ECONNRESET') closedAfter = i;
        else if (code === 'EAGAIN') await new Promise((resolve) => setImmediate(resolve));
        else throw error;
      }
      if (i % 256 === 0) await new Promise((resolve) => setImmediate(resolve));
    }
    native().close(flooder);
    assert.ok(closedAfter > 0, 'the backend closed the connection');
    const frontend = await connected();
    frontend.close();
  });

  it('serves many front-ends at once, each getting its own results', async () => {
    const frontends = await Promise.all(Array.from({ length: 16 }, () => connected()));
    try {
      await Promise.all(
        frontends.map(async (frontend, n) => {
          const key = randomBytes(16);
          const session = await frontend.createSession(key, Direction.ENCRYPT);
          for (let i = 0; i < 40; i++) {
            const data = randomBytes(16 * (1 + ((n + i) % 64)));
            const iv = randomBytes(16);
            const { out } = frontend.submit(
              [header(session, data.byteLength), iv, data],
              [data.byteLength, 1],
            );
            await frontend.completions(1);
            assert.equal(frontend.read(out[1]!, 1)[0], Status.OK);
            assert.deepEqual(Buffer.from(frontend.read(out[0]!, data.byteLength)), openssl(key, iv, data));
          }
        }),
      );
      assert.equal(backend.stats().connections, 16);
    } finally {
      for (const frontend of frontends) frontend.close();
    }
  });

  it('keeps sessions per connection and frees everything when a front-end goes away', async () => {
    const a = await connected();
    const b = await connected();
    try {
      const fromA = await a.createSession(randomBytes(16), Direction.ENCRYPT);
      const { out } = b.submit([header(fromA, 16), randomBytes(16), randomBytes(16)], [16, 1]);
      await b.completions(1);
      assert.equal(b.read(out[1]!, 1)[0], Status.INVSESS);
    } finally {
      a.close();
      b.close();
    }
    // The backend logs each connection it accepts and each it closes (just before dropping it).
    const count = (...messages: string[]) => log.lines.filter((l) => messages.includes(String(l.msg))).length;
    await log.until(
      () =>
        count('vhost-user front-end disconnected', 'vhost-user connection closed on error') ===
        count('vhost-user front-end connected'),
    );
    assert.deepEqual([backend.stats().connections, backend.stats().sessions], [0, 0]);
  });
});

describe('vaccel-crypto-backend', () => {
  it('refuses a socket path that is not a socket', async () => {
    const path = join(dir, 'plain-file');
    writeFileSync(path, 'x');
    await assert.rejects(CryptoBackend.listen({ socket: path, logger: quiet }), { code: 'EEXIST' });
  });
});

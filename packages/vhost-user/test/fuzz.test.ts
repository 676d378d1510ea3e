import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import {
  CARRIES_FDS,
  CryptoBackend,
  Direction,
  encodeMessage,
  Flags,
  LoopbackFrontend,
  logTap,
  memoryTable,
  native,
  Request,
  readU64,
  sessionRequest,
  u64,
  vringState,
} from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'vaccel-vhost-fuzz-'));
const socket = join(dir, 'crypto.sock');
let backend: CryptoBackend;
const log = logTap();
/** Connections the backend has closed (its own account: one line each). */
const closedConnections = (lines: Record<string, unknown>[]) =>
  lines.filter(
    (l) => l.msg === 'vhost-user front-end disconnected' || l.msg === 'vhost-user connection closed on error',
  ).length;
before(async () => {
  backend = await CryptoBackend.listen({ socket, logger: log.logger });
});
after(async () => {
  await backend.close();
  rmSync(dir, { recursive: true, force: true });
});

const openFds = () => readdirSync('/proc/self/fd').length;
const fdTargets = () =>
  readdirSync('/proc/self/fd').map((fd) => {
    try {
      return `${fd}:${readlinkSync(`/proc/self/fd/${fd}`)}`;
    } catch {
      return `${fd}:?`;
    }
  });
/** One turn of the event loop, so the backend reads what was sent (no time passes on purpose). */
const turn = () => new Promise((resolve) => setImmediate(resolve));

/** Payloads shaped like the real ones (right sizes, plausible values), or random bytes. */
const payload = fc.oneof(
  fc.uint8Array({ maxLength: 1100 }),
  fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }).map((v) => u64(v)),
  fc.tuple(fc.nat(10), fc.nat(70000)).map(([i, n]) => vringState(i, n)),
  fc
    .array(
      fc.record({
        guestAddress: fc.nat(2 ** 40),
        size: fc.integer({ min: 1, max: 1 << 20 }),
        userAddress: fc.nat(2 ** 47),
        mmapOffset: fc.constantFrom(0, 4096, 123),
      }),
      { maxLength: 9 },
    )
    .map((regions) => memoryTable(regions.slice(0, 8))),
  fc
    .record({
      opcode: fc.constantFrom(0, 2, 0x102, 0x404),
      cipherAlgorithm: fc.nat(20),
      key: fc.uint8Array({ maxLength: 64 }),
      direction: fc.nat(3),
      opType: fc.nat(3),
    })
    .map((info) => sessionRequest(info)),
);

const message = fc.record({
  request: fc.oneof(fc.constantFrom(...Object.values(Request)), fc.nat(60)),
  needReply: fc.boolean(),
  payload,
  fds: fc.nat(3),
});

describe('vhost-user messages from a hostile front-end (fuzzed)', () => {
  it('never crash the backend, never leak descriptors, and leave it serving others', async () => {
    const before = openFds();
    const beforeTargets = fdTargets();
    let connections = closedConnections(log.lines);
    await fc.assert(
      fc.asyncProperty(fc.array(message, { minLength: 1, maxLength: 25 }), async (messages) => {
        const fd = native().connect(socket);
        connections++;
        try {
          for (const m of messages) {
            // Descriptors like QEMU's: a small memfd or an eventfd, sent and then closed on our side.
            const fds = CARRIES_FDS.has(m.request)
              ? Array.from({ length: m.fds }, (_, i) =>
                  i % 2 ? native().eventfd(0) : native().memfd('ram', 1 << 16),
                )
              : [];
            try {
              native().sendmsg(
                fd,
                encodeMessage(m.request, Flags.VERSION | (m.needReply ? Flags.NEED_REPLY : 0), m.payload),
                fds,
                0,
              );
            } catch {
              break; // the backend closed the connection (or stopped reading): that is allowed
            } finally {
              for (const f of fds) native().close(f);
            }
            // Drain whatever it replied, so replies never fill the socket.
            while (native().recvmsg(fd, new Uint8Array(4096)) !== null);
            await turn();
          }
        } finally {
          native().close(fd);
        }
        // The backend has closed this connection (and everything it held) before the next.
        const expected = connections;
        await log.until((lines) => closedConnections(lines) >= expected);
      }),
      { numRuns: Number(process.env.FUZZ_RUNS ?? 150) },
    );
    assert.equal(closedConnections(log.lines), connections, 'each connection closed once');
    assert.equal(backend.stats().connections, 0);
    const added = fdTargets().filter((t) => !beforeTargets.includes(t));
    assert.ok(
      openFds() <= before + 2,
      `descriptors leaked: ${before} before, ${openFds()} after: ${added.join(' ')}`,
    );
    // Still serving.
    const frontend = new LoopbackFrontend(socket);
    await frontend.setup();
    assert.ok((await frontend.createSession(randomBytes(16), Direction.ENCRYPT)) > 0n);
    frontend.close();
  });

  it('refuses a memory region larger than its file (mapping it would SIGBUS on access)', async () => {
    const frontend = new LoopbackFrontend(socket);
    try {
      await frontend.setup();
      const small = native().memfd('small', 4096);
      const reply = await frontend.send(
        Request.SET_MEM_TABLE,
        memoryTable([{ guestAddress: 0, size: 1 << 20, userAddress: 0x1000_0000, mmapOffset: 0 }]),
        [small],
        Flags.VERSION | Flags.NEED_REPLY,
      );
      native().close(small);
      assert.notEqual(readU64(reply!.payload, 'ack'), 0n);
      // The connection and its earlier memory still work.
      assert.ok((await frontend.createSession(randomBytes(16), Direction.ENCRYPT)) > 0n);
    } finally {
      frontend.close();
    }
  });
});

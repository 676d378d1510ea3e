import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { logTap, VsockBackend, vsockPacket } from './helpers.js';
import { GUEST_CID, VsockDriver } from './vsock-driver.js';

const { HEADER_BYTES, Op } = vsockPacket;

const dir = mkdtempSync(join(tmpdir(), 'vaccel-vsock-fuzz-'));
let backend: VsockBackend;
let service: Server;
const sockets: Socket[] = [];
const log = logTap();
const detached = (lines: Record<string, unknown>[]) =>
  lines.filter(
    (l) => l.msg === 'vhost-user front-end disconnected' || l.msg === 'vhost-user connection closed on error',
  ).length;

before(async () => {
  backend = await VsockBackend.listen({
    socket: join(dir, 'vhost.sock'),
    uds: join(dir, 'vm.vsock'),
    guestCid: GUEST_CID,
    logger: log.logger,
    maxConnections: 8,
    bufferBytes: 16 * 1024,
  });
  // An echo service at port 5000: fuzzed streams get answers, so the receive side works too.
  service = createServer((socket) => {
    sockets.push(socket);
    socket.on('error', () => {});
    socket.pipe(socket);
  });
  service.listen(join(dir, 'vm.vsock_5000'));
  await once(service, 'listening');
});
after(async () => {
  await backend.close();
  for (const socket of sockets) socket.destroy();
  service.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Packets shaped like a driver's (plausible fields, lengths that may lie) or raw bytes. */
const packet = fc.oneof(
  fc
    .record({
      op: fc.nat(9),
      srcCid: fc.constantFrom(GUEST_CID, GUEST_CID, 2, 0xffffffff),
      dstCid: fc.constantFrom(2, 2, 3, 1),
      srcPort: fc.constantFrom(40000, 40001, 1024),
      dstPort: fc.constantFrom(5000, 5000, 5001, 2 ** 30),
      type: fc.constantFrom(1, 1, 2, 0),
      flags: fc.nat(4),
      bufAlloc: fc.constantFrom(0, 4096, 256 * 1024, 0xffffffff),
      fwdCnt: fc.nat(),
      data: fc.uint8Array({ maxLength: 3000 }),
      lie: fc.constantFrom(0, 0, 1, 100000, -1),
    })
    .map((p) => ({ kind: 'packet' as const, ...p })),
  fc.uint8Array({ maxLength: 80 }).map((bytes) => ({ kind: 'raw' as const, bytes })),
  fc.integer({ min: 0, max: 5000 }).map((bytes) => ({ kind: 'buffer' as const, bytes })),
);

describe('virtio-vsock queues from a hostile guest (fuzzed)', () => {
  it('never crash the backend, never leak streams, and leave it serving', async () => {
    let attached = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(packet, { minLength: 1, maxLength: 30 }), async (actions) => {
        const guest = new VsockDriver(backend.socket);
        attached++;
        try {
          await guest.start(4);
          for (const action of actions) {
            if (action.kind === 'buffer') guest.giveBuffer(action.bytes);
            else if (action.kind === 'raw') guest.frontend.rings[1]!.submit([action.bytes], []);
            else {
              const { kind: _, data, lie, ...fields } = action;
              const len = lie === -1 ? 0 : data.byteLength + lie;
              guest.send({ ...fields, len: len >>> 0 }, data);
            }
          }
          // Everything sent has been read (the transmit ring is returned whole).
          await guest.frontend.rings[1]!.completions(actions.filter((a) => a.kind !== 'buffer').length);
          assert.ok(backend.stats().open <= 8);
        } finally {
          guest.close();
        }
        await log.until((lines) => detached(lines) >= attached);
        assert.equal(backend.stats().open, 0);
      }),
      { numRuns: Number(process.env.FUZZ_RUNS ?? 100) },
    );
    // Still serving: a well-behaved guest connects and gets its bytes echoed.
    const guest = new VsockDriver(backend.socket);
    try {
      await guest.start();
      guest.send({ op: Op.REQUEST, srcPort: 41000 });
      await guest.until(Op.RESPONSE);
      guest.send({ op: Op.RW, srcPort: 41000 }, Buffer.from('ping'));
      assert.equal(Buffer.from(await guest.read(4)).toString(), 'ping');
    } finally {
      guest.close();
    }
    assert.ok(backend.stats().badPackets > 0, 'the fuzzer reached the malformed-packet paths');
    assert.ok(HEADER_BYTES === 44);
  });
});

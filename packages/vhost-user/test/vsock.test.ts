import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { logTap, Request, readU64, VsockBackend, vringState, vsockPacket } from './helpers.js';
import { GUEST_CID, VsockDriver } from './vsock-driver.js';

const { HOST_CID, Op, Shutdown } = vsockPacket;

const dir = mkdtempSync(join(tmpdir(), 'vaccel-vsock-'));
const uds = join(dir, 'vm.vsock');
let backend: VsockBackend;
let driver: VsockDriver;
/** A host service at `<uds>_5000` that keeps every connection, and the bytes each sent. */
let service: Server;
const accepted: { socket: Socket; bytes: Buffer[] }[] = [];
const everySocket: Socket[] = [];
const nextAccepted = async () => {
  if (accepted.length === 0) await once(service, 'connection');
  return accepted.shift()!;
};
const log = logTap();

before(async () => {
  backend = await VsockBackend.listen({
    socket: join(dir, 'vhost.sock'),
    uds,
    guestCid: GUEST_CID,
    logger: log.logger,
    bufferBytes: 64 * 1024,
  });
  service = createServer({ allowHalfOpen: true }, (socket) => {
    everySocket.push(socket);
    const entry = { socket, bytes: [] as Buffer[] };
    socket.on('data', (chunk) => entry.bytes.push(chunk));
    accepted.push(entry);
  });
  service.listen(`${uds}_5000`);
  await once(service, 'listening');
});
after(async () => {
  await backend.close();
  for (const socket of everySocket) socket.destroy();
  service.close();
  rmSync(dir, { recursive: true, force: true });
});

let attached = 0;
const detached = (lines: Record<string, unknown>[]) =>
  lines.filter((l) => l.msg === 'vhost-user front-end disconnected').length;
async function attach(): Promise<VsockDriver> {
  driver = new VsockDriver(backend.socket);
  attached++;
  await driver.start();
  return driver;
}
afterEach(async () => {
  driver?.close();
  // The backend sees its front-end go (and drops every stream it had) before the next test.
  await log.until((lines) => detached(lines) >= attached);
});

/** A guest connection to the host service: REQUEST → RESPONSE. */
async function open(guest: VsockDriver, srcPort = 40000) {
  guest.send({ op: Op.REQUEST, srcPort });
  const [response] = await guest.until(Op.RESPONSE);
  const host = await nextAccepted();
  return { response: response!, host };
}

describe('vhost-user vsock backend (hybrid vsock)', () => {
  it('answers GET_CONFIG with the guest CID', async () => {
    const guest = await attach();
    const request = new Uint8Array(12 + 8);
    new DataView(request.buffer).setUint32(4, 8, true);
    const reply = await guest.frontend.send(Request.GET_CONFIG, request);
    assert.equal(readU64(reply!.payload.subarray(12), 'cid'), BigInt(GUEST_CID));
  });

  it('connects a guest port to <uds>_PORT and carries bytes both ways', async () => {
    const guest = await attach();
    const { response, host } = await open(guest);
    assert.deepEqual(
      [response.srcCid, response.dstCid, response.srcPort, response.dstPort],
      [HOST_CID, GUEST_CID, 5000, 40000],
    );
    assert.equal(response.bufAlloc, 64 * 1024);
    const up = randomBytes(3000);
    guest.send({ op: Op.RW }, up);
    while (Buffer.concat(host.bytes).byteLength < up.byteLength) await once(host.socket, 'data');
    assert.deepEqual(Buffer.concat(host.bytes), up);
    const down = randomBytes(10_000); // more than one 4 KiB receive buffer
    host.socket.write(down);
    assert.deepEqual(Buffer.from(await guest.read(down.byteLength)), down);
    // The guest closes: the host socket ends and the guest gets its reset.
    guest.send({ op: Op.SHUTDOWN, flags: Shutdown.BOTH });
    const ended = once(host.socket, 'end');
    await guest.until(Op.RST);
    await ended;
    assert.equal(backend.stats().open, 0);
  });

  it("tells the guest when the host side ends, and keeps the guest's half open", async () => {
    const guest = await attach();
    const { host } = await open(guest);
    host.socket.end('bye');
    assert.equal(Buffer.from(await guest.read(3)).toString(), 'bye');
    const [shutdown] = (await guest.until(Op.SHUTDOWN)).slice(-1);
    assert.equal(shutdown!.flags, Shutdown.SEND);
    guest.send({ op: Op.RW }, Buffer.from('still here'));
    while (!Buffer.concat(host.bytes).toString().includes('still here')) await once(host.socket, 'data');
  });

  it('resets a guest connection to a port nothing listens on', async () => {
    const guest = await attach();
    const refused = backend.stats().refused;
    guest.send({ op: Op.REQUEST, dstPort: 5999 });
    const [reset] = await guest.until(Op.RST);
    assert.equal(reset!.srcPort, 5999);
    assert.equal(backend.stats().refused, refused + 1);
  });

  it('connects a host process to a guest port with CONNECT, and answers OK <port>', async () => {
    const guest = await attach();
    const client = connect(uds);
    client.write('CONNECT 7000\nhello');
    const [request] = await guest.until(Op.REQUEST);
    assert.equal(request!.dstPort, 7000);
    assert.equal(request!.srcCid, HOST_CID);
    assert.ok(request!.srcPort >= 2 ** 30);
    const received: Buffer[] = [];
    client.on('data', (chunk) => received.push(chunk));
    guest.send({ op: Op.RESPONSE, srcPort: 7000, dstPort: request!.srcPort });
    // What the host process sent after its line reaches the guest.
    assert.equal(Buffer.from(await guest.read(5)).toString(), 'hello');
    guest.send({ op: Op.RW, srcPort: 7000, dstPort: request!.srcPort }, Buffer.from('world'));
    while (Buffer.concat(received).toString() !== `OK ${request!.srcPort}\nworld`) await once(client, 'data');
    guest.send({ op: Op.RST, srcPort: 7000, dstPort: request!.srcPort });
    await once(client, 'close');
  });

  it('closes a host process whose CONNECT the guest refuses, or that sends no CONNECT line', async () => {
    const guest = await attach();
    const client = connect(uds);
    client.write('CONNECT 7001\n');
    const [request] = await guest.until(Op.REQUEST);
    guest.send({ op: Op.RST, srcPort: 7001, dstPort: request!.srcPort });
    await once(client, 'close');
    const liar = connect(uds);
    liar.on('error', () => {});
    liar.write(`${'x'.repeat(64)}\n`);
    await once(liar, 'close');
  });

  it("sends no more than the guest's credit, and the rest once it has room", async () => {
    const guest = await attach();
    guest.send({ op: Op.REQUEST, srcPort: 40001, bufAlloc: 8192 });
    await guest.until(Op.RESPONSE);
    const host = await nextAccepted();
    const data = randomBytes(20_000);
    host.socket.write(data);
    // 8 KiB arrive, then the device asks for credit instead of sending more.
    const first = await guest.read(8192);
    assert.equal(first.byteLength, 8192);
    const [request] = (await guest.until(Op.CREDIT_REQUEST)).slice(-1);
    assert.equal(request!.dstPort, 40001);
    guest.send({ op: Op.CREDIT_UPDATE, srcPort: 40001, bufAlloc: 64 * 1024, fwdCnt: 8192 });
    const rest = await guest.read(data.byteLength - 8192);
    assert.deepEqual(Buffer.concat([first, rest]), data);
  });

  it('asks for credit once per stall, and takes credit from any packet (an RW too)', async () => {
    const guest = await attach();
    guest.send({ op: Op.REQUEST, srcPort: 40004, bufAlloc: 4096 });
    await guest.until(Op.RESPONSE);
    const host = await nextAccepted();
    const data = randomBytes(12_288);
    host.socket.write(data);
    const first = await guest.read(4096);
    await guest.until(Op.CREDIT_REQUEST);
    // Linux answers a credit request with its credit as it is: that is no reason to ask again.
    guest.send({ op: Op.CREDIT_UPDATE, srcPort: 40004, bufAlloc: 4096, fwdCnt: 0 });
    // Credit given on the guest's own data, as Linux piggybacks fwd_cnt on every packet.
    guest.send({ op: Op.RW, srcPort: 40004, bufAlloc: 4096, fwdCnt: 4096 }, Buffer.from('x'));
    const packets = [];
    let got = 0;
    while (got < 4096) {
      const packet = await guest.receive();
      packets.push(packet.op);
      if (packet.op === Op.RW) got += packet.data.byteLength;
    }
    assert.deepEqual(packets, [Op.RW], 'the next 4 KiB came in one packet, with no second request');
    guest.send({ op: Op.CREDIT_UPDATE, srcPort: 40004, bufAlloc: 4096, fwdCnt: 8192 });
    const rest = await guest.read(4096);
    assert.equal(Buffer.concat([first, rest]).byteLength, 8192);
  });

  it("delivers the host's last bytes and its end when the guest had half-closed first", async () => {
    const guest = await attach();
    guest.send({ op: Op.REQUEST, srcPort: 40005, bufAlloc: 4096 });
    await guest.until(Op.RESPONSE);
    const host = await nextAccepted();
    guest.send({ op: Op.SHUTDOWN, srcPort: 40005, flags: Shutdown.SEND, bufAlloc: 4096 });
    await once(host.socket, 'end');
    const data = randomBytes(20_000);
    host.socket.end(data); // both halves now ended: the socket closes with bytes still to deliver
    const chunks: Uint8Array[] = [];
    let fwdCnt = 0;
    for (;;) {
      const packet = await guest.receive();
      if (packet.op === Op.RW) {
        chunks.push(packet.data);
        fwdCnt += packet.data.byteLength;
        guest.send({ op: Op.CREDIT_UPDATE, srcPort: 40005, bufAlloc: 4096, fwdCnt });
      } else if (packet.op !== Op.CREDIT_REQUEST) {
        assert.equal(packet.op, Op.SHUTDOWN, 'an end, not a reset');
        assert.equal(packet.flags, Shutdown.BOTH);
        break;
      }
    }
    assert.deepEqual(Buffer.concat(chunks), data);
  });

  it('keeps a closed connection whose host still holds its socket counted, and drops streams on a ring stop', async () => {
    const guest = await attach();
    const { host } = await open(guest, 40006);
    const ended = once(host.socket, 'end');
    guest.send({ op: Op.SHUTDOWN, srcPort: 40006, flags: Shutdown.BOTH });
    await guest.until(Op.RST);
    await ended;
    assert.deepEqual([backend.stats().open, backend.stats().closing], [0, 1]);
    // QEMU stops the rings when the guest's driver resets the device (a reboot): nothing survives.
    const { host: other } = await open(guest, 40007);
    const gone = once(other.socket, 'end');
    await guest.frontend.send(Request.GET_VRING_BASE, vringState(0, 0));
    await gone;
    assert.deepEqual([backend.stats().open, backend.stats().closing], [0, 0]);
  });

  it('resets a guest that sends past the credit it was given', async () => {
    const guest = await attach();
    const { host } = await open(guest, 40002);
    const resets = backend.stats().resets;
    // 64 KiB of credit: two 40 KiB packets in one kick overrun it before the socket takes any.
    guest.send({ op: Op.RW, srcPort: 40002 }, randomBytes(40_000));
    guest.send({ op: Op.RW, srcPort: 40002 }, randomBytes(40_000));
    const ended = once(host.socket, 'end');
    await guest.until(Op.RST);
    await ended;
    assert.ok(backend.stats().resets > resets);
  });

  it('ignores packets that claim another source CID', async () => {
    const guest = await attach();
    const bad = backend.stats().badPackets;
    guest.send({ op: Op.REQUEST, srcCid: 99 });
    guest.send({ op: Op.REQUEST, dstPort: 5999 }); // answered: proves the first was handled
    const packets = await guest.until(Op.RST);
    assert.equal(packets.length, 1);
    assert.equal(packets[0]!.srcPort, 5999);
    assert.equal(backend.stats().badPackets, bad + 1);
  });

  it('drops every stream when the front-end goes away', async () => {
    const guest = await attach();
    const { host } = await open(guest, 40003);
    const ended = once(host.socket, 'end');
    guest.close();
    await ended;
    driver = undefined as unknown as VsockDriver;
  });
});

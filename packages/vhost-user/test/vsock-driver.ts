// A guest's virtio-vsock driver over the loopback front-end: the tests' stand-in for the kernel's
// vmw_vsock_virtio_transport (receive buffers on ring 0, packets out on ring 1).
import { LoopbackFrontend, vsockPacket } from './helpers.js';

const { HEADER_BYTES, HOST_CID, Op, SocketType, encodeHeader, readHeader } = vsockPacket;
type Header = vsockPacket.Header;

/** A packet the device wrote into a receive buffer. */
export interface Received extends Header {
  data: Uint8Array;
}

export const GUEST_CID = 3;

export class VsockDriver {
  readonly frontend: LoopbackFrontend;
  /** Receive buffers given and not yet used: head → address. */
  readonly #buffers = new Map<number, number>();

  constructor(socket: string) {
    this.frontend = new LoopbackFrontend(socket, { memoryBytes: 8 << 20, queueSize: 256, rings: 2 });
  }

  async start(buffers = 16, bufferBytes = HEADER_BYTES + 4096): Promise<void> {
    await this.frontend.setup();
    for (let i = 0; i < buffers; i++) this.giveBuffer(bufferBytes);
  }

  /** Adds one receive buffer (one writable descriptor, as Linux 6.2+ gives). */
  giveBuffer(bytes = HEADER_BYTES + 4096): void {
    const { head, out } = this.frontend.rings[0]!.submit([], [bytes]);
    this.#buffers.set(head, out[0]!);
  }

  /** Sends a packet on the transmit ring; fields default to a stream packet from the guest. */
  send(fields: Partial<Header> & { op: number }, data: Uint8Array = new Uint8Array(0)): void {
    const header: Header = {
      srcCid: GUEST_CID,
      dstCid: HOST_CID,
      srcPort: 40000,
      dstPort: 5000,
      len: data.byteLength,
      type: SocketType.STREAM,
      flags: 0,
      bufAlloc: 256 * 1024,
      fwdCnt: 0,
      ...fields,
    };
    const parts = [encodeHeader(header)];
    if (data.byteLength > 0) parts.push(data);
    this.frontend.rings[1]!.submit(parts, []);
  }

  /** The next packet the device delivers (each used buffer is given back). */
  async receive(): Promise<Received> {
    const [done] = await this.frontend.rings[0]!.completions(1, 10_000);
    const address = this.#buffers.get(done!.head)!;
    this.#buffers.delete(done!.head);
    const bytes = this.frontend.read(address, done!.written);
    const packet: Received = { ...readHeader([bytes]), data: bytes.slice(HEADER_BYTES) };
    this.giveBuffer();
    return packet;
  }

  /** Packets until one with `op` (the others returned too, in order). */
  async until(op: number): Promise<Received[]> {
    const seen: Received[] = [];
    for (;;) {
      const packet = await this.receive();
      seen.push(packet);
      if (packet.op === op) return seen;
    }
  }

  /** Stream bytes of RW packets until `length` have arrived. */
  async read(length: number): Promise<Uint8Array> {
    const chunks: Uint8Array[] = [];
    let got = 0;
    while (got < length) {
      const packet = await this.receive();
      if (packet.op !== Op.RW) continue;
      chunks.push(packet.data);
      got += packet.data.byteLength;
    }
    return Buffer.concat(chunks);
  }

  close(): void {
    this.frontend.close();
  }
}

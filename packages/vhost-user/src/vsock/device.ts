/**
 * The virtio-vsock device model with Firecracker's "hybrid vsock" on the host side: a guest
 * connecting to CID 2 port P is connected to the host unix socket `<uds>_P`; a host process that
 * connects to `<uds>` and writes `CONNECT P\n` is connected to the guest's port P (answered
 * `OK <host port>\n`). Streams only, with the spec's credit flow control both ways.
 *
 * What a guest can do to the host is bounded: connections per device, bytes buffered per
 * connection (a guest sending past the credit it was given is reset), control packets waiting
 * for receive buffers (past the bound the device stops reading the guest's transmit queue until
 * the guest gives buffers). Malformed chains are returned unread and counted.
 * @module
 */
import { connect as netConnect, type Socket } from 'node:net';
import type { Logger } from 'pino';
import { ProtocolFeature } from '../protocol.js';
import { type DeviceModel, RING_FEATURES } from '../vhost-device.js';
import type { SplitQueue } from '../virtqueue.js';
import type { Vring } from '../vring.js';
import {
  HEADER_BYTES,
  type Header,
  HOST_CID,
  MAX_PACKET_DATA,
  Op,
  readData,
  readHeader,
  Shutdown,
  SocketType,
  writePacket,
} from './packet.js';

/** The receive ring (ring 1 transmits; QEMU keeps the event queue, ring 2). */
const RX = 0;
/** Packets handled in one go before yielding to the event loop. */
const BATCH = 256;
/** Control packets (responses, resets, credit updates) waiting for receive buffers, at most. */
const MAX_CONTROL = 1024;
/** A host-initiated connection the guest neither accepts nor refuses is dropped after this. */
const REQUEST_TIMEOUT_MS = 5000;
/** Where host ports of host-initiated connections start (as Firecracker's). */
const FIRST_LOCAL_PORT = 2 ** 30;

/** Counters one backend keeps over its devices. */
export interface VsockCounters {
  /** Connections opened (either side). */
  connections: number;
  /** Connections refused (nothing at `<uds>_P`, a limit, a bad request). */
  refused: number;
  /** Resets sent to the guest. */
  resets: number;
  /** Stream bytes from the guest to host sockets, and back. */
  bytesFromGuest: number;
  bytesToGuest: number;
  /** Chains or packets that were malformed or broke the protocol. */
  badPackets: number;
}

/** Options of a {@link VsockDevice}. */
export interface VsockDeviceOptions {
  /** The guest's CID (its configuration space; 3 or more). */
  guestCid: number;
  /** The hybrid-vsock socket path: guest connections to port P go to `<uds>_P`. */
  uds: string;
  log: Logger;
  counters: VsockCounters;
  /** Connections open at once (default 256). */
  maxConnections?: number;
  /** Receive buffer per connection, advertised as `buf_alloc` (default 256 KiB). */
  bufferBytes?: number;
}

type State = 'connecting' | 'requesting' | 'open';

/** One stream between a guest port and a host unix socket. */
interface Connection {
  readonly key: string;
  readonly hostPort: number;
  readonly guestPort: number;
  readonly socket: Socket;
  state: State;
  /** Stream bytes sent to the guest (tx_cnt, as a number that does not wrap). */
  sent: number;
  peerBufAlloc: number;
  peerFwdCnt: number;
  /** Bytes read from the socket, not yet sent to the guest. */
  outbox?: Buffer;
  /** The host side sent its FIN; once the outbox is empty the guest is told (SHUTDOWN SEND). */
  hostEnded: boolean;
  hostEndSent: boolean;
  /** Stream bytes accepted from the guest, and how many of them the socket has taken. */
  received: number;
  forwarded: number;
  /** `forwarded` as last told to the guest. */
  advertised: number;
  creditUpdateQueued: boolean;
  creditRequested: boolean;
  timer?: NodeJS.Timeout;
}

/** A packet for the guest, its credit fields filled in when it is written. */
interface Outgoing {
  op: number;
  flags: number;
  hostPort: number;
  guestPort: number;
  connection?: Connection;
}

const keyOf = (hostPort: number, guestPort: number): string => `${hostPort}:${guestPort}`;

/** The vsock device behind one vhost-user connection. */
export class VsockDevice implements DeviceModel {
  readonly kind = 'vsock';
  readonly features = RING_FEATURES;
  readonly protocolFeatures =
    (1n << BigInt(ProtocolFeature.REPLY_ACK)) | (1n << BigInt(ProtocolFeature.CONFIG));
  readonly vrings = 2;
  readonly guestCid: number;
  readonly #uds: string;
  readonly #log: Logger;
  readonly #counters: VsockCounters;
  readonly #maxConnections: number;
  readonly #bufferBytes: number;
  readonly #connections = new Map<string, Connection>();
  /** Connections with bytes (or an end) to send, in round-robin order. */
  readonly #ready = new Set<Connection>();
  readonly #control: Outgoing[] = [];
  #rx?: Vring;
  #tx?: Vring;
  #nextLocalPort = FIRST_LOCAL_PORT;
  #closed = false;

  constructor(options: VsockDeviceOptions) {
    this.guestCid = options.guestCid;
    this.#uds = options.uds;
    this.#log = options.log;
    this.#counters = options.counters;
    this.#maxConnections = options.maxConnections ?? 256;
    this.#bufferBytes = options.bufferBytes ?? 256 * 1024;
  }

  /** Connections open now. */
  get connections(): number {
    return this.#connections.size;
  }

  config(): Uint8Array {
    const space = new Uint8Array(8);
    new DataView(space.buffer).setUint32(0, this.guestCid, true);
    return space;
  }

  readonly serve = (queue: SplitQueue, ring: Vring): Promise<void> | void => {
    if (ring.index === RX) {
      this.#rx = ring;
      this.#fillReceive(queue, ring);
      return;
    }
    this.#tx = ring;
    return this.#drainTransmit(queue, ring);
  };

  /**
   * Connects a host process (which connected to `<uds>` and asked `CONNECT port`) to the guest's
   * `port`; `rest` is what it sent after its line. The socket is answered `OK <host port>\n` once
   * the guest accepts, and closed if it refuses.
   */
  connectToGuest(socket: Socket, port: number, rest: Buffer): void {
    if (this.#closed || this.#connections.size >= this.#maxConnections) {
      this.#counters.refused++;
      socket.destroy();
      return;
    }
    let hostPort = this.#nextLocalPort;
    while ([...this.#connections.values()].some((c) => c.hostPort === hostPort))
      hostPort = hostPort + 1 >= 2 ** 32 ? FIRST_LOCAL_PORT : hostPort + 1;
    this.#nextLocalPort = hostPort + 1 >= 2 ** 32 ? FIRST_LOCAL_PORT : hostPort + 1;
    const connection = this.#open(hostPort, port, socket, 'requesting', 0, 0);
    if (rest.byteLength > 0) connection.outbox = rest;
    connection.timer = setTimeout(() => {
      this.#log.debug({ port }, 'the guest did not answer a connection request');
      this.#reset(connection);
    }, REQUEST_TIMEOUT_MS).unref();
    this.#queue({ op: Op.REQUEST, flags: 0, hostPort, guestPort: port, connection });
  }

  reset(): void {
    this.#dropAll();
  }

  close(): void {
    this.#closed = true;
    this.#dropAll();
  }

  #dropAll(): void {
    for (const connection of this.#connections.values()) {
      clearTimeout(connection.timer);
      connection.socket.destroy();
    }
    this.#connections.clear();
    this.#ready.clear();
    this.#control.length = 0;
  }

  // --- guest → host ---

  async #drainTransmit(queue: SplitQueue, ring: Vring): Promise<void> {
    for (;;) {
      let served = 0;
      // A guest that gives no receive buffers cannot make its answers pile up: stop reading it.
      while (this.#control.length < MAX_CONTROL) {
        const head = queue.pop();
        if (head === undefined) break;
        try {
          const chain = queue.chain(head);
          const header = readHeader(chain.readable);
          const data =
            header.op === Op.RW ? readData(chain.readable, header, chain.readableBytes) : undefined;
          this.#receive(header, data);
        } catch (error) {
          this.#counters.badPackets++;
          this.#log.debug({ err: error }, 'malformed vsock packet returned unread');
        }
        queue.push(head, 0);
        if (++served % BATCH === 0) {
          ring.notify();
          this.#rx?.serve();
          await new Promise((resolve) => setImmediate(resolve));
          if (ring.queue !== queue) return;
        }
      }
      if (this.#control.length >= MAX_CONTROL) {
        ring.notify();
        this.#rx?.serve();
        return; // resumed once the receive side has room again
      }
      queue.requestKick();
      ring.notify();
      this.#rx?.serve();
      // A buffer made available between our last look and avail_event's update sent no kick.
      if (!queue.pending) return;
    }
  }

  #receive(header: Header, data: Uint8Array | undefined): void {
    if (header.srcCid !== this.guestCid) {
      // Not from this guest's address: answering it would speak for someone else.
      this.#counters.badPackets++;
      return;
    }
    const connection = this.#connections.get(keyOf(header.dstPort, header.srcPort));
    if (connection && header.op !== Op.REQUEST) {
      connection.peerBufAlloc = header.bufAlloc;
      connection.peerFwdCnt = header.fwdCnt;
    }
    if (header.dstCid !== HOST_CID || header.type !== SocketType.STREAM) {
      if (header.op !== Op.RST) this.#refuse(header);
      return;
    }
    switch (header.op) {
      case Op.REQUEST:
        if (connection) this.#reset(connection);
        else this.#connectToHost(header);
        return;
      case Op.RESPONSE:
        if (connection?.state !== 'requesting') break;
        clearTimeout(connection.timer);
        connection.state = 'open';
        connection.socket.write(`OK ${connection.hostPort}\n`);
        this.#counters.connections++;
        this.#watch(connection);
        return;
      case Op.RW:
        if (connection?.state !== 'open' || !data) break;
        this.#fromGuest(connection, data);
        return;
      case Op.SHUTDOWN:
        if (!connection) break;
        if ((header.flags & Shutdown.BOTH) === Shutdown.BOTH) {
          // The guest closed: finish writing what it sent, then tell it the connection is gone.
          this.#forget(connection);
          connection.socket.end();
          connection.socket.resume(); // what the host still sends is dropped, never buffered
          this.#queue({
            op: Op.RST,
            flags: 0,
            hostPort: connection.hostPort,
            guestPort: connection.guestPort,
          });
          this.#counters.resets++;
        } else if (header.flags & Shutdown.SEND) connection.socket.end();
        this.#wake(connection);
        return;
      case Op.RST:
        if (connection) {
          this.#forget(connection);
          connection.socket.destroy();
        }
        return;
      case Op.CREDIT_UPDATE:
        if (connection) this.#wake(connection);
        return;
      case Op.CREDIT_REQUEST:
        if (connection) this.#creditUpdate(connection);
        return;
    }
    // Anything else, or for no connection: the spec's answer is a reset (never to a reset).
    if (header.op === Op.RST) return;
    if (connection) this.#reset(connection);
    else this.#refuse(header);
  }

  #connectToHost(header: Header): void {
    const { dstPort: hostPort, srcPort: guestPort } = header;
    const path = `${this.#uds}_${hostPort}`;
    if (this.#connections.size >= this.#maxConnections || Buffer.byteLength(path) > 107) {
      this.#counters.refused++;
      this.#refuse(header);
      return;
    }
    const socket = netConnect({ path, allowHalfOpen: true });
    const connection = this.#open(hostPort, guestPort, socket, 'connecting', header.bufAlloc, header.fwdCnt);
    socket.once('connect', () => {
      if (this.#connections.get(connection.key) !== connection) return;
      connection.state = 'open';
      this.#counters.connections++;
      this.#queue({ op: Op.RESPONSE, flags: 0, hostPort, guestPort, connection });
      this.#watch(connection);
    });
  }

  #open(
    hostPort: number,
    guestPort: number,
    socket: Socket,
    state: State,
    peerBufAlloc: number,
    peerFwdCnt: number,
  ): Connection {
    const connection: Connection = {
      key: keyOf(hostPort, guestPort),
      hostPort,
      guestPort,
      socket,
      state,
      sent: 0,
      peerBufAlloc,
      peerFwdCnt,
      hostEnded: false,
      hostEndSent: false,
      received: 0,
      forwarded: 0,
      advertised: 0,
      creditUpdateQueued: false,
      creditRequested: false,
    };
    this.#connections.set(connection.key, connection);
    socket.on('error', (error) => this.#log.debug({ err: error, port: hostPort }, 'host socket failed'));
    socket.once('close', () => {
      // Closed under a live connection (refused, reset, or the host process died): reset it.
      if (this.#connections.get(connection.key) !== connection) return;
      if (connection.state === 'connecting') this.#counters.refused++;
      this.#reset(connection);
    });
    return connection;
  }

  /** Starts moving the host socket's bytes to the guest. */
  #watch(connection: Connection): void {
    const { socket } = connection;
    socket.on('readable', () => this.#wake(connection));
    socket.once('end', () => {
      connection.hostEnded = true;
      this.#wake(connection);
    });
    this.#wake(connection);
  }

  #fromGuest(connection: Connection, data: Uint8Array): void {
    if (connection.received - connection.forwarded + data.byteLength > this.#bufferBytes) {
      // Past the credit it was given: a driver that does this cannot be trusted with the stream.
      this.#counters.badPackets++;
      this.#reset(connection);
      return;
    }
    connection.received += data.byteLength;
    this.#counters.bytesFromGuest += data.byteLength;
    connection.socket.write(data, () => {
      connection.forwarded += data.byteLength;
      // Tell the guest about the room at a quarter of the buffer: never so late that it waits.
      if (connection.forwarded - connection.advertised >= this.#bufferBytes / 4)
        this.#creditUpdate(connection);
    });
  }

  #creditUpdate(connection: Connection): void {
    if (connection.creditUpdateQueued || this.#connections.get(connection.key) !== connection) return;
    connection.creditUpdateQueued = true;
    this.#queue({
      op: Op.CREDIT_UPDATE,
      flags: 0,
      hostPort: connection.hostPort,
      guestPort: connection.guestPort,
      connection,
    });
  }

  /** Answers a packet with a reset. */
  #refuse(header: Header): void {
    this.#queue({ op: Op.RST, flags: 0, hostPort: header.dstPort, guestPort: header.srcPort });
    this.#counters.resets++;
  }

  /** Resets a connection: the guest is told, the host socket destroyed. */
  #reset(connection: Connection): void {
    if (this.#connections.get(connection.key) !== connection) return;
    this.#forget(connection);
    connection.socket.destroy();
    this.#queue({ op: Op.RST, flags: 0, hostPort: connection.hostPort, guestPort: connection.guestPort });
    this.#counters.resets++;
  }

  #forget(connection: Connection): void {
    clearTimeout(connection.timer);
    this.#connections.delete(connection.key);
    this.#ready.delete(connection);
    connection.socket.removeAllListeners('readable');
  }

  // --- host → guest ---

  #queue(packet: Outgoing): void {
    if (this.#closed) return;
    if (this.#control.length >= MAX_CONTROL * 2) {
      // Only host events can get here past the bound the transmit side keeps (the guest reads
      // nothing): dropping is what a full link does, and the guest's own timeouts recover.
      this.#counters.badPackets++;
      return;
    }
    this.#control.push(packet);
    this.#rx?.serve();
  }

  /** The connection may have something to send (bytes, an end) or just got credit for it. */
  #wake(connection: Connection): void {
    if (this.#connections.get(connection.key) !== connection || connection.state !== 'open') return;
    this.#ready.add(connection);
    this.#rx?.serve();
  }

  /** Room the guest has for this connection's bytes. */
  #credit(connection: Connection): number {
    const inFlight = (connection.sent - connection.peerFwdCnt) >>> 0;
    return Math.max(0, connection.peerBufAlloc - inFlight);
  }

  /** The next connection with bytes and credit, having queued ends and credit requests on the way. */
  #nextSender(): Connection | undefined {
    for (const connection of this.#ready) {
      if (!connection.outbox) {
        const chunk = connection.socket.read() as Buffer | null;
        if (chunk) connection.outbox = chunk;
      }
      if (!connection.outbox) {
        this.#ready.delete(connection);
        if (connection.hostEnded && !connection.hostEndSent) {
          connection.hostEndSent = true;
          this.#queue({
            op: Op.SHUTDOWN,
            flags: Shutdown.SEND,
            hostPort: connection.hostPort,
            guestPort: connection.guestPort,
            connection,
          });
        }
        continue;
      }
      if (this.#credit(connection) === 0) {
        // Parked until the guest's next packet for it says it has room.
        this.#ready.delete(connection);
        if (!connection.creditRequested) {
          connection.creditRequested = true;
          this.#queue({
            op: Op.CREDIT_REQUEST,
            flags: 0,
            hostPort: connection.hostPort,
            guestPort: connection.guestPort,
            connection,
          });
        }
        continue;
      }
      return connection;
    }
    return undefined;
  }

  #fillReceive(queue: SplitQueue, ring: Vring): void {
    const hadBacklog = this.#control.length >= MAX_CONTROL;
    let pushed = 0;
    for (;;) {
      const sender = this.#control.length > 0 ? undefined : this.#nextSender();
      if (this.#control.length === 0 && !sender) break;
      const head = queue.pop();
      if (head === undefined) {
        queue.requestKick();
        if (queue.pending) continue;
        break; // the guest kicks when it gives buffers
      }
      let written = 0;
      try {
        const chain = queue.chain(head);
        const room = Math.min(chain.writableBytes - HEADER_BYTES, MAX_PACKET_DATA);
        if (room < 0) throw new Error(`a receive buffer of ${chain.writableBytes} bytes`);
        if (sender) written = this.#sendData(chain.writable, sender, room);
        else written = this.#sendControl(chain.writable, this.#control.shift()!);
      } catch (error) {
        this.#counters.badPackets++;
        this.#log.debug({ err: error }, 'unusable receive buffer returned empty');
      }
      queue.push(head, written);
      pushed++;
    }
    if (pushed > 0) ring.notify();
    if (hadBacklog && this.#control.length < MAX_CONTROL) this.#tx?.serve();
  }

  #header(packet: Outgoing, len: number): Header {
    const connection = packet.connection;
    if (connection) {
      connection.advertised = connection.forwarded;
      connection.creditUpdateQueued = false;
    }
    return {
      srcCid: HOST_CID,
      dstCid: this.guestCid,
      srcPort: packet.hostPort,
      dstPort: packet.guestPort,
      len,
      type: SocketType.STREAM,
      op: packet.op,
      flags: packet.flags,
      bufAlloc: this.#bufferBytes,
      fwdCnt: (connection?.forwarded ?? 0) >>> 0,
    };
  }

  #sendControl(writable: readonly Uint8Array[], packet: Outgoing): number {
    if (packet.op === Op.CREDIT_REQUEST && packet.connection) packet.connection.creditRequested = false;
    return writePacket(writable, this.#header(packet, 0));
  }

  #sendData(writable: readonly Uint8Array[], connection: Connection, room: number): number {
    const outbox = connection.outbox!;
    const length = Math.min(room, this.#credit(connection), outbox.byteLength);
    const data = outbox.subarray(0, length);
    const written = writePacket(
      writable,
      this.#header(
        { op: Op.RW, flags: 0, hostPort: connection.hostPort, guestPort: connection.guestPort, connection },
        length,
      ),
      data,
    );
    connection.sent += length;
    this.#counters.bytesToGuest += length;
    connection.outbox = length === outbox.byteLength ? undefined : outbox.subarray(length);
    // To the back of the round: the other connections send before this one sends again.
    this.#ready.delete(connection);
    this.#ready.add(connection);
    return written;
  }
}

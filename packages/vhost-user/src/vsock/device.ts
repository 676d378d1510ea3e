/**
 * The virtio-vsock device model with Firecracker's "hybrid vsock" on the host side: a guest
 * connecting to CID 2 port P is connected to the host unix socket `<uds>_P`; a host process that
 * connects to `<uds>` and writes `CONNECT P\n` is connected to the guest's port P (answered
 * `OK <host port>\n`). Streams only, with the spec's credit flow control both ways.
 *
 * What a guest can do to the host is bounded: connections per device (closing ones included),
 * bytes buffered per connection (a guest sending past the credit it was given is reset), resets
 * waiting for receive buffers (past the bound the device stops reading the guest's transmit queue
 * until the guest gives buffers). A connection's own control packets are flags on it, never a
 * queue that could drop them. Malformed chains are returned unread and counted.
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
/** Resets waiting for receive buffers, at most; past this the transmit ring is not read. */
const MAX_RESETS = 1024;
/** A host-initiated connection the guest neither accepts nor refuses is dropped after this. */
const REQUEST_TIMEOUT_MS = 5000;
/** A closed connection's last bytes get this long to drain before its socket is destroyed. */
const CLOSE_TIMEOUT_MS = 10_000;
/** Where host ports of host-initiated connections start (as Firecracker's). */
const FIRST_LOCAL_PORT = 2 ** 30;

/** Control packets a connection owes the guest, in the order they go. */
const Owed = { REQUEST: 1, RESPONSE: 2, CREDIT_UPDATE: 4, CREDIT_REQUEST: 8, SHUTDOWN: 16 } as const;
const OWED_OPS: readonly [number, number][] = [
  [Owed.REQUEST, Op.REQUEST],
  [Owed.RESPONSE, Op.RESPONSE],
  [Owed.CREDIT_UPDATE, Op.CREDIT_UPDATE],
  [Owed.CREDIT_REQUEST, Op.CREDIT_REQUEST],
  [Owed.SHUTDOWN, Op.SHUTDOWN],
];

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
  /** Connections open at once, closing ones included (default 256). */
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
  /** A CREDIT_REQUEST went out for this stall; the next change of the guest's credit ends it. */
  creditRequested: boolean;
  /** Bytes read from the socket, not yet sent to the guest. */
  outbox?: Buffer;
  /** The host side sent its FIN: once the outbox is empty the guest is told. */
  hostEnded: boolean;
  /** The socket closed cleanly: nothing more can be written to it either. */
  hostClosed: boolean;
  shutdownSent: boolean;
  /** Stream bytes accepted from the guest, and how many of them the socket has taken. */
  received: number;
  forwarded: number;
  /** `forwarded` as last told to the guest. */
  advertised: number;
  /** {@link Owed} bits. */
  owed: number;
  timer?: NodeJS.Timeout;
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
  /** Sockets of connections the guest closed, still writing its last bytes to the host. */
  readonly #closing = new Map<Socket, NodeJS.Timeout>();
  /** Connections with bytes (or an end) to send, in round-robin order. */
  readonly #ready = new Set<Connection>();
  /** Connections owing control packets. */
  readonly #owing = new Set<Connection>();
  /** Resets for connections that are gone (or never were). */
  readonly #resets: { hostPort: number; guestPort: number }[] = [];
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

  /** Connections open now (closing ones included: they count against the limit). */
  get connections(): number {
    return this.#connections.size + this.#closing.size;
  }

  /** Connections the guest closed whose host sockets are still taking their last bytes. */
  get closing(): number {
    return this.#closing.size;
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
    if (this.#closed || this.connections >= this.#maxConnections) {
      this.#counters.refused++;
      socket.destroy();
      return;
    }
    const used = new Set([...this.#connections.values()].map((c) => c.hostPort));
    let hostPort = this.#nextLocalPort;
    while (used.has(hostPort)) hostPort = hostPort + 1 >= 2 ** 32 ? FIRST_LOCAL_PORT : hostPort + 1;
    this.#nextLocalPort = hostPort + 1 >= 2 ** 32 ? FIRST_LOCAL_PORT : hostPort + 1;
    const connection = this.#open(hostPort, port, socket, 'requesting', 0, 0);
    if (rest.byteLength > 0) connection.outbox = rest;
    connection.timer = setTimeout(() => {
      this.#log.debug({ port }, 'the guest did not answer a connection request');
      this.#reset(connection);
    }, REQUEST_TIMEOUT_MS).unref();
    this.#owe(connection, Owed.REQUEST);
  }

  reset(): void {
    this.#dropAll();
  }

  /** A ring stopped: the driver reset the device (a reboot, a new driver) and its streams are gone. */
  stopped(): void {
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
    for (const [socket, timer] of this.#closing) {
      clearTimeout(timer);
      socket.destroy();
    }
    this.#connections.clear();
    this.#closing.clear();
    this.#ready.clear();
    this.#owing.clear();
    this.#resets.length = 0;
  }

  // --- guest → host ---

  async #drainTransmit(queue: SplitQueue, ring: Vring): Promise<void> {
    for (;;) {
      let served = 0;
      // A guest that gives no receive buffers cannot make resets pile up: stop reading it.
      while (this.#resets.length < MAX_RESETS) {
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
      if (this.#resets.length >= MAX_RESETS) {
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
    if (header.dstCid !== HOST_CID || header.type !== SocketType.STREAM) {
      if (header.op !== Op.RST) this.#refuse(header);
      return;
    }
    if (connection && header.op !== Op.REQUEST) this.#credit(connection, header);
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
        if ((header.flags & Shutdown.BOTH) === Shutdown.BOTH) this.#retire(connection);
        else if (header.flags & Shutdown.SEND) connection.socket.end();
        return;
      case Op.RST:
        if (connection) {
          this.#forget(connection);
          connection.socket.destroy();
        }
        return;
      case Op.CREDIT_UPDATE:
        if (connection) return;
        break;
      case Op.CREDIT_REQUEST:
        if (!connection) break;
        this.#owe(connection, Owed.CREDIT_UPDATE);
        return;
    }
    // Anything else, or for no connection: the spec's answer is a reset (never to a reset).
    if (header.op === Op.RST) return;
    if (connection) this.#reset(connection);
    else this.#refuse(header);
  }

  /** Takes the guest's credit from one of its packets. */
  #credit(connection: Connection, header: Header): void {
    if (header.bufAlloc === connection.peerBufAlloc && header.fwdCnt === connection.peerFwdCnt) return;
    const before = this.#room(connection);
    connection.peerBufAlloc = header.bufAlloc;
    connection.peerFwdCnt = header.fwdCnt;
    // The stall (if any) is over or changed: a later one may ask again.
    connection.creditRequested = false;
    // Linux gives credit on any packet (an RW's fwd_cnt too), not only in CREDIT_UPDATE.
    if (this.#room(connection) > before) this.#wake(connection);
  }

  #connectToHost(header: Header): void {
    const { dstPort: hostPort, srcPort: guestPort } = header;
    const path = `${this.#uds}_${hostPort}`;
    if (this.connections >= this.#maxConnections || Buffer.byteLength(path) > 107) {
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
      this.#owe(connection, Owed.RESPONSE);
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
      creditRequested: false,
      hostEnded: false,
      hostClosed: false,
      shutdownSent: false,
      received: 0,
      forwarded: 0,
      advertised: 0,
      owed: 0,
    };
    this.#connections.set(connection.key, connection);
    socket.on('error', (error) => this.#log.debug({ err: error, port: hostPort }, 'host socket failed'));
    socket.once('close', (hadError) => {
      if (this.#connections.get(connection.key) !== connection) return;
      if (!hadError && connection.state === 'open' && connection.hostEnded) {
        // Both sides ended cleanly: what the host sent last still goes to the guest, then the end.
        connection.hostClosed = true;
        this.#wake(connection);
        return;
      }
      // Refused, reset, or the host process died: the guest is told at once.
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
        this.#owe(connection, Owed.CREDIT_UPDATE);
    });
  }

  /**
   * The guest closed (SHUTDOWN with both flags): its last bytes still go to the host, the guest
   * gets its reset, and the socket is destroyed if it has not closed within the timeout.
   */
  #retire(connection: Connection): void {
    this.#forget(connection);
    const { socket } = connection;
    socket.end();
    socket.resume(); // what the host still sends is dropped, never buffered
    if (!socket.destroyed) {
      const timer = setTimeout(() => socket.destroy(), CLOSE_TIMEOUT_MS).unref();
      this.#closing.set(socket, timer);
      socket.once('close', () => {
        clearTimeout(timer);
        this.#closing.delete(socket);
      });
    }
    this.#resetPacket(connection.hostPort, connection.guestPort);
  }

  /** Answers a packet with a reset. */
  #refuse(header: Header): void {
    this.#resetPacket(header.dstPort, header.srcPort);
  }

  /** Resets a connection: the guest is told, the host socket destroyed. */
  #reset(connection: Connection): void {
    if (this.#connections.get(connection.key) !== connection) return;
    this.#forget(connection);
    connection.socket.destroy();
    this.#resetPacket(connection.hostPort, connection.guestPort);
  }

  #forget(connection: Connection): void {
    clearTimeout(connection.timer);
    this.#connections.delete(connection.key);
    this.#ready.delete(connection);
    this.#owing.delete(connection);
    connection.socket.removeAllListeners('readable');
  }

  // --- host → guest ---

  #resetPacket(hostPort: number, guestPort: number): void {
    if (this.#closed) return;
    if (this.#resets.length >= MAX_RESETS * 2) {
      // Only host events get past the bound the transmit side keeps, while the guest reads
      // nothing: a reset for a stream already gone may be lost, as on a full link.
      this.#counters.badPackets++;
      return;
    }
    this.#resets.push({ hostPort, guestPort });
    this.#counters.resets++;
    this.#rx?.serve();
  }

  #owe(connection: Connection, what: number): void {
    if (this.#connections.get(connection.key) !== connection) return;
    connection.owed |= what;
    this.#owing.add(connection);
    this.#rx?.serve();
  }

  /** The connection may have something to send (bytes, an end) or just got credit for it. */
  #wake(connection: Connection): void {
    if (this.#connections.get(connection.key) !== connection || connection.state !== 'open') return;
    this.#ready.add(connection);
    this.#rx?.serve();
  }

  /** Room the guest has for this connection's bytes. */
  #room(connection: Connection): number {
    const inFlight = (connection.sent - connection.peerFwdCnt) >>> 0;
    return Math.max(0, connection.peerBufAlloc - inFlight);
  }

  /** The next connection with bytes and credit, having noted ends and stalls on the way. */
  #nextSender(): Connection | undefined {
    for (const connection of this.#ready) {
      if (!connection.outbox && !connection.socket.destroyed) {
        const chunk = connection.socket.read() as Buffer | null;
        if (chunk) connection.outbox = chunk;
      }
      if (!connection.outbox) {
        this.#ready.delete(connection);
        if (connection.hostEnded && !connection.shutdownSent) {
          connection.shutdownSent = true;
          this.#owe(connection, Owed.SHUTDOWN);
        }
        continue;
      }
      if (this.#room(connection) === 0) {
        // Parked until the guest's next packet for it changes its credit; asked once per stall.
        this.#ready.delete(connection);
        if (!connection.creditRequested) {
          connection.creditRequested = true;
          this.#owe(connection, Owed.CREDIT_REQUEST);
        }
        continue;
      }
      return connection;
    }
    return undefined;
  }

  #fillReceive(queue: SplitQueue, ring: Vring): void {
    const hadBacklog = this.#resets.length >= MAX_RESETS;
    let pushed = 0;
    for (;;) {
      const owing = this.#resets.length > 0 ? undefined : this.#owing.values().next().value;
      const sender = this.#resets.length > 0 || owing ? undefined : this.#nextSender();
      if (this.#resets.length === 0 && !owing && !sender) {
        // Finding nothing to send may have noted something owed (an end, a credit request).
        if (this.#owing.size > 0) continue;
        break;
      }
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
        else if (owing) written = this.#sendOwed(chain.writable, owing);
        else {
          const { hostPort, guestPort } = this.#resets.shift()!;
          written = writePacket(chain.writable, this.#header(Op.RST, 0, hostPort, guestPort, undefined, 0));
        }
      } catch (error) {
        this.#counters.badPackets++;
        this.#log.debug({ err: error }, 'unusable receive buffer returned empty');
      }
      queue.push(head, written);
      pushed++;
    }
    if (pushed > 0) ring.notify();
    if (hadBacklog && this.#resets.length < MAX_RESETS) this.#tx?.serve();
  }

  #header(
    op: number,
    flags: number,
    hostPort: number,
    guestPort: number,
    connection: Connection | undefined,
    len: number,
  ): Header {
    if (connection) {
      // Every packet carries fwd_cnt: a separate credit update is owed no more.
      connection.advertised = connection.forwarded;
      connection.owed &= ~Owed.CREDIT_UPDATE;
    }
    return {
      srcCid: HOST_CID,
      dstCid: this.guestCid,
      srcPort: hostPort,
      dstPort: guestPort,
      len,
      type: SocketType.STREAM,
      op,
      flags,
      bufAlloc: this.#bufferBytes,
      fwdCnt: (connection?.forwarded ?? 0) >>> 0,
    };
  }

  /** Writes the first control packet `connection` owes. */
  #sendOwed(buffers: readonly Uint8Array[], connection: Connection): number {
    const [bit, op] = OWED_OPS.find(([bit]) => connection.owed & bit)!;
    connection.owed &= ~bit;
    if (connection.owed === 0) this.#owing.delete(connection);
    // The end: SEND when the host half-closed, both once its socket is gone (nothing can be
    // written to it either). A closed socket's connection waits for the guest's reset, a while.
    const flags = op === Op.SHUTDOWN ? (connection.hostClosed ? Shutdown.BOTH : Shutdown.SEND) : 0;
    if (op === Op.SHUTDOWN && connection.hostClosed)
      connection.timer = setTimeout(() => this.#reset(connection), CLOSE_TIMEOUT_MS).unref();
    return writePacket(
      buffers,
      this.#header(op, flags, connection.hostPort, connection.guestPort, connection, 0),
    );
  }

  #sendData(buffers: readonly Uint8Array[], connection: Connection, room: number): number {
    const outbox = connection.outbox!;
    const length = Math.min(room, this.#room(connection), outbox.byteLength);
    const data = outbox.subarray(0, length);
    const written = writePacket(
      buffers,
      this.#header(Op.RW, 0, connection.hostPort, connection.guestPort, connection, length),
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

/**
 * `VsockBackend`: a virtio-vsock device for QEMU's `vhost-user-vsock-pci`, with the host side of
 * Firecracker's hybrid vsock: guest port P ↔ the unix socket `<uds>_P`, and `<uds>` itself for
 * host processes that connect to the guest (`CONNECT P\n`). One backend serves one VM.
 * @module
 */
import { unlinkSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { VaccelError } from '@vaccel/core';
import pino, { type Logger } from 'pino';
import { removeStaleSocket, VhostUserServer } from '../vhost-server.js';
import { type VsockCounters, VsockDevice } from './device.js';

/** Options of {@link VsockBackend.listen}. */
export interface VsockBackendOptions {
  /** The vhost-user socket QEMU connects to (`-chardev socket,path=…`). A stale socket is replaced. */
  socket: string;
  /**
   * The hybrid-vsock socket: guest connections to port P go to `<uds>_P` (where the agent
   * listens, as on a Firecracker host), and host processes connect to the guest through `<uds>`.
   */
  uds: string;
  /** The guest's CID (default 3; 0–2 are reserved). */
  guestCid?: number;
  /** Connections open at once (default 256). */
  maxConnections?: number;
  /** Receive buffer per connection, advertised to the guest (default 256 KiB). */
  bufferBytes?: number;
  /** Logs (default: pino at `info` on stderr). */
  logger?: Logger;
}

/** What {@link VsockBackend.stats} reports. */
export interface VsockStats extends VsockCounters {
  /** True while a front-end (QEMU) is connected. */
  attached: boolean;
  /** Connections open now. */
  open: number;
  /** Connections the guest closed, their host sockets still taking their last bytes (10 s at most). */
  closing: number;
}

/** The longest `CONNECT <port>\n` line accepted from a host process. */
const MAX_CONNECT_LINE = 32;
/** A host process that says nothing is dropped after this. */
const HANDSHAKE_TIMEOUT_MS = 5000;
/** Host processes that have not said their port yet, at most. */
const MAX_HANDSHAKES = 64;
/** The receive buffer a connection may advertise: a page up to 1 GiB (buf_alloc is a u32). */
const BUFFER_BYTES = { min: 4096, max: 2 ** 30 } as const;

/** A running vhost-user vsock backend. */
export class VsockBackend {
  readonly socket: string;
  readonly uds: string;
  readonly guestCid: number;
  readonly #server: VhostUserServer<VsockDevice>;
  readonly #hybrid: Server;
  readonly #log: Logger;
  /** Host processes that have not said which port yet. */
  readonly #handshaking = new Set<Socket>();
  readonly #counters: VsockCounters = {
    connections: 0,
    refused: 0,
    resets: 0,
    bytesFromGuest: 0,
    bytesToGuest: 0,
    badPackets: 0,
  };
  #closed = false;

  private constructor(options: VsockBackendOptions, log: Logger, hybrid: Server) {
    this.socket = options.socket;
    this.uds = options.uds;
    this.guestCid = options.guestCid ?? 3;
    this.#log = log;
    this.#hybrid = hybrid;
    const { maxConnections, bufferBytes } = options;
    this.#server = VhostUserServer.listen({
      socket: options.socket,
      logger: log,
      // One VM: a second front-end would claim the same CID and the same host sockets.
      maxConnections: 1,
      model: (child) =>
        new VsockDevice({
          guestCid: this.guestCid,
          uds: this.uds,
          log: child,
          counters: this.#counters,
          ...(maxConnections === undefined ? {} : { maxConnections }),
          ...(bufferBytes === undefined ? {} : { bufferBytes }),
        }),
    });
    hybrid.on('connection', (socket) => this.#handshake(socket));
    // Accept failures (EMFILE, ENFILE) after listening: logged, never a crash.
    hybrid.on('error', (error) => log.warn({ err: error }, 'hybrid vsock socket failed'));
  }

  /** Listens on `options.socket` (vhost-user) and `options.uds` (host processes). */
  static async listen(options: VsockBackendOptions): Promise<VsockBackend> {
    const guestCid = options.guestCid ?? 3;
    if (!Number.isInteger(guestCid) || guestCid < 3 || guestCid >= 2 ** 32 - 1)
      throw new VaccelError('EINVAL', `guest CID ${guestCid}: CIDs 0-2 and 2^32-1 are reserved`);
    const { maxConnections, bufferBytes } = options;
    if (maxConnections !== undefined && (!Number.isSafeInteger(maxConnections) || maxConnections < 1))
      throw new VaccelError('EINVAL', `maxConnections must be a positive integer, got ${maxConnections}`);
    if (
      bufferBytes !== undefined &&
      (!Number.isSafeInteger(bufferBytes) || bufferBytes < BUFFER_BYTES.min || bufferBytes > BUFFER_BYTES.max)
    )
      throw new VaccelError(
        'EINVAL',
        `bufferBytes must be an integer from ${BUFFER_BYTES.min} to ${BUFFER_BYTES.max}, got ${bufferBytes}`,
      );
    const log =
      options.logger ?? pino({ level: 'info', base: { name: 'vaccel-vsock-backend' } }, pino.destination(2));
    removeStaleSocket(options.uds);
    const hybrid = createServer({ allowHalfOpen: true, pauseOnConnect: true });
    await new Promise<void>((resolve, reject) => {
      hybrid.once('error', (error) =>
        reject(new VaccelError('EIO', `cannot listen on ${options.uds}: ${error.message}`, { cause: error })),
      );
      // Made with no access for others from the start (bind() creates the file under the umask).
      const previous = process.umask(0o077);
      try {
        hybrid.listen(options.uds, () => resolve());
      } finally {
        process.umask(previous);
      }
    });
    let backend: VsockBackend;
    try {
      backend = new VsockBackend(options, log, hybrid);
    } catch (error) {
      hybrid.close();
      throw error;
    }
    log.info(
      { socket: options.socket, uds: options.uds, guestCid: backend.guestCid },
      'vhost-user vsock backend listening',
    );
    return backend;
  }

  /** The device of the connected front-end, if one is. */
  #device(): VsockDevice | undefined {
    for (const connection of this.#server.connections) return connection.model;
    return undefined;
  }

  /** Reads a host process's `CONNECT <port>\n`, then hands it to the device. */
  #handshake(socket: Socket): void {
    socket.on('error', (error) => this.#log.debug({ err: error }, 'hybrid vsock client failed'));
    if (this.#handshaking.size >= MAX_HANDSHAKES) {
      this.#counters.refused++;
      socket.destroy();
      return;
    }
    let line = Buffer.alloc(0);
    const timer = setTimeout(() => refuse('no CONNECT line'), HANDSHAKE_TIMEOUT_MS).unref();
    const refuse = (why: string): void => {
      clearTimeout(timer);
      socket.removeListener('readable', onReadable);
      this.#counters.refused++;
      this.#log.debug({ why }, 'hybrid vsock client refused');
      socket.destroy();
    };
    const onReadable = (): void => {
      for (let chunk = socket.read() as Buffer | null; chunk; chunk = socket.read() as Buffer | null) {
        line = Buffer.concat([line, chunk]);
        const newline = line.indexOf(0x0a);
        if (newline < 0) {
          if (line.byteLength > MAX_CONNECT_LINE) refuse('CONNECT line too long');
          continue;
        }
        clearTimeout(timer);
        socket.removeListener('readable', onReadable);
        this.#handshaking.delete(socket);
        const match = /^CONNECT (\d{1,10})$/.exec(line.subarray(0, newline).toString('latin1').trimEnd());
        const port = match ? Number(match[1]) : Number.NaN;
        if (!(port < 2 ** 32)) {
          refuse(`bad line ${JSON.stringify(line.subarray(0, newline).toString('latin1'))}`);
          return;
        }
        const device = this.#device();
        if (!device) {
          refuse('no VM is attached');
          return;
        }
        device.connectToGuest(socket, port, line.subarray(newline + 1));
        return;
      }
    };
    this.#handshaking.add(socket);
    socket.once('close', () => {
      clearTimeout(timer);
      this.#handshaking.delete(socket);
    });
    socket.on('readable', onReadable);
  }

  /** Counters since start, and what is open now. */
  stats(): VsockStats {
    const device = this.#device();
    const closing = device?.closing ?? 0;
    return {
      ...this.#counters,
      attached: device !== undefined,
      open: (device?.connections ?? 0) - closing,
      closing,
    };
  }

  /** Stops listening, drops every connection and the front-end, removes both sockets. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#server.close();
    for (const socket of this.#handshaking) socket.destroy();
    await new Promise<void>((resolve) => this.#hybrid.close(() => resolve()));
    try {
      unlinkSync(this.uds);
    } catch {
      // already gone
    }
    this.#log.info('vhost-user vsock backend stopped');
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/**
 * `CryptoBackend`: listens on a unix socket for vhost-user front-ends (QEMU's
 * `cryptodev-vhost-user`), one {@link CryptoDevice} per connection, isolated from the others.
 * @module
 */
import { lstatSync, unlinkSync } from 'node:fs';
import { VaccelError } from '@vaccel/core';
import { closeQuietly, native, type Watcher } from '@vaccel/memory';
import pino, { type Logger } from 'pino';
import { CryptoDevice, type DeviceCounters } from './device.js';
import { type CipherEngine, opensslEngine } from './engine.js';
import { encodeMessage, Flags, HEADER_SIZE, MAX_PAYLOAD, MessageReader } from './protocol.js';

/** Options of {@link CryptoBackend.listen}. */
export interface CryptoBackendOptions {
  /** The unix socket path QEMU connects to (`-chardev socket,path=…`). A stale socket is replaced. */
  socket: string;
  /** What runs the ciphers (default: the host's OpenSSL). */
  engine?: CipherEngine;
  /** Logs (default: pino at `info` on stderr). */
  logger?: Logger;
  /** Front-ends served at once (default 64); more are turned away. */
  maxConnections?: number;
}

/** What {@link CryptoBackend.stats} reports. */
export interface BackendStats extends DeviceCounters {
  engine: string;
  connections: number;
  /** Sessions open now, over every connection. */
  sessions: number;
}

class Connection {
  readonly #fd: number;
  readonly #reader = new MessageReader();
  readonly #scratch = new Uint8Array(HEADER_SIZE + MAX_PAYLOAD);
  readonly #watcher: Watcher;
  readonly device: CryptoDevice;
  #closed = false;

  constructor(
    fd: number,
    engine: CipherEngine,
    counters: DeviceCounters,
    readonly log: Logger,
    readonly onClose: (connection: Connection) => void,
  ) {
    this.#fd = fd;
    this.device = new CryptoDevice({
      engine,
      counters,
      log,
      // Replies are tiny: a full socket buffer means the front-end stopped reading, and waiting for
      // it would stall every other connection, so it fails (and the connection closes) at once.
      send: (request, payload) => {
        try {
          native().sendmsg(fd, encodeMessage(request, Flags.VERSION | Flags.REPLY, payload), [], 0);
        } catch (cause) {
          // EPROTO: the device treats it as fatal, so the connection closes.
          throw new VaccelError('EPROTO', `cannot reply to the front-end: ${(cause as Error).message}`, {
            cause,
          });
        }
      },
    });
    this.#watcher = new (native().Watcher)(fd, (error) => (error ? this.close(error) : this.#read()));
  }

  #read(): void {
    try {
      // A bounded number of reads per wakeup, so one chatty front-end cannot starve the others
      // (the watcher is level-triggered: what is left wakes it again).
      for (let reads = 0; reads < 64; reads++) {
        const received = native().recvmsg(this.#fd, this.#scratch);
        if (received === null) return;
        if (received.bytes === 0) {
          for (const fd of received.fds) closeQuietly(fd);
          this.close();
          return;
        }
        const messages = this.#reader.push(this.#scratch.subarray(0, received.bytes), received.fds);
        for (const [i, message] of messages.entries()) {
          if (this.#closed) {
            for (const fd of message.fds) closeQuietly(fd);
            continue;
          }
          this.log.trace(
            {
              request: message.request,
              flags: message.flags,
              size: message.payload.byteLength,
              fds: message.fds.length,
            },
            'vhost-user message',
          );
          try {
            this.device.handle(message);
          } catch (error) {
            // The connection ends here: what else arrived with this read is never handled.
            for (const rest of messages.slice(i + 1)) for (const fd of rest.fds) closeQuietly(fd);
            throw error;
          }
        }
        // Descriptors no message claimed are closed, unless a partial message may still claim them.
        if (this.#reader.pendingBytes === 0) for (const fd of this.#reader.takeStrayFds()) closeQuietly(fd);
      }
    } catch (error) {
      this.close(error);
    }
  }

  close(reason?: unknown): void {
    if (this.#closed) return;
    this.#closed = true;
    if (reason) this.log.warn({ err: reason }, 'vhost-user connection closed on error');
    else this.log.info('vhost-user front-end disconnected');
    this.#watcher.close();
    this.device.close();
    for (const fd of this.#reader.takeStrayFds()) closeQuietly(fd);
    closeQuietly(this.#fd);
    this.onClose(this);
  }
}

/** A running vhost-user crypto backend. */
export class CryptoBackend {
  readonly socket: string;
  readonly #listenFd: number;
  readonly #watcher: Watcher;
  readonly #engine: CipherEngine;
  readonly #log: Logger;
  readonly #maxConnections: number;
  readonly #connections = new Set<Connection>();
  readonly #counters: DeviceCounters = { requests: 0, failed: 0, bytes: 0, sessionsCreated: 0 };
  #nextId = 1;
  #closed = false;

  private constructor(options: CryptoBackendOptions, listenFd: number) {
    this.socket = options.socket;
    this.#listenFd = listenFd;
    this.#engine = options.engine ?? opensslEngine();
    this.#log =
      options.logger ?? pino({ level: 'info', base: { name: 'vaccel-crypto-backend' } }, pino.destination(2));
    this.#maxConnections = options.maxConnections ?? 64;
    this.#watcher = new (native().Watcher)(listenFd, () => this.#accept());
  }

  /** Listens on `options.socket`. */
  static async listen(options: CryptoBackendOptions): Promise<CryptoBackend> {
    const lib = native();
    removeStaleSocket(options.socket);
    let fd: number;
    try {
      fd = lib.listen(options.socket, 16);
    } catch (cause) {
      throw new VaccelError('EIO', `cannot listen on ${options.socket}: ${(cause as Error).message}`, {
        cause,
      });
    }
    const backend = new CryptoBackend(options, fd);
    backend.#log.info(
      { socket: options.socket, engine: backend.#engine.name },
      'vhost-user crypto backend listening',
    );
    return backend;
  }

  #accept(): void {
    for (;;) {
      let fd: number | null;
      try {
        fd = native().accept(this.#listenFd);
      } catch (error) {
        this.#log.warn({ err: error }, 'accept failed');
        return;
      }
      if (fd === null) return;
      if (this.#connections.size >= this.#maxConnections) {
        this.#log.warn({ max: this.#maxConnections }, 'front-end turned away: too many connections');
        closeQuietly(fd);
        continue;
      }
      const log = this.#log.child({ connection: this.#nextId++ });
      log.info('vhost-user front-end connected');
      this.#connections.add(
        new Connection(fd, this.#engine, this.#counters, log, (c) => this.#connections.delete(c)),
      );
    }
  }

  /** Counters since start, and what is open now. */
  stats(): BackendStats {
    let sessions = 0;
    for (const connection of this.#connections) sessions += connection.device.sessions;
    return { ...this.#counters, engine: this.#engine.name, connections: this.#connections.size, sessions };
  }

  /** Stops listening, drops every connection (QEMU sees the device go away), removes the socket. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#watcher.close();
    closeQuietly(this.#listenFd);
    for (const connection of [...this.#connections]) connection.close();
    try {
      unlinkSync(this.socket);
    } catch {
      // already gone
    }
    await this.#engine.close?.();
    this.#log.info('vhost-user crypto backend stopped');
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** Removes a socket file left by a previous run; refuses to touch anything that is not a socket. */
function removeStaleSocket(path: string): void {
  let stat: ReturnType<typeof lstatSync>;
  try {
    stat = lstatSync(path);
  } catch {
    return;
  }
  if (!stat.isSocket()) throw new VaccelError('EEXIST', `${path} exists and is not a socket`);
  unlinkSync(path);
}

/**
 * A vhost-user server: a unix socket where front-ends (QEMU) connect, one device per connection,
 * isolated from the others; the device model decides what kind of device each one is.
 * @module
 */
import { lstatSync, unlinkSync } from 'node:fs';
import { VaccelError } from '@vaccel/core';
import { closeQuietly, native, type Watcher } from '@vaccel/memory';
import type { Logger } from 'pino';
import { encodeMessage, Flags, HEADER_SIZE, MAX_PAYLOAD, MessageReader } from './protocol.js';
import { type DeviceModel, VhostDevice } from './vhost-device.js';

/** Options of {@link VhostUserServer.listen}. */
export interface VhostUserServerOptions<M extends DeviceModel> {
  /** The unix socket path the front-end connects to. A stale socket is replaced. */
  socket: string;
  /** Logs. */
  logger: Logger;
  /** Front-ends served at once; more are turned away. */
  maxConnections: number;
  /** The device model for a new front-end's connection. */
  model: (log: Logger) => M;
}

/** One front-end's connection and the device it drives. */
export class Connection<M extends DeviceModel = DeviceModel> {
  readonly #fd: number;
  readonly #reader = new MessageReader();
  readonly #scratch = new Uint8Array(HEADER_SIZE + MAX_PAYLOAD);
  readonly #watcher: Watcher;
  readonly device: VhostDevice;
  readonly model: M;
  #closed = false;

  constructor(
    fd: number,
    model: M,
    readonly log: Logger,
    readonly onClose: (connection: Connection<M>) => void,
  ) {
    this.#fd = fd;
    this.model = model;
    this.device = new VhostDevice({
      model,
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

/**
 * Listens on a unix socket for vhost-user front-ends, one device per connection, isolated from
 * the others.
 */
export class VhostUserServer<M extends DeviceModel = DeviceModel> {
  readonly socket: string;
  readonly #listenFd: number;
  #watcher: Watcher;
  #retry?: NodeJS.Timeout;
  readonly #options: VhostUserServerOptions<M>;
  readonly #connections = new Set<Connection<M>>();
  #nextId = 1;
  #closed = false;

  private constructor(options: VhostUserServerOptions<M>, listenFd: number) {
    this.socket = options.socket;
    this.#options = options;
    this.#listenFd = listenFd;
    this.#watcher = new (native().Watcher)(listenFd, () => this.#accept());
  }

  /** Listens on `options.socket`. */
  static listen<M extends DeviceModel>(options: VhostUserServerOptions<M>): VhostUserServer<M> {
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
    return new VhostUserServer(options, fd);
  }

  /** The connections open now. */
  get connections(): ReadonlySet<Connection<M>> {
    return this.#connections;
  }

  #accept(): void {
    const log = this.#options.logger;
    for (;;) {
      let fd: number | null;
      try {
        fd = native().accept(this.#listenFd);
      } catch (error) {
        // Out of descriptors (EMFILE) leaves the connection waiting, and a level-triggered
        // watcher would call again at once: stop watching for a moment instead of spinning.
        log.warn({ err: error }, 'accept failed; trying again in 100 ms');
        this.#watcher.close();
        this.#retry = setTimeout(() => {
          this.#retry = undefined;
          if (!this.#closed) this.#watcher = new (native().Watcher)(this.#listenFd, () => this.#accept());
        }, 100).unref();
        return;
      }
      if (fd === null) return;
      if (this.#connections.size >= this.#options.maxConnections) {
        log.warn({ max: this.#options.maxConnections }, 'front-end turned away: too many connections');
        closeQuietly(fd);
        continue;
      }
      const child = log.child({ connection: this.#nextId++ });
      child.info('vhost-user front-end connected');
      this.#connections.add(
        new Connection(fd, this.#options.model(child), child, (c) => this.#connections.delete(c)),
      );
    }
  }

  /** Stops listening, drops every connection (QEMU sees the device go away), removes the socket. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#retry);
    this.#watcher.close();
    closeQuietly(this.#listenFd);
    for (const connection of [...this.#connections]) connection.close();
    try {
      unlinkSync(this.socket);
    } catch {
      // already gone
    }
  }
}

/** Removes a socket file left by a previous run; refuses to touch anything that is not a socket. */
export function removeStaleSocket(path: string): void {
  let stat: ReturnType<typeof lstatSync>;
  try {
    stat = lstatSync(path);
  } catch {
    return;
  }
  if (!stat.isSocket()) throw new VaccelError('EEXIST', `${path} exists and is not a socket`);
  unlinkSync(path);
}

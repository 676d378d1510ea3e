/**
 * `CryptoBackend`: the virtio-crypto device served to vhost-user front-ends (QEMU's
 * `cryptodev-vhost-user`), one device per connection.
 * @module
 */
import pino, { type Logger } from 'pino';
import { CryptoDevice, type DeviceCounters } from './crypto-device.js';
import { type CipherEngine, opensslEngine } from './engine.js';
import { VhostUserServer } from './vhost-server.js';

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

/** A running vhost-user crypto backend. */
export class CryptoBackend {
  readonly socket: string;
  readonly #server: VhostUserServer<CryptoDevice>;
  readonly #engine: CipherEngine;
  readonly #log: Logger;
  readonly #counters: DeviceCounters = { requests: 0, failed: 0, bytes: 0, sessionsCreated: 0 };
  #closed = false;

  private constructor(options: CryptoBackendOptions, engine: CipherEngine, log: Logger) {
    this.socket = options.socket;
    this.#engine = engine;
    this.#log = log;
    this.#server = VhostUserServer.listen({
      socket: options.socket,
      logger: log,
      maxConnections: options.maxConnections ?? 64,
      model: (child) => new CryptoDevice({ engine, log: child, counters: this.#counters }),
    });
  }

  /** Listens on `options.socket`. */
  static async listen(options: CryptoBackendOptions): Promise<CryptoBackend> {
    const log =
      options.logger ?? pino({ level: 'info', base: { name: 'vaccel-crypto-backend' } }, pino.destination(2));
    const backend = new CryptoBackend(options, options.engine ?? opensslEngine(), log);
    log.info({ socket: options.socket, engine: backend.#engine.name }, 'vhost-user crypto backend listening');
    return backend;
  }

  /** Counters since start, and what is open now. */
  stats(): BackendStats {
    let sessions = 0;
    for (const connection of this.#server.connections) sessions += connection.model.sessions;
    return {
      ...this.#counters,
      engine: this.#engine.name,
      connections: this.#server.connections.size,
      sessions,
    };
  }

  /** Stops listening, drops every connection (QEMU sees the device go away), removes the socket. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#server.close();
    await this.#engine.close?.();
    this.#log.info('vhost-user crypto backend stopped');
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

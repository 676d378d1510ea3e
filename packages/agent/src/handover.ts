/**
 * The handover socket: where guests on this machine hand the agent a shared-memory region as a
 * capability, its memfd sent over SCM_RIGHTS (Node's own sockets drop descriptors, so this is a
 * second unix socket beside the agent's, served by the native addon).
 *
 * A handover is one message: the 32-byte nonce the agent offered on the guest's ttRPC connection,
 * with exactly one descriptor. The agent keeps it, with the sender's credentials (SO_PEERCRED),
 * until that connection attaches it; nobody else can claim it (they would need the nonce, and the
 * same process on both sockets). Unclaimed handovers are closed after {@link HANDOVER_TTL_MS}.
 * @module
 */
import { unlinkSync } from 'node:fs';
import { type Logger, VaccelError } from '@vaccel/core';
import { closeQuietly, native, type Watcher } from '@vaccel/memory';
import { PRIVATE_SOCKET_MODE, withUmask } from '@vaccel/protocol';

/** Bytes of a nonce. */
export const NONCE_BYTES = 32;
/** How long an unclaimed handover (or a silent handover connection) is kept. */
export const HANDOVER_TTL_MS = 10_000;
/** Bounds of a handover socket. */
export interface HandoverLimits {
  /** Handover connections and unclaimed handovers kept at once, all peers together (default 256). */
  maxConnections: number;
  /**
   * Of those, from one process (SO_PEERCRED's pid; default 4): a guest hands over one region at a
   * time, so a process holding more is flooding, and is refused without crowding out the others.
   */
  maxPerPeer: number;
  /** Told of each connection refused (it is closed at once). */
  refused?(reason: 'handover_connections' | 'handover_peer', peer: { pid: number; uid: number }): void;
}

const DEFAULT_LIMITS: HandoverLimits = { maxConnections: 256, maxPerPeer: 4 };

/** A descriptor handed over, and who sent it. */
export interface Handover {
  fd: number;
  pid: number;
  uid: number;
}

interface Client {
  fd: number;
  /** The process that connected (SO_PEERCRED). */
  pid: number;
  watcher: Watcher;
  timer: NodeJS.Timeout;
}

interface Waiting {
  resolve(handover: Handover): void;
}

export class HandoverSocket {
  readonly #fd: number;
  readonly #watcher: Watcher;
  readonly #pending = new Map<string, Handover & { timer: NodeJS.Timeout }>();
  /** Connections and unclaimed handovers held for each sending process. */
  readonly #perPeer = new Map<number, number>();
  readonly #waiting = new Map<string, Waiting>();
  readonly #clients = new Set<Client>();
  #closed = false;

  private constructor(
    readonly path: string,
    private readonly logger: Logger,
    private readonly limits: HandoverLimits,
  ) {
    const lib = native();
    try {
      unlinkSync(path); // a socket left by an agent that died
    } catch {}
    // 0600 from creation (the addon binds and listens in this one synchronous call).
    this.#fd = withUmask(0o777 & ~PRIVATE_SOCKET_MODE, () => lib.listen(path, 128));
    this.#watcher = new lib.Watcher(this.#fd, () => this.#accept());
    this.#watcher.unref();
  }

  /** Listens at `path` (0600, like the agent's socket). @throws when the addon is missing. */
  static open(path: string, logger: Logger, limits: Partial<HandoverLimits> = {}): HandoverSocket {
    return new HandoverSocket(path, logger, { ...DEFAULT_LIMITS, ...limits });
  }

  /**
   * The handover sent with `nonce`, waiting up to `timeoutMs` for it to arrive. The caller owns
   * its descriptor.
   * @throws VaccelError `ETIMEDOUT` when none arrives.
   */
  take(nonce: Uint8Array, timeoutMs: number, signal?: AbortSignal): Promise<Handover> {
    const key = Buffer.from(nonce).toString('hex');
    const ready = this.#pending.get(key);
    if (ready) {
      this.#pending.delete(key);
      this.#release(ready.pid);
      clearTimeout(ready.timer);
      return Promise.resolve({ fd: ready.fd, pid: ready.pid, uid: ready.uid });
    }
    return new Promise((resolve, reject) => {
      const done = (): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.#waiting.delete(key);
      };
      const timer = setTimeout(() => {
        done();
        reject(
          new VaccelError('ETIMEDOUT', `no region was handed over with this nonce within ${timeoutMs} ms`),
        );
      }, timeoutMs);
      const onAbort = (): void => {
        done();
        reject(signal?.reason);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#waiting.set(key, {
        resolve: (handover) => {
          done();
          resolve(handover);
        },
      });
    });
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#watcher.close();
    closeQuietly(this.#fd);
    for (const client of this.#clients) this.#drop(client);
    for (const handover of this.#pending.values()) {
      clearTimeout(handover.timer);
      closeQuietly(handover.fd);
    }
    this.#pending.clear();
    this.#perPeer.clear();
    try {
      unlinkSync(this.path);
    } catch {}
  }

  #accept(): void {
    const lib = native();
    for (;;) {
      let fd: number | null;
      try {
        fd = lib.accept(this.#fd);
      } catch (error) {
        this.logger.warn({ err: String(error) }, 'handover accept failed');
        return;
      }
      if (fd === null) return;
      let peer: { pid: number; uid: number };
      try {
        peer = lib.peerCredentials(fd);
      } catch (error) {
        closeQuietly(fd);
        this.logger.warn({ err: String(error) }, 'handover peer unknown; closing it');
        continue;
      }
      const { maxConnections, maxPerPeer } = this.limits;
      const fromPeer = this.#perPeer.get(peer.pid) ?? 0;
      const global = this.#clients.size + this.#pending.size >= maxConnections;
      if (global || fromPeer >= maxPerPeer) {
        closeQuietly(fd);
        const reason = global ? 'handover_connections' : 'handover_peer';
        this.logger.warn(
          { reason, pid: peer.pid, uid: peer.uid, limit: global ? maxConnections : maxPerPeer },
          global
            ? 'too many pending region handovers; closing a new one'
            : 'too many pending region handovers from one process; closing a new one',
        );
        this.limits.refused?.(reason, { pid: peer.pid, uid: peer.uid });
        continue;
      }
      this.#perPeer.set(peer.pid, fromPeer + 1);
      const client: Client = {
        fd,
        pid: peer.pid,
        watcher: new lib.Watcher(fd, () => this.#receive(client)),
        timer: setTimeout(() => this.#drop(client), HANDOVER_TTL_MS),
      };
      client.watcher.unref();
      client.timer.unref();
      this.#clients.add(client);
    }
  }

  #receive(client: Client): void {
    const lib = native();
    const nonce = new Uint8Array(NONCE_BYTES + 1);
    let got: ReturnType<typeof lib.recvmsg>;
    let sender: { pid: number; uid: number };
    try {
      got = lib.recvmsg(client.fd, nonce);
      if (got === null) return; // spurious wake-up: wait for the message
      sender = lib.peerCredentials(client.fd);
    } catch (error) {
      this.logger.warn({ err: String(error) }, 'region handover failed');
      this.#drop(client);
      return;
    }
    this.#drop(client);
    // Exactly a nonce and one descriptor; anything else is closed unread.
    if (got.bytes !== NONCE_BYTES || got.fds.length !== 1) {
      for (const fd of got.fds) closeQuietly(fd);
      if (got.bytes > 0)
        this.logger.warn({ bytes: got.bytes, fds: got.fds.length }, 'malformed region handover');
      return;
    }
    const key = Buffer.from(nonce.subarray(0, NONCE_BYTES)).toString('hex');
    const handover = { fd: got.fds[0]!, pid: sender.pid, uid: sender.uid };
    const waiting = this.#waiting.get(key);
    if (waiting) {
      waiting.resolve(handover);
      return;
    }
    const earlier = this.#pending.get(key);
    if (earlier) {
      // One handover per nonce: a second one is refused, and so is the first (someone is replaying).
      clearTimeout(earlier.timer);
      closeQuietly(earlier.fd);
      closeQuietly(handover.fd);
      this.#pending.delete(key);
      this.#release(earlier.pid);
      return;
    }
    // An unclaimed handover counts against its sender (the connection it came on just stopped).
    this.#perPeer.set(handover.pid, (this.#perPeer.get(handover.pid) ?? 0) + 1);
    const timer = setTimeout(() => {
      if (this.#pending.get(key)?.timer !== timer) return;
      this.#pending.delete(key);
      this.#release(handover.pid);
      closeQuietly(handover.fd);
    }, HANDOVER_TTL_MS);
    timer.unref();
    this.#pending.set(key, { ...handover, timer });
  }

  /** One connection or unclaimed handover of process `pid` is gone. */
  #release(pid: number): void {
    const left = (this.#perPeer.get(pid) ?? 1) - 1;
    if (left === 0) this.#perPeer.delete(pid);
    else this.#perPeer.set(pid, left);
  }

  #drop(client: Client): void {
    if (!this.#clients.delete(client)) return;
    this.#release(client.pid);
    clearTimeout(client.timer);
    client.watcher.close();
    closeQuietly(client.fd);
  }
}

/**
 * One vring of a device: its setup as the front-end gave it (size, base, addresses, kick/call/err
 * eventfds) and the data path that serves it — pop a chain, run the request, push it used, signal.
 * @module
 */

import { closeQuietly, native, type Watcher } from '@vaccel/memory';
import type { Logger } from 'pino';
import type { CipherEngine } from './engine.js';
import type { GuestMemory } from './memory.js';
import { type CipherSession, handleRequest, Status } from './virtio-crypto.js';
import { type RingAddresses, SplitQueue } from './virtqueue.js';

/** Requests served in one go before yielding to the event loop. */
const BATCH = 256;

/** Counters a device adds to. */
export interface DeviceCounters {
  requests: number;
  failed: number;
  bytes: number;
  sessionsCreated: number;
}

/** What a vring shares with its device. */
export interface VringContext {
  engine: CipherEngine;
  sessions: ReadonlyMap<bigint, CipherSession>;
  counters: DeviceCounters;
  log: Logger;
}

/** One vring and its data path. */
export class Vring {
  size?: number;
  /** Where serving starts (SET_VRING_BASE), and where it stopped (GET_VRING_BASE). */
  base = 0;
  addresses?: RingAddresses;
  kick?: number;
  call?: number;
  error?: number;
  /** Rings start enabled: QEMU never sends SET_VRING_ENABLE to a crypto backend. */
  enabled = true;
  readonly #context: VringContext;
  #queue?: SplitQueue;
  #watcher?: Watcher;
  #busy = false;
  #again = false;

  constructor(
    readonly index: number,
    context: VringContext,
  ) {
    this.#context = context;
  }

  /** True while it is being served. */
  get running(): boolean {
    return this.#queue !== undefined;
  }

  /**
   * Starts serving once it has memory, size, addresses and a kick descriptor (else does nothing).
   * Rings outside guest memory or misaligned throw (`EFAULT`/`EINVAL`) and stay stopped.
   */
  start(memory: GuestMemory): void {
    if (this.#queue) return;
    if (!this.enabled || this.size === undefined || !this.addresses || this.kick === undefined) return;
    if (memory.regions.length === 0) return;
    this.#queue = new SplitQueue(memory, this.size, this.addresses, this.base);
    const kick = this.kick;
    this.#watcher = new (native().Watcher)(kick, (error) => {
      if (error) {
        this.#context.log.warn({ vring: this.index, error }, 'kick descriptor failed; vring stopped');
        this.stop();
        return;
      }
      native().eventfdRead(kick);
      this.#serve();
    });
    this.#context.log.debug({ vring: this.index, size: this.size }, 'vring started');
    this.#serve();
  }

  /** Stops serving, keeping where it got to in `base`. */
  stop(): void {
    this.#watcher?.close();
    this.#watcher = undefined;
    if (this.#queue) this.base = this.#queue.lastAvailable;
    this.#queue = undefined;
  }

  /** Stops and closes the descriptors the front-end gave for this ring. */
  close(): void {
    this.stop();
    closeQuietly(this.kick);
    closeQuietly(this.call);
    closeQuietly(this.error);
  }

  #notify(): void {
    if (this.call !== undefined) native().eventfdWrite(this.call, 1);
  }

  /** Serves what the driver made available; re-entered calls just ask for another pass. */
  #serve(): void {
    if (this.#busy) {
      this.#again = true;
      return;
    }
    this.#busy = true;
    this.#drain()
      .catch((error: unknown) => {
        this.#context.log.error({ vring: this.index, err: error }, 'vring stopped: its rings are corrupt');
        this.stop();
      })
      .finally(() => {
        this.#busy = false;
        if (this.#again && this.#queue) {
          this.#again = false;
          this.#serve();
        }
      });
  }

  async #drain(): Promise<void> {
    const { counters, engine, log, sessions } = this.#context;
    for (;;) {
      const queue = this.#queue;
      if (!queue) return;
      let served = 0;
      for (let head = queue.pop(); head !== undefined; head = queue.pop()) {
        let written = 0;
        try {
          const chain = queue.chain(head);
          const pending = handleRequest(chain, sessions, engine.run);
          const outcome = pending instanceof Promise ? await pending : pending;
          written = outcome.written;
          counters.requests++;
          if (outcome.status === Status.OK) counters.bytes += outcome.processed;
          else {
            counters.failed++;
            log.debug({ status: outcome.status, reason: outcome.reason }, 'crypto request failed');
          }
        } catch (error) {
          // The chain itself is unusable: return it empty so the driver gets its buffer back.
          counters.requests++;
          counters.failed++;
          log.warn({ vring: this.index, head, err: error }, 'malformed request returned unread');
        }
        if (this.#queue !== queue) return; // stopped (or remapped) while a cipher ran
        queue.push(head, written);
        if (++served % BATCH === 0) {
          this.#notify();
          await new Promise((resolve) => setImmediate(resolve));
          if (this.#queue !== queue) return;
        }
      }
      queue.requestKick();
      this.#notify();
      // A buffer made available between our last look and avail_event's update sent no kick.
      if (!queue.pending) return;
    }
  }
}

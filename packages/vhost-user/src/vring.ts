/**
 * One vring of a device: its setup as the front-end gave it (size, base, addresses, kick/call/err
 * eventfds) and the loop that hands its queue to the device whenever the driver kicks. What
 * "serving" means is the device's: the crypto device runs requests, the vsock device moves
 * packets.
 * @module
 */

import { closeQuietly, native, type Watcher } from '@vaccel/memory';
import type { Logger } from 'pino';
import type { GuestMemory } from './memory.js';
import { type RingAddresses, SplitQueue } from './virtqueue.js';

/**
 * Serves what the driver made available on `ring`'s queue. Called after each kick and whenever
 * the device asks ({@link Vring.serve}); never twice at once for one ring (a call during a pass
 * runs another pass after it). A throw stops the ring: its memory is corrupt.
 */
export type RingService = (queue: SplitQueue, ring: Vring) => Promise<void> | void;

/** One vring and its serving loop. */
export class Vring {
  size?: number;
  /** Where serving starts (SET_VRING_BASE), and where it stopped (GET_VRING_BASE). */
  base = 0;
  addresses?: RingAddresses;
  kick?: number;
  call?: number;
  error?: number;
  /**
   * Rings start enabled: QEMU never sends SET_VRING_ENABLE to a crypto backend (and does, with 1,
   * to the others before their rings carry anything).
   */
  enabled = true;
  readonly #log: Logger;
  readonly #service: RingService;
  #queue?: SplitQueue;
  #watcher?: Watcher;
  #busy = false;
  #again = false;

  constructor(
    readonly index: number,
    options: { log: Logger; serve: RingService },
  ) {
    this.#log = options.log;
    this.#service = options.serve;
  }

  /** True while it is being served. */
  get running(): boolean {
    return this.#queue !== undefined;
  }

  /** The queue being served (undefined while stopped): a pass checks it to notice a stop. */
  get queue(): SplitQueue | undefined {
    return this.#queue;
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
        this.#log.warn({ vring: this.index, error }, 'kick descriptor failed; vring stopped');
        this.stop();
        return;
      }
      native().eventfdRead(kick);
      this.serve();
    });
    this.#log.debug({ vring: this.index, size: this.size }, 'vring started');
    this.serve();
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

  /** Interrupts the driver (it looks at the used ring). */
  notify(): void {
    if (this.call !== undefined) native().eventfdWrite(this.call, 1);
  }

  /** Runs a pass of the device's service now, or right after the one running. */
  serve(): void {
    const queue = this.#queue;
    if (!queue) return;
    if (this.#busy) {
      this.#again = true;
      return;
    }
    this.#busy = true;
    let pass: Promise<void> | void;
    try {
      pass = this.#service(queue, this);
    } catch (error) {
      this.#failed(error);
      return;
    }
    Promise.resolve(pass)
      .catch((error: unknown) => this.#failed(error, false))
      .finally(() => {
        this.#busy = false;
        if (this.#again && this.#queue) {
          this.#again = false;
          this.serve();
        }
      });
  }

  #failed(error: unknown, sync = true): void {
    this.#log.error({ vring: this.index, err: error }, 'vring stopped: its rings are corrupt');
    this.stop();
    if (sync) this.#busy = false;
  }
}

/**
 * Split virtqueues (virtio 1.x, §2.7) seen from the device: reading descriptor chains (direct and
 * indirect) out of guest memory and returning them through the used ring. A chain that is
 * malformed — a loop, an index out of range, readable after writable buffers, nested indirect
 * tables, addresses outside guest memory — throws a {@link VaccelError} and touches nothing.
 * @module
 */
import { VaccelError } from '@vaccel/core';
import type { GuestMemory } from './memory.js';

/** Descriptor flags. */
export const DESC_F_NEXT = 1;
export const DESC_F_WRITE = 2;
export const DESC_F_INDIRECT = 4;
/** Bytes per descriptor. */
export const DESC_SIZE = 16;
/** The largest split queue virtio allows. */
export const MAX_QUEUE_SIZE = 32768;
/** The most bytes one chain may describe, in each direction (a guard, not a spec limit). */
export const MAX_CHAIN_BYTES = 256 * 2 ** 20;

/** A descriptor chain: the driver's buffers, in order, as views of guest memory. */
export interface Chain {
  /** The head descriptor index (what goes back in the used ring). */
  head: number;
  /** Device-readable buffers. */
  readable: Uint8Array[];
  /** Device-writable buffers (they follow every readable one). */
  writable: Uint8Array[];
  readableBytes: number;
  writableBytes: number;
}

const bad = (message: string): VaccelError => new VaccelError('EBADMSG', `bad descriptor chain: ${message}`);

/** Reads a little-endian u64 as a number; values past 2^53 cannot be guest addresses. */
function address(view: DataView, offset: number): number {
  const low = view.getUint32(offset, true);
  const high = view.getUint32(offset + 4, true);
  if (high >= 2 ** 21) return Number.NaN;
  return high * 2 ** 32 + low;
}

const dataView = (bytes: Uint8Array): DataView =>
  new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);

/**
 * Walks the chain that starts at `head` in descriptor table `table` (`size` entries), following
 * one level of indirection, and returns its buffers.
 */
export function readChain(memory: GuestMemory, table: DataView, size: number, head: number): Chain {
  if (!Number.isInteger(head) || head < 0 || head >= size)
    throw bad(`head ${head} is past the ${size}-entry table`);
  const chain: Chain = { head, readable: [], writable: [], readableBytes: 0, writableBytes: 0 };
  let descriptors = table;
  let entries = size;
  let index = head;
  let indirect = false;
  // Each entry may be visited once; more steps than entries means the chain loops.
  for (let steps = 0; ; steps++) {
    if (steps >= entries) throw bad('it loops or is longer than its table');
    const at = index * DESC_SIZE;
    const addr = address(descriptors, at);
    const length = descriptors.getUint32(at + 8, true);
    const flags = descriptors.getUint16(at + 12, true);
    const next = descriptors.getUint16(at + 14, true);
    if (flags & DESC_F_INDIRECT) {
      if (indirect) throw bad('an indirect table inside an indirect table');
      if (flags & DESC_F_NEXT) throw bad('an indirect descriptor with NEXT set');
      if (steps !== 0) throw bad('an indirect descriptor inside a chain');
      if (length === 0 || length % DESC_SIZE !== 0) throw bad(`indirect table of ${length} bytes`);
      descriptors = dataView(memory.guest(addr, length));
      entries = length / DESC_SIZE;
      index = 0;
      indirect = true;
      steps = -1;
      continue;
    }
    if (length > 0) {
      const bytes = memory.guest(addr, length);
      if (flags & DESC_F_WRITE) {
        chain.writable.push(bytes);
        chain.writableBytes += length;
        if (chain.writableBytes > MAX_CHAIN_BYTES) throw bad('more than 256 MiB of writable buffers');
      } else {
        if (chain.writable.length > 0) throw bad('a readable buffer after a writable one');
        chain.readable.push(bytes);
        chain.readableBytes += length;
        if (chain.readableBytes > MAX_CHAIN_BYTES) throw bad('more than 256 MiB of readable buffers');
      }
    }
    if (!(flags & DESC_F_NEXT)) return chain;
    if (next >= entries) throw bad(`next ${next} is past the ${entries}-entry table`);
    index = next;
  }
}

/** Throws `EINVAL` unless `size` is a power of two up to {@link MAX_QUEUE_SIZE}. */
export function checkQueueSize(size: number): void {
  if (!Number.isInteger(size) || size < 1 || size > MAX_QUEUE_SIZE || (size & (size - 1)) !== 0)
    throw new VaccelError('EINVAL', `queue size ${size} is not a power of two up to ${MAX_QUEUE_SIZE}`);
}

/** Where a split queue lives, in the VMM's address space (vhost-user SET_VRING_ADDR). */
export interface RingAddresses {
  descriptors: number;
  available: number;
  used: number;
}

/**
 * The device side of one split virtqueue: pops heads the driver made available, pushes them back
 * used. The ring indices are shared with a running guest, so they are read and written with
 * Atomics (ordered with respect to the ring entries).
 */
export class SplitQueue {
  readonly size: number;
  readonly #memory: GuestMemory;
  readonly #table: DataView;
  readonly #available: DataView;
  readonly #availableIndex: Uint16Array;
  readonly #used: DataView;
  readonly #usedIndex: Uint16Array;
  /** The used ring's avail_event field (event indices). */
  readonly #availEvent: Uint16Array;
  #lastAvailable: number;
  #nextUsed: number;

  /** Maps the rings; throws `EFAULT`/`EINVAL` when they are misaligned or outside guest memory. */
  constructor(memory: GuestMemory, size: number, addresses: RingAddresses, lastAvailable: number) {
    checkQueueSize(size);
    if (addresses.descriptors % 16 || addresses.available % 2 || addresses.used % 4)
      throw new VaccelError('EINVAL', 'vring addresses are misaligned');
    this.size = size;
    this.#memory = memory;
    const table = memory.user(addresses.descriptors, DESC_SIZE * size);
    // Rings include the event-index fields (used_event / avail_event) that Linux always allocates.
    const available = memory.user(addresses.available, 6 + 2 * size);
    const used = memory.user(addresses.used, 6 + 8 * size);
    this.#table = dataView(table);
    this.#available = dataView(available);
    this.#used = dataView(used);
    // Ring addresses are 2- and 4-byte aligned and regions start on pages, so these views align.
    this.#availableIndex = new Uint16Array(available.buffer, available.byteOffset, 2);
    this.#usedIndex = new Uint16Array(used.buffer, used.byteOffset, 2);
    this.#availEvent = new Uint16Array(used.buffer, used.byteOffset + 4 + 8 * size, 1);
    this.#lastAvailable = lastAvailable & 0xffff;
    this.#nextUsed = Atomics.load(this.#usedIndex, 1);
  }

  /** The index of the next available entry we will read (vhost-user's "vring base"). */
  get lastAvailable(): number {
    return this.#lastAvailable;
  }

  /** The next head the driver made available, or undefined when there is none. */
  pop(): number | undefined {
    const index = Atomics.load(this.#availableIndex, 1);
    if (index === this.#lastAvailable) return undefined;
    // More outstanding entries than the ring holds means the index is corrupt.
    if (((index - this.#lastAvailable) & 0xffff) > this.size)
      throw new VaccelError(
        'EBADMSG',
        `available index ${index} jumped past the ring (last ${this.#lastAvailable})`,
      );
    const head = this.#available.getUint16(4 + 2 * (this.#lastAvailable % this.size), true);
    this.#lastAvailable = (this.#lastAvailable + 1) & 0xffff;
    return head;
  }

  /** The chain at `head`. */
  chain(head: number): Chain {
    return readChain(this.#memory, this.#table, this.size, head);
  }

  /** Returns `head` to the driver with `written` bytes written into its writable buffers. */
  push(head: number, written: number): void {
    const slot = 4 + 8 * (this.#nextUsed % this.size);
    this.#used.setUint32(slot, head, true);
    this.#used.setUint32(slot + 4, written, true);
    this.#nextUsed = (this.#nextUsed + 1) & 0xffff;
    Atomics.store(this.#usedIndex, 1, this.#nextUsed);
  }

  /**
   * Tells a driver using event indices to kick on its next buffer (avail_event = what we have
   * seen). Written always: QEMU does not tell a vhost-user crypto backend which ring features the
   * guest accepted, and a driver without event indices ignores the field.
   */
  requestKick(): void {
    // A sequentially consistent store: the driver stores avail_idx then reads avail_event, we store
    // avail_event then read avail_idx (`pending`); with plain stores both could miss the other's.
    Atomics.store(this.#availEvent, 0, this.#lastAvailable);
  }

  /** True when the driver made more entries available than we have popped. */
  get pending(): boolean {
    return Atomics.load(this.#availableIndex, 1) !== this.#lastAvailable;
  }
}

/**
 * `length` bytes starting `offset` bytes into the concatenation of `buffers`: a view when they lie
 * in one buffer (unless `copy`), else a copy. Guest memory may change once a chain is returned:
 * what outlives the chain takes `copy`.
 */
export function gather(
  buffers: readonly Uint8Array[],
  offset: number,
  length: number,
  copy = false,
): Uint8Array {
  const single = sliceOfOne(buffers, offset, length);
  if (single) return copy ? single.slice() : single;
  const out = new Uint8Array(length);
  let filled = 0;
  let skip = offset;
  for (const buffer of buffers) {
    if (filled === length) break;
    if (skip >= buffer.byteLength) {
      skip -= buffer.byteLength;
      continue;
    }
    const part = buffer.subarray(skip, skip + (length - filled));
    out.set(part, filled);
    filled += part.byteLength;
    skip = 0;
  }
  if (filled !== length)
    throw new VaccelError('EBADMSG', 'the readable buffers are shorter than the request says');
  return out;
}

/** A view (no copy) when the range lies inside one buffer. */
function sliceOfOne(buffers: readonly Uint8Array[], offset: number, length: number): Uint8Array | undefined {
  let skip = offset;
  for (const buffer of buffers) {
    if (skip < buffer.byteLength || (length === 0 && skip === 0)) {
      return skip + length <= buffer.byteLength ? buffer.subarray(skip, skip + length) : undefined;
    }
    skip -= buffer.byteLength;
  }
  return length === 0 ? new Uint8Array(0) : undefined;
}

/** Writes `data` starting `offset` bytes into the concatenation of `buffers`. */
export function scatter(buffers: readonly Uint8Array[], offset: number, data: Uint8Array): void {
  let done = 0;
  let skip = offset;
  for (const buffer of buffers) {
    if (done === data.byteLength) return;
    if (skip >= buffer.byteLength) {
      skip -= buffer.byteLength;
      continue;
    }
    const room = Math.min(buffer.byteLength - skip, data.byteLength - done);
    buffer.set(data.subarray(done, done + room), skip);
    done += room;
    skip = 0;
  }
  if (done !== data.byteLength) throw new VaccelError('EBADMSG', 'writable buffers too small');
}

/**
 * Reusable receive buffers for big frames. Fresh memory is expensive to touch (every 4 KiB page
 * faults on first write: on the VMs this project runs on, about 11 ms per 4 MiB, twenty times the
 * cost of the copy itself), and the allocator hands big blocks back to the kernel when they are
 * freed. So big frames are read into buffers that go back to this pool once the code that
 * borrowed the frame says it is done with it (containerd/ttrpc keeps a buffer pool the same way).
 * A frame nobody gives back is simply collected by the GC.
 * @internal
 */

/** Smallest pooled buffer. */
const MIN_CLASS = 64 * 1024;

export class BufferPool {
  readonly #free = new Map<number, ArrayBuffer[]>();
  #freeBytes = 0;

  /** @param maxFreeBytes how much idle memory the pool may keep (default 64 MiB). */
  constructor(private readonly maxFreeBytes = 64 << 20) {}

  /** A buffer of exactly `length` bytes (a view of a pooled block of the next size class). */
  take(length: number): Uint8Array {
    const size = classOf(length);
    const block = this.#free.get(size)?.pop();
    if (block) {
      this.#freeBytes -= size;
      return new Uint8Array(block, 0, length);
    }
    return new Uint8Array(new ArrayBuffer(size), 0, length);
  }

  /** Hands a buffer from {@link take} back; the caller must hold no view of it any more. */
  give(buffer: Uint8Array): void {
    const block = buffer.buffer as ArrayBuffer;
    const size = block.byteLength;
    if (size !== classOf(size) || this.#freeBytes + size > this.maxFreeBytes) return;
    const list = this.#free.get(size);
    if (list) list.push(block);
    else this.#free.set(size, [block]);
    this.#freeBytes += size;
  }
}

/** Size classes: 64 KiB × 2^k × {1, 1.25, 1.5, 1.75}, so a block wastes under a quarter. */
function classOf(length: number): number {
  let base = MIN_CLASS;
  while (base * 2 <= length) base *= 2;
  for (const step of [1, 1.25, 1.5, 1.75, 2]) if (base * step >= length) return base * step;
  return base * 2;
}

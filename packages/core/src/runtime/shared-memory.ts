/**
 * Shared memory: a region of memory that the caller and the plugin's backend both map, so an op's
 * inputs and outputs move no bytes at all. The guest allocates its tensors inside the region
 * ({@link SharedMemory.float32} …) and passes those views to any op as usual; the RPC plugin then
 * sends references (region, offset, length) instead of the bytes, and the agent reads and writes
 * them in place. Views of ordinary memory keep working everywhere, in-band.
 *
 * ```ts
 * await using region = await vaccel.sharedMemory(64 << 20);
 * const a = region.float32(n * n);
 * const b = region.float32(n * n);
 * const c = region.float32(n * n);
 * await session.sgemm({ m: n, n, k: n, a, b, c }); // nothing but the call crosses the wire
 * ```
 * @module
 */
import { VaccelError } from '../api/error.js';

/**
 * Memory a plugin shares with its backend (the RPC plugin: a region its agent maps too). The
 * region is `byteLength` bytes of `buffer` from `byteOffset`.
 */
export interface PluginMemory {
  readonly buffer: ArrayBuffer;
  readonly byteOffset: number;
  readonly byteLength: number;
  /** How the backend reaches it, for logs and {@link SharedMemory.via} (e.g. `memfd`, `ivshmem`). */
  readonly via: string;
  /** Gives the memory back (the backend forgets the region; a mapping is unmapped). */
  release(): Promise<void> | void;
}

/** Where a {@link SharedMemory} lives when no plugin shares memory: this process only. */
export const LOCAL_MEMORY = 'process';

/** Alignment of every allocation: a cache line, and more than any element type needs. */
const ALIGN = 64;

/**
 * First-fit allocation of aligned byte ranges in `[0, size)`, with freed neighbours merged. Small
 * and exact: a region holds a few big tensors, not millions of small objects.
 */
export class RangeAllocator {
  /** Free ranges, sorted by offset, never adjacent. */
  readonly #free: { offset: number; length: number }[];
  /** Allocated offset → length. */
  readonly #used = new Map<number, number>();

  constructor(readonly size: number) {
    this.#free = size > 0 ? [{ offset: 0, length: size }] : [];
  }

  /** Bytes allocated now (with their alignment rounding). */
  get used(): number {
    let total = 0;
    for (const length of this.#used.values()) total += length;
    return total;
  }

  /** The offset of `length` free bytes (rounded up to {@link ALIGN}), or undefined when none fit. */
  alloc(length: number): number | undefined {
    const rounded = Math.max(ALIGN, Math.ceil(length / ALIGN) * ALIGN);
    const at = this.#free.findIndex((range) => range.length >= rounded);
    if (at < 0) return undefined;
    const range = this.#free[at]!;
    const offset = range.offset;
    if (range.length === rounded) this.#free.splice(at, 1);
    else {
      range.offset += rounded;
      range.length -= rounded;
    }
    this.#used.set(offset, rounded);
    return offset;
  }

  /** Frees what {@link alloc} returned at `offset`. @returns false when nothing starts there. */
  free(offset: number): boolean {
    const length = this.#used.get(offset);
    if (length === undefined) return false;
    this.#used.delete(offset);
    let at = this.#free.findIndex((range) => range.offset > offset);
    if (at < 0) at = this.#free.length;
    this.#free.splice(at, 0, { offset, length });
    const next = this.#free[at + 1];
    if (next && offset + length === next.offset) {
      this.#free[at]!.length += next.length;
      this.#free.splice(at + 1, 1);
    }
    const previous = this.#free[at - 1];
    if (previous && previous.offset + previous.length === offset) {
      previous.length += this.#free[at]!.length;
      this.#free.splice(at, 1);
    }
    return true;
  }
}

/** Typed arrays a region hands out, by name. */
interface ElementTypes {
  uint8: Uint8Array;
  int32: Int32Array;
  float32: Float32Array;
  float64: Float64Array;
}
const elementTypes = {
  uint8: Uint8Array,
  int32: Int32Array,
  float32: Float32Array,
  float64: Float64Array,
} as const;

/**
 * A region of shared memory with an allocator. Views from it are ordinary typed arrays: pass them
 * to any op. Made by {@link Vaccel.sharedMemory}; closing it frees the region: views of a region
 * of its own (memfd, process memory) become empty, so nothing can write into memory given back;
 * a range of a VM's device memory is returned to the device's allocator, and its views must not
 * be used afterwards.
 */
export class SharedMemory implements AsyncDisposable {
  readonly #memory: PluginMemory;
  readonly #allocator: RangeAllocator;
  readonly #onClose: (region: SharedMemory) => void;
  #closed = false;

  /** @internal Made by the runtime. */
  constructor(memory: PluginMemory, onClose: (region: SharedMemory) => void = () => {}) {
    this.#memory = memory;
    this.#allocator = new RangeAllocator(memory.byteLength);
    this.#onClose = onClose;
  }

  /** The region's size in bytes. */
  get byteLength(): number {
    return this.#memory.byteLength;
  }

  /**
   * Who maps it besides this process: `memfd` (an agent on this machine), `ivshmem` (the host of
   * this VM), or {@link LOCAL_MEMORY} when no plugin shares memory (then views go in-band to an
   * agent, and in-process plugins use them in place as always).
   */
  get via(): string {
    return this.#memory.via;
  }

  /** Bytes allocated now. */
  get used(): number {
    return this.#allocator.used;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /**
   * `byteLength` bytes inside the region, 64-byte aligned and zeroed.
   * @throws VaccelError `ENOMEM` when the region has no free range that large, `EINVAL` for a bad
   * length, `EBADF` once closed.
   */
  alloc(byteLength: number): Uint8Array {
    return this.#view('uint8', byteLength, 1);
  }

  /** A Float32Array of `length` elements inside the region (zeroed). */
  float32(length: number): Float32Array {
    return this.#view('float32', length, 4);
  }

  /** A Float64Array of `length` elements inside the region (zeroed). */
  float64(length: number): Float64Array {
    return this.#view('float64', length, 8);
  }

  /** An Int32Array of `length` elements inside the region (zeroed). */
  int32(length: number): Int32Array {
    return this.#view('int32', length, 4);
  }

  /** A Uint8Array of `length` bytes inside the region (zeroed). */
  uint8(length: number): Uint8Array {
    return this.#view('uint8', length, 1);
  }

  /** A copy of `data` inside the region, of the same type. */
  copyOf<T extends Uint8Array | Int32Array | Float32Array | Float64Array>(data: T): T {
    const copy = new (data.constructor as new (b: ArrayBuffer, o: number, l: number) => T)(
      this.#memory.buffer,
      this.#place(data.byteLength, 'copyOf'),
      data.length,
    );
    copy.set(data as never);
    return copy;
  }

  /** True when `view` lies inside this region. */
  contains(view: ArrayBufferView): boolean {
    const start = this.#memory.byteOffset;
    return (
      !this.#closed &&
      view.buffer === this.#memory.buffer &&
      view.byteOffset >= start &&
      view.byteOffset + view.byteLength <= start + this.#memory.byteLength
    );
  }

  /**
   * Gives a view's memory back to the region (the view must not be used afterwards).
   * @throws VaccelError `EINVAL` for a view that {@link alloc} & co. did not return.
   */
  free(view: ArrayBufferView): void {
    const offset = view.byteOffset - this.#memory.byteOffset;
    if (!this.contains(view) || !this.#allocator.free(offset))
      throw new VaccelError('EINVAL', 'free: the view was not allocated from this region');
  }

  /** Frees the region. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#onClose(this);
    await this.#memory.release();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #view<K extends keyof ElementTypes>(type: K, length: number, size: number): ElementTypes[K] {
    if (!Number.isSafeInteger(length) || length < 0)
      throw new VaccelError('EINVAL', `${type}: length ${length} must be a whole number ≥ 0`);
    const offset = this.#place(length * size, type);
    const view = new elementTypes[type](this.#memory.buffer, offset, length) as ElementTypes[K];
    view.fill(0);
    return view;
  }

  /** The buffer offset of `byteLength` newly allocated bytes. */
  #place(byteLength: number, what: string): number {
    if (this.#closed) throw new VaccelError('EBADF', `${what}: the shared memory region is closed`);
    const offset = this.#allocator.alloc(byteLength);
    if (offset === undefined) {
      throw new VaccelError(
        'ENOMEM',
        `${what}: no ${byteLength} free bytes in the shared memory region (${this.used} of ${this.byteLength} in use)`,
      );
    }
    return this.#memory.byteOffset + offset;
  }
}

/** Memory of this process only: what {@link Vaccel.sharedMemory} gives when no plugin shares. */
export function localMemory(byteLength: number): PluginMemory {
  const buffer = new ArrayBuffer(byteLength);
  return {
    buffer,
    byteOffset: 0,
    byteLength,
    via: LOCAL_MEMORY,
    // Detach it, so that views of a closed region are empty here too, as with mapped regions.
    release: () => void structuredClone(buffer, { transfer: [buffer] }),
  };
}

/**
 * Shared buffers through which the plugin's thread passes SGEMM operands to compute threads, kept
 * for the next block. Why shared and kept: every block would otherwise allocate megabytes on the
 * event loop's thread, or move them there and back, and V8 counts each buffer that arrives as new
 * external memory and answers with garbage collections that hold the event loop (issue 22: about
 * a quarter of its time, in pauses of up to ~10 ms, beside four SGEMM loops). A SharedArrayBuffer
 * is never transferred: both threads see the same memory, and V8 counted it once.
 * @module
 * @internal
 */

import { packInto } from '../sgemm.js';

/** Smaller buffers are not worth keeping. */
const MIN_BYTES = 64 * 1024;

export class BufferPool {
  readonly #free = new Map<number, SharedArrayBuffer[]>();
  #bytes = 0;

  /** @param maxBytes bytes kept at most (the rest are left to the collector) */
  constructor(readonly maxBytes = 64 * 2 ** 20) {}

  /** A Float32Array of `length` elements over shared memory of its own (old contents: overwrite it). */
  take(length: number): Float32Array {
    const bytes = length * 4;
    const kept = this.#free.get(bytes)?.pop();
    if (kept) this.#bytes -= bytes;
    return new Float32Array(kept ?? new SharedArrayBuffer(bytes));
  }

  /** A packed copy of a `rows` × `cols` row-major matrix with leading dimension `ld`. */
  packed(data: Float32Array, rows: number, cols: number, ld: number): Float32Array {
    const out = this.take(rows * cols);
    packInto(out, data, rows, cols, ld);
    return out;
  }

  /** Keeps arrays {@link take} gave, once no thread uses them any more. */
  give(arrays: Iterable<Float32Array>): void {
    for (const { buffer } of arrays) {
      const bytes = buffer.byteLength;
      if (!(buffer instanceof SharedArrayBuffer) || bytes < MIN_BYTES || this.#bytes + bytes > this.maxBytes)
        continue;
      const list = this.#free.get(bytes) ?? [];
      if (list.length === 0) this.#free.set(bytes, list);
      list.push(buffer);
      this.#bytes += bytes;
    }
  }
}

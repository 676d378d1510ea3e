/**
 * Buffers the plugin's thread passes to compute threads and gets back, kept for the next job:
 * every SGEMM block would otherwise allocate megabytes on the event loop's thread, and V8 answers
 * that much new external memory with garbage collections that hold the event loop (issue 22:
 * about a quarter of its time, in pauses of up to ~10 ms, beside four SGEMM loops).
 * @module
 * @internal
 */

/** Smaller buffers are not worth keeping. */
const MIN_BYTES = 64 * 1024;

export class BufferPool {
  readonly #free = new Map<number, ArrayBuffer[]>();
  #bytes = 0;

  /** @param maxBytes bytes kept at most (the rest are left to the collector) */
  constructor(readonly maxBytes = 64 * 2 ** 20) {}

  /** A Float32Array of `length` elements over a buffer of its own (old contents: overwrite it). */
  take(length: number): Float32Array {
    const bytes = length * 4;
    const kept = this.#free.get(bytes)?.pop();
    if (kept) {
      this.#bytes -= bytes;
      return new Float32Array(kept);
    }
    return new Float32Array(length);
  }

  /** A packed copy of a `rows` × `cols` row-major matrix with leading dimension `ld`. */
  packed(data: Float32Array, rows: number, cols: number, ld: number): Float32Array {
    const out = this.take(rows * cols);
    if (ld === cols) out.set(data.subarray(0, rows * cols));
    else for (let r = 0; r < rows; r++) out.set(data.subarray(r * ld, r * ld + cols), r * cols);
    return out;
  }

  /** Keeps buffers that came back (detached or small ones are skipped). */
  give(buffers: Iterable<ArrayBufferLike>): void {
    for (const buffer of buffers) {
      const bytes = buffer.byteLength;
      if (!(buffer instanceof ArrayBuffer) || bytes < MIN_BYTES || this.#bytes + bytes > this.maxBytes)
        continue;
      const list = this.#free.get(bytes) ?? [];
      if (list.length === 0) this.#free.set(bytes, list);
      list.push(buffer);
      this.#bytes += bytes;
    }
  }
}

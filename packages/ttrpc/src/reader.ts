/**
 * The socket read path: frames decoded from buffers this reader hands to the kernel itself
 * (Node's `onread` option), so bytes are written into memory once.
 *
 * - Small frames are read into a 64 KiB slab and handed out as views of it. A slab a view was
 *   lent from is never written twice: once its tail is too short a new slab is taken (the bytes
 *   of a frame still arriving are carried over), and the old one lives as long as views of it do.
 *   A slab nothing was lent from is rewound and read into again.
 * - A frame too big for the rest of the slab gets a buffer of exactly its size; the part already
 *   read is copied in, and the kernel reads the rest straight into it. Its payload starts at
 *   offset 0 of its own ArrayBuffer, 8-byte aligned.
 * - Oversized frames are read into a scratch buffer and dropped, so the stream stays in sync.
 * @internal
 */
import { ADMIT_FROM, type FrameAdmission } from './admission.js';
import { alignedPayload, decodeHeader, type Frame, HEADER_SIZE, type OversizedFrame } from './frame.js';
import type { BufferPool } from './pool.js';
import { ALIGN_FROM } from './wire.js';

const SLAB_SIZE = 64 * 1024;
/** A read into less room than this takes a new slab first. */
const MIN_ROOM = 4 * 1024;

interface Direct {
  streamId: number;
  type: number;
  flags: number;
  buffer: Uint8Array;
  fill: number;
  admitted: number;
}

export class SlabReader {
  #slab = new Uint8Array(SLAB_SIZE);
  /** First byte not yet consumed. */
  #start = 0;
  /** Where the next read into the slab lands. */
  #end = 0;
  #direct: Direct | undefined;
  /** True once a frame was handed out as a view of the current slab (it may not be rewritten). */
  #lent = false;
  #discard = 0;
  #scratch: Uint8Array | undefined;
  /**
   * Asked before each whole frame of the slab is handed out: true stops the reader there (the
   * rest stays in the slab) until {@link resume}. Its owner stops the socket reading meanwhile.
   */
  hold: (() => boolean) | undefined;

  constructor(
    private readonly maxFrame: number,
    private readonly onFrame: (frame: Frame) => void,
    private readonly onOversized: (frame: OversizedFrame) => void,
    private readonly pool?: BufferPool,
    private readonly admission?: FrameAdmission,
  ) {}

  /** The stream ended: releases what a partial frame had been admitted. */
  abandon(): void {
    if (this.#direct?.admitted) this.admission?.release(this.#direct.admitted);
    this.#direct = undefined;
  }

  /** True when no partial frame is pending (a close here is a clean close). */
  get idle(): boolean {
    return this.#direct === undefined && this.#discard === 0 && this.#start === this.#end;
  }

  /** The buffer the next read goes into. */
  nextBuffer(): Uint8Array {
    const direct = this.#direct;
    if (direct) return direct.buffer.subarray(direct.fill);
    if (this.#discard > 0) {
      this.#scratch ??= new Uint8Array(SLAB_SIZE);
      return this.#scratch.subarray(0, Math.min(this.#discard, SLAB_SIZE));
    }
    if (!this.#lent && this.#start > 0) {
      // Nothing of this slab was handed out (big frames were copied into their own buffers):
      // move what is pending to the front and keep reading into it, instead of taking fresh memory.
      this.#slab.copyWithin(0, this.#start, this.#end);
      this.#end -= this.#start;
      this.#start = 0;
    }
    if (this.#slab.byteLength - this.#end < MIN_ROOM) this.#newSlab();
    return this.#slab.subarray(this.#end);
  }

  /** Accounts for `n` bytes just read into the last {@link nextBuffer}; emits what completed. */
  didRead(n: number): void {
    const direct = this.#direct;
    if (direct) {
      direct.fill += n;
      if (direct.fill === direct.buffer.byteLength) {
        this.#direct = undefined;
        const { streamId, type, flags, buffer: payload, admitted } = direct;
        const pool = this.pool;
        let recycled = false;
        const recycle = pool
          ? () => {
              if (recycled) return;
              recycled = true;
              pool.give(payload);
            }
          : undefined;
        this.onFrame(
          admitted
            ? { streamId, type, flags, payload, recycle, admitted }
            : { streamId, type, flags, payload, recycle },
        );
      }
      return;
    }
    if (this.#discard > 0) {
      this.#discard -= n;
      return;
    }
    this.#end += n;
    this.#parse();
  }

  /** Hands out the frames left in the slab when {@link hold} stopped it (hold is asked again). */
  resume(): void {
    if (this.#direct === undefined && this.#discard === 0) this.#parse();
  }

  /** Feeds bytes read elsewhere (e.g. buffered before this reader took over the socket). */
  push(chunk: Uint8Array): void {
    let at = 0;
    while (at < chunk.byteLength) {
      const target = this.nextBuffer();
      const n = Math.min(target.byteLength, chunk.byteLength - at);
      target.set(chunk.subarray(at, at + n));
      at += n;
      this.didRead(n);
    }
  }

  #newSlab(): void {
    const pending = this.#slab.subarray(this.#start, this.#end);
    // Frames held back (see hold) can fill a slab: the next one is big enough to leave room.
    this.#slab = new Uint8Array(Math.max(SLAB_SIZE, pending.byteLength + SLAB_SIZE));
    this.#slab.set(pending);
    this.#start = 0;
    this.#end = pending.byteLength;
    this.#lent = false;
  }

  #parse(): void {
    const slab = this.#slab;
    while (this.#end - this.#start >= HEADER_SIZE) {
      if (this.hold?.()) return;
      const at = this.#start;
      const { length, streamId, type, flags } = decodeHeader(slab, at);
      const available = this.#end - at - HEADER_SIZE;
      // Asked once per frame: a frame this big is either complete here or read into its own
      // buffer below, so its header is never parsed twice.
      const admit = length >= ADMIT_FROM && length <= this.maxFrame && this.admission !== undefined;
      const refused = admit && !this.admission!.admit(length);
      if (length > this.maxFrame || refused) {
        const skip = Math.min(length, available);
        this.#start = at + HEADER_SIZE + skip;
        this.#discard = length - skip;
        this.onOversized(
          refused ? { streamId, type, flags, length, refused } : { streamId, type, flags, length },
        );
        continue;
      }
      const admitted = admit ? length : 0;
      const from = at + HEADER_SIZE;
      if (length <= available) {
        this.#start = from + length;
        const view = slab.subarray(from, from + length);
        const payload = alignedPayload(view);
        if (payload === view && length > 0) this.#lent = true;
        this.onFrame(
          admitted ? { streamId, type, flags, payload, admitted } : { streamId, type, flags, payload },
        );
        continue;
      }
      // Incomplete. Read the rest straight into the frame's own buffer when it does not fit.
      if (from + length > slab.byteLength || length >= ALIGN_FROM) {
        const buffer = this.pool ? this.pool.take(length) : new Uint8Array(length);
        buffer.set(slab.subarray(from, this.#end));
        this.#direct = { streamId, type, flags, buffer, fill: available, admitted };
        this.#start = this.#end;
      }
      return;
    }
  }
}

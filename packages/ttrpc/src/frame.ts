/**
 * ttRPC framing: the 10-byte header and an incremental decoder (see PROTOCOL.md).
 * @module
 */
import { ALIGN_FROM, ALIGNMENT } from './wire.js';

/** Header size in bytes. */
export const HEADER_SIZE = 10;
/** Frame types. */
export const FrameType = Object.freeze({ Request: 0x01, Response: 0x02, Data: 0x03 } as const);
/** Frame flags. */
export const FrameFlag = Object.freeze({ RemoteClosed: 0x01, RemoteOpen: 0x02, NoData: 0x04 } as const);
/** Default maximum payload size (256 MiB). */
export const DEFAULT_MAX_FRAME = 256 * 1024 * 1024;
/** Largest payload the 32-bit length field can describe. */
export const MAX_FRAME_LIMIT = 0xffffffff;

/**
 * Checks a `maxFrame` option: a whole number of bytes from 1 to {@link MAX_FRAME_LIMIT}.
 * @throws RangeError naming the option and the value.
 */
export function checkMaxFrame(maxFrame: number | undefined, what: string): number {
  const value = maxFrame ?? DEFAULT_MAX_FRAME;
  if (!Number.isSafeInteger(value) || value < 1 || value > MAX_FRAME_LIMIT) {
    throw new RangeError(
      `${what}: maxFrame must be a whole number of bytes from 1 to ${MAX_FRAME_LIMIT} (the 32-bit length field's limit), got ${maxFrame}`,
    );
  }
  return value;
}

/** One decoded frame. */
export interface Frame {
  streamId: number;
  type: number;
  flags: number;
  payload: Uint8Array;
  /**
   * Set when `payload` is a pooled buffer: call it once nothing holds a view of the payload any
   * more, and the buffer is reused for a later frame. Not calling it is always safe.
   */
  recycle?: () => void;
}

/** A frame whose announced length was over the limit; its payload was discarded. */
export interface OversizedFrame {
  streamId: number;
  type: number;
  flags: number;
  length: number;
}

/** Encodes a frame header. */
export function encodeHeader(length: number, streamId: number, type: number, flags: number): Uint8Array {
  const header = new Uint8Array(HEADER_SIZE);
  encodeHeaderInto(header, length, streamId, type, flags);
  return header;
}

/** Writes a frame header at `at` of `target` (big-endian length and stream id). */
export function encodeHeaderInto(
  target: Uint8Array,
  length: number,
  streamId: number,
  type: number,
  flags: number,
  at = 0,
): void {
  target[at] = length >>> 24;
  target[at + 1] = length >>> 16;
  target[at + 2] = length >>> 8;
  target[at + 3] = length;
  target[at + 4] = streamId >>> 24;
  target[at + 5] = streamId >>> 16;
  target[at + 6] = streamId >>> 8;
  target[at + 7] = streamId;
  target[at + 8] = type;
  target[at + 9] = flags;
}

/**
 * Incremental frame decoder. Bytes go in as they arrive; each payload is copied at most once into
 * a buffer of exactly its size (allocated only after the length is checked), or handed out as a
 * zero-copy view when one chunk holds it whole. Oversized payloads are skipped, not buffered.
 */
export class FrameDecoder {
  readonly #header = new Uint8Array(HEADER_SIZE);
  #headerFill = 0;
  #current: { streamId: number; type: number; flags: number; length: number } | undefined;
  #payload: Uint8Array | undefined;
  #payloadFill = 0;
  #discard = 0;

  constructor(
    private readonly maxFrame: number,
    private readonly onFrame: (frame: Frame) => void,
    private readonly onOversized: (frame: OversizedFrame) => void,
  ) {}

  /** True when no partial frame is pending (a close here is a clean close). */
  get idle(): boolean {
    return this.#headerFill === 0 && this.#current === undefined && this.#discard === 0;
  }

  /** Feeds bytes. Callbacks run synchronously for every frame completed by them. */
  push(chunk: Uint8Array): void {
    let at = 0;
    while (at < chunk.byteLength) {
      if (this.#discard > 0) {
        const skip = Math.min(this.#discard, chunk.byteLength - at);
        this.#discard -= skip;
        at += skip;
        continue;
      }
      const current = this.#current;
      if (current === undefined) {
        if (this.#headerFill === 0 && chunk.byteLength - at >= HEADER_SIZE) {
          this.#begin(chunk.subarray(at, at + HEADER_SIZE));
          at += HEADER_SIZE;
        } else {
          const take = Math.min(HEADER_SIZE - this.#headerFill, chunk.byteLength - at);
          this.#header.set(chunk.subarray(at, at + take), this.#headerFill);
          this.#headerFill += take;
          at += take;
          if (this.#headerFill === HEADER_SIZE) {
            this.#headerFill = 0;
            this.#begin(this.#header);
          }
        }
        continue;
      }
      const remaining = current.length - this.#payloadFill;
      if (this.#payload === undefined && chunk.byteLength - at >= remaining) {
        // The whole payload is in this chunk: hand out a view, no copy (big ones 8-byte aligned,
        // see wire.ts: an odd one is copied once).
        const view = chunk.subarray(at, at + remaining);
        const odd = remaining >= ALIGN_FROM && view.byteOffset % ALIGNMENT !== 0;
        this.#emit(odd ? view.slice() : view);
        at += remaining;
        continue;
      }
      this.#payload ??= new Uint8Array(current.length);
      const take = Math.min(remaining, chunk.byteLength - at);
      this.#payload.set(chunk.subarray(at, at + take), this.#payloadFill);
      this.#payloadFill += take;
      at += take;
      if (this.#payloadFill === current.length) this.#emit(this.#payload);
    }
  }

  #begin(header: Uint8Array): void {
    const view = new DataView(header.buffer, header.byteOffset, HEADER_SIZE);
    const frame = {
      length: view.getUint32(0),
      streamId: view.getUint32(4),
      type: header[8]!,
      flags: header[9]!,
    };
    if (frame.length > this.maxFrame) {
      this.#discard = frame.length;
      this.onOversized(frame);
      return;
    }
    this.#current = frame;
    if (frame.length === 0) this.#emit(new Uint8Array(0));
  }

  #emit(payload: Uint8Array): void {
    const { streamId, type, flags } = this.#current!;
    this.#current = undefined;
    this.#payload = undefined;
    this.#payloadFill = 0;
    this.onFrame({ streamId, type, flags, payload });
  }
}

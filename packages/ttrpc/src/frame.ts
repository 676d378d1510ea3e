/**
 * ttRPC framing: the 10-byte header and an incremental decoder (see PROTOCOL.md).
 * @module
 */
import { ADMIT_FROM, type FrameAdmission } from './admission.js';
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
  /** Bytes a server's {@link FrameAdmission} admitted for this payload (whoever owns the frame releases them). */
  admitted?: number;
}

/** A frame whose announced length was over the limit; its payload was discarded. */
export interface OversizedFrame {
  streamId: number;
  type: number;
  flags: number;
  length: number;
  /** True when the frame was within the size limit but its admission was refused. */
  refused?: boolean;
}

/** Encodes a frame header (big-endian length and stream id). */
export function encodeHeader(length: number, streamId: number, type: number, flags: number): Uint8Array {
  const header = new Uint8Array(HEADER_SIZE);
  header[0] = length >>> 24;
  header[1] = length >>> 16;
  header[2] = length >>> 8;
  header[3] = length;
  header[4] = streamId >>> 24;
  header[5] = streamId >>> 16;
  header[6] = streamId >>> 8;
  header[7] = streamId;
  header[8] = type;
  header[9] = flags;
  return header;
}

/** Decodes the frame header at `at` of `bytes` (which holds at least {@link HEADER_SIZE} bytes there). */
export function decodeHeader(bytes: Uint8Array, at = 0): OversizedFrame {
  return {
    length: ((bytes[at]! << 24) | (bytes[at + 1]! << 16) | (bytes[at + 2]! << 8) | bytes[at + 3]!) >>> 0,
    streamId:
      ((bytes[at + 4]! << 24) | (bytes[at + 5]! << 16) | (bytes[at + 6]! << 8) | bytes[at + 7]!) >>> 0,
    type: bytes[at + 8]!,
    flags: bytes[at + 9]!,
  };
}

/**
 * A complete payload found inside a bigger buffer, as handed out: a view, except that a big one
 * at an odd offset is copied once, so big payloads always start 8-byte aligned (see wire.ts).
 */
export function alignedPayload(view: Uint8Array): Uint8Array {
  return view.byteLength >= ALIGN_FROM && view.byteOffset % ALIGNMENT !== 0 ? view.slice() : view;
}

/**
 * Incremental frame decoder. Bytes go in as they arrive; each payload is copied at most once into
 * a buffer of exactly its size (allocated only after the length is checked), or handed out as a
 * zero-copy view when one chunk holds it whole. Oversized payloads are skipped, not buffered.
 */
export class FrameDecoder {
  readonly #header = new Uint8Array(HEADER_SIZE);
  #headerFill = 0;
  #current: { streamId: number; type: number; flags: number; length: number; admitted: number } | undefined;
  #payload: Uint8Array | undefined;
  #payloadFill = 0;
  #discard = 0;

  constructor(
    private readonly maxFrame: number,
    private readonly onFrame: (frame: Frame) => void,
    private readonly onOversized: (frame: OversizedFrame) => void,
    private readonly admission?: FrameAdmission,
  ) {}

  /** True when no partial frame is pending (a close here is a clean close). */
  get idle(): boolean {
    return this.#headerFill === 0 && this.#current === undefined && this.#discard === 0;
  }

  /** The stream ended: releases what a partial frame had been admitted. */
  abandon(): void {
    if (this.#current?.admitted) this.admission?.release(this.#current.admitted);
    this.#current = undefined;
    this.#payload = undefined;
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
        // The whole payload is in this chunk: hand out a view, no copy.
        this.#emit(alignedPayload(chunk.subarray(at, at + remaining)));
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
    const frame = decodeHeader(header);
    const refused =
      frame.length <= this.maxFrame &&
      frame.length >= ADMIT_FROM &&
      this.admission !== undefined &&
      !this.admission.admit(frame.length);
    if (frame.length > this.maxFrame || refused) {
      this.#discard = frame.length;
      this.onOversized(refused ? { ...frame, refused } : frame);
      return;
    }
    this.#current = { ...frame, admitted: frame.length >= ADMIT_FROM && this.admission ? frame.length : 0 };
    if (frame.length === 0) this.#emit(new Uint8Array(0));
  }

  #emit(payload: Uint8Array): void {
    const { streamId, type, flags, admitted } = this.#current!;
    this.#current = undefined;
    this.#payload = undefined;
    this.#payloadFill = 0;
    this.onFrame(
      admitted ? { streamId, type, flags, payload, admitted } : { streamId, type, flags, payload },
    );
  }
}

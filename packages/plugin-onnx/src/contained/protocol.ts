/**
 * The wire between the plugin and its model runners: length-prefixed frames on the socket pair
 * that is the runner's fd 3 (its stdout and stderr stay free for ONNX Runtime's own logging).
 *
 * ```
 * offset  size  field
 *      0     4  body length, u32 little-endian: the bytes after this 16-byte header
 *      4     4  call id, u32 LE (0: not part of a call, e.g. READY)
 *      8     1  kind (Kind)
 *      9     3  zero
 *     12     4  meta length, u32 LE
 *     16     …  meta: UTF-8 JSON (names, dtypes, dims, blob offsets; never tensor data)
 *      …     …  zero padding to a multiple of 8, then the blobs (model bytes, tensor data), each
 *               at an offset from the frame's start that is a multiple of 8
 * ```
 *
 * A reader allocates each frame whole once its header says how long it is (after checking the
 * length against its limit), at the start of its own ArrayBuffer: every blob is then aligned
 * for any typed array, and tensors are views of the frame, never copies.
 * @module
 * @internal
 */
import { TENSOR_ARRAYS, type Tensor, VaccelError } from '@vaccel/core';

export const HEADER_BYTES = 16;
/** Most body bytes a frame can say it has (the length field is a u32). */
export const MAX_BODY_BYTES = 0xffff_ffff;

/** Frame kinds. */
export const Kind = {
  /** runner → plugin, once, when it is ready: `{ vmSize }` (its virtual size in bytes). */
  Ready: 1,
  /** plugin → runner: `{ digest, what }` + the ONNX bytes; replied `{ info }`. */
  Load: 2,
  /** plugin → runner: `{ digest, what, inputs: TensorMeta[], outputs }` + tensor data; replied `{ outputs: TensorMeta[] }` + data. */
  Run: 3,
  /** plugin → runner: `{ digest }`: drop that session; no reply. */
  Release: 4,
  /** runner → plugin: the reply to the call with the same id, or `{ error: { code, message } }`. */
  Reply: 5,
} as const;
export type Kind = (typeof Kind)[keyof typeof Kind];

/** A tensor's description in meta; its data is the blob at the same index. */
export interface TensorMeta {
  name: string;
  dtype: string;
  dims: number[];
}

/** A frame as read. */
export interface Frame {
  id: number;
  kind: number;
  meta: Record<string, unknown>;
  /** Views into the frame's buffer, each 8-byte aligned. */
  blobs: Uint8Array[];
}

const align8 = (n: number) => (n + 7) & ~7;
const PAD = new Uint8Array(8);
const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();

/**
 * Encodes a frame as chunks to write in order (the blobs are not copied). Blob offsets and lengths
 * go into the meta as `blobs: [offset, length][]`.
 * @throws VaccelError `E2BIG` over {@link MAX_BODY_BYTES}.
 */
export function encodeFrame(
  id: number,
  kind: Kind,
  meta: Record<string, unknown>,
  blobs: readonly Uint8Array[] = [],
): Uint8Array[] {
  // The offsets are written into the meta, whose length moves the payload: lay out blobs relative
  // to the payload, then place the payload after the meta.
  const places: [number, number][] = [];
  let payload = 0;
  for (const blob of blobs) {
    places.push([payload, blob.byteLength]);
    payload = align8(payload + blob.byteLength);
  }
  const json = utf8.encode(JSON.stringify({ ...meta, blobs: places }));
  const start = align8(HEADER_BYTES + json.byteLength);
  const body = start - HEADER_BYTES + payload;
  if (body > MAX_BODY_BYTES)
    throw new VaccelError(
      'E2BIG',
      `a runner frame of ${body} bytes is over the ${MAX_BODY_BYTES}-byte limit`,
    );
  const head = new Uint8Array(start);
  const view = new DataView(head.buffer);
  view.setUint32(0, body, true);
  view.setUint32(4, id, true);
  view.setUint8(8, kind);
  view.setUint32(12, json.byteLength, true);
  head.set(json, HEADER_BYTES);
  const chunks: Uint8Array[] = [head];
  for (const blob of blobs) {
    if (blob.byteLength > 0) chunks.push(blob);
    const pad = align8(blob.byteLength) - blob.byteLength;
    if (pad > 0) chunks.push(PAD.subarray(0, pad));
  }
  return chunks;
}

/**
 * Splits a byte stream into frames. A frame whose header announces more than `maxBodyBytes` is a
 * protocol error (thrown before anything is allocated for it): the stream cannot be trusted after.
 */
export class FrameReader {
  private head = new Uint8Array(HEADER_BYTES);
  private headFill = 0;
  private frame: Uint8Array | undefined;
  private fill = 0;

  constructor(private readonly maxBodyBytes: number) {}

  /** Feeds bytes; returns the frames they complete. @throws Error for an oversized or malformed frame. */
  push(chunk: Uint8Array): Frame[] {
    const done: Frame[] = [];
    let at = 0;
    while (at < chunk.byteLength) {
      if (!this.frame) {
        const take = Math.min(HEADER_BYTES - this.headFill, chunk.byteLength - at);
        this.head.set(chunk.subarray(at, at + take), this.headFill);
        this.headFill += take;
        at += take;
        if (this.headFill < HEADER_BYTES) break;
        const body = new DataView(this.head.buffer).getUint32(0, true);
        if (body > this.maxBodyBytes)
          throw new Error(`runner frame of ${body} bytes is over the ${this.maxBodyBytes}-byte limit`);
        // Its own ArrayBuffer, offset 0: blobs at multiples of 8 are aligned for every typed array.
        this.frame = new Uint8Array(new ArrayBuffer(HEADER_BYTES + body));
        this.frame.set(this.head);
        this.fill = HEADER_BYTES;
        this.headFill = 0;
      }
      const take = Math.min(this.frame.byteLength - this.fill, chunk.byteLength - at);
      this.frame.set(chunk.subarray(at, at + take), this.fill);
      this.fill += take;
      at += take;
      if (this.fill === this.frame.byteLength) {
        done.push(decodeFrame(this.frame));
        this.frame = undefined;
      }
    }
    return done;
  }
}

function decodeFrame(bytes: Uint8Array): Frame {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const metaLength = view.getUint32(12, true);
  if (HEADER_BYTES + metaLength > bytes.byteLength) throw new Error('runner frame meta runs past the frame');
  const meta = JSON.parse(fromUtf8.decode(bytes.subarray(HEADER_BYTES, HEADER_BYTES + metaLength))) as Record<
    string,
    unknown
  >;
  const start = align8(HEADER_BYTES + metaLength);
  const places = (meta.blobs ?? []) as [number, number][];
  const blobs = places.map(([offset, length]) => {
    if (start + offset + length > bytes.byteLength) throw new Error('runner frame blob runs past the frame');
    return bytes.subarray(start + offset, start + offset + length);
  });
  return { id: view.getUint32(4, true), kind: view.getUint8(8), meta, blobs };
}

/** A typed view of a blob for a vAccel dtype. @throws Error for an unknown dtype or a bad length. */
export function typedView(dtype: string, blob: Uint8Array): Tensor['data'] {
  const ctor = TENSOR_ARRAYS[dtype as keyof typeof TENSOR_ARRAYS];
  if (!ctor || blob.byteLength % ctor.BYTES_PER_ELEMENT !== 0)
    throw new Error(`runner tensor of dtype ${dtype} has ${blob.byteLength} bytes`);
  return new ctor(blob.buffer as ArrayBuffer, blob.byteOffset, blob.byteLength / ctor.BYTES_PER_ELEMENT);
}

/** The bytes of a typed array (a view, not a copy). */
export const bytesOf = (data: ArrayBufferView): Uint8Array =>
  new Uint8Array(data.buffer, data.byteOffset, data.byteLength);

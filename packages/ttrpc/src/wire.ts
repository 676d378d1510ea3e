/**
 * Alignment padding: an unknown length-delimited field that every protobuf decoder skips
 * (upstream's Rust and Go peers included), written in front of a big bytes field so that the
 * field's first byte lands at an 8-byte-aligned offset of the frame. A reader that gives each
 * big frame its own buffer can then view Float32/Float64 data in place instead of copying it.
 * @module
 */
import { type BinaryWriter, WireType } from '@bufbuild/protobuf/wire';

/** Field number of the padding field (far above any field ttRPC or vAccel defines). */
export const PAD_FIELD = 2047;
/** Bytes fields at least this long are aligned (and sent by reference, never copied). */
export const ALIGN_FROM = 16 * 1024;
/** The alignment, in bytes. */
export const ALIGNMENT = 8;

/** Size of the pad field's tag (2 bytes) plus its 1-byte length. */
const PAD_OVERHEAD = 3;

/**
 * Writes a pad field so that `offset` (where the writer is now, from the frame's start) plus the
 * pad plus `after` (the bytes between the pad and the aligned data) is a multiple of 8.
 * @returns the pad's size in bytes (3 to 10).
 */
export function alignmentPad(writer: BinaryWriter, offset: number, after: number): number {
  const filler = (ALIGNMENT - ((offset + PAD_OVERHEAD + after) % ALIGNMENT)) % ALIGNMENT;
  writer.tag(PAD_FIELD, WireType.LengthDelimited).bytes(new Uint8Array(filler));
  return PAD_OVERHEAD + filler;
}

/** Bytes a varint of `value` (a non-negative integer below 2^53) takes. */
export function varintSize(value: number): number {
  let size = 1;
  for (let v = value; v >= 0x80; v = Math.floor(v / 128)) size++;
  return size;
}

/**
 * Writes a varint of `value` (a non-negative integer below 2^53) at `at`; returns the offset
 * after it. (BinaryWriter's chunked buffers cost more than the message for small hot messages.)
 */
export function putVarint(target: Uint8Array, at: number, value: number): number {
  let v = value;
  while (v >= 0x80) {
    target[at++] = (v % 128) | 0x80;
    v = Math.floor(v / 128);
  }
  target[at++] = v;
  return at;
}

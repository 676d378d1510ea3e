/**
 * Zero-copy encoding of the hot messages, genop.Request and genop.Response: the same bytes
 * protobuf-es writes, but returned as parts in which every big arg buffer is referenced, never
 * copied (the ttRPC layer writes the parts one after another). Decoding needs nothing special:
 * protobuf-es decodes `bytes` fields as views.
 * @module
 */
import { BinaryWriter, WireType } from '@bufbuild/protobuf/wire';

/** An arg as it goes on the wire (the init shape of genop.Arg). */
export interface WireArg {
  buf?: Uint8Array;
  /** Default: the buffer's length (the full length when chunked). */
  size?: number;
  argType?: number;
  customTypeId?: number;
  parts?: number;
  partNo?: number;
}

/** Buffers at least this big travel by reference. */
const BY_REFERENCE = 16 * 1024;

const varintLength = (value: number): number => {
  let length = 1;
  for (let v = value; v >= 0x80; v = Math.floor(v / 128)) length++;
  return length;
};

// Field order and proto3 defaults (zero fields are omitted) as in genop.proto and protobuf-es.
const EMPTY = new Uint8Array(0);

const scalarFields = (arg: WireArg): [number, number][] =>
  (
    [
      [2, arg.size ?? arg.buf?.byteLength ?? 0],
      [3, arg.argType ?? 0],
      [4, arg.customTypeId ?? 0],
      [5, arg.parts ?? 0],
      [6, arg.partNo ?? 0],
    ] as [number, number][]
  ).filter(([, value]) => value !== 0);

function argLength(arg: WireArg): number {
  const n = arg.buf?.byteLength ?? 0;
  let length = n > 0 ? 1 + varintLength(n) + n : 0;
  for (const [, value] of scalarFields(arg)) length += 1 + varintLength(value);
  return length;
}

/** Writes messages into parts: small pieces into a shared writer, big buffers by reference. */
class PartsWriter {
  readonly parts: Uint8Array[] = [];
  writer = new BinaryWriter();

  args(field: number, args: readonly WireArg[]): this {
    for (const arg of args) {
      this.writer.tag(field, WireType.LengthDelimited).uint32(argLength(arg));
      const buf = arg.buf ?? EMPTY;
      if (buf.byteLength > 0) {
        this.writer.tag(1, WireType.LengthDelimited).uint32(buf.byteLength);
        if (buf.byteLength >= BY_REFERENCE) {
          this.parts.push(this.writer.finish(), buf);
          this.writer = new BinaryWriter();
        } else this.writer.raw(buf);
      }
      for (const [number, value] of scalarFields(arg)) this.writer.tag(number, WireType.Varint).uint32(value);
    }
    return this;
  }

  finish(): Uint8Array[] {
    this.parts.push(this.writer.finish());
    return this.parts.filter((part) => part.byteLength > 0);
  }
}

/** genop.Request {session_id 1, read_args 2, write_args 3} as parts. */
export function encodeGenopRequest(request: {
  sessionId?: bigint;
  readArgs?: readonly WireArg[];
  writeArgs?: readonly WireArg[];
}): Uint8Array[] {
  const out = new PartsWriter();
  if (request.sessionId) out.writer.tag(1, WireType.Varint).int64(request.sessionId);
  return out
    .args(2, request.readArgs ?? [])
    .args(3, request.writeArgs ?? [])
    .finish();
}

/** genop.Response {write_args 1} as parts. */
export function encodeGenopResponse(response: { writeArgs?: readonly WireArg[] }): Uint8Array[] {
  return new PartsWriter().args(1, response.writeArgs ?? []).finish();
}

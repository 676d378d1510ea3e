/**
 * The hot messages, genop.Request and genop.Response, encoded and decoded by hand (over
 * protobuf-es's BinaryWriter/BinaryReader):
 *
 * - Encoding returns parts in which every big arg buffer is referenced, never copied (the ttRPC
 *   layer writes the parts one after another). Without big buffers the bytes are exactly what
 *   protobuf-es writes (property-tested).
 * - Each big buffer is preceded by an alignment pad (an unknown field every decoder skips, see
 *   `@vaccel/ttrpc`'s wire.ts) that puts its first byte at an 8-byte-aligned offset of the
 *   message; the ttRPC envelope aligns the message in its frame, and the reader gives each big
 *   frame its own buffer. So Float32/Float64 args are viewed in place on the other side.
 * - Decoding gives what protobuf-es's `fromBinary` gives (property-tested), with `bytes` as views.
 *
 * Also the one conversion between core Args and wire args, used by both the plugin and the agent.
 * @module
 */
import { BinaryReader, BinaryWriter, WireType } from '@bufbuild/protobuf/wire';
import { type Arg, type ArgType, VaccelError } from '@vaccel/core';
import { ALIGN_FROM, alignmentPad } from '@vaccel/ttrpc';
import type { Arg as GenArg, ArgType as WireArgType } from './gen/genop_pb.js';

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

/** A core arg on the wire: size = its length, the type as is. */
export const toWireArg = (arg: Arg): WireArg => ({
  buf: arg.buf,
  size: arg.buf.byteLength,
  argType: arg.type,
  customTypeId: arg.customTypeId ?? 0,
});

/**
 * A wire arg as a core arg (its buffer is a view, not a copy).
 * @throws VaccelError `EINVAL` when `size` is not the buffer's length (upstream's agent refuses
 * those too).
 */
export function fromWireArg(arg: GenArg, what: string, index: number): Arg {
  if (arg.size !== arg.buf.byteLength) {
    throw new VaccelError(
      'EINVAL',
      `${what} arg ${index}: size ${arg.size} does not match its ${arg.buf.byteLength} bytes`,
    );
  }
  return { type: arg.argType as number as ArgType, buf: arg.buf, customTypeId: arg.customTypeId };
}

const varintLength = (value: number): number => {
  let length = 1;
  for (let v = value; v >= 0x80; v = Math.floor(v / 128)) length++;
  return length;
};

// Field order and proto3 defaults (zero fields are omitted) as in genop.proto and protobuf-es.
const EMPTY: Uint8Array = new Uint8Array(0);

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
  /** Bytes in finished parts (the message offset where `writer` starts). */
  #flushed = 0;

  constructor(private readonly align: boolean) {}

  args(field: number, args: readonly WireArg[]): this {
    for (const arg of args) {
      const buf = arg.buf ?? EMPTY;
      const inner = argLength(arg);
      const big = buf.byteLength >= ALIGN_FROM;
      if (big && this.align) {
        this.#finish();
        const before = 1 + varintLength(inner) + 1 + varintLength(buf.byteLength);
        alignmentPad(this.writer, this.#flushed, before);
      }
      this.writer.tag(field, WireType.LengthDelimited).uint32(inner);
      if (buf.byteLength > 0) {
        this.writer.tag(1, WireType.LengthDelimited).uint32(buf.byteLength);
        if (big) {
          this.#finish();
          this.parts.push(buf);
          this.#flushed += buf.byteLength;
        } else this.writer.raw(buf);
      }
      for (const [number, value] of scalarFields(arg)) this.writer.tag(number, WireType.Varint).uint32(value);
    }
    return this;
  }

  /** Finishes the current writer into a part and starts a new one. */
  #finish(): void {
    const part = this.writer.finish();
    if (part.byteLength > 0) this.parts.push(part);
    this.#flushed += part.byteLength;
    this.writer = new BinaryWriter();
  }

  finish(): Uint8Array[] {
    this.#finish();
    return this.parts;
  }
}

/** Encoding options. */
export interface GenopEncodeOptions {
  /** Pad big buffers to 8-byte-aligned offsets (default true; false writes protobuf-es's bytes). */
  align?: boolean;
}

/** genop.Request {session_id 1, read_args 2, write_args 3} as parts. */
export function encodeGenopRequest(
  request: { sessionId?: bigint; readArgs?: readonly WireArg[]; writeArgs?: readonly WireArg[] },
  options: GenopEncodeOptions = {},
): Uint8Array[] {
  const out = new PartsWriter(options.align ?? true);
  if (request.sessionId) out.writer.tag(1, WireType.Varint).int64(request.sessionId);
  return out
    .args(2, request.readArgs ?? [])
    .args(3, request.writeArgs ?? [])
    .finish();
}

/** genop.Response {write_args 1} as parts. */
export function encodeGenopResponse(
  response: { writeArgs?: readonly WireArg[] },
  options: GenopEncodeOptions = {},
): Uint8Array[] {
  return new PartsWriter(options.align ?? true).args(1, response.writeArgs ?? []).finish();
}

function wrongType(field: string, type: WireType): never {
  throw new Error(`genop: field ${field} has wire type ${type}`);
}

function decodeArg(bytes: Uint8Array): GenArg {
  const reader = new BinaryReader(bytes);
  const arg = {
    $typeName: 'vaccel.genop.Arg',
    buf: EMPTY,
    size: 0,
    argType: 0,
    customTypeId: 0,
    parts: 0,
    partNo: 0,
  };
  while (reader.pos < reader.len) {
    const [no, type] = reader.tag();
    if (no === 1) {
      if (type !== WireType.LengthDelimited) wrongType('Arg.buf', type);
      arg.buf = reader.bytes();
      continue;
    }
    if (no >= 2 && no <= 6) {
      if (type !== WireType.Varint) wrongType(`Arg.${no}`, type);
      const value = no === 3 ? reader.int32() : reader.uint32();
      if (no === 2) arg.size = value;
      else if (no === 3) arg.argType = value;
      else if (no === 4) arg.customTypeId = value;
      else if (no === 5) arg.parts = value;
      else arg.partNo = value;
      continue;
    }
    reader.skip(type, no);
  }
  return arg as GenArg & { argType: WireArgType };
}

/** Decodes a genop.Request; `buf`s are views of `bytes`. @throws Error for malformed bytes. */
export function decodeGenopRequest(bytes: Uint8Array): {
  $typeName: 'vaccel.genop.Request';
  sessionId: bigint;
  readArgs: GenArg[];
  writeArgs: GenArg[];
} {
  const reader = new BinaryReader(bytes);
  const out = {
    $typeName: 'vaccel.genop.Request' as const,
    sessionId: 0n,
    readArgs: [] as GenArg[],
    writeArgs: [] as GenArg[],
  };
  while (reader.pos < reader.len) {
    const [no, type] = reader.tag();
    if (no === 1) {
      if (type !== WireType.Varint) wrongType('session_id', type);
      out.sessionId = BigInt(reader.int64());
    } else if (no === 2 || no === 3) {
      if (type !== WireType.LengthDelimited) wrongType(no === 2 ? 'read_args' : 'write_args', type);
      (no === 2 ? out.readArgs : out.writeArgs).push(decodeArg(reader.bytes()));
    } else reader.skip(type, no);
  }
  return out;
}

/** Decodes a genop.Response; `buf`s are views of `bytes`. @throws Error for malformed bytes. */
export function decodeGenopResponse(bytes: Uint8Array): {
  $typeName: 'vaccel.genop.Response';
  writeArgs: GenArg[];
} {
  const reader = new BinaryReader(bytes);
  const out = { $typeName: 'vaccel.genop.Response' as const, writeArgs: [] as GenArg[] };
  while (reader.pos < reader.len) {
    const [no, type] = reader.tag();
    if (no === 1) {
      if (type !== WireType.LengthDelimited) wrongType('write_args', type);
      out.writeArgs.push(decodeArg(reader.bytes()));
    } else reader.skip(type, no);
  }
  return out;
}

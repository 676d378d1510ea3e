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
 * - An arg may carry a {@link SharedRef} (field 16) in place of its bytes (see wire-arg.ts).
 *
 * Malformed bytes fail with `EBADMSG` ({@link decodeOrBadMessage}).
 * @module
 */
import { BinaryReader, BinaryWriter, WireType } from '@bufbuild/protobuf/wire';
import { VaccelError } from '@vaccel/core';
import { ALIGN_FROM, alignmentPad, putVarint, varintSize } from '@vaccel/ttrpc';
import { decodeOrBadMessage } from './bad-message.js';
import type { ArgType as WireArgType } from './gen/genop_pb.js';
import { type DecodedArg, REF_FIELD, type SharedRef, type WireArg } from './wire-arg.js';

// Field order and proto3 defaults (zero fields are omitted) as in genop.proto and protobuf-es.
const EMPTY: Uint8Array = new Uint8Array(0);

const SCALAR_FIELDS = ['size', 'argType', 'customTypeId', 'parts', 'partNo'] as const;
const UINT32_MAX = 0xffff_ffff;
const INT32_MAX = 0x7fff_ffff;

/**
 * The varint fields 2–6 of an arg, in field order (zero ones are left out when written). Each is a
 * whole number within its proto type (uint32; arg_type an int32 enum, never negative here): the
 * hand writer would put anything else on the wire differently from protobuf-es (a negative one as
 * a corrupt varint), so it is refused.
 * @throws VaccelError `EINVAL` naming the field.
 */
function scalarValues(arg: WireArg): [number, number, number, number, number] {
  const values: [number, number, number, number, number] = [
    arg.size ?? arg.buf?.byteLength ?? 0,
    arg.argType ?? 0,
    arg.customTypeId ?? 0,
    arg.parts ?? 0,
    arg.partNo ?? 0,
  ];
  // With a reference, size mirrors its uint64 length: the agent refuses one that does not fit.
  for (let i = arg.ref ? 1 : 0; i < values.length; i++) {
    const value = values[i]!;
    const max = i === 1 ? INT32_MAX : UINT32_MAX;
    if (!(Number.isInteger(value) && value >= 0 && value <= max))
      throw new VaccelError(
        'EINVAL',
        `genop arg ${SCALAR_FIELDS[i]} must be a whole number 0–${max}, got ${value}`,
      );
  }
  return values;
}

function scalarsLength(values: readonly number[]): number {
  let length = 0;
  for (const value of values) if (value !== 0) length += 1 + varintSize(value);
  return length;
}

/** The SharedRef message's own bytes (fields 1–3, zeros left out). */
function refValues(ref: SharedRef): [number, number, number] {
  return [ref.regionId, ref.offset, ref.length];
}

/** Field 16 of an arg: its 2-byte tag, length and message. */
function refFieldLength(ref: SharedRef | undefined): number {
  if (!ref) return 0;
  const inner = scalarsLength(refValues(ref));
  return 2 + varintSize(inner) + inner;
}

function argLength(arg: WireArg): number {
  const n = arg.buf?.byteLength ?? 0;
  return (n > 0 ? 1 + varintSize(n) + n : 0) + scalarsLength(scalarValues(arg)) + refFieldLength(arg.ref);
}

/** Writes field 16 (a {@link SharedRef}) at `at`; returns the offset after it. */
function putRef(out: Uint8Array, at: number, ref: SharedRef): number {
  const values = refValues(ref);
  at = putVarint(out, at, (REF_FIELD << 3) | WireType.LengthDelimited); // 2 bytes
  at = putVarint(out, at, scalarsLength(values));
  for (let f = 0; f < values.length; f++) {
    if (values[f] === 0) continue;
    out[at++] = (f + 1) << 3; // fields 1–3, varint
    at = putVarint(out, at, values[f]!);
  }
  return at;
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
        const before = 1 + varintSize(inner) + 1 + varintSize(buf.byteLength);
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
      const values = scalarValues(arg);
      for (let i = 0; i < values.length; i++)
        if (values[i] !== 0) this.writer.tag(i + 2, WireType.Varint).uint32(values[i]!);
      if (arg.ref) {
        const ref = new Uint8Array(refFieldLength(arg.ref));
        putRef(ref, 0, arg.ref);
        this.writer.raw(ref);
      }
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

const isSmall = (args: readonly WireArg[]): boolean => {
  for (const arg of args) if ((arg.buf?.byteLength ?? 0) >= ALIGN_FROM) return false;
  return true;
};

/** Writes args (none of them big) as fields `field` at `at`; returns the offset after them. */
function putArgs(
  out: Uint8Array,
  at: number,
  field: number,
  args: readonly WireArg[],
  lengths: number[],
): number {
  for (const [i, arg] of args.entries()) {
    out[at++] = (field << 3) | WireType.LengthDelimited;
    at = putVarint(out, at, lengths[i]!);
    const buf = arg.buf ?? EMPTY;
    if (buf.byteLength > 0) {
      out[at++] = (1 << 3) | WireType.LengthDelimited;
      at = putVarint(out, at, buf.byteLength);
      out.set(buf, at);
      at += buf.byteLength;
    }
    const values = scalarValues(arg);
    for (let f = 0; f < values.length; f++) {
      if (values[f] === 0) continue;
      out[at++] = (f + 2) << 3; // fields 2–6, varint
      at = putVarint(out, at, values[f]!);
    }
    if (arg.ref) at = putRef(out, at, arg.ref);
  }
  return at;
}

/**
 * The common small message (no big buffer) in one exact-size buffer, written directly: the bytes
 * protobuf-es writes, without its writer's chunk bookkeeping.
 */
function encodeSmall(sessionId: bigint, groups: [number, readonly WireArg[]][]): Uint8Array[] {
  // The caller only sends 0 ≤ sessionId < 2^53 here; 0 is left out, as proto3 does.
  const session = sessionId > 0n ? Number(sessionId) : undefined;
  let total = session !== undefined ? 1 + varintSize(session) : 0;
  const lengths = groups.map(([, args]) =>
    args.map((arg) => {
      const inner = argLength(arg);
      total += 1 + varintSize(inner) + inner;
      return inner;
    }),
  );
  const out = new Uint8Array(total);
  let at = 0;
  if (session !== undefined) {
    out[at++] = 0x08; // field 1, varint
    at = putVarint(out, at, session);
  }
  for (const [i, [field, args]] of groups.entries()) at = putArgs(out, at, field, args, lengths[i]!);
  return [out];
}

/** genop.Request {session_id 1, read_args 2, write_args 3} as parts. */
export function encodeGenopRequest(
  request: { sessionId?: bigint; readArgs?: readonly WireArg[]; writeArgs?: readonly WireArg[] },
  options: GenopEncodeOptions = {},
): Uint8Array[] {
  const read = request.readArgs ?? [];
  const write = request.writeArgs ?? [];
  const sessionId = request.sessionId ?? 0n;
  // Negative or huge session ids (never sent by real agents) take the general path.
  if (isSmall(read) && isSmall(write) && sessionId >= 0n && sessionId < 2n ** 53n) {
    return encodeSmall(sessionId, [
      [2, read],
      [3, write],
    ]);
  }
  const out = new PartsWriter(options.align ?? true);
  if (sessionId) out.writer.tag(1, WireType.Varint).int64(sessionId);
  return out.args(2, read).args(3, write).finish();
}

/** genop.Response {write_args 1} as parts. */
export function encodeGenopResponse(
  response: { writeArgs?: readonly WireArg[] },
  options: GenopEncodeOptions = {},
): Uint8Array[] {
  const write = response.writeArgs ?? [];
  if (isSmall(write)) return encodeSmall(0n, [[1, write]]);
  return new PartsWriter(options.align ?? true).args(1, write).finish();
}

function wrongType(field: string, type: WireType): never {
  throw new VaccelError('EBADMSG', `malformed genop message: field ${field} has wire type ${type}`);
}

/** A uint64 as a number; past 2^53 it is Infinity, which no bound check lets through. */
function uint64Number(reader: BinaryReader): number {
  const value = BigInt(reader.uint64());
  return value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : Number.POSITIVE_INFINITY;
}

function decodeRef(bytes: Uint8Array): SharedRef {
  const reader = new BinaryReader(bytes);
  const ref = { regionId: 0, offset: 0, length: 0 };
  while (reader.pos < reader.len) {
    const [no, type] = reader.tag();
    if (no >= 1 && no <= 3) {
      if (type !== WireType.Varint) wrongType(`SharedRef.${no}`, type);
      if (no === 1) ref.regionId = reader.uint32();
      else if (no === 2) ref.offset = uint64Number(reader);
      else ref.length = uint64Number(reader);
    } else reader.skip(type, no);
  }
  return ref;
}

function decodeArg(bytes: Uint8Array): DecodedArg {
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
    if (no === REF_FIELD) {
      if (type !== WireType.LengthDelimited) wrongType('Arg.ref', type);
      (arg as DecodedArg).ref = decodeRef(reader.bytes());
      continue;
    }
    reader.skip(type, no);
  }
  return arg as DecodedArg & { argType: WireArgType };
}

/** Decodes a genop.Request; `buf`s are views of `bytes`. @throws VaccelError `EBADMSG` for malformed bytes. */
export function decodeGenopRequest(bytes: Uint8Array): {
  $typeName: 'vaccel.genop.Request';
  sessionId: bigint;
  readArgs: DecodedArg[];
  writeArgs: DecodedArg[];
} {
  return decodeOrBadMessage('genop.Request', () => decodeRequest(bytes));
}

function decodeRequest(bytes: Uint8Array): ReturnType<typeof decodeGenopRequest> {
  const reader = new BinaryReader(bytes);
  const out = {
    $typeName: 'vaccel.genop.Request' as const,
    sessionId: 0n,
    readArgs: [] as DecodedArg[],
    writeArgs: [] as DecodedArg[],
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

/** Decodes a genop.Response; `buf`s are views of `bytes`. @throws VaccelError `EBADMSG` for malformed bytes. */
export function decodeGenopResponse(bytes: Uint8Array): {
  $typeName: 'vaccel.genop.Response';
  writeArgs: DecodedArg[];
} {
  return decodeOrBadMessage('genop.Response', () => decodeResponse(bytes));
}

function decodeResponse(bytes: Uint8Array): ReturnType<typeof decodeGenopResponse> {
  const reader = new BinaryReader(bytes);
  const out = { $typeName: 'vaccel.genop.Response' as const, writeArgs: [] as DecodedArg[] };
  while (reader.pos < reader.len) {
    const [no, type] = reader.tag();
    if (no === 1) {
      if (type !== WireType.LengthDelimited) wrongType('write_args', type);
      out.writeArgs.push(decodeArg(reader.bytes()));
    } else reader.skip(type, no);
  }
  return out;
}

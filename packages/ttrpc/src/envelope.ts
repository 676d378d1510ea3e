/**
 * Envelope encoding that never copies the payload: protobuf fields may appear in any order, so a
 * Request is written as [fields 1–2 and the tag/length of field 3] + payload + [fields 4–5], and
 * an OK Response as [tag/length of field 2] + payload. Big payloads are preceded by a padding
 * field (see {@link PAD_FIELD}) that puts their first byte at an 8-byte-aligned offset of the
 * frame, so a reader that allocates the frame can view numbers in place.
 *
 * Decoding the two envelopes is hand-rolled over protobuf-es's BinaryReader (it runs for every
 * frame); it gives the same result as `fromBinary` with the generated schemas (property-tested),
 * and `bytes` come out as views of the frame.
 * @internal
 */
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { BinaryReader, BinaryWriter, WireType } from '@bufbuild/protobuf/wire';
import type { Any } from '@bufbuild/protobuf/wkt';
import { ResponseSchema, type Status, StatusSchema } from './gen/ttrpc_pb.js';
import { ALIGN_FROM, alignmentPad } from './wire.js';

/**
 * An encoded message: one buffer, or parts whose concatenation is the message (so big fields can
 * be sent by reference, never copied into one buffer).
 */
export type Payload = Uint8Array | readonly Uint8Array[];

const partsOf = (payload: Payload): readonly Uint8Array[] =>
  payload instanceof Uint8Array ? [payload] : payload;

/** Request envelope parts around `payload`. */
export function requestParts(
  service: string,
  method: string,
  payload: Payload,
  timeoutNano: bigint,
  metadata: Readonly<Record<string, string>> | undefined,
): Uint8Array[] {
  const body = partsOf(payload);
  const length = partsLength(body);
  // proto3 leaves empty fields out; so do we, to write exactly what protobuf-es writes.
  const names = new BinaryWriter();
  if (service) names.tag(1, WireType.LengthDelimited).string(service);
  if (method) names.tag(2, WireType.LengthDelimited).string(method);
  const head = names.finish();
  const prefix = new BinaryWriter().raw(head);
  if (length >= ALIGN_FROM) alignmentPad(prefix, head.byteLength, 1 + varintLength(length));
  if (length > 0) prefix.tag(3, WireType.LengthDelimited).uint32(length);
  const tail = new BinaryWriter();
  if (timeoutNano !== 0n) tail.tag(4, WireType.Varint).int64(timeoutNano);
  if (metadata) {
    for (const key in metadata) {
      const value = metadata[key]!;
      tail.tag(5, WireType.LengthDelimited).fork();
      if (key) tail.tag(1, WireType.LengthDelimited).string(key);
      if (value) tail.tag(2, WireType.LengthDelimited).string(value);
      tail.join();
    }
  }
  const parts = [prefix.finish(), ...body];
  if (timeoutNano !== 0n || metadata) parts.push(tail.finish());
  return parts;
}

/** OK Response envelope parts around `payload` (a missing status means OK). */
export function okResponseParts(payload: Payload): Uint8Array[] {
  const body = partsOf(payload);
  const length = partsLength(body);
  if (length === 0) return []; // an empty Response: no status (OK), no payload
  const head = new BinaryWriter();
  if (length >= ALIGN_FROM) alignmentPad(head, 0, 1 + varintLength(length));
  return [head.tag(2, WireType.LengthDelimited).uint32(length).finish(), ...body];
}

/** An error Response envelope. */
export function errorResponse(code: number, message: string, details: readonly Any[] = []): Uint8Array {
  return toBinary(
    ResponseSchema,
    create(ResponseSchema, { status: { code, message, details: [...details] } }),
  );
}

/** Total byte length of parts. */
export function partsLength(parts: readonly Uint8Array[]): number {
  let length = 0;
  for (const part of parts) length += part.byteLength;
  return length;
}

/** Byte length of a {@link Payload}. */
export const payloadLength = (payload: Payload): number => partsLength(partsOf(payload));

/** Bytes a varint of `value` (< 2^53) takes. */
export function varintLength(value: number): number {
  let length = 1;
  for (let v = value; v >= 0x80; v = Math.floor(v / 128)) length++;
  return length;
}

/** A decoded Request envelope (`payload` is a view of the frame). */
export interface DecodedRequest {
  service: string;
  method: string;
  payload: Uint8Array;
  timeoutNano: bigint;
  metadata: [key: string, value: string][];
}

const EMPTY: Uint8Array = new Uint8Array(0);

function expectWireType(got: WireType, want: WireType, field: string): void {
  if (got !== want) throw new Error(`envelope field ${field} has wire type ${got}, expected ${want}`);
}

function decodeKeyValue(bytes: Uint8Array): [string, string] {
  const reader = new BinaryReader(bytes);
  let key = '';
  let value = '';
  while (reader.pos < reader.len) {
    const [no, type] = reader.tag();
    if (no === 1) {
      expectWireType(type, WireType.LengthDelimited, 'KeyValue.key');
      key = reader.string();
    } else if (no === 2) {
      expectWireType(type, WireType.LengthDelimited, 'KeyValue.value');
      value = reader.string();
    } else reader.skip(type, no);
  }
  return [key, value];
}

/**
 * Decodes a `ttrpc.Request` (last value wins for repeated scalars, unknown fields skipped).
 * @throws Error for malformed bytes.
 */
export function decodeRequest(bytes: Uint8Array): DecodedRequest {
  const reader = new BinaryReader(bytes);
  const out: DecodedRequest = { service: '', method: '', payload: EMPTY, timeoutNano: 0n, metadata: [] };
  while (reader.pos < reader.len) {
    const [no, type] = reader.tag();
    switch (no) {
      case 1:
        expectWireType(type, WireType.LengthDelimited, 'service');
        out.service = reader.string();
        break;
      case 2:
        expectWireType(type, WireType.LengthDelimited, 'method');
        out.method = reader.string();
        break;
      case 3:
        expectWireType(type, WireType.LengthDelimited, 'payload');
        out.payload = reader.bytes();
        break;
      case 4:
        expectWireType(type, WireType.Varint, 'timeout_nano');
        out.timeoutNano = BigInt(reader.int64());
        break;
      case 5:
        expectWireType(type, WireType.LengthDelimited, 'metadata');
        out.metadata.push(decodeKeyValue(reader.bytes()));
        break;
      default:
        reader.skip(type, no);
    }
  }
  return out;
}

/** A decoded Response envelope (`payload` is a view of the frame). */
export interface DecodedResponse {
  status: Status | undefined;
  payload: Uint8Array;
}

/**
 * Decodes a `ttrpc.Response`; the status (rare on the hot path) goes through protobuf-es, and
 * repeated occurrences of it merge as protobuf says.
 * @throws Error for malformed bytes.
 */
export function decodeResponse(bytes: Uint8Array): DecodedResponse {
  const reader = new BinaryReader(bytes);
  let status: Uint8Array[] | undefined;
  let payload: Uint8Array = EMPTY;
  while (reader.pos < reader.len) {
    const [no, type] = reader.tag();
    if (no === 1) {
      expectWireType(type, WireType.LengthDelimited, 'status');
      status = [...(status ?? []), reader.bytes()];
    } else if (no === 2) {
      expectWireType(type, WireType.LengthDelimited, 'payload');
      payload = reader.bytes();
    } else reader.skip(type, no);
  }
  if (status === undefined) return { status: undefined, payload };
  // Concatenated encodings of a message decode as their merge.
  const joined = status.length === 1 ? status[0]! : Buffer.concat(status);
  return { status: fromBinary(StatusSchema, joined), payload };
}

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
import { BinaryReader, BinaryWriter, WireType } from '@bufbuild/protobuf/wire';
import type { Any } from '@bufbuild/protobuf/wkt';
import type { Status } from './gen/ttrpc_pb.js';
import { ALIGN_FROM, alignmentPad, putVarint, varintSize } from './wire.js';

/**
 * An encoded message: one buffer, or parts whose concatenation is the message (so big fields can
 * be sent by reference, never copied into one buffer).
 */
export type Payload = Uint8Array | readonly Uint8Array[];

const partsOf = (payload: Payload): readonly Uint8Array[] =>
  payload instanceof Uint8Array ? [payload] : payload;

/** Encoded fields 1–2 (service, method) per service and method: the same for every call. */
const namesCache = new Map<string, Map<string, Uint8Array>>();
const NAMES_CACHE_MAX = 1024;
/** Encoded metadata (fields 5) per metadata object: a client's default metadata is reused. */
const metadataCache = new WeakMap<object, Uint8Array>();

function encodedNames(service: string, method: string): Uint8Array {
  let methods = namesCache.get(service);
  let names = methods?.get(method);
  if (names === undefined) {
    // proto3 leaves empty fields out; so do we, to write exactly what protobuf-es writes.
    const writer = new BinaryWriter();
    if (service) writer.tag(1, WireType.LengthDelimited).string(service);
    if (method) writer.tag(2, WireType.LengthDelimited).string(method);
    names = writer.finish();
    if (namesCache.size >= NAMES_CACHE_MAX || (methods?.size ?? 0) >= NAMES_CACHE_MAX) namesCache.clear();
    methods = namesCache.get(service) ?? new Map();
    namesCache.set(service, methods);
    methods.set(method, names);
  }
  return names;
}

function encodedMetadata(metadata: Readonly<Record<string, string>>): Uint8Array {
  let encoded = metadataCache.get(metadata);
  if (encoded === undefined) {
    const writer = new BinaryWriter();
    for (const key in metadata) {
      const value = metadata[key]!;
      writer.tag(5, WireType.LengthDelimited).fork();
      if (key) writer.tag(1, WireType.LengthDelimited).string(key);
      if (value) writer.tag(2, WireType.LengthDelimited).string(value);
      writer.join();
    }
    encoded = writer.finish();
    // Only frozen objects are cached (a caller may change an object between calls).
    if (Object.isFrozen(metadata)) metadataCache.set(metadata, encoded);
  }
  return encoded;
}

/**
 * Request envelope parts around `payload`: one buffer for small requests; for big ones the
 * payload parts by reference, 8-byte aligned in the frame.
 */
export function requestParts(
  service: string,
  method: string,
  payload: Payload,
  timeoutNano: bigint,
  metadata: Readonly<Record<string, string>> | undefined,
): Uint8Array[] {
  const body = partsOf(payload);
  const length = partsLength(body);
  const names = encodedNames(service, method);
  let tail: Uint8Array | undefined;
  if (timeoutNano !== 0n || metadata) {
    const writer = new BinaryWriter();
    if (timeoutNano !== 0n) writer.tag(4, WireType.Varint).int64(timeoutNano);
    if (metadata) writer.raw(encodedMetadata(metadata));
    tail = writer.finish();
  }
  if (length >= ALIGN_FROM) {
    const head = new BinaryWriter().raw(names);
    alignmentPad(head, names.byteLength, 1 + varintSize(length));
    head.tag(3, WireType.LengthDelimited).uint32(length);
    const parts = [head.finish(), ...body];
    if (tail) parts.push(tail);
    return parts;
  }
  const payloadField = length > 0 ? 1 + varintSize(length) + length : 0;
  const out = new Uint8Array(names.byteLength + payloadField + (tail?.byteLength ?? 0));
  out.set(names);
  let at = names.byteLength;
  if (length > 0) {
    out[at++] = 0x1a; // field 3, length-delimited
    at = putVarint(out, at, length);
    for (const part of body) {
      out.set(part, at);
      at += part.byteLength;
    }
  }
  if (tail) out.set(tail, at);
  return [out];
}

/** OK Response envelope parts around `payload` (a missing status means OK). */
export function okResponseParts(payload: Payload): Uint8Array[] {
  const body = partsOf(payload);
  const length = partsLength(body);
  if (length === 0) return []; // an empty Response: no status (OK), no payload
  const head = new BinaryWriter();
  if (length >= ALIGN_FROM) alignmentPad(head, 0, 1 + varintSize(length));
  return [head.tag(2, WireType.LengthDelimited).uint32(length).finish(), ...body];
}

/**
 * An error Response envelope: `Response{status: Status{code, message, details}}`, written as
 * protobuf-es writes it (fields in order, zero values left out) without its reflection runtime,
 * which a cold guest process would otherwise load just for this.
 */
export function errorResponse(code: number, message: string, details: readonly Any[] = []): Uint8Array {
  const writer = new BinaryWriter();
  writer.tag(1, WireType.LengthDelimited).fork();
  if (code !== 0) writer.tag(1, WireType.Varint).int32(code);
  if (message) writer.tag(2, WireType.LengthDelimited).string(message);
  for (const detail of details) {
    writer.tag(3, WireType.LengthDelimited).fork();
    if (detail.typeUrl) writer.tag(1, WireType.LengthDelimited).string(detail.typeUrl);
    if (detail.value.byteLength > 0) writer.tag(2, WireType.LengthDelimited).bytes(detail.value);
    writer.join();
  }
  return writer.join().finish();
}

/** Decodes a `google.protobuf.Any` (type_url 1, value 2). */
function decodeAny(bytes: Uint8Array): Any {
  const reader = new BinaryReader(bytes);
  const any = { $typeName: 'google.protobuf.Any', typeUrl: '', value: EMPTY } as Any;
  while (reader.pos < reader.len) {
    const [no, type] = reader.tag();
    if (no === 1 && type === WireType.LengthDelimited) any.typeUrl = reader.string();
    else if (no === 2 && type === WireType.LengthDelimited) any.value = reader.bytes();
    else reader.skip(type, no);
  }
  return any;
}

/**
 * Decodes a `ttrpc.Status` (code 1, message 2, details 3): the same result as `fromBinary` with
 * the generated schema (property-tested), concatenated encodings merging as protobuf says.
 */
export function decodeStatus(bytes: Uint8Array): Status {
  const reader = new BinaryReader(bytes);
  const status = { $typeName: 'ttrpc.Status', code: 0, message: '', details: [] as Any[] } as Status;
  while (reader.pos < reader.len) {
    const [no, type] = reader.tag();
    if (no === 1 && type === WireType.Varint) status.code = reader.int32();
    else if (no === 2 && type === WireType.LengthDelimited) status.message = reader.string();
    else if (no === 3 && type === WireType.LengthDelimited) status.details.push(decodeAny(reader.bytes()));
    else reader.skip(type, no);
  }
  return status;
}

/** Total byte length of parts. */
export function partsLength(parts: readonly Uint8Array[]): number {
  let length = 0;
  for (const part of parts) length += part.byteLength;
  return length;
}

/** Byte length of a {@link Payload}. */
export const payloadLength = (payload: Payload): number => partsLength(partsOf(payload));

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
 * Decodes a `ttrpc.Response`; repeated occurrences of the status merge as protobuf says.
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
      const bytes = reader.bytes();
      if (status) status.push(bytes);
      else status = [bytes];
    } else if (no === 2) {
      expectWireType(type, WireType.LengthDelimited, 'payload');
      payload = reader.bytes();
    } else reader.skip(type, no);
  }
  if (status === undefined) return { status: undefined, payload };
  // Concatenated encodings of a message decode as their merge.
  const joined = status.length === 1 ? status[0]! : Buffer.concat(status);
  return { status: decodeStatus(joined), payload };
}

/**
 * Envelope encoding that never copies the payload: protobuf fields may appear in any order, so a
 * Request is written as [fields 1–2 and the tag/length of field 3] + payload + [fields 4–5], and
 * an OK Response as [tag/length of field 2] + payload. The small parts are written with
 * protobuf-es's BinaryWriter; decoding uses the generated schemas (whose `bytes` are views).
 * @internal
 */
import { create, toBinary } from '@bufbuild/protobuf';
import { BinaryWriter, WireType } from '@bufbuild/protobuf/wire';
import type { Any } from '@bufbuild/protobuf/wkt';
import { ResponseSchema } from './gen/ttrpc_pb.js';

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
  metadata: Readonly<Record<string, string>>,
): Uint8Array[] {
  const body = partsOf(payload);
  const head = new BinaryWriter()
    .tag(1, WireType.LengthDelimited)
    .string(service)
    .tag(2, WireType.LengthDelimited)
    .string(method)
    .tag(3, WireType.LengthDelimited)
    .uint32(partsLength(body))
    .finish();
  const tail = new BinaryWriter();
  if (timeoutNano !== 0n) tail.tag(4, WireType.Varint).int64(timeoutNano);
  for (const [key, value] of Object.entries(metadata)) {
    tail
      .tag(5, WireType.LengthDelimited)
      .fork()
      .tag(1, WireType.LengthDelimited)
      .string(key)
      .tag(2, WireType.LengthDelimited)
      .string(value)
      .join();
  }
  return [head, ...body, tail.finish()];
}

/** OK Response envelope parts around `payload` (a missing status means OK). */
export function okResponseParts(payload: Payload): Uint8Array[] {
  const body = partsOf(payload);
  return [new BinaryWriter().tag(2, WireType.LengthDelimited).uint32(partsLength(body)).finish(), ...body];
}

/** An error Response envelope. */
export function errorResponse(code: number, message: string, details: readonly Any[] = []): Uint8Array {
  return toBinary(
    ResponseSchema,
    create(ResponseSchema, { status: { code, message, details: [...details] } }),
  );
}

/** Total byte length of parts. */
export const partsLength = (parts: readonly Uint8Array[]): number =>
  parts.reduce((sum, part) => sum + part.byteLength, 0);

/** Byte length of a {@link Payload}. */
export const payloadLength = (payload: Payload): number => partsLength(partsOf(payload));

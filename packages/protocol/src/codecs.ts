/**
 * The codec seam: how each message type goes on the wire, by its protobuf type name — the shape of
 * containerd/ttrpc's `codec.go`, one map for every end. The service binder (the agent's handlers,
 * the generated client stub) and the light stub (the guest's everyday RPCs) all look messages up
 * here; what the map leaves out, the binder encodes and decodes with the generated schema.
 *
 * The hand codecs are the hot messages: genop.Request and genop.Response (both directions, big
 * buffers referenced, never copied), and the session and resource messages a guest sends and reads
 * on every cold start (encode the request, decode the reply), so a cold guest never loads
 * protobuf-es's reflection runtime or a generated descriptor. Each writes and reads exactly what
 * protobuf-es does (property-tested) and fails with `EBADMSG` on malformed bytes.
 * @module
 */
import { BinaryReader, BinaryWriter, WireType } from '@bufbuild/protobuf/wire';
import type { Payload } from '@vaccel/ttrpc';
import { decodeOrBadMessage } from './bad-message.js';
import {
  decodeGenopRequest,
  decodeGenopResponse,
  encodeGenopRequest,
  encodeGenopResponse,
} from './genop-codec.js';

/** How one message type is written and read; a missing direction falls back to the schema. */
export interface MessageCodec<T = never> {
  encode?(message: T): Payload;
  decode?(bytes: Uint8Array): unknown;
}

/** Codecs by protobuf type name (`vaccel.genop.Request`, …). */
export type CodecMap = ReadonlyMap<string, MessageCodec<never>>;

/** The type names the hand codecs serve (the generated descriptors' `typeName`s; tested). */
export const MESSAGE = {
  genopRequest: 'vaccel.genop.Request',
  genopResponse: 'vaccel.genop.Response',
  createSessionRequest: 'vaccel.session.CreateRequest',
  createSessionResponse: 'vaccel.session.CreateResponse',
  destroySessionRequest: 'vaccel.session.DestroyRequest',
  registerResourceRequest: 'vaccel.resource.RegisterRequest',
  registerResourceResponse: 'vaccel.resource.RegisterResponse',
} as const;

/** One blob of a resource upload (resource.Blob). */
export interface UploadBlob {
  /** resource.BlobType: FILE 0, BUFFER 1, MAPPED 2. */
  type: number;
  name: string;
  data: Uint8Array;
  size: number;
}

/** Reads varint field `field` of a one-field message (int64, as protobuf-es reads it); 0n when absent. */
function int64Field(what: string, bytes: Uint8Array, field: number): bigint {
  return decodeOrBadMessage(what, () => {
    const reader = new BinaryReader(bytes);
    let value = 0n;
    while (reader.pos < reader.len) {
      const [no, type] = reader.tag();
      if (no !== field) reader.skip(type, no);
      else if (type === WireType.Varint) value = BigInt(reader.int64());
      else throw new Error(`field ${field} has wire type ${type}, not varint`);
    }
    return value;
  });
}

/** An int64 of an init shape (bigint, or a number or string protobuf-es would take), as a bigint. */
type Int64 = bigint | number | string;
const int64 = (value: Int64 | undefined): bigint => BigInt(value ?? 0);

/** A message of one int64 field (proto3: left out when 0). */
const int64Message = (field: number, value: Int64 | undefined): Uint8Array =>
  int64(value) === 0n
    ? new Uint8Array(0)
    : new BinaryWriter().tag(field, WireType.Varint).int64(int64(value)).finish();

const createSessionRequest: MessageCodec<{ flags?: number }> = {
  encode: ({ flags = 0 }) =>
    flags === 0 ? new Uint8Array(0) : new BinaryWriter().tag(1, WireType.Varint).uint32(flags).finish(),
};
const createSessionResponse: MessageCodec = {
  decode: (bytes) => ({
    $typeName: MESSAGE.createSessionResponse,
    sessionId: int64Field('session.CreateResponse', bytes, 1),
  }),
};
const destroySessionRequest: MessageCodec<{ sessionId?: Int64 }> = {
  encode: ({ sessionId }) => int64Message(1, sessionId),
};
const registerResourceRequest: MessageCodec<{
  paths?: readonly string[];
  sessionId?: Int64;
  resourceId?: Int64;
  resourceType?: number;
  blobs?: readonly Partial<UploadBlob>[];
}> = {
  // RegisterRequest{paths 1, blobs 2, resource_type 3, resource_id 4, session_id 5}. Fields may be
  // left out, as in any init shape: proto3 defaults.
  encode({ paths = [], sessionId, resourceId, resourceType = 0, blobs = [] }) {
    const writer = new BinaryWriter();
    for (const path of paths) writer.tag(1, WireType.LengthDelimited).string(path);
    for (const { type = 0, name = '', data, size = 0 } of blobs) {
      writer.tag(2, WireType.LengthDelimited).fork();
      if (type !== 0) writer.tag(1, WireType.Varint).int32(type);
      if (name) writer.tag(2, WireType.LengthDelimited).string(name);
      if (data && data.byteLength > 0) writer.tag(3, WireType.LengthDelimited).bytes(data);
      if (size !== 0) writer.tag(4, WireType.Varint).uint32(size);
      writer.join();
    }
    if (resourceType !== 0) writer.tag(3, WireType.Varint).int32(resourceType);
    if (int64(resourceId) !== 0n) writer.tag(4, WireType.Varint).int64(int64(resourceId));
    if (int64(sessionId) !== 0n) writer.tag(5, WireType.Varint).int64(int64(sessionId));
    return writer.finish();
  },
};
const registerResourceResponse: MessageCodec = {
  decode: (bytes) => ({
    $typeName: MESSAGE.registerResourceResponse,
    resourceId: int64Field('resource.RegisterResponse', bytes, 1),
  }),
};

/** The hand codecs, by type name: the default map of the binder and the light stub. */
export const HAND_CODECS: CodecMap = new Map<string, MessageCodec<never>>([
  [MESSAGE.genopRequest, { encode: encodeGenopRequest, decode: decodeGenopRequest }],
  [MESSAGE.genopResponse, { encode: encodeGenopResponse, decode: decodeGenopResponse }],
  [MESSAGE.createSessionRequest, createSessionRequest],
  [MESSAGE.createSessionResponse, createSessionResponse],
  [MESSAGE.destroySessionRequest, destroySessionRequest],
  [MESSAGE.registerResourceRequest, registerResourceRequest],
  [MESSAGE.registerResourceResponse, registerResourceResponse],
] as [string, MessageCodec<never>][]);

/** The hand encoder of `typeName` in `codecs`. @throws Error when the map has none (a wiring bug). */
export function handEncoder<T>(typeName: string, codecs: CodecMap = HAND_CODECS): (message: T) => Payload {
  const encode = codecs.get(typeName)?.encode as ((message: T) => Payload) | undefined;
  if (!encode) throw new Error(`no hand encoder for ${typeName}`);
  return encode;
}

/** The hand decoder of `typeName` in `codecs`. @throws Error when the map has none (a wiring bug). */
export function handDecoder<T>(typeName: string, codecs: CodecMap = HAND_CODECS): (bytes: Uint8Array) => T {
  const decode = codecs.get(typeName)?.decode as ((bytes: Uint8Array) => T) | undefined;
  if (!decode) throw new Error(`no hand decoder for ${typeName}`);
  return decode;
}

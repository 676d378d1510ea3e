/**
 * The agent RPCs every guest makes — CreateSession, DestroySession, RegisterResource, Genop — with
 * hand-written protobuf codecs (byte-for-byte what protobuf-es writes; tested), so a cold guest
 * never loads the reflection runtime and the descriptors of every vAccel message. The rest of the
 * service (ImageClassification, GetProfiler, the TensorFlow RPCs) comes from the generated stub,
 * loaded on first use by {@link AgentStub.full}.
 * @internal
 */
import { BinaryReader, BinaryWriter, WireType } from '@bufbuild/protobuf/wire';
import type { CallOptions, Client } from '@vaccel/ttrpc';
import type { AgentService as SyncAgentService } from './gen/agent_sync_pb.js';
import { decodeGenopResponse, encodeGenopRequest, type WireArg } from './genop-codec.js';
import type { ServiceClient } from './service.js';

/** The agent service string (0.8, sync build). */
export const AGENT_SERVICE = 'vaccel.sync.agent.AgentService';

/** One blob of a resource upload. */
export interface UploadBlob {
  /** resource.BlobType: FILE 0, BUFFER 1, MAPPED 2. */
  type: number;
  name: string;
  data: Uint8Array;
  size: number;
}

type FullStub = ServiceClient<(typeof SyncAgentService)['method']>;

/** The light stub. */
export interface AgentStub {
  createSession(request: { flags: number }, options?: CallOptions): Promise<{ sessionId: bigint }>;
  destroySession(request: { sessionId: bigint }, options?: CallOptions): Promise<void>;
  registerResource(
    request: { sessionId: bigint; resourceId: bigint; resourceType?: number; blobs?: readonly UploadBlob[] },
    options?: CallOptions,
  ): Promise<{ resourceId: bigint }>;
  genop(
    request: { sessionId: bigint; readArgs: readonly WireArg[]; writeArgs: readonly WireArg[] },
    options?: CallOptions,
  ): Promise<ReturnType<typeof decodeGenopResponse>>;
  /** The generated stub for every other method (loaded once, on first use). */
  full(): Promise<FullStub>;
}

/** Reads one varint field `field` of a reply (int64, as protobuf-es reads it); 0n when absent. */
function int64Field(reply: Uint8Array, field: number): bigint {
  const reader = new BinaryReader(reply);
  let value = 0n;
  while (reader.pos < reader.len) {
    const [no, type] = reader.tag();
    if (no === field && type === WireType.Varint) value = BigInt(reader.int64());
    else reader.skip(type, no);
  }
  return value;
}

const int64Message = (field: number, value: bigint): Uint8Array =>
  value === 0n ? new Uint8Array(0) : new BinaryWriter().tag(field, WireType.Varint).int64(value).finish();

/** A light stub over `client`. */
export function agentStub(client: Client, service = AGENT_SERVICE): AgentStub {
  let full: Promise<FullStub> | undefined;
  return {
    async createSession({ flags }, options) {
      const request =
        flags === 0 ? new Uint8Array(0) : new BinaryWriter().tag(1, WireType.Varint).uint32(flags).finish();
      return { sessionId: int64Field(await client.call(service, 'CreateSession', request, options), 1) };
    },
    async destroySession({ sessionId }, options) {
      await client.call(service, 'DestroySession', int64Message(1, sessionId), options);
    },
    async registerResource({ sessionId, resourceId, resourceType = 0, blobs = [] }, options) {
      // RegisterRequest{paths 1, blobs 2, resource_type 3, resource_id 4, session_id 5}
      const writer = new BinaryWriter();
      for (const blob of blobs) {
        writer.tag(2, WireType.LengthDelimited).fork();
        if (blob.type !== 0) writer.tag(1, WireType.Varint).int32(blob.type);
        if (blob.name) writer.tag(2, WireType.LengthDelimited).string(blob.name);
        if (blob.data.byteLength > 0) writer.tag(3, WireType.LengthDelimited).bytes(blob.data);
        if (blob.size !== 0) writer.tag(4, WireType.Varint).uint32(blob.size);
        writer.join();
      }
      if (resourceType !== 0) writer.tag(3, WireType.Varint).int32(resourceType);
      if (resourceId !== 0n) writer.tag(4, WireType.Varint).int64(resourceId);
      if (sessionId !== 0n) writer.tag(5, WireType.Varint).int64(sessionId);
      const reply = await client.call(service, 'RegisterResource', writer.finish(), options);
      return { resourceId: int64Field(reply, 1) };
    },
    async genop(request, options) {
      return decodeGenopResponse(await client.call(service, 'Genop', encodeGenopRequest(request), options));
    },
    full() {
      full ??= import('./service.js').then(async ({ serviceClient }) => {
        const { AgentService } = await import('./gen/agent_sync_pb.js');
        return serviceClient(client, AgentService, service);
      });
      return full;
    },
  };
}

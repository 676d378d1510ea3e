/**
 * The agent RPCs every guest makes — CreateSession, DestroySession, RegisterResource, Genop — over
 * the hand codecs of the codec map ({@link HAND_CODECS}), so a cold guest never loads the
 * reflection runtime and the descriptors of every vAccel message. The rest of the service
 * (ImageClassification, GetProfiler, the TensorFlow RPCs) comes from the generated stub, loaded on
 * first use by {@link AgentStub.full}, over the same map.
 * @internal
 */
import type { CallOptions, Client, Payload } from '@vaccel/ttrpc';
import { type CodecMap, HAND_CODECS, handDecoder, handEncoder, MESSAGE, type UploadBlob } from './codecs.js';
import type { AgentService as SyncAgentService } from './gen/agent_sync_pb.js';
import type { decodeGenopResponse } from './genop-codec.js';
import type { ServiceClient } from './service.js';
import type { WireArg } from './wire-arg.js';

export type { UploadBlob };

/** The agent service string (0.8, sync build). */
export const AGENT_SERVICE = 'vaccel.sync.agent.AgentService';

type FullStub = ServiceClient<(typeof SyncAgentService)['method']>;
type GenopReply = ReturnType<typeof decodeGenopResponse>;
type GenopRequest = { sessionId: bigint; readArgs: readonly WireArg[]; writeArgs: readonly WireArg[] };

/** The light stub. */
export interface AgentStub {
  createSession(request: { flags: number }, options?: CallOptions): Promise<{ sessionId: bigint }>;
  destroySession(request: { sessionId: bigint }, options?: CallOptions): Promise<void>;
  registerResource(
    request: { sessionId: bigint; resourceId: bigint; resourceType?: number; blobs?: readonly UploadBlob[] },
    options?: CallOptions,
  ): Promise<{ resourceId: bigint }>;
  genop(request: GenopRequest, options?: CallOptions): Promise<GenopReply>;
  /** A genop request's payload for {@link genopWith} (encoding fails before anything is sent). */
  encodeGenop(request: GenopRequest): Payload;
  /**
   * Genop (its payload from {@link encodeGenop}) whose reply `use` reads while its bytes are still
   * the connection's (the reply's arg buffers are views that are reused after `use` returns): copy
   * out what you keep.
   */
  genopWith<T>(payload: Payload, use: (reply: GenopReply) => T, options?: CallOptions): Promise<T>;
  /** The generated stub for every other method (loaded once, on first use). */
  full(): Promise<FullStub>;
}

/** A light stub over `client`, calling `service` with the codecs of `codecs`. */
export function agentStub(
  client: Client,
  service = AGENT_SERVICE,
  codecs: CodecMap = HAND_CODECS,
): AgentStub {
  let full: Promise<FullStub> | undefined;
  const unary = <Req, Rep>(method: string, requestType: string, replyType: string | undefined) => {
    const encode = handEncoder<Req>(requestType, codecs);
    const decode = replyType ? handDecoder<Rep>(replyType, codecs) : undefined;
    return async (request: Req, options?: CallOptions): Promise<Rep> => {
      const reply = await client.call(service, method, encode(request), options);
      return decode?.(reply) as Rep;
    };
  };
  const encodeGenop = handEncoder<GenopRequest>(MESSAGE.genopRequest, codecs);
  const decodeGenop = handDecoder<GenopReply>(MESSAGE.genopResponse, codecs);
  return {
    createSession: unary('CreateSession', MESSAGE.createSessionRequest, MESSAGE.createSessionResponse),
    destroySession: unary('DestroySession', MESSAGE.destroySessionRequest, undefined),
    registerResource: unary(
      'RegisterResource',
      MESSAGE.registerResourceRequest,
      MESSAGE.registerResourceResponse,
    ),
    genop: unary('Genop', MESSAGE.genopRequest, MESSAGE.genopResponse),
    encodeGenop,
    genopWith(payload, use, options) {
      return client.callWith(service, 'Genop', payload, (bytes) => use(decodeGenop(bytes)), options);
    },
    full() {
      full ??= import('./service.js').then(async ({ serviceClient }) => {
        const { AgentService } = await import('./gen/agent_sync_pb.js');
        return serviceClient(client, AgentService, service, codecs);
      });
      return full;
    },
  };
}

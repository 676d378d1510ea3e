/**
 * Binds a protobuf-es service descriptor to @vaccel/ttrpc: `serviceHandlers` turns a typed
 * implementation into ttRPC methods; `serviceClient` turns a ttRPC client into a typed stub with
 * the same method names. One generated interface types both ends. Genop requests and replies,
 * the messages that carry the data, are encoded without copying their arg buffers.
 * @module
 */
import {
  create,
  type DescMessage,
  fromBinary,
  type MessageInitShape,
  type MessageShape,
  toBinary,
} from '@bufbuild/protobuf';
import type { GenService, GenServiceMethods } from '@bufbuild/protobuf/codegenv2';
import type { CallContext, CallOptions, Client, Method, Payload } from '@vaccel/ttrpc';
import { AgentService as AsyncAgentService } from './gen/agent_asynchronous_pb.js';
import { AgentService as SyncAgentService } from './gen/agent_sync_pb.js';
import {
  RequestSchema as GenopRequestSchema,
  ResponseSchema as GenopResponseSchema,
} from './gen/genop_pb.js';
import {
  decodeGenopRequest,
  decodeGenopResponse,
  decodeOrBadMessage,
  encodeGenopRequest,
  encodeGenopResponse,
} from './genop-codec.js';

/** Service strings of the vAccel 0.8 agent (sync and async builds use different packages). */
export const AGENT_SERVICE_SYNC = SyncAgentService.typeName;
export const AGENT_SERVICE_ASYNC = AsyncAgentService.typeName;
/** The full agent service (the async build's, which adds GenopStream). */
export const AgentService = AsyncAgentService;
export { SyncAgentService };

type Unary<M> = M extends {
  methodKind: 'unary';
  input: infer I extends DescMessage;
  output: infer O extends DescMessage;
}
  ? (request: MessageShape<I>, ctx: CallContext) => Promise<MessageInitShape<O>> | MessageInitShape<O>
  : never;
type ClientStream<M> = M extends {
  methodKind: 'client_streaming';
  input: infer I extends DescMessage;
  output: infer O extends DescMessage;
}
  ? (requests: AsyncIterable<MessageShape<I>>, ctx: CallContext) => Promise<MessageInitShape<O>>
  : never;

/** A typed implementation of a service: one function per method. */
export type ServiceImpl<S extends GenServiceMethods> = {
  [K in keyof S]: S[K]['methodKind'] extends 'unary' ? Unary<S[K]> : ClientStream<S[K]>;
};

async function* decodeAll<I extends DescMessage>(
  schema: I,
  payloads: AsyncIterable<Uint8Array>,
): AsyncGenerator<MessageShape<I>> {
  for await (const payload of payloads)
    yield decodeOrBadMessage(schema.typeName, () => fromBinary(schema, payload));
}

/** ttRPC methods (by wire name) for a typed implementation. */
export function serviceHandlers<S extends GenServiceMethods>(
  service: GenService<S>,
  impl: Partial<ServiceImpl<S>>,
): Record<string, Method> {
  const methods: Record<string, Method> = {};
  for (const method of service.methods) {
    const fn = impl[method.localName as keyof S] as ((...args: unknown[]) => unknown) | undefined;
    if (!fn) continue;
    const encode = (reply: unknown): Payload =>
      method.output.typeName === GenopResponseSchema.typeName
        ? encodeGenopResponse(reply as never)
        : toBinary(method.output, create(method.output, reply as never));
    // Genop requests, the hot path, skip protobuf-es's reflection.
    const decode = (payload: Uint8Array): unknown =>
      method.input.typeName === GenopRequestSchema.typeName
        ? decodeGenopRequest(payload)
        : decodeOrBadMessage(method.input.typeName, () => fromBinary(method.input, payload));
    if (method.methodKind === 'unary') {
      methods[method.name] = async (payload, ctx) => encode(await fn(decode(payload), ctx));
    } else if (method.methodKind === 'client_streaming') {
      methods[method.name] = {
        kind: 'client-stream',
        handler: async (payloads, ctx) => encode(await fn(decodeAll(method.input, payloads), ctx)),
      };
    }
  }
  return methods;
}

/** A typed client stub: unary methods as `(request, options) => Promise<reply>`. */
export type ServiceClient<S extends GenServiceMethods> = {
  [K in keyof S]: S[K] extends {
    methodKind: 'unary';
    input: infer I extends DescMessage;
    output: infer O extends DescMessage;
  }
    ? (request: MessageInitShape<I>, options?: CallOptions) => Promise<MessageShape<O>>
    : S[K] extends {
          methodKind: 'client_streaming';
          input: infer I extends DescMessage;
          output: infer O extends DescMessage;
        }
      ? (requests: Iterable<MessageInitShape<I>>, options?: CallOptions) => Promise<MessageShape<O>>
      : never;
};

/** A typed stub calling `serviceName` (default: the descriptor's own) through `client`. */
export function serviceClient<S extends GenServiceMethods>(
  client: Client,
  service: GenService<S>,
  serviceName = service.typeName,
): ServiceClient<S> {
  const stub: Record<string, unknown> = {};
  for (const method of service.methods) {
    const encode = (request: unknown): Uint8Array =>
      toBinary(method.input, create(method.input, request as never));
    const encodeUnary = (request: unknown): Payload =>
      method.input.typeName === GenopRequestSchema.typeName
        ? encodeGenopRequest(request as never)
        : encode(request);
    stub[method.localName] =
      method.methodKind === 'client_streaming'
        ? async (requests: Iterable<unknown>, options?: CallOptions) => {
            const reply = await client.callStream(
              serviceName,
              method.name,
              [...requests].map(encode),
              options,
            );
            return decodeOrBadMessage(method.output.typeName, () => fromBinary(method.output, reply));
          }
        : async (request: unknown, options?: CallOptions) => {
            const reply = await client.call(serviceName, method.name, encodeUnary(request), options);
            return method.output.typeName === GenopResponseSchema.typeName
              ? decodeGenopResponse(reply)
              : decodeOrBadMessage(method.output.typeName, () => fromBinary(method.output, reply));
          };
  }
  return stub as ServiceClient<S>;
}

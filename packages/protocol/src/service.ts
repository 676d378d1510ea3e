/**
 * Binds a protobuf-es service descriptor to @vaccel/ttrpc: `serviceHandlers` turns a typed
 * implementation into ttRPC methods; `serviceClient` turns a ttRPC client into a typed stub with
 * the same method names. One generated interface types both ends. Each message goes through the
 * codec map (codecs.ts): its hand codec where it has one (genop, without copying arg buffers),
 * else the generated schema; malformed bytes fail with `EBADMSG` either way.
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
import { decodeOrBadMessage } from './bad-message.js';
import { type CodecMap, HAND_CODECS } from './codecs.js';
import { AgentService as AsyncAgentService } from './gen/agent_asynchronous_pb.js';
import { AgentService as SyncAgentService } from './gen/agent_sync_pb.js';

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

/** Encoder and decoder of one message type: the map's hand codec, else the generated schema. */
function codecOf<D extends DescMessage>(
  schema: D,
  codecs: CodecMap,
): { encode: (message: unknown) => Payload; decode: (bytes: Uint8Array) => unknown } {
  const hand = codecs.get(schema.typeName);
  return {
    encode:
      (hand?.encode as ((message: unknown) => Payload) | undefined) ??
      ((message) => toBinary(schema, create(schema, message as MessageInitShape<D>))),
    decode:
      (hand?.decode as ((bytes: Uint8Array) => unknown) | undefined) ??
      ((bytes) => decodeOrBadMessage(schema.typeName, () => fromBinary(schema, bytes))),
  };
}

/**
 * A stream's messages (GenopStream's chunks) go through the generated schema both ways, as they
 * always have: the agent joins the chunks and checks them whole, and takes no shared-memory
 * reference in a stream (the schema keeps field 16 as an unknown field).
 */
const SCHEMA_ONLY: CodecMap = new Map();

/** One buffer for a payload (a stream's Data frames carry one each). */
const joined = (payload: Payload): Uint8Array =>
  payload instanceof Uint8Array ? payload : Buffer.concat(payload as Uint8Array[]);

async function* decodeAll(
  decode: (bytes: Uint8Array) => unknown,
  payloads: AsyncIterable<Uint8Array>,
): AsyncGenerator<unknown> {
  for await (const payload of payloads) yield decode(payload);
}

/** ttRPC methods (by wire name) for a typed implementation, with the messages' `codecs`. */
export function serviceHandlers<S extends GenServiceMethods>(
  service: GenService<S>,
  impl: Partial<ServiceImpl<S>>,
  codecs: CodecMap = HAND_CODECS,
): Record<string, Method> {
  const methods: Record<string, Method> = {};
  for (const method of service.methods) {
    const fn = impl[method.localName as keyof S] as ((...args: unknown[]) => unknown) | undefined;
    if (!fn) continue;
    const { decode } = codecOf(method.input, method.methodKind === 'unary' ? codecs : SCHEMA_ONLY);
    const { encode } = codecOf(method.output, codecs);
    if (method.methodKind === 'unary') {
      methods[method.name] = async (payload, ctx) => encode(await fn(decode(payload), ctx));
    } else if (method.methodKind === 'client_streaming') {
      methods[method.name] = {
        kind: 'client-stream',
        handler: async (payloads, ctx) => encode(await fn(decodeAll(decode, payloads), ctx)),
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

/** A typed stub calling `serviceName` (default: the descriptor's own) through `client`, with `codecs`. */
export function serviceClient<S extends GenServiceMethods>(
  client: Client,
  service: GenService<S>,
  serviceName = service.typeName,
  codecs: CodecMap = HAND_CODECS,
): ServiceClient<S> {
  const stub: Record<string, unknown> = {};
  for (const method of service.methods) {
    const { encode } = codecOf(method.input, method.methodKind === 'unary' ? codecs : SCHEMA_ONLY);
    const { decode } = codecOf(method.output, codecs);
    stub[method.localName] =
      method.methodKind === 'client_streaming'
        ? async (requests: Iterable<unknown>, options?: CallOptions) =>
            decode(
              await client.callStream(
                serviceName,
                method.name,
                [...requests].map((request) => joined(encode(request))),
                options,
              ),
            )
        : async (request: unknown, options?: CallOptions) =>
            decode(await client.call(serviceName, method.name, encode(request), options));
  }
  return stub as ServiceClient<S>;
}

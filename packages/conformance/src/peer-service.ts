/**
 * `conformance.Peer` in TypeScript, on @vaccel/ttrpc's Server: the same methods the Go peer
 * serves (see go-peer/peer.go), so the Go side can drive ours with the same checks.
 * @module
 */
import { Code, type Method, TtrpcError } from '@vaccel/ttrpc';

/** The service string both sides register. */
export const PEER_SERVICE = 'conformance.Peer';
const DETAIL_TYPE = 'type.googleapis.com/conformance.Detail';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Resolves after `ms`, or rejects with the signal's reason (the deadline's status). */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** The methods of `conformance.Peer`. */
export function peerMethods(): Record<string, Method> {
  return {
    Echo: (payload) => payload,
    Discard: () => new Uint8Array(0),
    Metadata: (_payload, ctx) => {
      const out: Record<string, string[]> = {};
      for (const [key, value] of ctx.metadataPairs) out[key] = [...(out[key] ?? []), value];
      return encoder.encode(JSON.stringify(out));
    },
    Deadline: (_payload, ctx) =>
      encoder.encode(
        ctx.deadline === undefined ? 'none' : String(Math.round((ctx.deadline - performance.now()) * 1e6)),
      ),
    Sleep: async (payload, ctx) => {
      const ms = Number(decoder.decode(payload));
      if (!Number.isInteger(ms) || ms < 0)
        throw new TtrpcError(
          Code.INVALID_ARGUMENT,
          `Sleep wants milliseconds, got ${decoder.decode(payload)}`,
        );
      await sleep(ms, ctx.signal);
      return payload;
    },
    Fail: (payload) => {
      const text = decoder.decode(payload);
      const colon = text.indexOf(':');
      const message = text.slice(colon + 1);
      throw new TtrpcError(Number(text.slice(0, colon)), message, [
        { $typeName: 'google.protobuf.Any', typeUrl: DETAIL_TYPE, value: encoder.encode(message) },
      ]);
    },
    Size: (payload) => {
      const n = Number(decoder.decode(payload));
      if (!Number.isInteger(n) || n < 0)
        throw new TtrpcError(Code.INVALID_ARGUMENT, 'Size wants a byte count');
      return new Uint8Array(n).fill(0x5a);
    },
  };
}

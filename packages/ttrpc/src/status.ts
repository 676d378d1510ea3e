/**
 * Status codes and the errors of this package.
 * @module
 */
import type { Any } from '@bufbuild/protobuf/wkt';

/** A status to answer with. */
export interface StatusReply {
  code: number;
  message: string;
  details?: readonly Any[];
}

/** gRPC status codes, as carried in `ttrpc.Status.code`. */
export const Code = Object.freeze({
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const);
/** A status code number. */
export type Code = (typeof Code)[keyof typeof Code];

const codeNames = new Map<number, string>(Object.entries(Code).map(([name, value]) => [value, name]));

/** The name of a status code (`NOT_FOUND`), or `CODE_<n>`. */
export function codeName(code: number): string {
  return codeNames.get(code) ?? `CODE_${code}`;
}

/** A call that ended with a non-OK status: from the peer, or refused locally. */
export class TtrpcError extends Error {
  override readonly name = 'TtrpcError';
  constructor(
    /** The status code. */
    readonly code: number,
    message: string,
    /** `google.protobuf.Any` details, as sent. */
    readonly details: readonly Any[] = [],
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The connection closed (EOF, EPIPE and ECONNRESET alike) or was closed locally. */
export class TtrpcClosedError extends Error {
  override readonly name = 'TtrpcClosedError';
  readonly code = 'ERR_TTRPC_CLOSED';
}

/** True for a {@link TtrpcError}. */
export function isTtrpcError(error: unknown): error is TtrpcError {
  return error instanceof TtrpcError;
}

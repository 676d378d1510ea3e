/**
 * The one place errors cross the wire: VaccelError ⇄ ttRPC status.
 *
 * Upstream's agent answers vAccel failures with status INTERNAL and a detail
 * `Any{ type_url: "type.googleapis.com/vaccel.ProtoError", value: vaccel.Error{ ffi_error: errno } }`;
 * its client maps the detail's errno back, whatever the status code. We send the same detail, so
 * upstream peers understand us and the same `code` comes back on either side, with a status code
 * that follows the error's class (EINVAL → INVALID_ARGUMENT, ENOMEM → RESOURCE_EXHAUSTED, …) for
 * tools and clients that only read codes.
 * @module
 */
import { BinaryReader, BinaryWriter, WireType } from '@bufbuild/protobuf/wire';
import type { Any } from '@bufbuild/protobuf/wkt';
import { type ErrorCode, ErrorCodes, errorCodeFromErrno, isVaccelError, VaccelError } from '@vaccel/core';
import { Code, type StatusReply, TtrpcClosedError, TtrpcError } from '@vaccel/ttrpc';

/** Type URL upstream 0.8 uses for the error detail (0.7 used `…/vaccel.VaccelError`). */
export const ERROR_TYPE_URL = 'type.googleapis.com/vaccel.ProtoError';
const errorTypeUrls = /\/vaccel\.(ProtoError|VaccelError|Error)$/;
/** Upstream's client defaults a failure without a usable errno to EBACKEND (EPROTO's number). */
const EBACKEND = ErrorCodes.EPROTO;
/** What containerd/ttrpc (Go) answers for a frame over its limit. */
const peerFrameLimit = /exceed maximum message size of (\d+)/;

/** The status code each error class is answered with (INTERNAL for the rest). */
const codeClass: Partial<Record<ErrorCode, number>> = {
  EINVAL: Code.INVALID_ARGUMENT,
  EBADMSG: Code.INVALID_ARGUMENT,
  ENOEXEC: Code.INVALID_ARGUMENT,
  EFAULT: Code.INVALID_ARGUMENT,
  ENOENT: Code.NOT_FOUND,
  EEXIST: Code.ALREADY_EXISTS,
  EPERM: Code.PERMISSION_DENIED,
  EACCES: Code.PERMISSION_DENIED,
  ENOMEM: Code.RESOURCE_EXHAUSTED,
  E2BIG: Code.RESOURCE_EXHAUSTED,
  EBUSY: Code.RESOURCE_EXHAUSTED,
  EUSERS: Code.RESOURCE_EXHAUSTED,
  EAGAIN: Code.RESOURCE_EXHAUSTED,
  ENOSPC: Code.RESOURCE_EXHAUSTED,
  ERANGE: Code.OUT_OF_RANGE,
  EBADF: Code.FAILED_PRECONDITION,
  ENOTSUP: Code.UNIMPLEMENTED,
  ENOSYS: Code.UNIMPLEMENTED,
  ETIMEDOUT: Code.DEADLINE_EXCEEDED,
  ECANCELED: Code.CANCELLED,
  ECONNRESET: Code.UNAVAILABLE,
};

// vaccel.Error is {type 1 (enum, FFI = 0), optional ffi_error 2 (uint32), optional status 3}; it is
// written and read by hand, byte-for-byte as protobuf-es does (tested), so a guest process never
// loads the reflection runtime for an error.

/** The detail carrying a vAccel errno: `vaccel.Error{type: FFI, ffi_error: errno}`. */
export function errorDetail(errno: number): Any {
  const value = new BinaryWriter().tag(2, WireType.Varint).uint32(errno).finish();
  return { $typeName: 'google.protobuf.Any', typeUrl: ERROR_TYPE_URL, value };
}

/** `ffi_error` of an encoded vaccel.Error, undefined when absent. @throws Error for malformed bytes. */
function decodeFfiError(bytes: Uint8Array): number | undefined {
  const reader = new BinaryReader(bytes);
  let errno: number | undefined;
  while (reader.pos < reader.len) {
    const [no, type] = reader.tag();
    if (no === 2 && type === WireType.Varint) errno = reader.uint32();
    else reader.skip(type, no);
  }
  return errno;
}

/** Agent side: the status to answer a failed call with. */
export function statusFromError(error: unknown): StatusReply {
  if (isVaccelError(error)) {
    return {
      code: codeClass[error.code] ?? Code.INTERNAL,
      message: error.message,
      details: [errorDetail(error.errno)],
    };
  }
  if (error instanceof TtrpcError)
    return { code: error.code, message: error.message, details: error.details };
  const message = (error as Error)?.message ?? String(error);
  return { code: Code.INTERNAL, message, details: [errorDetail(EBACKEND)] };
}

/** Client side, for a status without a vAccel detail (a peer that sends none). */
const fromCode: Partial<Record<number, ErrorCode>> = {
  [Code.INVALID_ARGUMENT]: 'EINVAL',
  [Code.NOT_FOUND]: 'ENOENT',
  [Code.ALREADY_EXISTS]: 'EEXIST',
  [Code.OUT_OF_RANGE]: 'ERANGE',
  [Code.DEADLINE_EXCEEDED]: 'ETIMEDOUT',
  [Code.UNIMPLEMENTED]: 'ENOTSUP',
  [Code.PERMISSION_DENIED]: 'EPERM',
  [Code.UNAUTHENTICATED]: 'EACCES',
  [Code.RESOURCE_EXHAUSTED]: 'EAGAIN',
  [Code.UNAVAILABLE]: 'ECONNRESET',
  [Code.CANCELLED]: 'ECANCELED',
};

/** The errno in a status's vAccel detail, if it has one. */
export function detailErrno(details: readonly Any[]): number | undefined {
  for (const detail of details) {
    if (!errorTypeUrls.test(detail.typeUrl)) continue;
    try {
      return decodeFfiError(detail.value) ?? EBACKEND;
    } catch {
      // A malformed detail: fall back to the status code.
    }
  }
  return undefined;
}

/**
 * Client side: the VaccelError for a failed call. Abort reasons pass through unchanged.
 * @param what names the call, for messages ("agent blas_sgemm").
 */
export function errorFromRpc(error: unknown, what: string): unknown {
  if (isVaccelError(error)) return error;
  if (error instanceof TtrpcClosedError)
    return new VaccelError('ECONNRESET', `${what}: connection to the agent lost`, { cause: error });
  if (error instanceof TtrpcError) {
    const errno = detailErrno(error.details);
    const limit = error.code === Code.RESOURCE_EXHAUSTED ? peerFrameLimit.exec(error.message) : null;
    if (errno === undefined && limit) {
      const mib = Number(limit[1]) / 2 ** 20;
      return new VaccelError(
        'E2BIG',
        `${what}: the agent refused the request: it takes frames of at most ${mib} MiB (containerd/ttrpc's default; vAccel's agents allow 1 GiB). Send smaller inputs, or use an agent with a higher limit`,
        { cause: error },
      );
    }
    const code =
      (errno !== undefined ? errorCodeFromErrno(errno) : undefined) ??
      fromCode[error.code] ??
      (errno !== undefined ? 'EPROTO' : 'EIO');
    return new VaccelError(code, `${what}: ${error.message}`, { cause: error });
  }
  return error;
}

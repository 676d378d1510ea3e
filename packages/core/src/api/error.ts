/**
 * Errors of the vAccel API.
 *
 * Every failure the API reports is a {@link VaccelError} with a stable string `code` that mirrors
 * upstream vAccel's `VACCEL_E*` constants (Linux errno values, see docs/protocol.md §4). Match on
 * `code`, never on the message: messages are for people and may change.
 * @module
 */

/** Stable error codes and the errno number upstream vAccel uses for each. */
export const ErrorCodes = {
  EPERM: 1,
  ENOENT: 2,
  EIO: 5,
  ENOEXEC: 8,
  EBADF: 9,
  EAGAIN: 11,
  ENOMEM: 12,
  EACCES: 13,
  EFAULT: 14,
  EBUSY: 16,
  EEXIST: 17,
  ENODEV: 19,
  ENOTDIR: 20,
  EINVAL: 22,
  ENOSPC: 28,
  EROFS: 30,
  EMLINK: 31,
  ERANGE: 34,
  ENAMETOOLONG: 36,
  ENOSYS: 38,
  ELOOP: 40,
  EPROTO: 71,
  EBADMSG: 74,
  ELIBBAD: 80,
  EUSERS: 87,
  ENOTSUP: 95,
  E2BIG: 7,
  ECONNRESET: 104,
  ETIMEDOUT: 110,
  EINPROGRESS: 115,
  EREMOTEIO: 121,
  ECANCELED: 125,
} as const;

/** A stable error code, e.g. `'EINVAL'`. */
export type ErrorCode = keyof typeof ErrorCodes;

/** Default messages, used when a call site gives none. */
const defaultMessages: Partial<Record<ErrorCode, string>> = {
  EINVAL: 'invalid argument',
  ENOTSUP: 'operation not supported',
  ENOENT: 'no such object',
  EEXIST: 'already exists',
  EPERM: 'operation not permitted',
  EBADF: 'handle is closed',
  EBADMSG: 'bad message',
  ECONNRESET: 'connection reset',
  ETIMEDOUT: 'timed out',
  EPROTO: 'backend error',
};

const brand = Symbol.for('vaccel.error');

/** Options for {@link VaccelError}. */
export interface VaccelErrorOptions {
  /** The underlying error, if any. */
  cause?: unknown;
}

/**
 * The one error class of vAccel. `code` is stable; `errno` is upstream's number for it.
 *
 * `instanceof VaccelError` works across duplicate copies of this package (the check is branded with
 * `Symbol.for`), and {@link isVaccelError} does the same as a type guard.
 */
export class VaccelError extends Error {
  override readonly name = 'VaccelError';
  /** Stable code, e.g. `'EINVAL'`. */
  readonly code: ErrorCode;
  /** The Linux errno value upstream vAccel uses for {@link code}. */
  readonly errno: number;

  constructor(code: ErrorCode, message?: string, options?: VaccelErrorOptions) {
    super(message ?? defaultMessages[code] ?? code, options);
    this.code = code;
    this.errno = ErrorCodes[code];
  }

  /** @internal */
  get [brand](): true {
    return true;
  }

  static override [Symbol.hasInstance](value: unknown): boolean {
    return isVaccelError(value);
  }
}

/** True when `value` is a {@link VaccelError} (from any copy of this package). */
export function isVaccelError(value: unknown): value is VaccelError {
  return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[brand] === true;
}

/** True when `value` is a {@link VaccelError} with the given code. */
export function isVaccelErrorCode(value: unknown, code: ErrorCode): value is VaccelError {
  return isVaccelError(value) && value.code === code;
}

/** The code for an errno number, or undefined if it is not one of ours. */
export function errorCodeFromErrno(errno: number): ErrorCode | undefined {
  for (const [code, value] of Object.entries(ErrorCodes)) if (value === errno) return code as ErrorCode;
  return undefined;
}

/** Shorthand for `new VaccelError('EINVAL', message)`. */
export function invalidArgument(message: string, options?: VaccelErrorOptions): VaccelError {
  return new VaccelError('EINVAL', message, options);
}

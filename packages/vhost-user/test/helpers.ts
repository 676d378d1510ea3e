// Re-exports for the tests, plus a typed error check.
import { isVaccelErrorCode } from '@vaccel/core';

export * from '@vaccel/vhost-user';
/** True when `error` is a VaccelError with `code`. */
export const isVaccelErrorWithCode = (error: unknown, code: string): boolean =>
  isVaccelErrorCode(error, code as Parameters<typeof isVaccelErrorCode>[1]);

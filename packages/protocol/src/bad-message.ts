/**
 * The one way a malformed message fails, whichever codec read it (hand-written or generated).
 * @module
 */
import { VaccelError } from '@vaccel/core';

/**
 * Runs a decoder: malformed bytes (a truncated field, a bad varint, a wrong wire type) become a
 * VaccelError `EBADMSG` naming the message, whichever layer noticed them.
 */
export function decodeOrBadMessage<T>(what: string, decode: () => T): T {
  try {
    return decode();
  } catch (cause) {
    if (cause instanceof VaccelError) throw cause;
    throw new VaccelError('EBADMSG', `malformed ${what}: ${(cause as Error)?.message ?? cause}`, { cause });
  }
}

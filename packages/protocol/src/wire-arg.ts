/**
 * Args between `@vaccel/core` and the wire: the one conversion both the guest plugin and the agent
 * use, and the shapes an arg takes on the wire — bytes, or a {@link SharedRef} (genop.Arg field 16,
 * our extension) naming `length` bytes of a shared-memory region attached to the connection. A
 * reference is sent only to a vaccel-ts agent that attached the region; upstream decoders skip
 * the field.
 * @module
 */
import { type Arg, type ArgType, VaccelError } from '@vaccel/core';
import type { Arg as GenArg } from './gen/genop_pb.js';

/** A reference to bytes in a shared-memory region (vaccel_ts.memory.SharedRef). */
export interface SharedRef {
  regionId: number;
  offset: number;
  /** Bytes; also the arg's `size`. */
  length: number;
}

/** genop.Arg's field for a {@link SharedRef}. */
export const REF_FIELD = 16;

/** An arg as it goes on the wire (the init shape of genop.Arg). */
export interface WireArg {
  /** Where the bytes are instead of `buf` (then `size` is `ref.length`). */
  ref?: SharedRef;
  buf?: Uint8Array;
  /** Default: the buffer's length (the full length when chunked). */
  size?: number;
  argType?: number;
  customTypeId?: number;
  parts?: number;
  partNo?: number;
}

/** A core arg on the wire: size = its length, the type as is. */
export const toWireArg = (arg: Arg): WireArg => ({
  buf: arg.buf,
  size: arg.buf.byteLength,
  argType: arg.type,
  customTypeId: arg.customTypeId ?? 0,
});

/** A wire arg that refers to `ref`'s bytes (none of them travel). */
export const refWireArg = (arg: Arg, ref: SharedRef): WireArg => ({
  ref,
  size: ref.length,
  argType: arg.type,
  customTypeId: arg.customTypeId ?? 0,
});

/** A decoded genop.Arg, with the {@link SharedRef} it may carry. */
export type DecodedArg = GenArg & { ref?: SharedRef };

/**
 * A wire arg as a core arg (its buffer is a view, not a copy). An arg with a shared reference
 * gets the bytes `resolve` finds for it (bounds-checked there); without `resolve` it is refused.
 * @throws VaccelError `EINVAL` when `size` is not the buffer's length (upstream's agent refuses
 * those too) or a reference cannot be resolved.
 */
export function fromWireArg(
  arg: DecodedArg,
  what: string,
  index: number,
  resolve?: (ref: SharedRef, where: string) => Uint8Array,
): Arg {
  if (arg.ref) {
    const where = `${what} arg ${index}`;
    if (!resolve) throw new VaccelError('EINVAL', `${where}: shared memory references are not accepted here`);
    if (arg.buf.byteLength > 0 || arg.size !== arg.ref.length)
      throw new VaccelError('EINVAL', `${where}: a shared reference carries no bytes and size = its length`);
    return {
      type: arg.argType as number as ArgType,
      buf: resolve(arg.ref, where),
      customTypeId: arg.customTypeId,
    };
  }
  if (arg.size !== arg.buf.byteLength) {
    throw new VaccelError(
      'EINVAL',
      `${what} arg ${index}: size ${arg.size} does not match its ${arg.buf.byteLength} bytes`,
    );
  }
  return { type: arg.argType as number as ArgType, buf: arg.buf, customTypeId: arg.customTypeId };
}

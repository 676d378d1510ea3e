/**
 * What a graph may make the converter allocate. A graph declares constants by shape: a `Const` of
 * shape [16384,16384] with a single `float_val` is under 100 bytes on the wire and 1 GiB expanded,
 * and folding (broadcasts, SparseToDense, concatenations) makes big constants out of small ones.
 * Every constant the converter holds on the host (decoded from the graph, a TF.js weight, or
 * computed by folding) is charged to one byte budget per model *before* its array exists; over
 * the budget the conversion fails with `E2BIG` saying how to raise it.
 *
 * Host bytes are what the converter holds: 4 per element for floating types (float32), 8 for
 * integer and bool types (float64, exact for the shape arithmetic they serve). Writing the model
 * out copies initializers once more, so a conversion's peak is a small multiple of the budget.
 * @module
 */
import { VaccelError } from '@vaccel/core';

/** Default byte budget for a model's constants: 256 MiB. */
export const DEFAULT_MAX_CONSTANT_BYTES = 256 * 2 ** 20;

/** The environment variable the ONNX plugin reads the budget from (bytes). */
export const MAX_CONSTANT_BYTES_ENV = 'VACCEL_MODEL_MAX_CONSTANT_BYTES';

/**
 * Largest constant the converter holds, whatever the budget (2^28 elements, 1 GiB of float32):
 * typed arrays stay well inside what V8 can index.
 */
export const MAX_CONSTANT_ELEMENTS = 2 ** 28;

/** The bytes a model's constants may take on the host while converting; charged before allocating. */
export class ConstantBudget {
  /** Bytes the model's constants may take. */
  readonly limit: number;
  #used = 0;

  /** @throws VaccelError `EINVAL` when `limit` is not a non-negative integer. */
  constructor(limit: number = DEFAULT_MAX_CONSTANT_BYTES) {
    if (!Number.isSafeInteger(limit) || limit < 0)
      throw new VaccelError('EINVAL', `maxConstantBytes must be a non-negative integer, got ${limit}`);
    this.limit = limit;
  }

  /** Bytes charged so far. */
  get used(): number {
    return this.#used;
  }

  /**
   * Charges `bytes` for `what`, which the caller allocates next.
   * @throws VaccelError `E2BIG` when the model's constants would exceed the budget.
   */
  reserve(bytes: number, what: string): void {
    // Written so NaN and Infinity fail too.
    if (!(bytes <= this.limit - this.#used))
      throw new VaccelError(
        'E2BIG',
        `${what} takes ${bytes} bytes, and the model's constants may take ${this.limit} bytes in all (${this.#used} used before it); raise the limit with the converter's maxConstantBytes option or ${MAX_CONSTANT_BYTES_ENV} if the model is trusted`,
      );
    this.#used += bytes;
  }
}

/**
 * What the agent reads in a genop's args before it runs the op: the resource ids it translates
 * (the connection's ids to the runtime's), the image it admits, the SGEMM output size it admits.
 * Positions are those of the op's read args after the op number (core's `ops/*.ts` layouts; the
 * guest's RPC plugin keeps the same resource table for the other direction).
 * @module
 */
import { type Arg, Args, allOps, OpType, opInfo, ReadArg } from '@vaccel/core';

/** Ops whose read arg 0 is an encoded image that a plugin decodes (core's op table: `image`). */
export const IMAGE_OPS: ReadonlySet<OpType> = new Set(
  allOps()
    .filter((info) => info.image)
    .map((info) => info.op),
);

/**
 * Rewrites the resource id in `read` (in place) with `translate`'s answer.
 * @throws what `translate` throws for an id the connection does not hold.
 */
export function translateResourceArg(op: OpType, read: Arg[], translate: (id: number) => number): void {
  // 0 means "the plugin's default" and stays 0.
  const at = opInfo(op)?.resourceArg;
  if (at === undefined || read[at] === undefined) return;
  const id = ReadArg.int64(read[at], 'resource id');
  if (id !== 0) read[at] = Args.int64(translate(id));
}

/**
 * Rows and columns of C of an SGEMM (BLAS_SGEMM: m, n are INT64 read args 0 and 1; TORCH_SGEMM:
 * INT32 read args 3 and 4), undefined for other ops or args the op will refuse anyway.
 */
export function sgemmOutput(op: OpType, read: readonly Arg[]): { m: number; n: number } | undefined {
  try {
    if (op === OpType.BlasSgemm)
      return { m: ReadArg.int64(read[0], 'sgemm m'), n: ReadArg.int64(read[1], 'sgemm n') };
    if (op === OpType.TorchSgemm)
      return { m: ReadArg.int32(read[3], 'torch_sgemm m'), n: ReadArg.int32(read[4], 'torch_sgemm n') };
  } catch {
    // Malformed: the op's own checks answer with the precise message.
  }
  return undefined;
}

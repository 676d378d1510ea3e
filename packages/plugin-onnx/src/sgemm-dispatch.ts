/**
 * Which engine runs an SGEMM: the inline TypeScript kernel for tiny ones, a compute thread for
 * big ones when there are compute threads, ONNX Runtime on the calling thread otherwise.
 * @module
 */
import { type OpContext, type SgemmArgs, sgemmFlops } from '@vaccel/core';
import { sgemmKernel } from '@vaccel/core/plugins';
import type { OrtSgemm } from './sgemm.js';
import type { ComputeThreads } from './threads/pool.js';

/** Problems of at most this many flops (2·16³) skip ONNX Runtime for the inline kernel (measured crossover: ORT wins from N ≈ 24). */
const INLINE_SGEMM_FLOPS = 2 * 16 ** 3;
/**
 * With compute threads, SGEMMs of at most this many flops (≈ 203³, well under a millisecond) still
 * run on the calling thread: the hop to a thread and the copies there and back cost about as much.
 */
const CALLER_THREAD_SGEMM_FLOPS = 2 ** 24;

/** Runs SGEMMs on `sgemm` (ONNX Runtime here), `threadPool` or inline, by size. */
export function sgemmRunner(sgemm: OrtSgemm, threadPool: ComputeThreads | undefined) {
  return (args: SgemmArgs, ctx: OpContext) => {
    const flops = sgemmFlops(args.m, args.n, args.k);
    if (flops <= INLINE_SGEMM_FLOPS) return sgemmKernel(args);
    if (threadPool && flops > CALLER_THREAD_SGEMM_FLOPS) return threadPool.sgemm(args, ctx);
    return sgemm.run(args, ctx);
  };
}

/**
 * Worker-thread entry of the sgemm-js plugin: runs one kernel call per message and transfers C
 * back. @internal
 */
import { parentPort } from 'node:worker_threads';
import type { SgemmArgs } from '../../ops/blas.js';
import { sgemmKernel } from './kernel.js';

parentPort?.on('message', (message: SgemmArgs) => {
  try {
    // A fresh literal: the structured-cloned object has a shape V8 optimises worse (3.1 vs 3.8 GFLOP/s).
    const { m, n, k, alpha, a, lda, b, ldb, beta, c, ldc } = message;
    const args: SgemmArgs = { m, n, k, alpha, a, lda, b, ldb, beta, c, ldc };
    sgemmKernel(args);
    parentPort?.postMessage({ c: args.c }, [args.c.buffer as ArrayBuffer]);
  } catch (error) {
    parentPort?.postMessage({ error: String(error) });
  }
});

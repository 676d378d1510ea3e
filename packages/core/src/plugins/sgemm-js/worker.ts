/**
 * Worker-thread entry of the sgemm-js plugin: runs one kernel call per message and transfers C
 * back. @internal
 */
import { parentPort } from 'node:worker_threads';
import type { SgemmArgs } from '../../ops/blas.js';
import { sgemmKernel } from './kernel.js';

parentPort?.on('message', (args: SgemmArgs) => {
  try {
    sgemmKernel(args);
    parentPort?.postMessage({ c: args.c }, [args.c.buffer as ArrayBuffer]);
  } catch (error) {
    parentPort?.postMessage({ error: String(error) });
  }
});

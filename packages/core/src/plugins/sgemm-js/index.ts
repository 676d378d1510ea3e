/**
 * The sgemm-js plugin: SGEMM in pure TypeScript (see kernel.ts). Small problems run inline; big
 * ones on worker threads.
 * @module
 */
import { OpType } from '../../api/op.js';
import { type SgemmArgs, sgemmFlops, sgemmHandler, torchSgemmHandler } from '../../ops/blas.js';
import { type OpContext, type Plugin, PluginType } from '../../runtime/plugin.js';
import { sgemmKernel } from './kernel.js';
import { KernelPool } from './pool.js';

/** Below this many flops a worker round trip (~0.1 ms) costs more than the work itself. */
const INLINE_FLOPS = 2 * 96 ** 3;

export { sgemmKernel } from './kernel.js';

/** Options of {@link sgemmJsPlugin}. */
export interface SgemmJsOptions {
  /** Worker threads for big problems (default: min(4, cores)); 0 runs everything inline. */
  threads?: number;
}

/** Creates the sgemm-js plugin. */
export function sgemmJsPlugin(options: SgemmJsOptions = {}): Plugin {
  let pool: KernelPool | undefined;
  const run = async (args: SgemmArgs, ctx: OpContext) => {
    if (options.threads === 0 || sgemmFlops(args.m, args.n, args.k) < INLINE_FLOPS) return sgemmKernel(args);
    pool ??= new KernelPool(options.threads);
    await pool.run(args, ctx);
  };
  return {
    name: 'sgemm-js',
    version: '0.1.0',
    types: PluginType.Cpu | PluginType.Software,
    ops: {
      [OpType.BlasSgemm]: sgemmHandler(run),
      [OpType.TorchSgemm]: torchSgemmHandler(run),
    },
    async fini() {
      await pool?.close();
      pool = undefined;
    },
  };
}

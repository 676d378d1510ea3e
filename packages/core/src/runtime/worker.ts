/**
 * Worker threads on an ES module beside the caller: `dist/x.js` in builds; under tsx (tests run
 * the sources), whose loader hooks do not reach a worker's entry on Node 20, the worker registers
 * tsx itself before importing `x.ts`.
 * @module
 */
import { type ResourceLimits, Worker } from 'node:worker_threads';

/** Options of {@link startModuleWorker}. */
export interface ModuleWorkerOptions {
  /**
   * V8 limits of the worker's heap: past them the worker ends with `ERR_WORKER_OUT_OF_MEMORY`
   * instead of taking the process down. Best effort: they cover the JS heap only (not
   * ArrayBuffers), a single allocation far past the limit can still abort the process
   * (nodejs/node#47224), and `--max-old-space-size` overrides them (nodejs/node#43991). Bound
   * inputs before allocating; these are the backstop.
   */
  resourceLimits?: ResourceLimits;
  /** The worker's `workerData` (structured-cloned). */
  workerData?: unknown;
}

/** Starts a worker on `name` (without extension) resolved beside `base` (the caller's `import.meta.url`). */
export function startModuleWorker(name: string, base: string, options: ModuleWorkerOptions = {}): Worker {
  const fromSource = base.endsWith('.ts');
  const url = new URL(`./${name}.${fromSource ? 'ts' : 'js'}`, base);
  const limits = {
    ...(options.resourceLimits ? { resourceLimits: options.resourceLimits } : {}),
    ...(options.workerData !== undefined ? { workerData: options.workerData } : {}),
  };
  if (!fromSource) return new Worker(url, limits);
  const tsx = JSON.stringify(import.meta.resolve('tsx/esm/api'));
  const boot = `import(${tsx}).then((tsx) => { tsx.register(); return import(${JSON.stringify(url.href)}); })`;
  return new Worker(boot, { eval: true, ...limits });
}

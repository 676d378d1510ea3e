/**
 * Worker threads on an ES module beside the caller: `dist/x.js` in builds; under tsx (tests run
 * the sources), whose loader hooks do not reach a worker's entry on Node 20, the worker registers
 * tsx itself before importing `x.ts`.
 * @module
 */
import { Worker } from 'node:worker_threads';

/** Starts a worker on `name` (without extension) resolved beside `base` (the caller's `import.meta.url`). */
export function startModuleWorker(name: string, base: string): Worker {
  const fromSource = base.endsWith('.ts');
  const url = new URL(`./${name}.${fromSource ? 'ts' : 'js'}`, base);
  if (!fromSource) return new Worker(url);
  const tsx = JSON.stringify(import.meta.resolve('tsx/esm/api'));
  const boot = `import(${tsx}).then((tsx) => { tsx.register(); return import(${JSON.stringify(url.href)}); })`;
  return new Worker(boot, { eval: true });
}

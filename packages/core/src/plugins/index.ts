/**
 * The builtin plugins: `noop`, `crypto`, `sgemm-js`, `exec`, `compute`.
 * @module
 */
import type { Plugin } from '../runtime/plugin.js';
import type { BUILTIN_PLUGIN_NAMES } from './builtin.js';
import { computePlugin } from './compute.js';
import { cryptoPlugin } from './crypto.js';
import { execPlugin } from './exec.js';
import { noopPlugin } from './noop.js';
import { sgemmJsPlugin } from './sgemm-js/index.js';

export { computePlugin } from './compute.js';
export { cryptoPlugin } from './crypto.js';
export { type ExecFunction, type ExecPluginOptions, execPlugin } from './exec.js';
export { noopPlugin } from './noop.js';
export { type SgemmJsOptions, sgemmJsPlugin, sgemmKernel } from './sgemm-js/index.js';

/** Factories of the builtin plugins by name, each taking the runtime's environment. */
export function builtinPlugins(): Record<
  (typeof BUILTIN_PLUGIN_NAMES)[number],
  (env: Readonly<Record<string, string | undefined>>) => Plugin
> {
  return {
    noop: () => noopPlugin(),
    crypto: () => cryptoPlugin(),
    'sgemm-js': () => sgemmJsPlugin(),
    exec: (env) => execPlugin({ env }),
    compute: () => computePlugin(),
  };
}

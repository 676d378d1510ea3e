/**
 * The builtin plugins by name, loaded on demand: a runtime that only forwards to an agent (the
 * usual guest) never loads the crypto, SGEMM or exec code, nor the Node modules they need.
 * @module
 */
import type { Plugin } from '../runtime/plugin.js';

type Env = Readonly<Record<string, string | undefined>>;

/** Builtin plugin names, in their default order. */
export const BUILTIN_PLUGIN_NAMES = ['noop', 'crypto', 'sgemm-js', 'exec', 'compute'] as const;

const loaders: Record<(typeof BUILTIN_PLUGIN_NAMES)[number], (env: Env) => Promise<Plugin>> = {
  noop: async () => (await import('./noop.js')).noopPlugin(),
  crypto: async () => (await import('./crypto.js')).cryptoPlugin(),
  'sgemm-js': async () => (await import('./sgemm-js/index.js')).sgemmJsPlugin(),
  exec: async (env) => (await import('./exec.js')).execPlugin({ env }),
  compute: async () => (await import('./compute.js')).computePlugin(),
};

/** The builtin plugin `name`, or undefined when it is not one. */
export function loadBuiltinPlugin(name: string, env: Env): Promise<Plugin> | undefined {
  return Object.hasOwn(loaders, name) ? loaders[name as keyof typeof loaders](env) : undefined;
}

/**
 * Runtime configuration from options, falling back to the environment.
 *
 * | Variable | Meaning |
 * |---|---|
 * | `VACCEL_PLUGINS` | `:`-separated plugins: builtin names (`noop`, `crypto`, `sgemm-js`, `exec`, `compute`) or module specifiers/paths |
 * | `VACCEL_LOG_LEVEL` | 1–4 or `error`/`warn`/`info`/`debug` (default 1) |
 * | `VACCEL_RPC_ADDRESS` | agent address for the RPC plugin (`VACCEL_RPC_ADDR` is accepted too) |
 * | `VACCEL_EXEC_ALLOWLIST` | `:`-separated modules (or `module#function`) the exec plugin may run |
 * | `VACCEL_PROFILING_ENABLED` | `1`/`true`: time every op into per-session profiling regions |
 * @module
 */
import { createRequire } from 'node:module';
import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { VaccelError } from '../api/error.js';
import { type Logger, LogLevel, parseLogLevel } from './log.js';
import type { Plugin } from './plugin.js';
import { profilingEnabled } from './profiling.js';

/** Options of {@link Vaccel.open}. Every field is optional; unset ones come from the environment. */
export interface VaccelOptions {
  /** Plugins to register: objects, builtin names, or module specifiers. Default: `VACCEL_PLUGINS`, else the builtin set. */
  plugins?: readonly (Plugin | string)[];
  /** Environment to read (default `process.env`). */
  env?: Readonly<Record<string, string | undefined>>;
  /** Logger for the runtime and plugins (default: stderr lines at {@link logLevel}). */
  logger?: Logger;
  /** Log level for the default logger (default: `VACCEL_LOG_LEVEL`, else 1 = errors). */
  logLevel?: LogLevel | string;
  /** Agent address for the RPC plugin (default: `VACCEL_RPC_ADDRESS`). */
  rpcAddress?: string;
  /** Time every op into per-session profiling regions (default: `VACCEL_PROFILING_ENABLED`). */
  profiling?: boolean;
}

/** Configuration after defaults. */
export interface ResolvedConfig {
  readonly plugins: readonly (Plugin | string)[] | undefined;
  readonly logLevel: LogLevel;
  readonly rpcAddress: string | undefined;
  readonly profiling: boolean;
  readonly env: Readonly<Record<string, string | undefined>>;
}

const knownOptions = new Set(['plugins', 'env', 'logger', 'logLevel', 'rpcAddress', 'profiling']);
const renamedOptions: Record<string, string> = {
  backends: 'plugins',
  debugLevel: 'logLevel',
  rpcAddr: 'rpcAddress',
};

/** Splits a `:`-separated list, dropping empty items. */
export function splitList(value: string | undefined): string[] {
  return (value ?? '')
    .split(':')
    .map((item) => item.trim())
    .filter((item) => item !== '');
}

/**
 * Validates options and fills defaults from the environment.
 * @throws VaccelError `EINVAL` naming a bad option or variable.
 */
export function resolveConfig(options: VaccelOptions = {}): ResolvedConfig {
  if (typeof options !== 'object' || options === null)
    throw new VaccelError('EINVAL', 'options must be an object');
  for (const key of Object.keys(options)) {
    if (knownOptions.has(key)) continue;
    const hint = renamedOptions[key] ? `; use ${renamedOptions[key]} instead` : '';
    throw new VaccelError('EINVAL', `unknown option ${key}${hint}`);
  }
  const env = options.env ?? process.env;
  const levelSource = options.logLevel ?? env.VACCEL_LOG_LEVEL;
  const logLevel =
    levelSource === undefined || levelSource === '' ? LogLevel.Error : parseLogLevel(levelSource);
  if (logLevel === undefined) {
    const name = options.logLevel !== undefined ? 'logLevel' : 'VACCEL_LOG_LEVEL';
    throw new VaccelError('EINVAL', `${name} = ${String(levelSource)} is not 1–4 or error/warn/info/debug`);
  }
  if (options.plugins !== undefined && !Array.isArray(options.plugins)) {
    throw new VaccelError('EINVAL', 'plugins must be an array of plugins, names or module specifiers');
  }
  // Empty counts as unset, as for every VACCEL_* variable.
  const fromEnv = env.VACCEL_PLUGINS ? splitList(env.VACCEL_PLUGINS) : undefined;
  const rpcAddress = options.rpcAddress ?? (env.VACCEL_RPC_ADDRESS || env.VACCEL_RPC_ADDR || undefined);
  const profiling = options.profiling ?? profilingEnabled(env.VACCEL_PROFILING_ENABLED);
  return { plugins: options.plugins ?? fromEnv, logLevel, rpcAddress, profiling, env };
}

function pluginFromModule(spec: string, mod: Record<string, unknown>, config: ResolvedConfig): Plugin {
  for (const candidate of [mod.default, mod.plugin, mod.createPlugin]) {
    if (typeof candidate === 'function') {
      return (candidate as (o: object) => Plugin)({ env: config.env, rpcAddress: config.rpcAddress });
    }
    if (typeof candidate === 'object' && candidate !== null && 'ops' in candidate) return candidate as Plugin;
  }
  throw new VaccelError(
    'EINVAL',
    `module ${spec} exports no plugin (expected a default export, plugin or createPlugin)`,
  );
}

/** Modules registered in code (a bundle's own copy of a plugin package), by specifier. */
const knownModules = new Map<string, () => Promise<Record<string, unknown>>>();

/**
 * Makes `spec` (e.g. `@vaccel/remote`) load through `load` instead of a module import: a bundled
 * guest entry registers the RPC plugin it contains, so `VACCEL_RPC_ADDRESS` finds it without a
 * second, unbundled copy.
 */
export function definePluginModule(spec: string, load: () => Promise<Record<string, unknown>>): void {
  knownModules.set(spec, load);
}

/**
 * Loads a plugin from a module specifier or path; a factory export gets `{ env, rpcAddress }`. Bare specifiers resolve from this package and
 * then from the current directory, so an application's own plugin packages are found.
 * @throws VaccelError `ENOENT` when the module cannot be found, `EINVAL` when it exports no plugin.
 */
export async function loadPluginModule(spec: string, config: ResolvedConfig): Promise<Plugin> {
  const known = knownModules.get(spec);
  if (known) return pluginFromModule(spec, await known(), config);
  const isPath = spec.startsWith('.') || isAbsolute(spec);
  const attempts = isPath
    ? [pathToFileURL(resolve(spec)).href]
    : [spec, () => pathToFileURL(createRequire(resolve('noop.js')).resolve(spec)).href];
  let lastError: unknown;
  for (const attempt of attempts) {
    try {
      const mod = (await import(typeof attempt === 'string' ? attempt : attempt())) as Record<
        string,
        unknown
      >;
      return pluginFromModule(spec, mod, config);
    } catch (error) {
      if ((error as { code?: string }).code === 'EINVAL') throw error;
      lastError = error;
    }
  }
  const why = String((lastError as Error)?.message ?? lastError).split('\n')[0];
  throw new VaccelError('ENOENT', `cannot load plugin module ${spec}: ${why}`, { cause: lastError });
}

/**
 * Opens the runtime a command runs on: the plugins named by --plugins, else VACCEL_PLUGINS, else
 * the embedded default (the builtin plugins and, when installed, the ONNX plugin).
 * @module
 */
import { type Plugin, splitList, Vaccel } from '@vaccel/core';
import type { Io } from './io.js';

/** Flags that shape the runtime. */
export interface RuntimeFlags {
  plugins?: string | undefined;
  'log-level'?: string | undefined;
}

/** Opens a runtime for one command. */
export async function openRuntime(io: Io, flags: RuntimeFlags): Promise<Vaccel> {
  return Vaccel.open({
    env: io.env,
    plugins: flags.plugins !== undefined ? splitList(flags.plugins) : await defaultPlugins(io),
    ...(flags['log-level'] !== undefined ? { logLevel: flags['log-level'] } : {}),
  });
}

const BUILTIN = ['noop', 'crypto', 'sgemm-js', 'exec'];

/**
 * The embedded default: the builtin plugins plus the ONNX plugin (classification, model ops, fast
 * sgemm) when it is installed. With VACCEL_PLUGINS or an agent address set, the runtime decides.
 */
async function defaultPlugins(io: Io): Promise<(Plugin | string)[] | undefined> {
  if (io.env.VACCEL_PLUGINS || io.env.VACCEL_RPC_ADDRESS || io.env.VACCEL_RPC_ADDR) return undefined;
  try {
    const { onnxPlugin } = await import('@vaccel/plugin-onnx');
    return [...BUILTIN, onnxPlugin({ env: io.env })];
  } catch (error) {
    if ((error as NodeJS.ErrnoException)?.code !== 'ERR_MODULE_NOT_FOUND') throw error;
    return BUILTIN;
  }
}

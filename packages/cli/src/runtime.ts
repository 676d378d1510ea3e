/**
 * Opens the runtime a command runs on: the plugins named by --plugins, else VACCEL_PLUGINS, else
 * the embedded default (the builtin plugins and the ONNX plugin).
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

/**
 * The embedded default: the builtin plugins plus the ONNX plugin (classification, model ops, fast
 * sgemm). With VACCEL_PLUGINS or an agent address set, the runtime decides.
 */
async function defaultPlugins(io: Io): Promise<(Plugin | string)[] | undefined> {
  if (io.env.VACCEL_PLUGINS || io.env.VACCEL_RPC_ADDRESS || io.env.VACCEL_RPC_ADDR) return undefined;
  // Loaded lazily: onnxruntime and sharp take a while to load, and most commands need neither.
  return (await import('@vaccel/plugin-onnx')).hostPlugins(io.env);
}

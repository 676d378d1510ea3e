/**
 * Opens the runtime a command runs on: the plugins named by --plugins, else VACCEL_PLUGINS, else
 * the default set (the builtin plugins; host plugins join as they become available).
 * @module
 */
import { splitList, Vaccel } from '@vaccel/core';
import type { Io } from './io.js';

/** Flags that shape the runtime. */
export interface RuntimeFlags {
  plugins?: string | undefined;
  'log-level'?: string | undefined;
}

/** Opens a runtime for one command. */
export function openRuntime(io: Io, flags: RuntimeFlags): Promise<Vaccel> {
  return Vaccel.open({
    env: io.env,
    ...(flags.plugins !== undefined ? { plugins: splitList(flags.plugins) } : {}),
    ...(flags['log-level'] !== undefined ? { logLevel: flags['log-level'] } : {}),
  });
}

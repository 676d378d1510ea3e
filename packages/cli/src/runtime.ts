/**
 * Opens the runtime a command runs on: the plugins named by --plugins, else VACCEL_PLUGINS, else
 * the embedded default (the builtin plugins and the ONNX plugin).
 * @module
 */
import { type Plugin, splitList, summarizeProfile, Vaccel } from '@vaccel/core';
import type { Io } from './io.js';

/** Flags that shape the runtime. */
export interface RuntimeFlags {
  plugins?: string | undefined;
  'log-level'?: string | undefined;
  profile?: boolean | undefined;
}

/** Opens a runtime for one command; with --profile, closing it prints the profiling regions. */
export async function openRuntime(io: Io, flags: RuntimeFlags): Promise<Vaccel> {
  const vaccel = await Vaccel.open({
    env: io.env,
    plugins: flags.plugins !== undefined ? splitList(flags.plugins) : await defaultPlugins(io),
    ...(flags['log-level'] !== undefined ? { logLevel: flags['log-level'] } : {}),
    ...(flags.profile ? { profiling: true } : {}),
  });
  if (flags.profile) {
    const close = vaccel[Symbol.asyncDispose].bind(vaccel);
    // Commands hold the runtime with `await using`: their sessions are released by then.
    Object.defineProperty(vaccel, Symbol.asyncDispose, {
      value: async () => {
        const rows = summarizeProfile(await vaccel.profile());
        io.stderr.write(`${formatProfile(rows)}\n`);
        await close();
      },
    });
  }
  return vaccel;
}

/** The profile summary as a table. */
export function formatProfile(rows: ReturnType<typeof summarizeProfile>): string {
  if (rows.length === 0) return 'profile: no regions';
  const width = Math.max(...rows.map((r) => r.name.length), 6);
  return [
    `${'region'.padEnd(width)}  count   total ms    mean ms`,
    ...rows.map(
      (r) =>
        `${r.name.padEnd(width)}  ${String(r.count).padStart(5)}  ${r.totalMs.toFixed(3).padStart(9)}  ${r.meanMs.toFixed(3).padStart(9)}`,
    ),
  ].join('\n');
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

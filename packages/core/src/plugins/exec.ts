/**
 * The exec plugin: runs exported functions of JavaScript modules on the host — only those on an
 * explicit allowlist. A guest can name any module; without the allowlist that would be remote
 * code execution, so everything not listed is refused with `EPERM`.
 *
 * Allowlist entries are module paths (absolute, or relative to the working directory) or bare
 * package names, optionally with `#function` to allow one export only. The function is called as
 * `fn(read, write, ctx)` with the user's raw args and may be async.
 * @module
 */
import { realpathSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Arg } from '../api/arg.js';
import { VaccelError } from '../api/error.js';
import { OpType } from '../api/op.js';
import { unpackExec } from '../ops/exec.js';
import { splitList } from '../runtime/config.js';
import { type OpContext, type Plugin, PluginType } from '../runtime/plugin.js';

/** A function the exec plugin can run. */
export type ExecFunction = (read: readonly Arg[], write: Arg[], ctx: OpContext) => unknown;

/** Options of {@link execPlugin}. */
export interface ExecPluginOptions {
  /** Allowed modules (`/abs/mod.js`, `./mod.js`, `pkg`) or functions (`/abs/mod.js#fn`). Default: `VACCEL_EXEC_ALLOWLIST`. */
  allow?: readonly string[];
  env?: Readonly<Record<string, string | undefined>>;
}

const isPath = (spec: string): boolean => spec.startsWith('.') || isAbsolute(spec);

/** Canonical form of a module spec: real absolute path for paths, as-is for package names. */
function canonical(spec: string): string {
  if (!isPath(spec)) return spec;
  const absolute = resolve(spec);
  try {
    return realpathSync(absolute);
  } catch {
    return absolute;
  }
}

/** Creates the exec plugin. */
export function execPlugin(options: ExecPluginOptions = {}): Plugin {
  const entries = options.allow ?? splitList((options.env ?? process.env).VACCEL_EXEC_ALLOWLIST);
  const allowed = new Map<string, Set<string> | 'all'>();
  for (const entry of entries) {
    const hash = entry.lastIndexOf('#');
    const module = canonical(hash > 0 ? entry.slice(0, hash) : entry);
    const current = allowed.get(module);
    if (hash <= 0) allowed.set(module, 'all');
    else if (current !== 'all') allowed.set(module, (current ?? new Set()).add(entry.slice(hash + 1)));
  }
  return {
    name: 'exec',
    version: '0.1.0',
    types: PluginType.Cpu | PluginType.Generic,
    ops: {
      [OpType.Exec]: async ({ read, write }, ctx) => {
        const call = unpackExec(read, write);
        const module = canonical(call.library);
        const rule = allowed.get(module);
        if (rule === undefined || (rule !== 'all' && !rule.has(call.symbol))) {
          throw new VaccelError('EPERM', `exec: ${call.library}#${call.symbol} is not on the exec allowlist`);
        }
        let exports: Record<string, unknown>;
        try {
          exports = (await import(isPath(module) ? pathToFileURL(module).href : module)) as Record<
            string,
            unknown
          >;
        } catch (cause) {
          throw new VaccelError('ENOENT', `exec: cannot load ${call.library}`, { cause });
        }
        const fn = Object.hasOwn(exports, call.symbol) ? exports[call.symbol] : undefined;
        if (typeof fn !== 'function')
          throw new VaccelError('ENOENT', `exec: ${call.library} exports no function ${call.symbol}`);
        await (fn as ExecFunction)(call.read, call.write, ctx);
      },
    },
  };
}

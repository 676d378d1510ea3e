/**
 * The exec plugin: runs exported functions of JavaScript modules on the host — only those on an
 * explicit allowlist. A guest can name any module; without the allowlist that would be remote
 * code execution, so everything not listed is refused with `EPERM`.
 *
 * Allowlist entries are module paths (absolute, or relative to the working directory) or bare
 * package names, optionally with `#function` to allow one export only. The function is called as
 * `fn(read, write, ctx)` with the user's raw args and may be async.
 *
 * EXEC_WITH_RESOURCE runs a function of a module the guest uploaded as a LIB resource (one `.js` or
 * `.mjs` blob, self-contained ESM). Uploaded code runs only when the sha256 of its bytes is on the
 * resource allowlist (`VACCEL_EXEC_RESOURCE_ALLOWLIST`: hex digests, optionally `#function`); the
 * host operator reviews a module once and allows exactly those bytes.
 * @module
 */
import { createHash } from 'node:crypto';
import { realpathSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Arg } from '../api/arg.js';
import { VaccelError } from '../api/error.js';
import { OpType } from '../api/op.js';
import { unpackExec, unpackExecWithResource } from '../ops/exec.js';
import { splitList } from '../runtime/config.js';
import { type OpContext, type Plugin, PluginType } from '../runtime/plugin.js';
import { ResourceType } from '../runtime/resource.js';

/** A function the exec plugin can run. */
export type ExecFunction = (read: readonly Arg[], write: Arg[], ctx: OpContext) => unknown;

/** Options of {@link execPlugin}. */
export interface ExecPluginOptions {
  /** Allowed modules (`/abs/mod.js`, `./mod.js`, `pkg`) or functions (`/abs/mod.js#fn`). Default: `VACCEL_EXEC_ALLOWLIST`. */
  allow?: readonly string[];
  /** sha256 (hex) of uploaded modules allowed, optionally `#function`. Default: `VACCEL_EXEC_RESOURCE_ALLOWLIST`. */
  allowResources?: readonly string[];
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

type Rules = Map<string, Set<string> | 'all'>;

/** Parses `module` / `module#function` entries into rules, keys normalised by `key`. */
function rulesOf(entries: readonly string[], key: (module: string) => string): Rules {
  const rules: Rules = new Map();
  for (const entry of entries) {
    const hash = entry.lastIndexOf('#');
    const module = key(hash > 0 ? entry.slice(0, hash) : entry);
    const current = rules.get(module);
    if (hash <= 0) rules.set(module, 'all');
    else if (current !== 'all') rules.set(module, (current ?? new Set()).add(entry.slice(hash + 1)));
  }
  return rules;
}

const permits = (rules: Rules, module: string, symbol: string): boolean => {
  const rule = rules.get(module);
  return rule !== undefined && (rule === 'all' || rule.has(symbol));
};

/** The exported function `symbol` of loaded `exports`. @throws VaccelError `ENOENT`. */
function exported(exports: Record<string, unknown>, symbol: string, what: string): ExecFunction {
  const fn = Object.hasOwn(exports, symbol) ? exports[symbol] : undefined;
  if (typeof fn !== 'function') throw new VaccelError('ENOENT', `${what} exports no function ${symbol}`);
  return fn as ExecFunction;
}

/** Creates the exec plugin. */
export function execPlugin(options: ExecPluginOptions = {}): Plugin {
  const env = options.env ?? process.env;
  const allowed = rulesOf(options.allow ?? splitList(env.VACCEL_EXEC_ALLOWLIST), canonical);
  const allowedResources = rulesOf(
    options.allowResources ?? splitList(env.VACCEL_EXEC_RESOURCE_ALLOWLIST),
    (d) => d.toLowerCase(),
  );
  const uploaded = new Map<string, Promise<Record<string, unknown>>>(); // by sha256 of the module
  return {
    name: 'exec',
    version: '0.1.0',
    types: PluginType.Cpu | PluginType.Generic,
    ops: {
      [OpType.Exec]: async ({ read, write }, ctx) => {
        const call = unpackExec(read, write);
        const module = canonical(call.library);
        if (!permits(allowed, module, call.symbol))
          throw new VaccelError('EPERM', `exec: ${call.library}#${call.symbol} is not on the exec allowlist`);
        let exports: Record<string, unknown>;
        try {
          exports = (await import(isPath(module) ? pathToFileURL(module).href : module)) as Record<
            string,
            unknown
          >;
        } catch (cause) {
          throw new VaccelError('ENOENT', `exec: cannot load ${call.library}`, { cause });
        }
        await exported(exports, call.symbol, `exec: ${call.library}`)(call.read, call.write, ctx);
      },
      [OpType.ExecWithResource]: async ({ read, write }, ctx) => {
        const call = unpackExecWithResource(read, write);
        let resource: ReturnType<typeof ctx.resource>;
        try {
          resource = ctx.resource(call.resourceId);
        } catch (cause) {
          throw new VaccelError(
            'EINVAL',
            `exec_with_resource: resource ${call.resourceId} is not registered with this session`,
            { cause },
          );
        }
        if (resource.type !== ResourceType.Lib)
          throw new VaccelError(
            'EINVAL',
            `exec_with_resource: resource ${call.resourceId} is not a LIB resource`,
          );
        const scripts = resource.blobs.filter((b) => /\.m?js$/.test(b.name));
        if (scripts.length !== 1)
          throw new VaccelError(
            'EINVAL',
            `exec_with_resource: a LIB resource needs exactly one .js or .mjs file, it has ${scripts.length}`,
          );
        const source = scripts[0]!.data;
        const digest = createHash('sha256').update(source).digest('hex');
        if (!permits(allowedResources, digest, call.symbol))
          throw new VaccelError(
            'EPERM',
            `exec_with_resource: module sha256 ${digest}#${call.symbol} is not on the exec resource allowlist`,
          );
        let module = uploaded.get(digest);
        if (!module) {
          // A data: URL imports the exact bytes that were hashed, with no file for anyone to swap.
          module = import(`data:text/javascript;base64,${Buffer.from(source).toString('base64')}`) as Promise<
            Record<string, unknown>
          >;
          uploaded.set(digest, module);
          module.catch(() => uploaded.delete(digest));
        }
        let exports: Record<string, unknown>;
        try {
          exports = await module;
        } catch (cause) {
          throw new VaccelError(
            'ENOEXEC',
            `exec_with_resource: the module does not load: ${(cause as Error).message}`,
            { cause },
          );
        }
        await exported(exports, call.symbol, `exec_with_resource: module ${digest.slice(0, 12)}`)(
          call.read,
          call.write,
          ctx,
        );
      },
    },
  };
}

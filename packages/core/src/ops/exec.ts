/**
 * EXEC: run a named function from a library on the host (upstream op 1).
 *
 * Genop layout — read: library (STRING), symbol (STRING), then the user's read args; write: the
 * user's write args, passed through. In vaccel-ts a "library" is a JavaScript module and the symbol
 * one of its exported functions, called as `fn(read, write, ctx)`; the exec plugin only runs
 * functions on an explicit allowlist.
 *
 * EXEC_WITH_RESOURCE (upstream op 2) — read: resource id (INT64: a LIB resource registered with the
 * session), symbol (STRING), then the user's read args; write: the user's write args.
 * @module
 */
import { type Arg, Args, ReadArg } from '../api/arg.js';
import { VaccelError } from '../api/error.js';

/** An unpacked exec call. */
export interface ExecArgs {
  library: string;
  symbol: string;
  read: readonly Arg[];
  write: Arg[];
}

export function packExec(
  library: string,
  symbol: string,
  read: readonly Arg[],
  write: Arg[],
): { read: Arg[]; write: Arg[] } {
  return { read: [Args.string(library), Args.string(symbol), ...read], write };
}

export function unpackExec(read: readonly Arg[], write: Arg[]): ExecArgs {
  if (read.length < 2)
    throw new VaccelError('EINVAL', `exec needs a library and a symbol, got ${read.length} read args`);
  return {
    library: ReadArg.string(read[0], 'exec library'),
    symbol: ReadArg.string(read[1], 'exec symbol'),
    read: read.slice(2),
    write,
  };
}

/** An unpacked exec_with_resource call. */
export interface ExecWithResourceArgs {
  resourceId: number;
  symbol: string;
  read: readonly Arg[];
  write: Arg[];
}

export function packExecWithResource(
  resourceId: number,
  symbol: string,
  read: readonly Arg[],
  write: Arg[],
): { read: Arg[]; write: Arg[] } {
  return { read: [Args.int64(resourceId), Args.string(symbol), ...read], write };
}

export function unpackExecWithResource(read: readonly Arg[], write: Arg[]): ExecWithResourceArgs {
  if (read.length < 2)
    throw new VaccelError(
      'EINVAL',
      `exec_with_resource needs a resource id and a symbol, got ${read.length} read args`,
    );
  const resourceId = ReadArg.int64(read[0], 'exec_with_resource resource id');
  if (resourceId <= 0)
    throw new VaccelError('EINVAL', `exec_with_resource: resource id must be > 0, got ${resourceId}`);
  return {
    resourceId,
    symbol: ReadArg.string(read[1], 'exec_with_resource symbol'),
    read: read.slice(2),
    write,
  };
}

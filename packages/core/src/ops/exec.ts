/**
 * EXEC: run a named function from a library on the host (upstream op 1).
 *
 * Genop layout — read: library (STRING), symbol (STRING), then the user's read args; write: the
 * user's write args, passed through. In vaccel-ts a "library" is a JavaScript module and the symbol
 * one of its exported functions, called as `fn(read, write, ctx)`; the exec plugin only runs
 * functions on an explicit allowlist.
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

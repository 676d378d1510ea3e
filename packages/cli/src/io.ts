/**
 * What a command needs from the outside world, so commands run the same from the shell and in
 * tests, plus the shared helpers for parsing and printing.
 * @module
 */
import { type ParseArgsConfig, parseArgs } from 'node:util';
import { isVaccelError } from '@vaccel/core';

/** Streams and environment of one CLI run. */
export interface Io {
  stdin: NodeJS.ReadableStream & { isTTY?: boolean };
  stdout: NodeJS.WritableStream & { isTTY?: boolean };
  stderr: NodeJS.WritableStream;
  env: Readonly<Record<string, string | undefined>>;
}

/** A usage mistake: printed with a pointer to --help, exit code 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** Options every command accepts. */
export const commonOptions = {
  help: { type: 'boolean', short: 'h' },
  json: { type: 'boolean' },
  plugins: { type: 'string' },
  'log-level': { type: 'string' },
  profile: { type: 'boolean' },
} as const satisfies ParseArgsConfig['options'];

type Options = NonNullable<ParseArgsConfig['options']>;
/** What {@link parse} returns for a command's options. */
export type Parsed<O extends Options> = ReturnType<
  typeof parseArgs<{ options: typeof commonOptions & O; allowPositionals: true; strict: true }>
>;

/** util.parseArgs with strict checking, turning its errors into {@link UsageError}s. */
export function parse<O extends Options>(args: string[], options: O, allowPositionals = false): Parsed<O> {
  try {
    return parseArgs({ args, options: { ...commonOptions, ...options }, allowPositionals, strict: true });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

/** Parses a positive integer option. */
export function positiveInt(value: string | undefined, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n <= 0)
    throw new UsageError(`--${name} must be a positive integer, got ${value}`);
  return n;
}

/** Parses a hex option into bytes. */
export function hexBytes(value: string | undefined, name: string): Uint8Array | undefined {
  if (value === undefined) return undefined;
  const clean = value.replace(/^0x/i, '');
  if (!/^([0-9a-f]{2})*$/i.test(clean))
    throw new UsageError(`--${name} must be hex digits (an even number of them)`);
  return new Uint8Array(Buffer.from(clean, 'hex'));
}

/** Writes one line to stdout. */
export function println(io: Io, text = ''): void {
  io.stdout.write(`${text}\n`);
}

/** Prints a value as JSON on stdout. */
export function printJson(io: Io, value: unknown): void {
  println(io, JSON.stringify(value, null, 2));
}

/** Prints an error and returns the exit code for it. */
export function reportError(io: Io, error: unknown, json: boolean): number {
  if (error instanceof UsageError) {
    io.stderr.write(`vaccel: ${error.message}\nTry 'vaccel --help'.\n`);
    return 2;
  }
  const code = isVaccelError(error) ? error.code : undefined;
  const message = (error as Error)?.message ?? String(error);
  if (json) io.stderr.write(`${JSON.stringify({ error: { code: code ?? 'EUNKNOWN', message } })}\n`);
  else io.stderr.write(`vaccel: ${message}${code ? ` (${code})` : ''}\n`);
  return 1;
}

/** Median and percentile of samples (ms). */
export function stats(samples: number[]): { median: number; p99: number; min: number } {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
  return { median: at(0.5), p99: at(0.99), min: sorted[0]! };
}

/**
 * What the backends' commands share: argument parsing with `--help` and `--log-level`, a pino
 * logger on stderr, and running until SIGTERM/SIGINT.
 * @module
 */
import { type ParseArgsConfig, parseArgs } from 'node:util';
import { isVaccelError, LogLevel, logLevelName, parseLogLevel } from '@vaccel/core';
import pino, { type Logger } from 'pino';

/** A running backend, as a command sees it. */
export interface Daemon {
  stats(): object;
  close(): Promise<void>;
}

type Options = NonNullable<ParseArgsConfig['options']>;
type Values = Record<string, string | boolean | undefined>;

/**
 * Runs a backend command: parses `argv` against `options` (plus `--log-level` and `--help`), then
 * `start` (which returns an error message for bad arguments), until a signal.
 * @returns the exit code (2 for bad arguments, 0 after a signal).
 */
export async function runDaemon(
  name: string,
  usage: string,
  options: Options,
  argv: string[],
  start: (values: Values, logger: Logger) => Promise<Daemon | string>,
): Promise<number> {
  let values: Values;
  try {
    values = parseArgs({
      args: argv,
      strict: true,
      options: { ...options, 'log-level': { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    }).values as Values;
  } catch (error) {
    process.stderr.write(`${name}: ${(error as Error).message}\nTry '${name} --help'.\n`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(`${usage}\n`);
    return 0;
  }
  const fail = (message: string): number => {
    process.stderr.write(`${name}: ${message}\n`);
    return 2;
  };
  const levelText = (values['log-level'] as string | undefined) ?? process.env.VACCEL_LOG_LEVEL;
  const level = levelText ? parseLogLevel(levelText) : LogLevel.Info;
  if (level === undefined) return fail(`log level ${levelText} is not 1-4 or error|warn|info|debug`);
  const logger = pino({ level: logLevelName(level), base: { name } }, pino.destination(2));
  let daemon: Daemon | string;
  try {
    daemon = await start(values, logger);
  } catch (error) {
    return fail(isVaccelError(error) ? `${error.message} (${error.code})` : String(error));
  }
  if (typeof daemon === 'string') return fail(daemon);
  const running = daemon;
  await new Promise<void>((resolve) => {
    const stop = (signal: string): void => {
      logger.info({ signal, ...running.stats() }, 'stopping');
      running.close().finally(resolve);
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
  return 0;
}

/** A positive integer option, undefined when absent, or the message saying why not. */
export function positiveOption(values: Values, name: string): number | undefined | string {
  const text = values[name];
  if (text === undefined) return undefined;
  const value = Number(text);
  return Number.isSafeInteger(value) && value > 0
    ? value
    : `--${name} must be a positive integer, got ${String(text)}`;
}

/**
 * A minimal leveled logger. Core has no dependencies, so this writes plain lines to stderr; hosts
 * (the agent) pass their own {@link Logger}, e.g. pino.
 * @module
 */

/** Log levels, numbered as upstream's `VACCEL_LOG_LEVEL` (1 = errors only … 4 = debug). */
export const LogLevel = Object.freeze({ Error: 1, Warn: 2, Info: 3, Debug: 4 } as const);
/** A level number from {@link LogLevel}. */
export type LogLevel = (typeof LogLevel)[keyof typeof LogLevel];

/** The logger interface the runtime and plugins use (pino's shape: fields first, then message). */
export interface Logger {
  error(fields: object, message?: string): void;
  warn(fields: object, message?: string): void;
  info(fields: object, message?: string): void;
  debug(fields: object, message?: string): void;
  /** A logger whose lines carry `bindings` too. */
  child(bindings: Record<string, unknown>): Logger;
}

const names = ['error', 'warn', 'info', 'debug'] as const;

/**
 * Parses a level given as a number 1–4 or a name (`error`, `warn`, `info`, `debug`).
 * @returns undefined when `value` is neither.
 */
export function parseLogLevel(value: string | number | undefined): LogLevel | undefined {
  if (value === undefined || value === '') return undefined;
  const index = names.indexOf(String(value).toLowerCase() as (typeof names)[number]);
  if (index >= 0) return (index + 1) as LogLevel;
  const n = Number(value);
  return Number.isInteger(n) && n >= 1 && n <= 4 ? (n as LogLevel) : undefined;
}

/** The name of a level (`error`, `warn`, `info`, `debug`), as pino and most loggers spell it. */
export function logLevelName(level: LogLevel): (typeof names)[number] {
  return names[level - 1]!;
}

/** A logger that prints `[vaccel] level: message {fields}` lines to stderr at or below `level`. */
export function createStderrLogger(level: LogLevel, bindings: Record<string, unknown> = {}): Logger {
  const line = (at: LogLevel, fields: object, message?: string): void => {
    if (at > level) return;
    const merged = { ...bindings, ...fields };
    const plugin = 'plugin' in merged ? `[${String(merged.plugin)}] ` : '';
    const rest = Object.entries(merged).filter(([key]) => key !== 'plugin');
    const extra = rest.length > 0 ? ` ${JSON.stringify(Object.fromEntries(rest))}` : '';
    process.stderr.write(`[vaccel] ${names[at - 1]}: ${plugin}${message ?? ''}${extra}\n`);
  };
  return {
    error: (fields, message) => line(LogLevel.Error, fields, message),
    warn: (fields, message) => line(LogLevel.Warn, fields, message),
    info: (fields, message) => line(LogLevel.Info, fields, message),
    debug: (fields, message) => line(LogLevel.Debug, fields, message),
    child: (more) => createStderrLogger(level, { ...bindings, ...more }),
  };
}

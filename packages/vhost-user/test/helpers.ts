// Re-exports for the tests, plus a typed error check.
import { isVaccelErrorCode } from '@vaccel/core';
import pino from 'pino';

export * from '@vaccel/vhost-user';
/** True when `error` is a VaccelError with `code`. */
export const isVaccelErrorWithCode = (error: unknown, code: string): boolean =>
  isVaccelErrorCode(error, code as Parameters<typeof isVaccelErrorCode>[1]);

/**
 * A pino logger that keeps its lines (parsed) instead of printing them, and a way to wait for one:
 * tests wait for what the backend says it did, never for a while.
 */
export function logTap(level = 'info'): {
  logger: pino.Logger;
  lines: Record<string, unknown>[];
  /** Resolves once `check(lines)` holds, checked now and at each new line. */
  until(check: (lines: Record<string, unknown>[]) => boolean): Promise<void>;
} {
  const lines: Record<string, unknown>[] = [];
  const waiters = new Set<{ check: () => boolean; resolve: () => void }>();
  const logger = pino(
    { level },
    {
      write(line: string) {
        lines.push(JSON.parse(line) as Record<string, unknown>);
        for (const waiter of waiters) {
          if (!waiter.check()) continue;
          waiters.delete(waiter);
          waiter.resolve();
        }
      },
    },
  );
  return {
    logger,
    lines,
    until: (check) =>
      check(lines)
        ? Promise.resolve()
        : new Promise((resolve) => waiters.add({ check: () => check(lines), resolve })),
  };
}

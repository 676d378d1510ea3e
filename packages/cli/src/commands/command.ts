import type { Io } from '../io.js';

/** One `vaccel` subcommand. */
export interface Command {
  readonly name: string;
  /** One line for the command list. */
  readonly summary: string;
  /** Full --help text. */
  readonly help: string;
  /** Runs it; resolves to the exit code. */
  run(args: string[], io: Io): Promise<number>;
}

/** The options every command's help lists. */
export const COMMON_HELP = `Common options:
  --json               machine-readable output
  --plugins LIST       plugins to load, ':'-separated (default: VACCEL_PLUGINS, else the builtin set)
  --log-level LEVEL    1-4 or error|warn|info|debug (default: VACCEL_LOG_LEVEL, else 1)
  --profile            time each op (upstream's profiling regions; the agent's too when it runs
                       with --profiling) and print the regions on stderr at the end
  -h, --help           this help`;

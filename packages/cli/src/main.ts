/**
 * `vaccel`: run vAccel operations from the shell.
 * @module
 */
import { VACCEL_VERSION } from '@vaccel/core';
import { decryptCommand, encryptCommand } from './commands/cipher.js';
import { classifyCommand } from './commands/classify.js';
import type { Command } from './commands/command.js';
import { noopCommand } from './commands/noop.js';
import { opsCommand } from './commands/ops.js';
import { sgemmCommand } from './commands/sgemm.js';
import { detectCommand, poseCommand, segmentCommand } from './commands/vision.js';
import { type Io, println, reportError } from './io.js';

export type { Io } from './io.js';

const commands: readonly Command[] = [
  detectCommand,
  classifyCommand,
  poseCommand,
  segmentCommand,
  sgemmCommand,
  encryptCommand,
  decryptCommand,
  opsCommand,
  noopCommand,
];

const usage = `Usage: vaccel <command> [options]

Runs vAccel operations on the loaded plugins: in-process by default, or on a host agent when
VACCEL_RPC_ADDRESS is set.

Commands:
${commands.map((c) => `  ${c.name.padEnd(10)} ${c.summary}`).join('\n')}

Run 'vaccel <command> --help' for a command's options.
Environment: VACCEL_PLUGINS, VACCEL_LOG_LEVEL, VACCEL_RPC_ADDRESS, VACCEL_EXEC_ALLOWLIST,
VACCEL_VERSION_IGNORE (1: use an agent that speaks vAccel 0.7, refused by default: its ops are
numbered otherwise).`;

const processIo: Io = {
  stdin: process.stdin,
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
};

/** Runs the CLI with `argv` (without `node` and the script); resolves to the exit code. */
export async function main(argv: string[], io: Io = processIo): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    println(io, usage);
    return name === undefined ? 2 : 0;
  }
  if (name === '--version' || name === '-v') {
    println(io, `vaccel-ts ${VACCEL_VERSION_TS} (vAccel ${VACCEL_VERSION} compatible)`);
    return 0;
  }
  const command = commands.find((c) => c.name === name);
  if (!command) {
    io.stderr.write(`vaccel: unknown command '${name}'\n\n${usage}\n`);
    return 2;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    println(io, command.help);
    return 0;
  }
  try {
    return await command.run(rest, io);
  } catch (error) {
    return reportError(io, error, rest.includes('--json'));
  }
}

const VACCEL_VERSION_TS = '0.1.0';

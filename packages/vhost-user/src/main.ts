/**
 * `vaccel-crypto-backend`: serve a virtio-crypto device to QEMU over vhost-user.
 * @module
 */
import { parseArgs } from 'node:util';
import { isVaccelError, LogLevel, logLevelName, parseLogLevel } from '@vaccel/core';
import pino from 'pino';
import { type CipherEngine, opensslEngine, vaccelEngine } from './engine.js';
import { CryptoBackend } from './server.js';

const usage = `Usage: vaccel-crypto-backend --socket PATH [options]

A vhost-user virtio-crypto backend: QEMU's cryptodev-vhost-user connects to PATH, and the guest
kernel's virtio_crypto driver (algorithm driver virtio_crypto_aes_cbc) gets its AES requests run
on this host.

  -s, --socket PATH        unix socket to listen on (a stale socket file is replaced)
  --engine NAME            openssl (default: the host's OpenSSL via node:crypto) or vaccel
                           (any vAccel plugin with AES; in process, or on --rpc-address)
  --rpc-address ADDR       with --engine vaccel: the agent to send requests to
  --max-connections N      front-ends served at once (default 64)
  --log-level LEVEL        1-4 or error|warn|info|debug (default: VACCEL_LOG_LEVEL, else info)
  -h, --help               this help

QEMU needs shared guest memory and the device, e.g.:
  -object memory-backend-memfd,id=mem,size=1G,share=on -machine memory-backend=mem
  -chardev socket,id=crypto0,path=PATH -object cryptodev-vhost-user,id=cryptodev0,chardev=crypto0
  -device virtio-crypto-pci,cryptodev=cryptodev0

Logs are JSON lines (pino) on stderr. SIGTERM/SIGINT: close every connection and exit.`;

/** Runs the backend until a signal; resolves to the exit code. */
export async function main(argv: string[]): Promise<number> {
  let values: ReturnType<typeof parse>['values'];
  const parse = (args: string[]) =>
    parseArgs({
      args,
      strict: true,
      options: {
        socket: { type: 'string', short: 's' },
        engine: { type: 'string' },
        'rpc-address': { type: 'string' },
        'max-connections': { type: 'string' },
        'log-level': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  try {
    values = parse(argv).values;
  } catch (error) {
    process.stderr.write(
      `vaccel-crypto-backend: ${(error as Error).message}\nTry 'vaccel-crypto-backend --help'.\n`,
    );
    return 2;
  }
  if (values.help) {
    process.stdout.write(`${usage}\n`);
    return 0;
  }
  const fail = (message: string): number => {
    process.stderr.write(`vaccel-crypto-backend: ${message}\n`);
    return 2;
  };
  if (!values.socket) return fail('--socket PATH is required');
  const engineName = values.engine ?? 'openssl';
  if (engineName !== 'openssl' && engineName !== 'vaccel')
    return fail(`--engine must be openssl or vaccel, got ${engineName}`);
  if (values['rpc-address'] && engineName !== 'vaccel') return fail('--rpc-address needs --engine vaccel');
  const maxConnections = values['max-connections'] ? Number(values['max-connections']) : undefined;
  if (maxConnections !== undefined && (!Number.isSafeInteger(maxConnections) || maxConnections <= 0))
    return fail(`--max-connections must be a positive integer, got ${values['max-connections']}`);
  const levelText = values['log-level'] ?? process.env.VACCEL_LOG_LEVEL;
  const level = levelText ? parseLogLevel(levelText) : LogLevel.Info;
  if (level === undefined) return fail(`log level ${levelText} is not 1-4 or error|warn|info|debug`);
  const logger = pino(
    { level: logLevelName(level), base: { name: 'vaccel-crypto-backend' } },
    pino.destination(2),
  );
  let backend: CryptoBackend;
  try {
    const engine: CipherEngine =
      engineName === 'vaccel'
        ? await vaccelEngine(values['rpc-address'] ? { rpcAddress: values['rpc-address'] } : {})
        : opensslEngine();
    backend = await CryptoBackend.listen({ socket: values.socket, engine, logger, maxConnections });
  } catch (error) {
    return fail(isVaccelError(error) ? `${error.message} (${error.code})` : String(error));
  }
  await new Promise<void>((resolve) => {
    const stop = (signal: string): void => {
      logger.info({ signal, ...backend.stats() }, 'stopping');
      backend.close().finally(resolve);
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
  return 0;
}

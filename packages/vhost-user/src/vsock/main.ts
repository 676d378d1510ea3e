/**
 * `vaccel-vsock-backend`: serve a virtio-vsock device to QEMU over vhost-user, with Firecracker's
 * hybrid-vsock addresses on the host.
 * @module
 */
import { parseArgs } from 'node:util';
import { isVaccelError, LogLevel, logLevelName, parseLogLevel } from '@vaccel/core';
import pino from 'pino';
import { VsockBackend } from './backend.js';

const usage = `Usage: vaccel-vsock-backend --socket PATH --uds PATH [options]

A vhost-user virtio-vsock backend with Firecracker's hybrid vsock: QEMU's vhost-user-vsock-pci
connects to --socket; a guest connecting to CID 2 port P (AF_VSOCK) reaches the unix socket
<uds>_P on this host (where vaccel-agent listens: --address unix://<uds>_P), and host
processes reach the guest's port P by connecting to <uds> and writing "CONNECT P\\n".

  -s, --socket PATH        vhost-user socket to listen on (a stale socket file is replaced)
  -u, --uds PATH           hybrid-vsock socket (guest port P goes to PATH_P)
  --guest-cid N            the guest's CID (default 3)
  --max-connections N      vsock connections open at once (default 256)
  --buffer-bytes N         receive buffer per connection (default 262144)
  --log-level LEVEL        1-4 or error|warn|info|debug (default: VACCEL_LOG_LEVEL, else info)
  -h, --help               this help

QEMU needs shared guest memory and the device, e.g.:
  -object memory-backend-memfd,id=mem,size=1G,share=on -machine memory-backend=mem
  -chardev socket,id=vsock0,path=PATH -device vhost-user-vsock-pci,chardev=vsock0

Logs are JSON lines (pino) on stderr. SIGTERM/SIGINT: close every connection and exit.`;

const positive = (text: string | undefined, name: string): number | undefined | string => {
  if (text === undefined) return undefined;
  const value = Number(text);
  return Number.isSafeInteger(value) && value > 0 ? value : `${name} must be a positive integer, got ${text}`;
};

/** Runs the backend until a signal; resolves to the exit code. */
export async function main(argv: string[]): Promise<number> {
  let values: ReturnType<typeof parse>['values'];
  const parse = (args: string[]) =>
    parseArgs({
      args,
      strict: true,
      options: {
        socket: { type: 'string', short: 's' },
        uds: { type: 'string', short: 'u' },
        'guest-cid': { type: 'string' },
        'max-connections': { type: 'string' },
        'buffer-bytes': { type: 'string' },
        'log-level': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  try {
    values = parse(argv).values;
  } catch (error) {
    process.stderr.write(
      `vaccel-vsock-backend: ${(error as Error).message}\nTry 'vaccel-vsock-backend --help'.\n`,
    );
    return 2;
  }
  if (values.help) {
    process.stdout.write(`${usage}\n`);
    return 0;
  }
  const fail = (message: string): number => {
    process.stderr.write(`vaccel-vsock-backend: ${message}\n`);
    return 2;
  };
  if (!values.socket) return fail('--socket PATH is required');
  if (!values.uds) return fail('--uds PATH is required');
  const guestCid = positive(values['guest-cid'], '--guest-cid');
  const maxConnections = positive(values['max-connections'], '--max-connections');
  const bufferBytes = positive(values['buffer-bytes'], '--buffer-bytes');
  for (const value of [guestCid, maxConnections, bufferBytes])
    if (typeof value === 'string') return fail(value);
  const levelText = values['log-level'] ?? process.env.VACCEL_LOG_LEVEL;
  const level = levelText ? parseLogLevel(levelText) : LogLevel.Info;
  if (level === undefined) return fail(`log level ${levelText} is not 1-4 or error|warn|info|debug`);
  const logger = pino(
    { level: logLevelName(level), base: { name: 'vaccel-vsock-backend' } },
    pino.destination(2),
  );
  let backend: VsockBackend;
  try {
    backend = await VsockBackend.listen({
      socket: values.socket,
      uds: values.uds,
      logger,
      ...(guestCid === undefined ? {} : { guestCid: guestCid as number }),
      ...(maxConnections === undefined ? {} : { maxConnections: maxConnections as number }),
      ...(bufferBytes === undefined ? {} : { bufferBytes: bufferBytes as number }),
    });
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

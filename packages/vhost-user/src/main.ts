/**
 * `vaccel-crypto-backend`: serve a virtio-crypto device to QEMU over vhost-user.
 * @module
 */
import { positiveOption, runDaemon } from './daemon.js';
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
export function main(argv: string[]): Promise<number> {
  return runDaemon(
    'vaccel-crypto-backend',
    usage,
    {
      socket: { type: 'string', short: 's' },
      engine: { type: 'string' },
      'rpc-address': { type: 'string' },
      'max-connections': { type: 'string' },
    },
    argv,
    async (values, logger) => {
      if (!values.socket) return '--socket PATH is required';
      const engineName = (values.engine as string | undefined) ?? 'openssl';
      if (engineName !== 'openssl' && engineName !== 'vaccel')
        return `--engine must be openssl or vaccel, got ${engineName}`;
      if (values['rpc-address'] && engineName !== 'vaccel') return '--rpc-address needs --engine vaccel';
      const maxConnections = positiveOption(values, 'max-connections');
      if (typeof maxConnections === 'string') return maxConnections;
      const engine: CipherEngine =
        engineName === 'vaccel'
          ? await vaccelEngine(values['rpc-address'] ? { rpcAddress: values['rpc-address'] as string } : {})
          : opensslEngine();
      return CryptoBackend.listen({ socket: values.socket as string, engine, logger, maxConnections });
    },
  );
}

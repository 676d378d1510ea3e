/**
 * `vaccel-vsock-backend`: serve a virtio-vsock device to QEMU over vhost-user, with Firecracker's
 * hybrid-vsock addresses on the host.
 * @module
 */
import { positiveOption, runDaemon } from '../daemon.js';
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

/** Runs the backend until a signal; resolves to the exit code. */
export function main(argv: string[]): Promise<number> {
  return runDaemon(
    'vaccel-vsock-backend',
    usage,
    {
      socket: { type: 'string', short: 's' },
      uds: { type: 'string', short: 'u' },
      'guest-cid': { type: 'string' },
      'max-connections': { type: 'string' },
      'buffer-bytes': { type: 'string' },
    },
    argv,
    async (values, logger) => {
      if (!values.socket) return '--socket PATH is required';
      if (!values.uds) return '--uds PATH is required';
      const guestCid = positiveOption(values, 'guest-cid');
      const maxConnections = positiveOption(values, 'max-connections');
      const bufferBytes = positiveOption(values, 'buffer-bytes');
      for (const value of [guestCid, maxConnections, bufferBytes])
        if (typeof value === 'string') return value;
      return VsockBackend.listen({
        socket: values.socket as string,
        uds: values.uds as string,
        logger,
        ...(guestCid === undefined ? {} : { guestCid: guestCid as number }),
        ...(maxConnections === undefined ? {} : { maxConnections: maxConnections as number }),
        ...(bufferBytes === undefined ? {} : { bufferBytes: bufferBytes as number }),
      });
    },
  );
}

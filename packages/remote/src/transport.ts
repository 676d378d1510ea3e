/**
 * Byte pipes to and from an agent: connect (guest/client side) and listen (agent side).
 * @module
 */
import { lstat, unlink } from 'node:fs/promises';
import { createServer, connect as netConnect, type Server, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { VaccelError } from '@vaccel/core';
import { type Address, formatAddress, parseAddress } from './address.js';
import { openSerialPort } from './serial.js';

/** TLS material for `tls://` addresses (PEM). */
export interface TlsClientOptions {
  /** CA certificate(s) the agent's certificate must chain to (default: the system's). */
  ca?: string | Buffer;
  /** Client certificate and key, for an agent that requires mutual TLS. */
  cert?: string | Buffer;
  key?: string | Buffer;
  /** Name the agent's certificate must carry (default: the address's host). */
  servername?: string;
}

/** Options of {@link connect}. */
export interface ConnectOptions {
  signal?: AbortSignal;
  /** Give up connecting after this many ms (default 5000). */
  timeoutMs?: number;
  /** TLS material for `tls://` addresses. */
  tls?: TlsClientOptions;
}

const noVsock = (address: string): never => {
  throw new VaccelError(
    'ENOTSUP',
    `${address}: Node has no AF_VSOCK sockets; in a Firecracker guest use virtio-serial or a vsock proxy, and on the host listen on unix://<uds>_<port> (hybrid vsock)`,
  );
};

function socketReady(
  socket: Socket,
  address: string,
  options: ConnectOptions,
  ready: 'connect' | 'secureConnect' = 'connect',
): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const timeoutMs = options.timeoutMs ?? 5000;
    const fail = (error: unknown): void => {
      cleanup();
      socket.destroy();
      const code = (error as NodeJS.ErrnoException)?.code ?? '';
      // A certificate the other side did not accept is a trust problem, not an unreachable agent.
      const trust =
        ready === 'secureConnect' &&
        /CERT|SELF_SIGNED|UNABLE_TO|ERR_TLS|ERR_SSL|alert/i.test(`${code} ${(error as Error)?.message}`);
      reject(
        options.signal?.aborted && error === options.signal.reason
          ? error
          : new VaccelError(
              code === 'ETIMEDOUT' ? 'ETIMEDOUT' : trust ? 'EACCES' : 'ECONNRESET',
              trust
                ? `TLS with the agent at ${address} failed: ${(error as Error)?.message ?? error} (check VACCEL_RPC_TLS_CA, and VACCEL_RPC_TLS_CERT/KEY if the agent requires client certificates)`
                : `cannot reach the agent at ${address}: ${(error as Error)?.message ?? error}`,
              { cause: error },
            ),
      );
    };
    const onAbort = (): void => fail(options.signal?.reason);
    const timer = setTimeout(
      () => fail(Object.assign(new Error(`no connection within ${timeoutMs} ms`), { code: 'ETIMEDOUT' })),
      timeoutMs,
    );
    const cleanup = (): void => {
      clearTimeout(timer);
      socket.off('error', fail);
      options.signal?.removeEventListener('abort', onAbort);
    };
    socket.once('error', fail);
    options.signal?.addEventListener('abort', onAbort, { once: true });
    socket.once(ready, () => {
      cleanup();
      resolve(socket);
    });
  });
}

/** Firecracker hybrid vsock, host side: `CONNECT <port>\n` on the VMM's socket, then `OK <id>\n`. */
function hybridHandshake(socket: Socket, port: number, address: string, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    let received = Buffer.alloc(0);
    const fail = (why: string): void => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.destroy();
      reject(new VaccelError('ECONNRESET', `${address}: hybrid vsock handshake failed: ${why}`));
    };
    const timer = setTimeout(() => fail(`no reply within ${timeoutMs} ms`), timeoutMs);
    const onData = (chunk: Buffer): void => {
      received = Buffer.concat([received, chunk]);
      const newline = received.indexOf(0x0a);
      if (newline < 0) {
        if (received.byteLength > 64) fail('reply line too long');
        return;
      }
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('close', onClose);
      const line = received.subarray(0, newline).toString('latin1');
      if (!/^OK \d+$/.test(line)) {
        fail(`VMM answered ${JSON.stringify(line)}`);
        return;
      }
      const rest = received.subarray(newline + 1);
      socket.pause();
      if (rest.byteLength > 0) socket.unshift(rest);
      resolve(socket);
    };
    const onClose = (): void => fail('VMM closed the connection (is a guest listening on that port?)');
    socket.on('data', onData);
    socket.once('close', onClose);
    socket.write(`CONNECT ${port}\n`);
  });
}

/**
 * Connects to an agent address.
 * @throws VaccelError `EINVAL` for a bad address, `ECONNRESET`/`ETIMEDOUT` when unreachable,
 * `ENOTSUP` for AF_VSOCK.
 */
export async function connect(address: string | Address, options: ConnectOptions = {}): Promise<Duplex> {
  const parsed = typeof address === 'string' ? parseAddress(address) : address;
  const text = formatAddress(parsed);
  options.signal?.throwIfAborted();
  switch (parsed.kind) {
    case 'unix':
      return socketReady(netConnect({ path: parsed.path }), text, options);
    case 'tcp':
      return socketReady(netConnect({ host: parsed.host, port: parsed.port, noDelay: true }), text, options);
    case 'tls': {
      // Loaded here: a guest on a unix socket never pays for node:tls.
      const { connect: tlsConnect } = await import('node:tls');
      const { ca, cert, key, servername } = options.tls ?? {};
      const socket = tlsConnect({
        host: parsed.host,
        port: parsed.port,
        ...(ca ? { ca } : {}),
        ...(cert ? { cert } : {}),
        ...(key ? { key } : {}),
        ...(servername || !/^[\d.:]+$/.test(parsed.host) ? { servername: servername ?? parsed.host } : {}),
        minVersion: 'TLSv1.2',
      });
      socket.setNoDelay(true);
      return socketReady(socket, text, options, 'secureConnect');
    }
    case 'hvsock': {
      const socket = await socketReady(netConnect({ path: parsed.path }), text, options);
      return hybridHandshake(socket, parsed.port, text, options.timeoutMs ?? 5000);
    }
    case 'serial':
      return openSerialPort(parsed.path);
    case 'vsock':
      return noVsock(text);
  }
}

/** TLS material for a listener (PEM). */
export interface TlsServerOptions {
  cert: string | Buffer;
  key: string | Buffer;
  /** CA of client certificates: given, clients must present one it signed (mutual TLS). */
  ca?: string | Buffer;
}

/** The mode of the agent's unix sockets: only its own user may connect. */
export const PRIVATE_SOCKET_MODE = 0o600;

/**
 * Runs `create` (synchronous) with the process umask set to `mask`, restored before it returns.
 * A unix socket's file is made by bind(), inside `net.Server#listen` (or the addon's listen),
 * synchronously: a umask around that call alone decides its mode, with no window of wider
 * permissions that a chmod after listening would leave. The umask is process-wide, hence restored
 * before anything else runs (files other threads make meanwhile can only come out narrower).
 */
export function withUmask<T>(mask: number, create: () => T): T {
  const previous = process.umask(mask);
  try {
    return create();
  } finally {
    process.umask(previous);
  }
}

/** Options of {@link listen}. */
export interface ListenOptions {
  /** File mode of a unix socket from its creation (default 0o600: only the agent's user may connect). */
  mode?: number;
  /** Serve TLS: required for `tls://`, and turns `tcp://` into TLS too. */
  tls?: TlsServerOptions;
}

/**
 * Listens on an agent address (unix or tcp; Firecracker hybrid vsock is a unix socket named
 * `<uds>_<port>`). A stale unix socket file is replaced; any other file there is an error.
 */
export async function listen(address: string | Address, options: ListenOptions = {}): Promise<Server> {
  const parsed = typeof address === 'string' ? parseAddress(address) : address;
  const text = formatAddress(parsed);
  const tls = options.tls;
  if (parsed.kind === 'tls' && !tls)
    throw new VaccelError(
      'EINVAL',
      `cannot listen on ${text}: TLS needs a certificate and key (--tls-cert, --tls-key)`,
    );
  if (tls && parsed.kind !== 'tls' && parsed.kind !== 'tcp')
    throw new VaccelError(
      'EINVAL',
      `cannot listen on ${text} with TLS: TLS is for tcp:// and tls:// addresses`,
    );
  const server =
    tls && (parsed.kind === 'tcp' || parsed.kind === 'tls')
      ? (await import('node:tls')).createServer({
          cert: tls.cert,
          key: tls.key,
          minVersion: 'TLSv1.2',
          noDelay: true,
          ...(tls.ca ? { ca: tls.ca, requestCert: true, rejectUnauthorized: true } : {}),
        })
      : createServer({ noDelay: true });
  const listening = (target: Parameters<Server['listen']>[0], umask?: number): Promise<Server> =>
    new Promise((resolve, reject) => {
      server.once('error', (error) =>
        reject(new VaccelError('EIO', `cannot listen on ${text}: ${error.message}`, { cause: error })),
      );
      const start = () => server.listen(target, () => resolve(server));
      if (umask === undefined) start();
      else withUmask(umask, start);
    });
  switch (parsed.kind) {
    case 'unix': {
      if (!parsed.path.startsWith('\0')) {
        const existing = await lstat(parsed.path).catch(() => undefined);
        if (existing && !existing.isSocket())
          throw new VaccelError('EEXIST', `cannot listen on ${text}: a non-socket file is in the way`);
        if (existing) await unlink(parsed.path); // left by an agent that died
      }
      return listening({ path: parsed.path }, 0o777 & ~(options.mode ?? PRIVATE_SOCKET_MODE));
    }
    case 'tcp':
    case 'tls':
      return listening({ host: parsed.host, port: parsed.port });
    case 'vsock':
      return noVsock(text);
    default:
      throw new VaccelError(
        'EINVAL',
        `cannot listen on ${text}: the agent listens on unix:// or tcp:// (for hybrid vsock: unix://<uds>_<port>)`,
      );
  }
}

/**
 * Byte pipes to and from an agent: connect (guest/client side) and listen (agent side).
 * @module
 */
import { lstat, unlink } from 'node:fs/promises';
import { createServer, connect as netConnect, type Server, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { VaccelError } from '@vaccel/core';
import { type Address, formatAddress, parseAddress, VSOCK_CID_ANY } from './address.js';
import { loadAddon } from './memory-addon.js';
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

/**
 * `@vaccel/memory`, for AF_VSOCK (Node has none). Loaded only for a vsock address: a guest on a
 * unix or tcp address never loads the addon, and its cold start stays as it was.
 */
async function vsockSupport(address: string): Promise<typeof import('@vaccel/memory')> {
  const why = await loadAddon();
  if (typeof why === 'string')
    throw new VaccelError(
      'ENOTSUP',
      `${address}: Node has no AF_VSOCK sockets, so vsock needs the @vaccel/memory native addon, but ${process.env.VACCEL_NO_NATIVE === '1' ? 'VACCEL_NO_NATIVE=1 turns it off' : why}; build it with \`npm rebuild @vaccel/memory\` (Linux, python3, make, g++), or use virtio-serial`,
    );
  return import('@vaccel/memory');
}

/** A vsock failure (a system error from the addon) as a VaccelError naming the address. */
function vsockError(error: unknown, address: string, listening: boolean): VaccelError {
  if (error instanceof VaccelError) return error;
  const { code, message } = error as NodeJS.ErrnoException;
  if (error instanceof TypeError || code === 'EINVAL')
    return new VaccelError('EINVAL', `${address}: ${message}`, { cause: error });
  if (code === 'EAFNOSUPPORT')
    return new VaccelError(
      'ENOTSUP',
      `${address}: this kernel has no AF_VSOCK (a VM needs a vsock device and the vsock modules; is there a /dev/vsock?)`,
      { cause: error },
    );
  if (listening) {
    const hint = code === 'EADDRNOTAVAIL' ? ' (not a CID of this machine: listen on vsock://-1:PORT)' : '';
    return new VaccelError('EIO', `cannot listen on ${address}: ${message}${hint}`, { cause: error });
  }
  // ECONNRESET (nothing listens on that port), ENODEV (no route to that CID), EHOSTUNREACH … are
  // all an unreachable agent, as for the other transports.
  const hint = code === 'ENODEV' ? ' (no route to that CID: a guest reaches its host at CID 2)' : '';
  return new VaccelError(
    code === 'ETIMEDOUT' ? 'ETIMEDOUT' : 'ECONNRESET',
    `cannot reach the agent at ${address}: ${message}${hint}`,
    { cause: error },
  );
}

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
 * `vsock://CID:PORT` needs the `@vaccel/memory` addon (loaded for it alone) and gives a `net.Socket`
 * like the unix and tcp ones.
 * @throws VaccelError `EINVAL` for a bad address, `ECONNRESET`/`ETIMEDOUT` when unreachable,
 * `ENOTSUP` for vsock without the addon or without AF_VSOCK in the kernel.
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
    case 'vsock': {
      if (parsed.cid === VSOCK_CID_ANY)
        throw new VaccelError(
          'EINVAL',
          `cannot connect to ${text}: CID -1 (any) is for listening; a guest reaches its host at CID 2`,
        );
      const memory = await vsockSupport(text);
      try {
        return await memory.connectVsock(parsed.cid, parsed.port, options);
      } catch (error) {
        if (options.signal?.aborted && error === options.signal.reason) throw error;
        throw vsockError(error, text, false);
      }
    }
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
 * Listens on an agent address (unix, tcp, or vsock — `vsock://-1:PORT` for every CID, through the
 * `@vaccel/memory` addon; Firecracker hybrid vsock is a unix socket named `<uds>_<port>`). A stale
 * unix socket file is replaced; any other file there is an error. A vsock listener is a
 * `net.Server` too: `address()` gives `vsock://CID:PORT`.
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
    case 'vsock': {
      const memory = await vsockSupport(text);
      try {
        return memory.listenVsock(parsed.cid, parsed.port);
      } catch (error) {
        throw vsockError(error, text, true);
      }
    }
    default:
      throw new VaccelError(
        'EINVAL',
        `cannot listen on ${text}: the agent listens on unix://, tcp://, tls:// or vsock:// (for Firecracker's hybrid vsock: unix://<uds>_<port>)`,
      );
  }
}

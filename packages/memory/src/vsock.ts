/**
 * AF_VSOCK sockets as ordinary `net.Socket`s and `net.Server`s, so everything built for unix
 * sockets (the ttRPC channel's zero-copy `onread` takeover, cork/writev coalescing, backpressure)
 * runs on them unchanged.
 *
 * Node wraps only descriptors libuv recognises (`new net.Socket({ fd })` asks `uv_guess_handle`,
 * which calls an AF_VSOCK socket UNKNOWN and Node refuses it), yet libuv's pipe handle does plain
 * read/write/accept and works on any stream socket. So a descriptor is adopted in three
 * synchronous steps: the addon makes an AF_UNIX placeholder, Node wraps the placeholder (guessed a
 * pipe), and `dup3` puts the real socket in the placeholder's slot. libuv hands a descriptor to
 * epoll only when the loop next polls, never inside these calls, so epoll only ever sees the real
 * socket. Chosen over `process.binding('pipe_wrap')` (`new Pipe()`, `open(fd)`, then
 * `new Socket({ handle })`), which does the same through a deprecated, undocumented API.
 * @module
 */
import { type AddressInfo, Server, Socket } from 'node:net';
import { closeQuietly, native } from './native.js';

/** `VMADDR_CID_ANY`: listen on every CID of this machine. */
export const VMADDR_CID_ANY = 0xffffffff;
/** `VMADDR_CID_HOST`: the host, as a guest sees it. */
export const VMADDR_CID_HOST = 2;
/** `VMADDR_PORT_ANY`: let the kernel choose a free port. */
export const VMADDR_PORT_ANY = 0xffffffff;

/**
 * Wraps a connected stream socket of any family as a `net.Socket`. On success `fd` is closed (its
 * socket lives on under the Socket's own descriptor); on failure it is left to the caller.
 * @throws the addon's errors (`ENOSYS` without it), or Node's when it cannot wrap the placeholder.
 */
export function adoptSocket(fd: number): Socket {
  const lib = native();
  const slot = lib.placeholder(false);
  let socket: Socket;
  try {
    socket = new Socket({ fd: slot, readable: true, writable: true });
  } catch (error) {
    closeQuietly(slot);
    throw error;
  }
  // Same tick as the wrap: see the module comment.
  try {
    lib.adopt(fd, slot);
  } catch (error) {
    socket.destroy();
    throw error;
  }
  return socket;
}

/**
 * Wraps a listening stream socket of any family as a `net.Server` (listening, and accepting on
 * libuv's own accept loop; its connections are `net.Socket`s). `address()` returns `name`. On
 * success `fd` is closed (the Server closes the socket); on failure it is left to the caller.
 */
export function adoptServer(fd: number, name: string): Server {
  const lib = native();
  // A listening placeholder: Node calls listen() on it, which an unbound unix socket refuses.
  const slot = lib.placeholder(true);
  const server = new Server({ noDelay: true });
  try {
    server.listen({ fd: slot });
  } catch (error) {
    closeQuietly(slot);
    throw error;
  }
  // Node reports a failed listen on the next tick (it closed the placeholder already); `listening`
  // says now whether the handle is there to take the socket.
  if (!server.listening) {
    server.on('error', () => {}); // reported by the throw below
    throw Object.assign(new Error(`cannot listen on ${name}: Node refused the placeholder socket`), {
      code: 'EIO',
    });
  }
  try {
    lib.adopt(fd, slot);
  } catch (error) {
    server.close();
    throw error;
  }
  // A pipe handle has no getsockname: say what a unix server says, its address as a string.
  Object.defineProperty(server, 'address', { value: (): AddressInfo | string | null => name });
  return server;
}

/** Options of {@link connectVsock}. */
export interface VsockConnectOptions {
  signal?: AbortSignal;
  /** Give up after this many ms (default 5000); the kernel's own limit (2 s) is raised to it. */
  timeoutMs?: number;
}

/**
 * Connects to `cid:port` over AF_VSOCK without blocking the event loop: the connect starts, a
 * watcher waits until the socket is writable, and its outcome (SO_ERROR) decides.
 * @returns a connected `net.Socket`.
 * @throws (rejects with) Node-style system errors: `code` `ENODEV` (no route to that CID),
 * `ECONNRESET` (nothing listens there), `ETIMEDOUT`, `EAFNOSUPPORT` (no AF_VSOCK in this kernel),
 * a TypeError for a CID or port outside 0..2^32-1; the signal's reason when aborted.
 */
export async function connectVsock(
  cid: number,
  port: number,
  options: VsockConnectOptions = {},
): Promise<Socket> {
  const { signal } = options;
  signal?.throwIfAborted();
  const timeoutMs = options.timeoutMs ?? 5000;
  if (!(timeoutMs > 0)) throw new TypeError(`timeoutMs must be > 0, got ${timeoutMs}`);
  const lib = native();
  const fd = lib.vsockConnect(cid, port, Math.min(2 ** 31 - 1, Math.ceil(timeoutMs)));
  return new Promise((resolve, reject) => {
    let watcher: { close(): void } | undefined;
    let settled = false;
    const finish = (error?: unknown): void => {
      if (settled) return;
      settled = true;
      // The watcher lets go of fd (epoll included) before adoption closes it.
      watcher?.close();
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      if (error === undefined) {
        try {
          resolve(adoptSocket(fd));
          return;
        } catch (failure) {
          error = failure;
        }
      }
      closeQuietly(fd);
      reject(error);
    };
    const onAbort = (): void => finish(signal?.reason);
    const timer = setTimeout(
      () =>
        finish(
          Object.assign(new Error(`connect: no connection within ${timeoutMs} ms`), { code: 'ETIMEDOUT' }),
        ),
      timeoutMs,
    );
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      watcher = new lib.Watcher(
        fd,
        () => {
          // Writable (or failed: the poll error is only EBADF; SO_ERROR holds the real one).
          try {
            lib.connectResult(fd);
          } catch (error) {
            finish(error);
            return;
          }
          finish();
        },
        true,
      );
    } catch (error) {
      finish(error);
    }
  });
}

/** Options of {@link listenVsock}. */
export interface VsockListenOptions {
  /** Connections the kernel queues before they are accepted (default 511, as `net.Server`). */
  backlog?: number;
}

/**
 * Listens on `cid:port` over AF_VSOCK ({@link VMADDR_CID_ANY}: every CID of this machine;
 * {@link VMADDR_PORT_ANY}: a port the kernel chooses). Synchronous: the socket is bound and
 * listening when it returns.
 * @returns a listening `net.Server` whose `address()` is `vsock://CID:PORT` (`-1` for any CID),
 * with the port actually bound.
 * @throws Node-style system errors (`EADDRINUSE`, `EADDRNOTAVAIL` for a CID not this machine's,
 * `EAFNOSUPPORT`); a TypeError for a CID or port outside 0..2^32-1.
 */
export function listenVsock(cid: number, port: number, options: VsockListenOptions = {}): Server {
  const lib = native();
  const fd = lib.vsockListen(cid, port, options.backlog ?? 511);
  try {
    const bound = lib.vsockAddress(fd);
    return adoptServer(fd, `vsock://${bound.cid === VMADDR_CID_ANY ? -1 : bound.cid}:${bound.port}`);
  } catch (error) {
    closeQuietly(fd);
    throw error;
  }
}

/**
 * Why AF_VSOCK cannot be used here (no addon, no vsock module or device, a sandbox that forbids
 * it), or undefined when it can: binds a listening socket to a kernel-chosen port and closes it.
 */
export function vsockUnavailable(): string | undefined {
  let lib: ReturnType<typeof native>;
  try {
    lib = native();
  } catch {
    return 'the @vaccel/memory addon is not built';
  }
  try {
    lib.close(lib.vsockListen(VMADDR_CID_ANY, VMADDR_PORT_ANY));
    lib.vsockLocalCid();
    return undefined;
  } catch (error) {
    const { code, message } = error as NodeJS.ErrnoException;
    if (['EAFNOSUPPORT', 'ENOENT', 'ENODEV', 'EPERM', 'EACCES'].includes(code ?? ''))
      return `no usable AF_VSOCK here: ${message}`;
    throw error;
  }
}

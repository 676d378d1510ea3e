/**
 * The native addon: sealed memfds, mmap/munmap, unix sockets carrying file descriptors, peer
 * credentials, eventfds and a readiness watcher (Node has none of these). Loaded lazily so that
 * importing this package never fails: {@link nativeAvailable} tells whether it is there, and the
 * first use without a built addon throws a {@link VaccelError} `ENOSYS` that says how to build it.
 * @module
 */
import { createRequire } from 'node:module';
import { VaccelError } from '@vaccel/core';

/** What `recvmsg` returns when bytes (or EOF) arrived. */
export interface Received {
  /** Bytes read into the buffer; 0 means the peer closed the connection. */
  bytes: number;
  /** Descriptors that came with them (the caller owns and must close them). */
  fds: number[];
}

/**
 * Watches one descriptor and calls back (on the event loop) whenever it is readable (or, made with
 * `writable`, writable: how a non-blocking connect says it finished).
 */
export interface Watcher {
  /** Stops watching; the callback is never called again. The descriptor stays open. */
  close(): void;
  /** The watcher no longer keeps the process alive. */
  unref(): void;
  /** Undoes {@link Watcher.unref}. */
  ref(): void;
}

/** The addon's functions; every failing syscall throws an Error with `code` (e.g. `'EAGAIN'`). */
export interface Native {
  listen(path: string, backlog?: number): number;
  /** A new connection's descriptor, or null when none is waiting. */
  accept(fd: number): number | null;
  connect(path: string): number;
  /** Null when nothing is waiting. */
  recvmsg(fd: number, buffer: Uint8Array): Received | null;
  /** Waits up to `timeoutMs` (default 1000; 0 = not at all) for buffer space, then throws. */
  sendmsg(fd: number, buffer: Uint8Array, fds?: readonly number[], timeoutMs?: number): number;
  /**
   * A shared read/write mapping of `length` bytes at `offset` (page aligned), unmapped by
   * {@link Native.munmap} or, failing that, when collected. Refuses regions past the end of a
   * regular file (touching them would raise SIGBUS).
   */
  mmap(fd: number, length: number, offset?: number): ArrayBuffer;
  /**
   * Detaches a buffer from {@link Native.mmap} (every view of it becomes empty) and unmaps it now.
   * @returns false when it was not, or no longer is, a mapping.
   */
  munmap(buffer: ArrayBuffer): boolean;
  /** A memfd of `size` bytes; `seal` fixes its size for good (nobody can shrink it under a mapping). */
  memfd(name: string, size: number, seal?: boolean): number;
  /** True when the descriptor's size can never change (a memfd sealed against shrink and grow). */
  sizeSealed(fd: number): boolean;
  /** Who is at the other end of a connected unix socket. */
  peerCredentials(fd: number): { pid: number; uid: number; gid: number };
  eventfd(initial?: number): number;
  /** The counter (then reset), or null when it was 0. */
  eventfdRead(fd: number): number | null;
  eventfdWrite(fd: number, value?: number): void;
  close(fd: number): void;
  /**
   * glibc's `mallopt` M_MMAP_THRESHOLD (at most 32 MiB) and M_TRIM_THRESHOLD (at most 2 GiB - 1):
   * big allocations come from the heap and freed memory is kept for the next ones.
   * @returns false where the C library is not glibc or refused a value.
   */
  keepFreedMemory(mmapThreshold: number, trimThreshold: number): boolean;
  /**
   * Arms TCP_QUICKACK on a TCP socket (unless `arm` is false: then only reads it), so the kernel
   * acknowledges what arrives at once instead of delaying the ACK; the mode is not sticky, so
   * callers re-arm it after each read.
   * @returns whether the socket is in quick-ack mode now.
   */
  tcpQuickAck(fd: number, arm?: boolean): boolean;
  /**
   * Starts a non-blocking AF_VSOCK connect to `cid:port` (the kernel gives up after `timeoutMs`,
   * default 5000); wait for a writable {@link Watcher}, then call {@link Native.connectResult}.
   * @returns the connecting socket's descriptor. Throws at once when there is no route (`ENODEV`).
   */
  vsockConnect(cid: number, port: number, timeoutMs?: number): number;
  /** Throws the error a finished non-blocking connect ended with (SO_ERROR); returns when connected. */
  connectResult(fd: number): void;
  /** A non-blocking AF_VSOCK socket bound to `cid:port` (2^32-1 = any) and listening. */
  vsockListen(cid: number, port: number, backlog?: number): number;
  /** The CID and port of a vsock socket's own end, or of its peer's. */
  vsockAddress(fd: number, peer?: boolean): { cid: number; port: number };
  /** This machine's CID (from /dev/vsock). */
  vsockLocalCid(): number;
  /** A fresh AF_UNIX stream socket for Node to wrap before {@link Native.adopt} (see vsock.ts). */
  placeholder(listening?: boolean): number;
  /** Moves socket `fd` into the `placeholder` descriptor's slot (dup3) and closes `fd`. */
  adopt(fd: number, placeholder: number): void;
  Watcher: new (fd: number, callback: (error: string | null) => void, writable?: boolean) => Watcher;
}

let loaded: Native | undefined;

let failure: unknown;

/** The addon, loaded on first use. @throws VaccelError `ENOSYS` when it is not built. */
export function native(): Native {
  if (loaded) return loaded;
  if (failure === undefined && process.env.VACCEL_NO_NATIVE !== '1') {
    try {
      loaded = createRequire(import.meta.url)('../build/Release/vaccel_memory.node') as Native;
      return loaded;
    } catch (cause) {
      failure = cause;
    }
  }
  throw new VaccelError(
    'ENOSYS',
    process.env.VACCEL_NO_NATIVE === '1'
      ? 'the @vaccel/memory native addon is turned off (VACCEL_NO_NATIVE=1)'
      : 'the @vaccel/memory native addon is not built (it needs Linux, python3, make, g++); run `npm rebuild @vaccel/memory`',
    { cause: failure },
  );
}

/**
 * True when the addon loads here. `VACCEL_NO_NATIVE=1` turns it off, to run (and test) the
 * in-band path on a machine that has it.
 */
export function nativeAvailable(): boolean {
  try {
    native();
    return true;
  } catch {
    return false;
  }
}

/** Closes a descriptor, ignoring errors (for cleanup paths). */
export function closeQuietly(fd: number | undefined): void {
  if (fd === undefined || fd < 0) return;
  try {
    native().close(fd);
  } catch {
    // already closed or never valid: nothing more to release
  }
}

/**
 * Makes this process keep the memory it frees (see {@link Native.keepFreedMemory}) instead of
 * returning it to the kernel after every big op and faulting it in again on the next: measured on
 * a 512² SGEMM on ONNX Runtime, 30–200 page faults and 0.3–1.5 ms of kernel time per call go to
 * none. Costs resident memory up to the largest working set seen. For servers (the agent); does
 * nothing without the addon or off glibc. `VACCEL_KEEP_FREED_MEMORY=0` turns it off.
 * @returns whether the setting took.
 */
export function keepFreedMemory(): boolean {
  if (process.env.VACCEL_KEEP_FREED_MEMORY === '0' || !nativeAvailable()) return false;
  return native().keepFreedMemory(32 << 20, 2 ** 31 - 1);
}

/**
 * The native addon: unix sockets carrying file descriptors, mmap, eventfds and a readiness watcher
 * (Node has none of these). Loaded lazily so that importing this package never fails; the first
 * use without a built addon throws a {@link VaccelError} `ENOSYS` that says how to build it.
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

/** Watches one descriptor and calls back (on the event loop) whenever it is readable. */
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
  /** A shared read/write mapping of `length` bytes at `offset` (page aligned), unmapped on GC. */
  mmap(fd: number, length: number, offset?: number): ArrayBuffer;
  memfd(name: string, size: number): number;
  eventfd(initial?: number): number;
  /** The counter (then reset), or null when it was 0. */
  eventfdRead(fd: number): number | null;
  eventfdWrite(fd: number, value?: number): void;
  close(fd: number): void;
  Watcher: new (fd: number, callback: (error: string | null) => void) => Watcher;
}

let loaded: Native | undefined;

/** The addon, loaded on first use. */
export function native(): Native {
  if (loaded) return loaded;
  const require = createRequire(import.meta.url);
  try {
    loaded = require('../build/Release/vhost_native.node') as Native;
  } catch (cause) {
    throw new VaccelError(
      'ENOSYS',
      'the @vaccel/vhost-user native addon is not built (it needs Linux, python3, make, g++); run `npm rebuild @vaccel/vhost-user`',
      { cause },
    );
  }
  return loaded;
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

/**
 * Unix sockets only their owner may connect to, from the moment they exist.
 * @module
 */
import { lstat, unlink } from 'node:fs/promises';
import { createServer, type Server as NetServer } from 'node:net';
import { VaccelError } from '@vaccel/core';

/** The umask sockets are created under: 0777 & ~0177 = 0600. */
export const PRIVATE_UMASK = 0o177;

/**
 * Listens on a unix socket that is 0600 from the moment it exists: bind() happens inside
 * net.Server#listen, synchronously, so a umask set around that call alone decides the file's
 * mode (a chmod after listening would leave a window where others may connect). The umask is
 * process-wide, hence restored before anything else runs (files made meanwhile by other threads
 * can only come out narrower).
 */
export async function listenUnix(path: string, text: string): Promise<NetServer> {
  if (!path.startsWith('\0')) {
    const existing = await lstat(path).catch(() => undefined);
    if (existing && !existing.isSocket())
      throw new VaccelError('EEXIST', `cannot listen on ${text}: a non-socket file is in the way`);
    if (existing) await unlink(path); // left by an agent that died
  }
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error) =>
      reject(new VaccelError('EIO', `cannot listen on ${text}: ${error.message}`, { cause: error })),
    );
    withUmask(PRIVATE_UMASK, () => server.listen({ path }, resolve));
  });
  return server;
}

/** Runs `create` (synchronous) with the process umask set to `mask`, restored before it returns. */
export function withUmask<T>(mask: number, create: () => T): T {
  const previous = process.umask(mask);
  try {
    return create();
  } finally {
    process.umask(previous);
  }
}

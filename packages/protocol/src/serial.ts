/**
 * Guest side of a QEMU virtio-serial port: a character device (`/dev/virtio-ports/NAME`) used as
 * a byte pipe. When the host end goes away the device reads EOF (or EIO); the stream then ends,
 * and the RPC plugin reopens the device on its next call.
 * @module
 */
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { Duplex } from 'node:stream';
import { VaccelError } from '@vaccel/core';

/** Idle polling bounds for a port with nothing to read: fast right after traffic, then backing off. */
const POLL_MIN_MS = 1;
const POLL_MAX_MS = 20;
/** Immediate re-polls while a call waits, before falling back to 1 ms timers. */
const EAGER_POLLS = 200;

/**
 * Opens a virtio-serial port as a Duplex.
 *
 * The device is opened non-blocking and polled: a blocking read would sit in libuv's thread pool
 * until the host writes, holding a pool thread and keeping the process from ever exiting. Polls
 * re-poll at once while a call waits and back off to 20 ms while idle; like a socket, the port has
 * ref()/unref().
 * @throws VaccelError `ENOENT` when the port does not exist (is the device attached?).
 */
export async function openSerialPort(path: string): Promise<Duplex> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(path, constants.O_RDWR | constants.O_NOCTTY | constants.O_NONBLOCK);
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    throw new VaccelError(
      code === 'ENOENT' ? 'ENOENT' : 'ECONNRESET',
      `cannot open virtio-serial port ${path}: ${(cause as Error).message}${code === 'ENOENT' ? ' (is the virtio-serial device attached to the VM, with this name?)' : ''}`,
      { cause },
    );
  }
  const buffer = Buffer.allocUnsafe(256 * 1024);
  let reading = false;
  let idleMs = POLL_MIN_MS;
  let eagerPolls = 0;
  // Like a socket, the port keeps the process alive only while ref'd (the ttRPC client refs it
  // during calls and unrefs it when idle).
  let refed = true;
  let timer: NodeJS.Timeout | undefined;
  const later = (fn: () => void): void => {
    // A call is waiting for its reply: poll at once for a while (a virtio-serial round trip is well
    // under a millisecond), then every millisecond. Idle: back off to POLL_MAX_MS.
    if (refed && eagerPolls < EAGER_POLLS) {
      eagerPolls++;
      setImmediate(fn);
      return;
    }
    timer = setTimeout(fn, refed ? POLL_MIN_MS : idleMs);
    if (!refed) {
      timer.unref();
      idleMs = Math.min(POLL_MAX_MS, idleMs * 2);
    }
  };
  const readSome = (): void => {
    if (reading || duplex.destroyed) return;
    reading = true;
    handle.read(buffer, 0, buffer.byteLength, null).then(
      ({ bytesRead }) => {
        reading = false;
        if (bytesRead === 0) {
          duplex.push(null);
          return;
        }
        idleMs = POLL_MIN_MS;
        eagerPolls = 0;
        if (duplex.push(Buffer.from(buffer.subarray(0, bytesRead)))) readSome();
      },
      (error: NodeJS.ErrnoException) => {
        reading = false;
        if (error.code === 'EAGAIN') later(readSome);
        // A pty or port whose other end closed reads EIO: that is an end of stream, not a fault.
        else if (error.code === 'EIO') duplex.push(null);
        else duplex.destroy(error);
      },
    );
  };
  const writeAll = async (data: Buffer): Promise<void> => {
    for (let at = 0; at < data.byteLength; ) {
      try {
        at += (await handle.write(data, at, data.byteLength - at)).bytesWritten;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EAGAIN') throw error;
        await new Promise((resolve) => setTimeout(resolve, POLL_MIN_MS));
      }
    }
  };
  const duplex = new Duplex({
    read() {
      readSome();
    },
    write(chunk: Buffer, _encoding, callback) {
      writeAll(chunk).then(() => callback(), callback);
    },
    writev(chunks, callback) {
      writeAll(Buffer.concat(chunks.map((c) => c.chunk as Buffer))).then(() => callback(), callback);
    },
    destroy(error, callback) {
      handle.close().then(
        () => callback(error),
        () => callback(error),
      );
    },
  });
  return Object.assign(duplex, {
    ref() {
      refed = true;
      eagerPolls = 0;
      timer?.ref();
      return duplex;
    },
    unref() {
      refed = false;
      timer?.unref();
      return duplex;
    },
  });
}

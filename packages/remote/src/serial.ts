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

/**
 * Opens a virtio-serial port as a Duplex.
 * @throws VaccelError `ENOENT` when the port does not exist (is the device attached?).
 */
export async function openSerialPort(path: string): Promise<Duplex> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(path, constants.O_RDWR | constants.O_NOCTTY);
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
  const duplex = new Duplex({
    read() {
      if (reading) return;
      reading = true;
      handle.read(buffer, 0, buffer.byteLength, null).then(
        ({ bytesRead }) => {
          reading = false;
          if (bytesRead === 0) duplex.push(null);
          else if (duplex.push(Buffer.from(buffer.subarray(0, bytesRead)))) duplex._read(0);
        },
        (error: NodeJS.ErrnoException) => {
          reading = false;
          // A pty or port whose other end closed reads EIO: that is an end of stream, not a fault.
          if (error.code === 'EIO') duplex.push(null);
          else duplex.destroy(error);
        },
      );
    },
    write(chunk: Buffer, _encoding, callback) {
      handle.write(chunk).then(() => callback(), callback);
    },
    writev(chunks, callback) {
      handle.writev(chunks.map((c) => c.chunk as Buffer)).then(() => callback(), callback);
    },
    destroy(error, callback) {
      handle.close().then(
        () => callback(error),
        () => callback(error),
      );
    },
  });
  return duplex;
}

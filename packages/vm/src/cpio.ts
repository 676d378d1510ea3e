/**
 * A writer for the initramfs format the kernel unpacks: cpio "newc" (SVR4 without CRC).
 * @module
 */

/** One initramfs entry. */
export type CpioEntry =
  | { path: string; kind: 'dir'; mode?: number }
  | { path: string; kind: 'file'; data: Uint8Array; mode?: number }
  | { path: string; kind: 'symlink'; target: string };

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;

const hex = (n: number) => n.toString(16).padStart(8, '0');
const pad4 = (n: number) => (4 - (n % 4)) % 4;

/** Encodes entries (parents before children) as a newc archive, trailer included. */
export function cpioNewc(entries: readonly CpioEntry[]): Buffer {
  const chunks: Buffer[] = [];
  let ino = 1;
  const add = (path: string, mode: number, data: Uint8Array): void => {
    const name = Buffer.from(`${path.replace(/^\/+/, '')}\0`);
    const header = Buffer.from(
      `070701${[ino++, mode, 0, 0, 1, 0, data.byteLength, 0, 0, 0, 0, name.byteLength, 0].map(hex).join('')}`,
      'ascii',
    );
    chunks.push(header, name, Buffer.alloc(pad4(header.byteLength + name.byteLength)));
    chunks.push(
      Buffer.from(data.buffer, data.byteOffset, data.byteLength),
      Buffer.alloc(pad4(data.byteLength)),
    );
  };
  for (const entry of entries) {
    if (entry.kind === 'dir') add(entry.path, S_IFDIR | (entry.mode ?? 0o755), new Uint8Array(0));
    else if (entry.kind === 'file') add(entry.path, S_IFREG | (entry.mode ?? 0o644), entry.data);
    else add(entry.path, S_IFLNK | 0o777, Buffer.from(entry.target));
  }
  add('TRAILER!!!', 0, new Uint8Array(0));
  return Buffer.concat(chunks);
}

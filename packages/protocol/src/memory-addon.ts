/**
 * The optional native pieces of the guest's shared memory: loading `@vaccel/memory` (only when a
 * region is asked for, so guests without it never load it) and finding and mapping a QEMU guest's
 * ivshmem device.
 * @internal
 */
import { closeSync, fstatSync, openSync, readdirSync, readFileSync } from 'node:fs';
import type { Native } from '@vaccel/memory';

/** The package, once a region was asked for and its addon loaded. */
let loaded: typeof import('@vaccel/memory') | undefined;

/** The addon if {@link loadAddon} loaded it. */
export const addon = (): Native | undefined => loaded?.native();

/** Loads the addon, or says why it cannot be had. */
export async function loadAddon(): Promise<Native | string> {
  if (loaded) return loaded.native();
  try {
    const memory = await import('@vaccel/memory');
    if (!memory.nativeAvailable()) return 'the @vaccel/memory addon is not built here';
    loaded = memory;
    return memory.native();
  } catch {
    return 'the optional @vaccel/memory package is not installed';
  }
}

/** Closes a descriptor, ignoring errors (cleanup paths; `@vaccel/memory`'s own helper). */
export const closeQuietly = (fd: number): void => loaded?.closeQuietly(fd);

/** QEMU's ivshmem device (PCI 1af4:1110): the sysfs file of its shared memory BAR. */
function findIvshmem(): string | undefined {
  const root = '/sys/bus/pci/devices';
  try {
    for (const device of readdirSync(root)) {
      const read = (name: string) => readFileSync(`${root}/${device}/${name}`, 'utf8').trim();
      if (read('vendor') === '0x1af4' && read('device') === '0x1110') return `${root}/${device}/resource2`;
    }
  } catch {
    // no sysfs, or no PCI: no device
  }
  return undefined;
}

/**
 * Maps this VM's ivshmem memory, which must be `deviceBytes` long (what the agent mapped).
 * @returns the mapping, or why there is none.
 */
export function mapIvshmem(lib: Native, deviceBytes: number): { buffer: ArrayBuffer } | { why: string } {
  const path = findIvshmem();
  if (!path) return { why: 'the agent offers device memory, but this VM has no ivshmem device' };
  const fd = openSync(path, 'r+');
  try {
    const size = fstatSync(fd).size;
    if (size !== deviceBytes)
      return { why: `the ivshmem device has ${size} bytes, the agent's device memory ${deviceBytes}` };
    return { buffer: lib.mmap(fd, size, 0) };
  } finally {
    closeSync(fd); // the mapping stays
  }
}

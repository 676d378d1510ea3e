/**
 * Guest memory as the VMM shares it: regions of guest-physical address space, each backed by a
 * file descriptor that we map. Every access goes through {@link GuestMemory.guest} or
 * {@link GuestMemory.user}, which return views bounded to the region: an address or length out of
 * range throws `EFAULT` and never reads or writes outside the mapping.
 * @module
 */
import { VaccelError } from '@vaccel/core';
import { native } from '@vaccel/memory';

/** One region of a vhost-user memory table. */
export interface MemoryRegion {
  /** Where the region starts in guest-physical address space. */
  guestAddress: number;
  /** Its length in bytes. */
  size: number;
  /** Where it starts in the VMM's own address space (vring addresses use this space). */
  userAddress: number;
  /** Where it starts in the file descriptor. */
  mmapOffset: number;
}

interface Mapped extends MemoryRegion {
  bytes: Uint8Array;
}

const PAGE = 4096;

const fault = (what: string, address: number, length: number): VaccelError =>
  new VaccelError(
    'EFAULT',
    `${what} 0x${address.toString(16)}+${length} is outside the guest memory the VMM shared`,
  );

/** The guest's memory regions, mapped into this process. */
export class GuestMemory {
  readonly #regions: Mapped[];

  private constructor(regions: Mapped[]) {
    this.#regions = regions;
  }

  /** No memory: every translation faults (the state before the VMM sends a memory table). */
  static empty(): GuestMemory {
    return new GuestMemory([]);
  }

  /** Maps `regions[i]` from `fds[i]`. The descriptors may be closed afterwards (the mappings stay). */
  static map(regions: readonly MemoryRegion[], fds: readonly number[]): GuestMemory {
    if (regions.length !== fds.length)
      throw new VaccelError(
        'EINVAL',
        `memory table has ${regions.length} regions but ${fds.length} descriptors`,
      );
    const mapped = regions.map((region, i): Mapped => {
      const base = region.mmapOffset - (region.mmapOffset % PAGE);
      const skip = region.mmapOffset - base;
      const buffer = native().mmap(fds[i]!, region.size + skip, base);
      return { ...region, bytes: new Uint8Array(buffer, skip, region.size) };
    });
    return GuestMemory.fromBuffers(mapped);
  }

  /** Memory over buffers already in this process (tests, and in-process VMMs). */
  static fromBuffers(regions: readonly (MemoryRegion & { bytes: Uint8Array })[]): GuestMemory {
    for (const region of regions) {
      if (region.bytes.byteLength !== region.size)
        throw new VaccelError('EINVAL', 'a memory region buffer must be exactly its size');
      if (region.size <= 0) throw new VaccelError('EINVAL', 'a memory region must not be empty');
    }
    return new GuestMemory([...regions]);
  }

  /** The regions, as the VMM described them. */
  get regions(): readonly MemoryRegion[] {
    return this.#regions.map(({ bytes: _, ...region }) => region);
  }

  /** A view of `length` bytes at guest-physical `address` (descriptor buffers use this space). */
  guest(address: number, length: number): Uint8Array {
    return this.#translate(address, length, 'guestAddress', 'guest address');
  }

  /** A view of `length` bytes at VMM-virtual `address` (vring addresses use this space). */
  user(address: number, length: number): Uint8Array {
    return this.#translate(address, length, 'userAddress', 'VMM address');
  }

  #translate(
    address: number,
    length: number,
    space: 'guestAddress' | 'userAddress',
    what: string,
  ): Uint8Array {
    if (!Number.isSafeInteger(address) || !Number.isSafeInteger(length) || address < 0 || length < 0)
      throw fault(what, address, length);
    for (const region of this.#regions) {
      const offset = address - region[space];
      if (offset >= 0 && offset < region.size) {
        if (length > region.size - offset) break;
        return region.bytes.subarray(offset, offset + length);
      }
    }
    if (length === 0) return new Uint8Array(0);
    throw fault(what, address, length);
  }
}

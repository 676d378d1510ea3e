/**
 * The shared-memory regions one connection attached, and the one place their references are
 * checked. A reference names a region of *this* connection and a range inside it; anything else
 * (another connection's region id, a range past the end, offsets beyond 2^53) is `EINVAL`, so
 * nothing a guest sends makes the agent touch memory outside its own regions.
 *
 * A region is unmapped when it is detached or its connection closes, but only once no op that
 * resolved a reference into it is still running (a native backend may be reading it off-thread).
 * @module
 */
import { VaccelError } from '@vaccel/core';
import { native } from '@vaccel/memory';
import type { SharedRef } from '@vaccel/protocol';

/** One attached region. */
interface Region {
  readonly id: number;
  /** The whole mapping the region lies in (a device mapping may be shared by connections). */
  readonly buffer: ArrayBuffer;
  readonly byteOffset: number;
  readonly size: number;
  /** Whether this connection owns the mapping (a memfd it handed over) and unmaps it. */
  readonly owned: boolean;
  /** Ops using it now. */
  pins: number;
  detached: boolean;
}

/** Regions of a connection. */
export class ConnectionRegions {
  readonly #regions = new Map<number, Region>();
  #nextId = 1;

  /** Regions attached now. */
  get count(): number {
    return this.#regions.size;
  }

  /** Adds a mapping; `owned` ones are unmapped when detached. @returns the region id. */
  add(buffer: ArrayBuffer, owned: boolean, byteOffset = 0, size = buffer.byteLength): number {
    const id = this.#nextId++;
    this.#regions.set(id, { id, buffer, byteOffset, size, owned, pins: 0, detached: false });
    return id;
  }

  /**
   * The bytes `ref` names, pinning its region for the op (undo with {@link unpin}).
   * @throws VaccelError `EINVAL` for a region not attached to this connection or a range outside it.
   */
  resolve(ref: SharedRef, where: string, pinned: Set<number>): Uint8Array {
    const region = this.#regions.get(ref.regionId);
    if (!region || region.detached)
      throw new VaccelError('EINVAL', `${where}: no shared region ${ref.regionId} on this connection`);
    const { offset, length } = ref;
    // Overflow-safe: both are checked against the size, never summed first.
    if (
      !Number.isSafeInteger(offset) ||
      !Number.isSafeInteger(length) ||
      offset > region.size ||
      length > region.size - offset
    )
      throw new VaccelError(
        'EINVAL',
        `${where}: bytes ${offset}+${length} are outside shared region ${ref.regionId} (${region.size} bytes)`,
      );
    if (!pinned.has(region.id)) {
      pinned.add(region.id);
      region.pins++;
    }
    return new Uint8Array(region.buffer, region.byteOffset + offset, length);
  }

  /**
   * The reference for `bytes` when they lie inside one of this connection's regions (an op wrote
   * its output in place), else undefined (they go in-band).
   */
  refOf(bytes: Uint8Array): SharedRef | undefined {
    for (const region of this.#regions.values()) {
      if (bytes.buffer !== region.buffer || region.detached) continue;
      const offset = bytes.byteOffset - region.byteOffset;
      if (offset >= 0 && offset + bytes.byteLength <= region.size)
        return { regionId: region.id, offset, length: bytes.byteLength };
    }
    return undefined;
  }

  /** Ends an op's use of the regions it pinned; detached ones with no other user are unmapped. */
  unpin(pinned: Set<number>): void {
    for (const id of pinned) {
      const region = this.#regions.get(id);
      if (!region) continue;
      region.pins--;
      if (region.detached && region.pins === 0) this.#unmap(region);
    }
  }

  /**
   * Detaches a region: no new reference resolves to it; it is unmapped now, or when the last op
   * using it ends.
   * @throws VaccelError `EINVAL` for a region not attached to this connection.
   */
  detach(id: number): void {
    const region = this.#regions.get(id);
    if (!region || region.detached)
      throw new VaccelError('EINVAL', `no shared region ${id} on this connection`);
    region.detached = true;
    if (region.pins === 0) this.#unmap(region);
  }

  /** Detaches every region (the connection closed). */
  detachAll(): void {
    for (const region of [...this.#regions.values()]) if (!region.detached) this.detach(region.id);
  }

  #unmap(region: Region): void {
    this.#regions.delete(region.id);
    if (region.owned) native().munmap(region.buffer);
  }
}

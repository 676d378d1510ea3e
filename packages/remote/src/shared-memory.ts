/**
 * The guest's side of our shared-memory extension: regions this process shares with its agent,
 * and the references that replace their bytes on the wire.
 *
 * A region is a sealed memfd mapped here and handed to the agent (Offer → handover → Attach) for
 * the current connection. The memfd stays open, so after a reconnect the region is attached
 * again on first use. Everything needs the @vaccel/memory addon (an optional dependency, loaded
 * only when a region is asked for) and a vaccel-ts agent reached over a unix socket; otherwise
 * {@link GuestRegions.create} says why and the caller goes in-band.
 * @internal
 */
import { type PluginMemory, VaccelError } from '@vaccel/core';
import type { Native } from '@vaccel/memory';
import { SharedMemory as SharedMemoryService } from './gen/shared_memory_pb.js';
import type { SharedRef } from './genop-codec.js';
import type { Linked } from './link.js';
import { serviceClient } from './service.js';

const PAGE = 4096;

/** The addon, once a region was asked for and it loaded. */
let addon: Native | undefined;

/** Loads the addon, or says why it cannot be had. */
async function loadAddon(): Promise<Native | string> {
  if (addon) return addon;
  try {
    const memory = await import('@vaccel/memory');
    if (!memory.nativeAvailable()) return 'the @vaccel/memory addon is not built here';
    addon = memory.native();
    return addon;
  } catch {
    return 'the optional @vaccel/memory package is not installed';
  }
}

/** Closes a descriptor, ignoring errors (cleanup paths). */
function closeQuietly(lib: Native, fd: number): void {
  try {
    lib.close(fd);
  } catch {
    // already closed: nothing to release
  }
}

interface GuestRegion {
  readonly buffer: ArrayBuffer;
  /** The memfd, kept to attach again after a reconnect. */
  readonly fd: number;
  readonly size: number;
  /** Region id on the agent, per connection generation. */
  readonly ids: Map<number, number>;
  attaching?: Promise<number>;
}

/** Stub of the extension service on a connection. */
const stubs = new WeakMap<Linked, ReturnType<typeof memoryStub>>();
const memoryStub = (linked: Linked) =>
  serviceClient(linked.client, SharedMemoryService, SharedMemoryService.typeName);
const stubOf = (linked: Linked) => {
  let stub = stubs.get(linked);
  if (!stub) {
    stub = memoryStub(linked);
    stubs.set(linked, stub);
  }
  return stub;
};

export class GuestRegions {
  readonly #regions = new Map<ArrayBuffer, GuestRegion>();

  /** @param current the open connection, if any (regions are detached from it on release). */
  constructor(private readonly current: () => Linked | undefined) {}

  /** True when nothing is shared (the hot path skips looking args up). */
  get empty(): boolean {
    return this.#regions.size === 0;
  }

  /**
   * A new region of at least `byteLength` bytes, attached to `linked`'s agent.
   * @returns the memory, or why it cannot be shared (the caller then uses process memory).
   */
  async create(
    linked: Linked,
    byteLength: number,
    signal?: AbortSignal,
  ): Promise<{ memory: PluginMemory } | { why: string }> {
    if (!linked.ours) return { why: 'the agent is not a vaccel-ts agent' };
    const lib = await loadAddon();
    if (typeof lib === 'string') return { why: lib };
    const offer = await stubOf(linked).offer({}, { signal });
    if (offer.nonce.byteLength === 0)
      return {
        why: 'the agent takes no descriptors on this connection (that needs a unix socket and its @vaccel/memory addon)',
      };
    if (BigInt(byteLength) > offer.maxRegionBytes)
      throw new VaccelError('E2BIG', `the agent maps regions of at most ${offer.maxRegionBytes} bytes`);
    const size = Math.ceil(byteLength / PAGE) * PAGE;
    const fd = lib.memfd('vaccel-region', size, true);
    let buffer: ArrayBuffer | undefined;
    try {
      buffer = lib.mmap(fd, size, 0);
      const region: GuestRegion = { buffer, fd, size, ids: new Map() };
      region.ids.set(linked.generation, await this.#attach(linked, region, offer, signal));
      this.#regions.set(buffer, region);
      return {
        memory: {
          buffer,
          byteOffset: 0,
          byteLength,
          via: 'memfd',
          release: () => this.#release(region),
        },
      };
    } catch (error) {
      if (buffer) lib.munmap(buffer);
      closeQuietly(lib, fd);
      throw error;
    }
  }

  /**
   * The reference for `bytes` when they lie in a region of ours, attaching the region to this
   * connection first if it was made on an earlier one; undefined for other memory.
   */
  ref(linked: Linked, bytes: Uint8Array): SharedRef | Promise<SharedRef> | undefined {
    const region = this.#regions.get(bytes.buffer as ArrayBuffer);
    if (!region) return undefined;
    const ref = (regionId: number): SharedRef => ({
      regionId,
      offset: bytes.byteOffset,
      length: bytes.byteLength,
    });
    const id = region.ids.get(linked.generation);
    if (id !== undefined) return ref(id);
    region.attaching ??= this.#reattach(linked, region).finally(() => {
      region.attaching = undefined;
    });
    return region.attaching.then(ref);
  }

  /**
   * The bytes a reply's reference names: a region of ours attached on this connection, and a
   * range inside it.
   * @throws VaccelError `EBADMSG` for anything else (a faulty agent).
   */
  resolve(linked: Linked, ref: SharedRef): Uint8Array {
    for (const region of this.#regions.values()) {
      if (region.ids.get(linked.generation) !== ref.regionId) continue;
      if (ref.offset <= region.size && ref.length <= region.size - ref.offset)
        return new Uint8Array(region.buffer, ref.offset, ref.length);
    }
    throw new VaccelError('EBADMSG', `the agent answered with a reference outside our shared regions`);
  }

  /** Unmaps every region (the plugin is closing). */
  close(): void {
    for (const region of this.#regions.values()) this.#unmap(region);
    this.#regions.clear();
  }

  async #reattach(linked: Linked, region: GuestRegion): Promise<number> {
    const offer = await stubOf(linked).offer({});
    if (offer.nonce.byteLength === 0)
      throw new VaccelError('ENOTSUP', 'the agent no longer takes shared regions on this connection');
    const id = await this.#attach(linked, region, offer);
    region.ids.set(linked.generation, id);
    return id;
  }

  /** Hands the memfd over with the offer's nonce, then attaches it. */
  async #attach(
    linked: Linked,
    region: GuestRegion,
    offer: { nonce: Uint8Array; handoverPath: string },
    signal?: AbortSignal,
  ): Promise<number> {
    const lib = addon!;
    const socket = lib.connect(offer.handoverPath);
    try {
      lib.sendmsg(socket, offer.nonce, [region.fd]);
    } finally {
      lib.close(socket);
    }
    const { regionId, size } = await stubOf(linked).attach({ nonce: offer.nonce }, { signal });
    if (size !== BigInt(region.size))
      throw new VaccelError('EBADMSG', `the agent attached ${size} bytes of a ${region.size}-byte region`);
    return regionId;
  }

  async #release(region: GuestRegion): Promise<void> {
    if (!this.#regions.delete(region.buffer)) return;
    // A connection that dropped took the agent's side of the region with it.
    const linked = this.current();
    const id = linked && region.ids.get(linked.generation);
    if (linked && id !== undefined)
      await stubOf(linked)
        .detach({ regionId: id })
        .catch(() => {});
    this.#unmap(region);
  }

  #unmap(region: GuestRegion): void {
    addon!.munmap(region.buffer);
    closeQuietly(addon!, region.fd);
  }
}

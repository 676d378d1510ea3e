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
import { type Arg, type PluginMemory, RangeAllocator, VaccelError } from '@vaccel/core';
import type { Native } from '@vaccel/memory';
import { SharedMemory as SharedMemoryService } from './gen/shared_memory_pb.js';
import { refWireArg, type SharedRef, toWireArg, type WireArg } from './genop-codec.js';
import type { Linked } from './link.js';
import { serviceClient } from './service.js';

const PAGE = 4096;

/**
 * Plain arrays from this size on travel through the staging region (a copy into memory the agent
 * maps) rather than the socket, where the agent takes regions. Measured here (fig4, fig2): from
 * 64 KiB on a memcpy each way beats the socket; below it the frame costs the same either way.
 */
export const STAGE_FROM = 64 * 1024;
/** Default size of the staging region (memfd pages cost memory only once touched). */
export const DEFAULT_STAGING_BYTES = 64 << 20;

/** A plain array of one call copied into the staging region. */
export interface Staged {
  offset: number;
  length: number;
}

interface Staging {
  readonly generation: number;
  readonly memory: PluginMemory;
  readonly bytes: Uint8Array;
  readonly allocator: RangeAllocator;
}

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
  /** The staging region of the current connection; 'off' where the agent cannot take one. */
  #staging: Staging | 'off' | undefined;
  #stagingFor = -1;

  /**
   * @param current the open connection, if any (regions are detached from it on release).
   * @param stagingBytes size of the staging region for plain arrays (0: none).
   */
  constructor(
    private readonly current: () => Linked | undefined,
    private readonly stagingBytes = DEFAULT_STAGING_BYTES,
  ) {}

  /**
   * Wire args for a call: references for views in our regions; plain arrays of
   * {@link STAGE_FROM} bytes or more copied into the staging region (recorded in `staged`, to
   * free with {@link unstage}); bytes for the rest.
   */
  wireArgs(linked: Linked, args: readonly Arg[], staged: Staged[]): WireArg[] | Promise<WireArg[]> {
    const staging = linked.ours ? this.#stagingOf(linked) : undefined;
    if (!linked.ours || (this.#regions.size === 0 && !staging)) return args.map(toWireArg);
    let pending = false;
    const out = args.map((arg): WireArg | Promise<WireArg> => {
      const ref = this.ref(linked, arg.buf);
      if (ref instanceof Promise) {
        pending = true;
        return ref.then((r) => refWireArg(arg, r));
      }
      if (ref) return refWireArg(arg, ref);
      const length = arg.buf.byteLength;
      const offset = staging && length >= STAGE_FROM ? staging.allocator.alloc(length) : undefined;
      if (offset === undefined) return toWireArg(arg);
      staging!.bytes.set(arg.buf, offset);
      staged.push({ offset, length });
      const regionId = this.#regions.get(staging!.memory.buffer)!.ids.get(linked.generation)!;
      return refWireArg(arg, { regionId, offset, length });
    });
    return pending ? Promise.all(out) : (out as WireArg[]);
  }

  /** Frees a call's staged copies (only once the agent is done with them). */
  unstage(staged: readonly Staged[]): void {
    if (staged.length === 0 || typeof this.#staging !== 'object') return;
    for (const { offset } of staged) this.#staging.allocator.free(offset);
  }

  /**
   * Puts an output the agent left in shared memory where the caller expects it: in place ops
   * fill the caller's array; other ops get the view itself when it is the caller's region, else
   * (staged) a copy in the caller's room or in fresh memory.
   */
  deliver(
    linked: Linked,
    ref: SharedRef,
    arg: Arg,
    inPlace: boolean,
    fresh: (b: Uint8Array) => Uint8Array,
  ): void {
    const view = this.resolve(linked, ref);
    if (inPlace) {
      if (view.buffer !== arg.buf.buffer || view.byteOffset !== arg.buf.byteOffset)
        arg.buf.set(view.subarray(0, arg.buf.byteLength));
    } else if (typeof this.#staging !== 'object' || view.buffer !== this.#staging.memory.buffer)
      arg.buf = view;
    else if (view.byteLength > 0 && view.byteLength <= arg.buf.byteLength) {
      arg.buf.set(view);
      arg.buf = arg.buf.subarray(0, view.byteLength);
    } else arg.buf = fresh(view);
  }

  /** The staging region of this connection, made in the background on first need. */
  #stagingOf(linked: Linked): Staging | undefined {
    if (this.stagingBytes <= 0) return undefined;
    if (this.#stagingFor === linked.generation)
      return typeof this.#staging === 'object' ? this.#staging : undefined;
    this.#stagingFor = linked.generation;
    const old = this.#staging;
    this.#staging = undefined;
    // Calls on the old connection that never ended may still hold ranges in the old one: it goes.
    if (typeof old === 'object') void old.memory.release();
    // Until it exists (or where it cannot), calls go in-band.
    this.create(linked, this.stagingBytes).then(
      (made) => {
        if (this.#stagingFor !== linked.generation) {
          if ('memory' in made) void made.memory.release();
          return;
        }
        this.#staging =
          'memory' in made
            ? {
                generation: linked.generation,
                memory: made.memory,
                bytes: new Uint8Array(made.memory.buffer, 0, made.memory.byteLength),
                allocator: new RangeAllocator(made.memory.byteLength),
              }
            : 'off';
      },
      () => {
        this.#staging = 'off';
      },
    );
    return undefined;
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

  /** Unmaps every region, staging included (the plugin is closing). */
  close(): void {
    this.#staging = 'off';
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

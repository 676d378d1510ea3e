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
import { existsSync } from 'node:fs';
import { type Arg, type PluginMemory, RangeAllocator, VaccelError } from '@vaccel/core';
import type { Native } from '@vaccel/memory';
import type { ServiceClient } from '@vaccel/protocol';
import {
  addon,
  closeQuietly,
  loadAddon,
  mapIvshmem,
  refWireArg,
  type SharedRef,
  toWireArg,
  type WireArg,
} from '@vaccel/protocol';
import type { SharedMemoryService } from '@vaccel/protocol/service';
import { Code, TtrpcError } from '@vaccel/ttrpc';
import type { Linked } from './link.js';

const PAGE = 4096;

/**
 * Plain arrays from this size on travel through the staging region (a copy into memory the agent
 * maps) rather than the socket, where the agent takes regions. Measured here (fig4, fig2): from
 * 64 KiB on a memcpy each way beats the socket; below it the frame costs the same either way.
 */
export const STAGE_FROM = 64 * 1024;
/** The least size staged over any transport (see {@link STAGE_FROM}). */
const MIN_STAGE_FROM = 1024;
/** Default size of the staging region (memfd pages cost memory only once touched). */
export const DEFAULT_STAGING_BYTES = 64 << 20;

/** A plain array of one call copied into a staging region. */
export interface Staged {
  readonly staging: Staging;
  /** Where in the staging region. */
  readonly offset: number;
}

/** A staging region: a range of shared memory that calls borrow pieces of. */
export interface Staging {
  /** Plain arrays from this size on are staged. */
  readonly stageFrom: number;
  readonly memory: PluginMemory;
  readonly bytes: Uint8Array;
  readonly allocator: RangeAllocator;
}

interface GuestRegion {
  readonly buffer: ArrayBuffer;
  /** The memfd, kept to attach again after a reconnect; -1 for the VM's device memory. */
  readonly fd: number;
  /** For the VM's device memory: what of it is handed out (it is shared by every region). */
  readonly allocator?: RangeAllocator;
  readonly size: number;
  /** Region id on the agent, per connection generation. */
  readonly ids: Map<number, number>;
  attaching?: Promise<number>;
}

type MemoryStub = ServiceClient<(typeof SharedMemoryService)['method']>;

/** Stub of the extension service on a connection; its generated code loads on first use. */
const stubs = new WeakMap<Linked, Promise<MemoryStub>>();
const stubOf = (linked: Linked): Promise<MemoryStub> => {
  let stub = stubs.get(linked);
  if (!stub) {
    stub = import('@vaccel/protocol/service').then(({ serviceClient, SharedMemoryService }) =>
      serviceClient(linked.client, SharedMemoryService),
    );
    stubs.set(linked, stub);
  }
  return stub;
};

export class GuestRegions {
  readonly #regions = new Map<ArrayBuffer, GuestRegion>();
  /** The staging region of the current connection; 'off' where the agent cannot take one. */
  #staging: Staging | 'off' | undefined;
  #stagingFor = -1;
  /** The staging region being made. */
  #making: Promise<Staging | undefined> | undefined;
  /** The VM's ivshmem device memory, once mapped. */
  #device: GuestRegion | undefined;

  /**
   * @param current the open connection, if any (regions are detached from it on release).
   * @param stagingBytes size of the staging region for plain arrays (0: none).
   */
  constructor(
    private readonly current: () => Linked | undefined,
    private readonly stagingBytes = DEFAULT_STAGING_BYTES,
    /** Told how data travels once the staging region is made (or cannot be). */
    private readonly say: (dataPlane: string) => void = () => {},
  ) {}

  /**
   * Wire args for a call: references for views in our regions; plain arrays of
   * {@link STAGE_FROM} bytes or more copied into the staging region (recorded in `staged`, to
   * free with {@link unstage}); bytes for the rest.
   */
  wireArgs(linked: Linked, args: readonly Arg[], staged: Staged[]): WireArg[] | Promise<WireArg[]> {
    if (!linked.ours) return args.map(toWireArg);
    const staging = this.#stagingOf(
      linked,
      args.some((arg) => arg.buf.byteLength >= MIN_STAGE_FROM),
    );
    if (staging instanceof Promise) return staging.then(() => this.wireArgs(linked, args, staged));
    if (this.#regions.size === 0 && !staging) return args.map(toWireArg);
    let pending = false;
    const out = args.map((arg): WireArg | Promise<WireArg> => {
      const ref = this.ref(linked, arg.buf);
      if (ref instanceof Promise) {
        pending = true;
        return ref.then((r) => refWireArg(arg, r));
      }
      if (ref) return refWireArg(arg, ref);
      const length = arg.buf.byteLength;
      const offset = staging && length >= staging.stageFrom ? staging.allocator.alloc(length) : undefined;
      if (offset === undefined) return toWireArg(arg);
      staging!.bytes.set(arg.buf, offset);
      staged.push({ staging: staging!, offset });
      // References count from the start of the region the staging range lies in.
      const regionId = this.#regions.get(staging!.memory.buffer)!.ids.get(linked.generation)!;
      return refWireArg(arg, { regionId, offset: staging!.memory.byteOffset + offset, length });
    });
    return pending ? Promise.all(out) : (out as WireArg[]);
  }

  /** Frees a call's staged copies (only once the agent is done with them). */
  unstage(staged: readonly Staged[]): void {
    for (const { staging, offset } of staged) staging.allocator.free(offset);
  }

  /**
   * An output the agent left in shared memory: undefined when it already is where the caller
   * wants it (an in-place op wrote the caller's own array; another op's output is a view of the
   * caller's region, which `arg` now holds); else the bytes to copy out, as bytes that came
   * in-band are (a staged copy, or an in-place op's array staged elsewhere).
   */
  output(linked: Linked, ref: SharedRef, arg: Arg, inPlace: boolean): Uint8Array | undefined {
    const view = this.resolve(linked, ref);
    if (inPlace)
      return view.buffer === arg.buf.buffer && view.byteOffset === arg.buf.byteOffset ? undefined : view;
    if (this.#isStaging(view)) return view;
    arg.buf = view;
    return undefined;
  }

  /** True when `view` lies in the staging region (which may share its buffer with regions). */
  #isStaging(view: Uint8Array): boolean {
    const staging = this.#staging;
    if (typeof staging !== 'object' || view.buffer !== staging.memory.buffer) return false;
    const start = staging.memory.byteOffset;
    return view.byteOffset >= start && view.byteOffset + view.byteLength <= start + staging.memory.byteLength;
  }

  /**
   * The staging region of this connection: made on the first call that could use one (that call
   * waits for it, once), then kept; undefined where the agent cannot take one.
   */
  #stagingOf(linked: Linked, wanted: boolean): Staging | undefined | Promise<Staging | undefined> {
    if (this.stagingBytes <= 0) return undefined;
    if (this.#stagingFor === linked.generation) {
      const current = this.#staging;
      return current === 'off' ? undefined : (current ?? this.#making);
    }
    if (!wanted) return undefined;
    this.#stagingFor = linked.generation;
    const old = this.#staging;
    this.#staging = undefined;
    // Calls on the old connection that never ended may still hold ranges in the old one: it goes.
    if (typeof old === 'object') void old.memory.release();
    this.#making = this.create(linked, this.stagingBytes, undefined, true).then(
      (made) => {
        if (this.#stagingFor !== linked.generation) {
          if ('memory' in made) void made.memory.release();
          return undefined;
        }
        if (!('memory' in made)) {
          this.#staging = 'off';
          this.say(`in-band (${made.why})`);
          return undefined;
        }
        // Over virtio-serial (~70 MB/s) even a KiB is cheaper through the device memory.
        const stageFrom = made.memory.via === 'ivshmem' ? MIN_STAGE_FROM : STAGE_FROM;
        this.#staging = {
          stageFrom,
          memory: made.memory,
          bytes: new Uint8Array(made.memory.buffer, made.memory.byteOffset, made.memory.byteLength),
          allocator: new RangeAllocator(made.memory.byteLength),
        };
        this.say(`arrays of ${stageFrom} bytes and more staged through shared memory (${made.memory.via})`);
        return this.#staging;
      },
      (error: unknown) => {
        this.#staging = 'off';
        this.say(`in-band (the staging region failed: ${error})`);
        return undefined;
      },
    );
    return this.#making;
  }

  /**
   * A new region of at least `byteLength` bytes, attached to `linked`'s agent.
   * @returns the memory, or why it cannot be shared (the caller then uses process memory).
   */
  async create(
    linked: Linked,
    byteLength: number,
    signal?: AbortSignal,
    /** Take at most half of a VM's device memory (for the staging region). */
    shrinkToDevice = false,
  ): Promise<{ memory: PluginMemory } | { why: string }> {
    if (!linked.ours) return { why: 'the agent is not a vaccel-ts agent' };
    const lib = await loadAddon();
    if (typeof lib === 'string') return { why: lib };
    let offer: Awaited<ReturnType<MemoryStub['offer']>>;
    try {
      offer = await (await stubOf(linked)).offer({}, { signal });
    } catch (error) {
      // A vaccel-ts agent from before shared memory: in-band, as it always was.
      if (error instanceof TtrpcError && error.code === Code.UNIMPLEMENTED)
        return { why: 'the agent does not offer shared memory' };
      throw error;
    }
    if (offer.deviceBytes > 0n) {
      const deviceBytes = Number(offer.deviceBytes);
      const length = shrinkToDevice ? Math.min(byteLength, deviceBytes / 2) : byteLength;
      return this.#fromDevice(lib, linked, deviceBytes, length, signal);
    }
    if (offer.nonce.byteLength === 0)
      return {
        why: 'the agent takes no descriptors on this connection (that needs a unix socket and its @vaccel/memory addon)',
      };
    // A VM guest talks to the agent through the VMM: the agent's socket is on another machine.
    if (!existsSync(offer.handoverPath))
      return { why: `the agent's handover socket ${offer.handoverPath} is not on this machine` };
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
      closeQuietly(fd);
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
    this.#device = undefined;
    for (const region of this.#regions.values()) this.#unmap(region);
    this.#regions.clear();
  }

  /**
   * Memory from the VM's ivshmem device (the host gave its agent the same memory): the device is
   * mapped and attached once, and regions are ranges of it.
   */
  async #fromDevice(
    lib: Native,
    linked: Linked,
    deviceBytes: number,
    byteLength: number,
    signal?: AbortSignal,
  ): Promise<{ memory: PluginMemory } | { why: string }> {
    let device = this.#device;
    if (!device) {
      const mapped = mapIvshmem(lib, deviceBytes);
      if ('why' in mapped) return mapped;
      const { buffer } = mapped;
      device = {
        buffer,
        fd: -1,
        size: deviceBytes,
        ids: new Map(),
        allocator: new RangeAllocator(deviceBytes),
      };
      this.#device = device;
      this.#regions.set(device.buffer, device);
    }
    if (!device.ids.has(linked.generation)) await this.#reattach(linked, device, signal);
    const offset = device.allocator!.alloc(byteLength);
    if (offset === undefined)
      throw new VaccelError(
        'ENOMEM',
        `the VM's shared memory has no ${byteLength} free bytes (${device.allocator!.used} of ${device.size} in use)`,
      );
    return {
      memory: {
        buffer: device.buffer,
        byteOffset: offset,
        byteLength,
        via: 'ivshmem',
        release: () => void device.allocator!.free(offset),
      },
    };
  }

  async #reattach(linked: Linked, region: GuestRegion, signal?: AbortSignal): Promise<number> {
    if (region.allocator) {
      const { regionId, size } = await (await stubOf(linked)).attach({ device: true }, { signal });
      if (size !== BigInt(region.size))
        throw new VaccelError('EBADMSG', `the agent attached ${size} bytes of a ${region.size}-byte device`);
      region.ids.set(linked.generation, regionId);
      return regionId;
    }
    const offer = await (await stubOf(linked)).offer({});
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
    const lib = addon()!;
    const socket = lib.connect(offer.handoverPath);
    try {
      lib.sendmsg(socket, offer.nonce, [region.fd]);
    } finally {
      lib.close(socket);
    }
    const { regionId, size } = await (await stubOf(linked)).attach({ nonce: offer.nonce }, { signal });
    if (size !== BigInt(region.size))
      throw new VaccelError('EBADMSG', `the agent attached ${size} bytes of a ${region.size}-byte region`);
    return regionId;
  }

  async #release(region: GuestRegion): Promise<void> {
    if (!this.#regions.delete(region.buffer)) return;
    // A connection that dropped took the agent's side of the region with it.
    const linked = this.current();
    const id = linked && region.ids.get(linked.generation);
    if (linked && id !== undefined) await (await stubOf(linked)).detach({ regionId: id }).catch(() => {});
    this.#unmap(region);
  }

  #unmap(region: GuestRegion): void {
    addon()!.munmap(region.buffer);
    if (region.fd >= 0) closeQuietly(region.fd);
  }
}

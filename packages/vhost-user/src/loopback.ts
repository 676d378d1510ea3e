/**
 * A loopback front-end: a minimal vhost-user front-end and virtio driver in this process. It
 * plays QEMU (shares memfd "guest memory", sets up its vrings with kick/call eventfds, creates
 * crypto sessions) and the guest driver (writes descriptor chains, kicks, waits for the used
 * ring), so backends can be tested and measured without a VM.
 * @module
 */
import { native } from '@vaccel/memory';
import {
  encodeMessage,
  Flags,
  type Message,
  MessageReader,
  memoryTable,
  Request,
  readSessionReply,
  readU64,
  sessionRequest,
  u64,
  vringState,
} from './protocol.js';
import { DESC_F_NEXT, DESC_F_WRITE } from './virtqueue.js';

/** Where the loopback's memory sits in "guest-physical" space. */
export const GUEST_BASE = 0x100000;
/** Where it claims to sit in its own (VMM) address space: vring addresses use this. */
export const USER_BASE = 0x7f00_0000_0000;
/** Each ring's area: descriptors, then the available ring 4 KiB on, the used ring 8 KiB on. */
const RING_AREA = 0x4000;
const AVAIL = 0x1000;
const USED = 0x2000;

/** A used-ring entry. */
export interface Completion {
  head: number;
  written: number;
}

/** One vring as the loopback's driver sees it: its descriptors, rings and eventfds. */
export class LoopbackRing {
  readonly kick: number;
  readonly call: number;
  readonly #frontend: LoopbackFrontend;
  readonly #base: number;
  readonly #callWatcher;
  #callWaiters: (() => void)[] = [];
  #availIndex = 0;
  #lastUsed = 0;
  #nextDesc = 0;

  constructor(
    frontend: LoopbackFrontend,
    readonly index: number,
  ) {
    const lib = native();
    this.#frontend = frontend;
    this.#base = index * RING_AREA;
    this.kick = lib.eventfd(0);
    this.call = lib.eventfd(0);
    this.#callWatcher = new lib.Watcher(this.call, () => {
      lib.eventfdRead(this.call);
      const waiters = this.#callWaiters;
      this.#callWaiters = [];
      for (const wake of waiters) wake();
    });
  }

  get #memory(): Uint8Array {
    return this.#frontend.memory;
  }

  get #size(): number {
    return this.#frontend.queueSize;
  }

  /** A SET_VRING_ADDR payload for this ring (offsets can be overridden to test bad ones). */
  address(overrides: { descriptors?: number; used?: number; available?: number } = {}): Uint8Array {
    const bytes = new Uint8Array(40);
    const view = new DataView(bytes.buffer);
    view.setUint32(0, this.index, true);
    view.setBigUint64(8, BigInt(overrides.descriptors ?? USER_BASE + this.#base), true);
    view.setBigUint64(16, BigInt(overrides.used ?? USER_BASE + this.#base + USED), true);
    view.setBigUint64(24, BigInt(overrides.available ?? USER_BASE + this.#base + AVAIL), true);
    return bytes;
  }

  /** Writes descriptor `index` of the table. */
  writeDescriptor(index: number, address: number, length: number, flags: number, next: number): void {
    const view = new DataView(this.#memory.buffer, this.#base + 16 * index, 16);
    view.setBigUint64(0, BigInt(address), true);
    view.setUint32(8, length, true);
    view.setUint16(12, flags, true);
    view.setUint16(14, next, true);
  }

  /** Puts a chain of readable then writable buffers in the ring and kicks; returns the head and the writable addresses. */
  submit(
    readable: readonly Uint8Array[],
    writable: readonly number[],
    kick = true,
  ): { head: number; out: number[] } {
    const count = readable.length + writable.length;
    const head = this.#nextDesc;
    const out: number[] = [];
    for (let i = 0; i < count; i++) {
      const index = (head + i) % this.#size;
      const last = i === count - 1;
      const next = (head + i + 1) % this.#size;
      if (i < readable.length)
        this.writeDescriptor(
          index,
          this.#frontend.place(readable[i]!),
          readable[i]!.byteLength,
          last ? 0 : DESC_F_NEXT,
          next,
        );
      else {
        const address = this.#frontend.place(writable[i - readable.length]!);
        out.push(address);
        this.writeDescriptor(
          index,
          address,
          writable[i - readable.length]!,
          DESC_F_WRITE | (last ? 0 : DESC_F_NEXT),
          next,
        );
      }
    }
    this.#nextDesc = (head + count) % this.#size;
    this.makeAvailable(head, kick);
    return { head, out };
  }

  /** Adds `head` to the available ring (and kicks). */
  makeAvailable(head: number, kick = true): void {
    const avail = new DataView(this.#memory.buffer, this.#base + AVAIL);
    avail.setUint16(4 + 2 * (this.#availIndex % this.#size), head, true);
    this.#availIndex = (this.#availIndex + 1) & 0xffff;
    avail.setUint16(2, this.#availIndex, true);
    if (kick) native().eventfdWrite(this.kick, 1);
  }

  /** Sets the available index directly (for corrupt-ring tests). */
  setAvailableIndex(index: number): void {
    new DataView(this.#memory.buffer, this.#base + AVAIL).setUint16(2, index, true);
    native().eventfdWrite(this.kick, 1);
  }

  /** Used entries the device returned since the last look (none: an empty array). */
  takeUsed(): Completion[] {
    const done: Completion[] = [];
    const used = new DataView(this.#memory.buffer, this.#base + USED);
    const index = used.getUint16(2, true);
    while (this.#lastUsed !== index) {
      const slot = 4 + 8 * (this.#lastUsed % this.#size);
      done.push({ head: used.getUint32(slot, true), written: used.getUint32(slot + 4, true) });
      this.#lastUsed = (this.#lastUsed + 1) & 0xffff;
    }
    return done;
  }

  /** Resolves at the device's next interrupt on this ring (or after `ms`, as a safety net). */
  interrupt(ms = 50): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.#callWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** Waits for `count` used entries (signalled through the call eventfd). */
  async completions(count: number, timeoutMs = 5000): Promise<Completion[]> {
    const done: Completion[] = [];
    const used = new DataView(this.#memory.buffer, this.#base + USED);
    const deadline = Date.now() + timeoutMs;
    while (done.length < count) {
      const index = used.getUint16(2, true);
      while (this.#lastUsed !== index && done.length < count) {
        const slot = 4 + 8 * (this.#lastUsed % this.#size);
        done.push({ head: used.getUint32(slot, true), written: used.getUint32(slot + 4, true) });
        this.#lastUsed = (this.#lastUsed + 1) & 0xffff;
      }
      if (done.length >= count) break;
      if (Date.now() > deadline) throw new Error(`only ${done.length} of ${count} completions arrived`);
      await this.interrupt();
    }
    return done;
  }

  /** Stops watching and closes its eventfds. */
  close(): void {
    this.#callWatcher.close();
    for (const fd of [this.kick, this.call]) native().close(fd);
  }
}

/** The loopback front-end; {@link LoopbackFrontend.setup} does what QEMU does at start. */
export class LoopbackFrontend {
  readonly fd: number;
  readonly memory: Uint8Array;
  readonly memfd: number;
  readonly queueSize: number;
  readonly rings: LoopbackRing[];
  readonly #reader = new MessageReader();
  readonly #replies: ((message: Message) => void)[] = [];
  readonly #socketWatcher;
  readonly #dataStart: number;
  #nextData: number;
  /** True once the backend closed the connection. */
  closed = false;

  /**
   * Connects to a backend at `socket` with `memoryBytes` of shared memory (default 1 MiB) and
   * `rings` vrings (default 1).
   */
  constructor(socket: string, options: { memoryBytes?: number; queueSize?: number; rings?: number } = {}) {
    const lib = native();
    this.queueSize = options.queueSize ?? 64;
    this.fd = lib.connect(socket);
    this.memfd = lib.memfd('guest-ram', options.memoryBytes ?? 1 << 20);
    this.memory = new Uint8Array(lib.mmap(this.memfd, options.memoryBytes ?? 1 << 20, 0));
    this.rings = Array.from({ length: options.rings ?? 1 }, (_, i) => new LoopbackRing(this, i));
    this.#dataStart = RING_AREA * this.rings.length;
    this.#nextData = this.#dataStart;
    const scratch = new Uint8Array(8192);
    this.#socketWatcher = new lib.Watcher(this.fd, () => {
      for (;;) {
        const got = lib.recvmsg(this.fd, scratch);
        if (got === null) return;
        if (got.bytes === 0) {
          this.closed = true;
          this.#socketWatcher.close();
          return;
        }
        for (const message of this.#reader.push(scratch.subarray(0, got.bytes), got.fds))
          this.#replies.shift()?.(message);
      }
    });
  }

  /** Ring 0's kick eventfd. */
  get kick(): number {
    return this.rings[0]!.kick;
  }

  /** Ring 0's call eventfd. */
  get call(): number {
    return this.rings[0]!.call;
  }

  /** Sends a message; resolves with the reply when one is expected. */
  send(
    request: number,
    payload?: Uint8Array,
    fds: number[] = [],
    flags: number = Flags.VERSION,
  ): Promise<Message | undefined> {
    native().sendmsg(this.fd, encodeMessage(request, flags, payload), fds);
    const replies =
      (flags & Flags.NEED_REPLY) !== 0 ||
      [
        Request.GET_FEATURES,
        Request.GET_PROTOCOL_FEATURES,
        Request.GET_VRING_BASE,
        Request.GET_QUEUE_NUM,
        Request.GET_CONFIG,
        Request.CREATE_CRYPTO_SESSION,
      ].includes(request as 1);
    if (!replies) return Promise.resolve(undefined);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no reply to request ${request}`)), 5000);
      this.#replies.push((message) => {
        clearTimeout(timer);
        resolve(message);
      });
    });
  }

  /** What QEMU does at start: features, owner, memory, vring 0 with kick and call. */
  async setup(options: { protocolFeatures?: bigint } = {}): Promise<void> {
    await this.send(Request.GET_FEATURES);
    const protocol = await this.send(Request.GET_PROTOCOL_FEATURES);
    const offered = readU64(protocol!.payload, 'GET_PROTOCOL_FEATURES');
    await this.send(Request.SET_PROTOCOL_FEATURES, u64(options.protocolFeatures ?? offered));
    await this.send(Request.SET_OWNER);
    await this.send(Request.SET_FEATURES, u64(1n << 32n));
    await this.send(
      Request.SET_MEM_TABLE,
      memoryTable([
        { guestAddress: GUEST_BASE, size: this.memory.byteLength, userAddress: USER_BASE, mmapOffset: 0 },
      ]),
      [this.memfd],
    );
    for (const ring of this.rings) {
      await this.send(Request.SET_VRING_NUM, vringState(ring.index, this.queueSize));
      await this.send(Request.SET_VRING_BASE, vringState(ring.index, 0));
      await this.send(Request.SET_VRING_ADDR, ring.address());
      await this.send(Request.SET_VRING_KICK, u64(ring.index), [ring.kick]);
      await this.send(Request.SET_VRING_CALL, u64(ring.index), [ring.call]);
    }
  }

  /** A SET_VRING_ADDR payload for ring `index`'s layout (offsets can be overridden to test bad ones). */
  vringAddress(
    index: number,
    overrides: { descriptors?: number; used?: number; available?: number } = {},
  ): Uint8Array {
    const bytes = (this.rings[index] ?? this.rings[0]!).address(overrides);
    new DataView(bytes.buffer).setUint32(0, index, true);
    return bytes;
  }

  /** Creates a cipher session (AES-CBC by default); the backend's id, or -1 when refused. */
  async createSession(key: Uint8Array, direction: number, cipherAlgorithm = 3): Promise<bigint> {
    const reply = await this.send(
      Request.CREATE_CRYPTO_SESSION,
      sessionRequest({ opcode: 2, cipherAlgorithm, key, direction, opType: 1 }),
    );
    return readSessionReply(reply!.payload);
  }

  /** Copies `data` into guest memory; returns its guest-physical address. */
  place(data: Uint8Array | number): number {
    const length = typeof data === 'number' ? data : data.byteLength;
    if (this.#nextData + length > this.memory.byteLength) this.#nextData = this.#dataStart;
    const at = this.#nextData;
    if (typeof data !== 'number') this.memory.set(data, at);
    else this.memory.fill(0xee, at, at + length);
    this.#nextData += (length + 15) & ~15;
    return GUEST_BASE + at;
  }

  /** Writes descriptor `index` of ring 0's table. */
  writeDescriptor(index: number, address: number, length: number, flags: number, next: number): void {
    this.rings[0]!.writeDescriptor(index, address, length, flags, next);
  }

  /** {@link LoopbackRing.submit} on ring 0. */
  submit(
    readable: readonly Uint8Array[],
    writable: readonly number[],
    kick = true,
  ): { head: number; out: number[] } {
    return this.rings[0]!.submit(readable, writable, kick);
  }

  /** {@link LoopbackRing.makeAvailable} on ring 0. */
  makeAvailable(head: number, kick = true): void {
    this.rings[0]!.makeAvailable(head, kick);
  }

  /** {@link LoopbackRing.setAvailableIndex} on ring 0. */
  setAvailableIndex(index: number): void {
    this.rings[0]!.setAvailableIndex(index);
  }

  /** Bytes at a guest-physical address. */
  read(address: number, length: number): Uint8Array {
    return this.memory.slice(address - GUEST_BASE, address - GUEST_BASE + length);
  }

  /** {@link LoopbackRing.completions} on ring 0. */
  completions(count: number, timeoutMs = 5000): Promise<Completion[]> {
    return this.rings[0]!.completions(count, timeoutMs);
  }

  /** Waits until the backend closes the connection. */
  async waitClosed(timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed) {
      if (Date.now() > deadline) throw new Error('the backend kept the connection open');
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  /** Closes the connection and every descriptor it holds. */
  close(): void {
    this.#socketWatcher.close();
    for (const ring of this.rings) ring.close();
    for (const fd of [this.fd, this.memfd]) native().close(fd);
  }
}

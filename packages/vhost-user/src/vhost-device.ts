/**
 * The vhost-user side every device shares: the state a front-end (QEMU) builds up over its
 * connection — features, guest memory, vrings, configuration space — with the device model
 * ({@link DeviceModel}) deciding what the rings carry. Nothing the front-end sends can crash it:
 * protocol violations throw `EPROTO` (the connection closes), bad ring setups and requests the
 * device refuses are logged and, where asked, answered with a failed ack.
 * @module
 */
import { VaccelError } from '@vaccel/core';
import { closeQuietly } from '@vaccel/memory';
import type { Logger } from 'pino';
import { GuestMemory } from './memory.js';
import {
  Feature,
  Flags,
  type Message,
  ProtocolFeature,
  Request,
  readMemoryTable,
  readU64,
  readVringAddress,
  readVringState,
  u64,
  VRING_NOFD,
  vringState,
} from './protocol.js';
import { checkQueueSize } from './virtqueue.js';
import { type RingService, Vring } from './vring.js';

/** Ring features every device here offers. */
export const RING_FEATURES =
  (1n << BigInt(Feature.VERSION_1)) |
  (1n << BigInt(Feature.RING_INDIRECT_DESC)) |
  (1n << BigInt(Feature.RING_EVENT_IDX)) |
  (1n << BigInt(Feature.PROTOCOL_FEATURES));

/** What makes a vhost-user connection a particular device. */
export interface DeviceModel {
  /** For messages ("crypto", "vsock"). */
  readonly kind: string;
  /** Virtio feature bits offered (GET_FEATURES). */
  readonly features: bigint;
  /** vhost-user protocol feature bits offered (GET_PROTOCOL_FEATURES). */
  readonly protocolFeatures: bigint;
  /** Vrings the back-end serves (GET_QUEUE_NUM, and the highest index accepted). */
  readonly vrings: number;
  /** Serves one ring's queue when its driver kicks. */
  readonly serve: RingService;
  /**
   * A request only this device knows: returns the reply payload, `null` when it has none, or
   * `undefined` when it is not the device's (the request is refused as unsupported).
   */
  request?(message: Message): Uint8Array | null | undefined;
  /** The device's configuration space (GET_CONFIG; needs the CONFIG protocol feature). */
  config?(): Uint8Array;
  /** Guest memory was (re)mapped; rings are restarted by the caller. */
  memoryChanged?(memory: GuestMemory): void;
  /** The front-end reset the device (its rings are stopped). */
  reset?(): void;
  /**
   * The front-end stopped ring `index` (GET_VRING_BASE, or SET_VRING_ENABLE 0): QEMU does so when
   * the driver resets the device (a reboot, a new driver) or the VM stops.
   */
  stopped?(index: number): void;
  /** The connection is gone. */
  close?(): void;
}

/** Bytes of a GET_CONFIG header: offset, size, flags. */
const CONFIG_HEADER = 12;

/** The device behind one vhost-user connection. */
export class VhostDevice {
  readonly model: DeviceModel;
  readonly #log: Logger;
  readonly #send: (request: number, payload: Uint8Array) => void;
  readonly #vrings: Vring[] = [];
  #memory = GuestMemory.empty();
  #protocolFeatures = 0n;
  #closed = false;

  constructor(options: {
    model: DeviceModel;
    log: Logger;
    /** Sends a reply to the front-end. */
    send: (request: number, payload: Uint8Array) => void;
  }) {
    this.model = options.model;
    this.#log = options.log;
    this.#send = options.send;
  }

  /** Guest memory as mapped now (empty before SET_MEM_TABLE). */
  get memory(): GuestMemory {
    return this.#memory;
  }

  /** The ring at `index` if the front-end set it up. */
  ring(index: number): Vring | undefined {
    return this.#vrings[index];
  }

  /** Handles one message; throws `EPROTO` when the connection must close. */
  handle(message: Message): void {
    const wantsAck = (message.flags & Flags.NEED_REPLY) !== 0 && this.#has(ProtocolFeature.REPLY_ACK);
    let ok = true;
    let replied = false;
    try {
      replied = this.#dispatch(message);
    } catch (error) {
      // Each handler owns (keeps or closes) the descriptors its message carried, even when it throws.
      if ((error as VaccelError).code === 'EPROTO') throw error;
      this.#log.warn({ request: message.request, err: error }, 'vhost-user request refused');
      ok = false;
    }
    if (wantsAck && !replied) this.#send(message.request, u64(ok ? 0 : 1));
  }

  #has(feature: number): boolean {
    return (this.#protocolFeatures & (1n << BigInt(feature))) !== 0n;
  }

  #vring(index: number): Vring {
    const count = this.model.vrings;
    if (!Number.isInteger(index) || index < 0 || index >= count)
      throw new VaccelError('EPROTO', `vring ${index} does not exist (this device has ${count})`);
    this.#vrings[index] ??= new Vring(index, { log: this.#log, serve: this.model.serve });
    return this.#vrings[index];
  }

  /** The descriptor of a kick/call/err message (index in the low byte, bit 8 = none). */
  #vringFd(message: Message): { ring: Vring; fd: number | undefined } {
    try {
      const value = readU64(message.payload, 'vring descriptor');
      const ring = this.#vring(Number(value & 0xffn));
      const noFd = (value & BigInt(VRING_NOFD)) !== 0n;
      if (message.fds.length !== (noFd ? 0 : 1))
        throw new VaccelError(
          'EPROTO',
          `request ${message.request} came with ${message.fds.length} descriptors`,
        );
      return { ring, fd: noFd ? undefined : message.fds[0] };
    } catch (error) {
      for (const fd of message.fds) closeQuietly(fd);
      throw error;
    }
  }

  /** @returns true when a reply was sent (REPLY_ACK then adds none). */
  #dispatch(message: Message): boolean {
    const { payload } = message;
    const reply = (bytes: Uint8Array): true => {
      this.#send(message.request, bytes);
      return true;
    };
    switch (message.request) {
      case Request.GET_FEATURES:
        return reply(u64(this.model.features));
      case Request.SET_FEATURES:
        readU64(payload, 'SET_FEATURES');
        return false;
      case Request.GET_PROTOCOL_FEATURES:
        return reply(u64(this.model.protocolFeatures));
      case Request.SET_PROTOCOL_FEATURES:
        this.#protocolFeatures = readU64(payload, 'SET_PROTOCOL_FEATURES') & this.model.protocolFeatures;
        return false;
      case Request.GET_QUEUE_NUM:
        return reply(u64(this.model.vrings));
      case Request.SET_OWNER:
        return false;
      case Request.RESET_OWNER:
      case Request.RESET_DEVICE:
        this.#reset();
        return false;
      case Request.SET_MEM_TABLE:
        this.#setMemory(message);
        return false;
      case Request.SET_VRING_NUM: {
        const { index, num } = readVringState(payload, 'SET_VRING_NUM');
        const ring = this.#vring(index);
        checkQueueSize(num);
        ring.size = num;
        return false;
      }
      case Request.SET_VRING_ADDR: {
        const { index, ...addresses } = readVringAddress(payload);
        const ring = this.#vring(index);
        ring.addresses = {
          descriptors: addresses.descriptors,
          available: addresses.available,
          used: addresses.used,
        };
        this.#start(ring);
        return false;
      }
      case Request.SET_VRING_BASE: {
        const { index, num } = readVringState(payload, 'SET_VRING_BASE');
        this.#vring(index).base = num & 0xffff;
        return false;
      }
      case Request.GET_VRING_BASE: {
        const { index } = readVringState(payload, 'GET_VRING_BASE');
        const ring = this.#vring(index);
        ring.stop();
        this.model.stopped?.(index);
        return reply(vringState(index, ring.base));
      }
      case Request.SET_VRING_KICK: {
        const { ring, fd } = this.#vringFd(message);
        if (fd === undefined)
          throw new VaccelError('EPROTO', 'polling mode (a vring without a kick descriptor)');
        ring.stop();
        closeQuietly(ring.kick);
        ring.kick = fd;
        this.#start(ring);
        return false;
      }
      case Request.SET_VRING_CALL: {
        const { ring, fd } = this.#vringFd(message);
        closeQuietly(ring.call);
        ring.call = fd;
        // A ring restarted before its new call descriptor came may have signalled the old one.
        if (ring.running) ring.notify();
        return false;
      }
      case Request.SET_VRING_ERR: {
        const { ring, fd } = this.#vringFd(message);
        closeQuietly(ring.error);
        ring.error = fd;
        return false;
      }
      case Request.SET_VRING_ENABLE: {
        const { index, num } = readVringState(payload, 'SET_VRING_ENABLE');
        const ring = this.#vring(index);
        ring.enabled = num === 1;
        if (ring.enabled) this.#start(ring);
        else {
          ring.stop();
          this.model.stopped?.(index);
        }
        return false;
      }
      case Request.GET_CONFIG:
        if (this.model.config && this.#has(ProtocolFeature.CONFIG))
          return reply(configReply(payload, this.model.config()));
        break;
      case Request.SET_CONFIG:
        // Every configuration field here is the device's to set (a vsock's CID): writes are ignored.
        if (this.model.config && this.#has(ProtocolFeature.CONFIG)) return false;
        break;
      default: {
        const answer = this.model.request?.(message);
        if (answer === null) return false;
        if (answer !== undefined) return reply(answer);
      }
    }
    for (const fd of message.fds) closeQuietly(fd);
    throw new VaccelError(
      'ENOTSUP',
      `vhost-user request ${message.request} is not supported by a ${this.model.kind} device`,
    );
  }

  #setMemory(message: Message): void {
    try {
      const regions = readMemoryTable(message.payload);
      if (message.fds.length !== regions.length)
        throw new VaccelError(
          'EPROTO',
          `memory table of ${regions.length} regions came with ${message.fds.length} descriptors`,
        );
      this.#memory = GuestMemory.map(regions, message.fds);
      this.#log.debug({ regions: regions.length }, 'guest memory mapped');
    } finally {
      for (const fd of message.fds) closeQuietly(fd);
    }
    this.model.memoryChanged?.(this.#memory);
    // Running rings re-translate their addresses into the new mapping; waiting ones may start now.
    for (const ring of this.#vrings) {
      if (!ring) continue;
      ring.stop();
      this.#start(ring);
    }
  }

  #start(ring: Vring): void {
    if (!this.#closed) ring.start(this.#memory);
  }

  #reset(): void {
    for (const ring of this.#vrings) if (ring) ring.stop();
    this.model.reset?.();
  }

  /** Stops every vring and closes every descriptor the front-end gave us. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const ring of this.#vrings) {
      if (!ring) continue;
      ring.close();
    }
    this.model.close?.();
    this.#memory = GuestMemory.empty();
  }
}

/**
 * The reply to GET_CONFIG: its header echoed and `size` bytes of the configuration space from
 * `offset` (zeros past its end), as QEMU checks the reply's size against what it asked.
 */
function configReply(request: Uint8Array, space: Uint8Array): Uint8Array {
  if (request.byteLength < CONFIG_HEADER)
    throw new VaccelError('EPROTO', `GET_CONFIG payload of ${request.byteLength} bytes`);
  const view = new DataView(request.buffer, request.byteOffset, request.byteLength);
  const offset = view.getUint32(0, true);
  const size = view.getUint32(4, true);
  if (size > 256) throw new VaccelError('EPROTO', `GET_CONFIG of ${size} bytes (at most 256)`);
  const reply = new Uint8Array(CONFIG_HEADER + size);
  reply.set(request.subarray(0, CONFIG_HEADER));
  if (offset < space.byteLength) reply.set(space.subarray(offset, offset + size), CONFIG_HEADER);
  return reply;
}

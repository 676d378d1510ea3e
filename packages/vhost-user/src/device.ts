/**
 * One vhost-user crypto device: the state a front-end (QEMU) builds up over its connection —
 * features, guest memory, vrings, crypto sessions — and the data path that serves the vrings.
 * Nothing the front-end or the guest sends can crash it: protocol violations throw `EPROTO`
 * (the connection closes), bad ring setups and bad requests are refused and logged.
 * @module
 */
import { VaccelError } from '@vaccel/core';
import { closeQuietly } from '@vaccel/memory';
import type { Logger } from 'pino';
import type { CipherEngine } from './engine.js';
import { GuestMemory } from './memory.js';
import {
  Feature,
  Flags,
  type Message,
  ProtocolFeature,
  Request,
  readMemoryTable,
  readSessionRequest,
  readU64,
  readVringAddress,
  readVringState,
  sessionReply,
  u64,
  VRING_NOFD,
  vringState,
} from './protocol.js';
import { type CipherSession, Direction, Opcode, opensslCipher, SymOp } from './virtio-crypto.js';
import { checkQueueSize } from './virtqueue.js';
import { type DeviceCounters, Vring, type VringContext } from './vring.js';

/** Virtio features we offer. */
export const DEVICE_FEATURES =
  (1n << BigInt(Feature.VERSION_1)) |
  (1n << BigInt(Feature.RING_INDIRECT_DESC)) |
  (1n << BigInt(Feature.RING_EVENT_IDX)) |
  (1n << BigInt(Feature.PROTOCOL_FEATURES));
/** vhost-user protocol features we offer (MQ: QEMU's `cryptodev-vhost-user,queues=N`). */
export const PROTOCOL_FEATURES =
  (1n << BigInt(ProtocolFeature.MQ)) |
  (1n << BigInt(ProtocolFeature.REPLY_ACK)) |
  (1n << BigInt(ProtocolFeature.CRYPTO_SESSION));
/** Vrings per device: data queues, one per vring (QEMU keeps the control queue itself). */
export const MAX_VRINGS = 8;
/** Sessions one device may hold open. */
export const MAX_SESSIONS = 4096;
export type { DeviceCounters } from './vring.js';

/** The device behind one vhost-user connection. */
export class CryptoDevice {
  readonly #engine: CipherEngine;
  readonly #log: Logger;
  readonly #send: (request: number, payload: Uint8Array) => void;
  readonly #counters: DeviceCounters;
  readonly #sessions = new Map<bigint, CipherSession>();
  readonly #vrings: Vring[] = [];
  #memory = GuestMemory.empty();
  #protocolFeatures = 0n;
  #nextSession = 1n;
  #closed = false;
  readonly #context: VringContext;

  constructor(options: {
    engine: CipherEngine;
    log: Logger;
    counters: DeviceCounters;
    /** Sends a reply to the front-end. */
    send: (request: number, payload: Uint8Array) => void;
  }) {
    this.#engine = options.engine;
    this.#log = options.log;
    this.#counters = options.counters;
    this.#send = options.send;
    this.#context = {
      engine: this.#engine,
      sessions: this.#sessions,
      counters: this.#counters,
      log: this.#log,
    };
  }

  /** Open sessions. */
  get sessions(): number {
    return this.#sessions.size;
  }

  /** Handles one message; throws `EPROTO` when the connection must close. */
  handle(message: Message): void {
    const wantsAck = (message.flags & Flags.NEED_REPLY) !== 0 && this.#has(ProtocolFeature.REPLY_ACK);
    let ok = true;
    try {
      this.#dispatch(message);
    } catch (error) {
      // Each handler owns (keeps or closes) the descriptors its message carried, even when it throws.
      if ((error as VaccelError).code === 'EPROTO') throw error;
      this.#log.warn({ request: message.request, err: error }, 'vhost-user request refused');
      ok = false;
    }
    if (wantsAck && !REPLIES.has(message.request)) this.#send(message.request, u64(ok ? 0 : 1));
  }

  #has(feature: number): boolean {
    return (this.#protocolFeatures & (1n << BigInt(feature))) !== 0n;
  }

  #vring(index: number): Vring {
    if (!Number.isInteger(index) || index < 0 || index >= MAX_VRINGS)
      throw new VaccelError('EPROTO', `vring ${index} does not exist (this device has ${MAX_VRINGS})`);
    this.#vrings[index] ??= new Vring(index, this.#context);
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

  #dispatch(message: Message): void {
    const { payload } = message;
    switch (message.request) {
      case Request.GET_FEATURES:
        this.#send(message.request, u64(DEVICE_FEATURES));
        return;
      case Request.SET_FEATURES:
        readU64(payload, 'SET_FEATURES');
        return;
      case Request.GET_PROTOCOL_FEATURES:
        this.#send(message.request, u64(PROTOCOL_FEATURES));
        return;
      case Request.SET_PROTOCOL_FEATURES:
        this.#protocolFeatures = readU64(payload, 'SET_PROTOCOL_FEATURES') & PROTOCOL_FEATURES;
        return;
      case Request.GET_QUEUE_NUM:
        this.#send(message.request, u64(MAX_VRINGS));
        return;
      case Request.SET_OWNER:
        return;
      case Request.RESET_OWNER:
      case Request.RESET_DEVICE:
        this.#reset();
        return;
      case Request.SET_MEM_TABLE:
        this.#setMemory(message);
        return;
      case Request.SET_VRING_NUM: {
        const { index, num } = readVringState(payload, 'SET_VRING_NUM');
        const ring = this.#vring(index);
        checkQueueSize(num);
        ring.size = num;
        return;
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
        return;
      }
      case Request.SET_VRING_BASE: {
        const { index, num } = readVringState(payload, 'SET_VRING_BASE');
        this.#vring(index).base = num & 0xffff;
        return;
      }
      case Request.GET_VRING_BASE: {
        const { index } = readVringState(payload, 'GET_VRING_BASE');
        const ring = this.#vring(index);
        ring.stop();
        this.#send(message.request, vringState(index, ring.base));
        return;
      }
      case Request.SET_VRING_KICK: {
        const { ring, fd } = this.#vringFd(message);
        if (fd === undefined)
          throw new VaccelError('EPROTO', 'polling mode (a vring without a kick descriptor)');
        ring.stop();
        closeQuietly(ring.kick);
        ring.kick = fd;
        this.#start(ring);
        return;
      }
      case Request.SET_VRING_CALL: {
        const { ring, fd } = this.#vringFd(message);
        closeQuietly(ring.call);
        ring.call = fd;
        return;
      }
      case Request.SET_VRING_ERR: {
        const { ring, fd } = this.#vringFd(message);
        closeQuietly(ring.error);
        ring.error = fd;
        return;
      }
      case Request.SET_VRING_ENABLE: {
        const { index, num } = readVringState(payload, 'SET_VRING_ENABLE');
        const ring = this.#vring(index);
        ring.enabled = num === 1;
        if (ring.enabled) this.#start(ring);
        return;
      }
      case Request.CREATE_CRYPTO_SESSION:
        this.#send(message.request, sessionReply(payload, this.#createSession(payload)));
        return;
      case Request.CLOSE_CRYPTO_SESSION: {
        const id = readU64(payload, 'CLOSE_CRYPTO_SESSION');
        if (!this.#sessions.delete(id)) throw new VaccelError('ENOENT', `no crypto session ${id}`);
        return;
      }
      default:
        for (const fd of message.fds) closeQuietly(fd);
        throw new VaccelError(
          'ENOTSUP',
          `vhost-user request ${message.request} is not supported by a crypto device`,
        );
    }
  }

  /** A new session's id, or -1 (what QEMU expects) when it cannot be created. */
  #createSession(payload: Uint8Array): bigint {
    const info = readSessionRequest(payload);
    const cipher = opensslCipher(info.cipherAlgorithm, info.key.byteLength);
    const refuse = (reason: string): bigint => {
      this.#log.warn(
        { algorithm: info.cipherAlgorithm, keyBytes: info.key.byteLength, reason },
        'crypto session refused',
      );
      return -1n;
    };
    if (info.opcode !== 0 && info.opcode !== Opcode.CIPHER_CREATE_SESSION)
      return refuse(`service opcode 0x${info.opcode.toString(16)} (only ciphers)`);
    if (info.opType !== SymOp.CIPHER) return refuse(`op type ${info.opType} (only plain ciphers)`);
    if (info.direction !== Direction.ENCRYPT && info.direction !== Direction.DECRYPT)
      return refuse(`direction ${info.direction}`);
    if (!cipher || !this.#engine.supports(cipher)) return refuse(`${cipher ?? 'algorithm'} not supported`);
    if (this.#sessions.size >= MAX_SESSIONS) return refuse(`more than ${MAX_SESSIONS} sessions`);
    const id = this.#nextSession++;
    this.#sessions.set(id, { id, cipher, key: info.key, direction: info.direction });
    this.#counters.sessionsCreated++;
    this.#log.debug({ id: String(id), cipher }, 'crypto session created');
    return id;
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
    this.#sessions.clear();
  }

  /** Stops every vring and closes every descriptor the front-end gave us. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const ring of this.#vrings) {
      if (!ring) continue;
      ring.close();
    }
    this.#sessions.clear();
    this.#memory = GuestMemory.empty();
  }
}

/** Requests answered with their own reply (REPLY_ACK adds none). */
const REPLIES: ReadonlySet<number> = new Set<number>([
  Request.GET_FEATURES,
  Request.GET_PROTOCOL_FEATURES,
  Request.GET_QUEUE_NUM,
  Request.GET_VRING_BASE,
  Request.CREATE_CRYPTO_SESSION,
]);

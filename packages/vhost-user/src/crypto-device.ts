/**
 * The virtio-crypto device model: sessions arrive as vhost-user CREATE_CRYPTO_SESSION messages
 * (QEMU keeps the control queue), requests on the data queues, each run by the cipher engine.
 * @module
 */
import { VaccelError } from '@vaccel/core';
import type { Logger } from 'pino';
import type { CipherEngine } from './engine.js';
import {
  type Message,
  ProtocolFeature,
  Request,
  readSessionRequest,
  readU64,
  sessionReply,
} from './protocol.js';
import { type DeviceModel, RING_FEATURES } from './vhost-device.js';
import {
  type CipherSession,
  Direction,
  handleRequest,
  Opcode,
  opensslCipher,
  Status,
  SymOp,
} from './virtio-crypto.js';
import type { SplitQueue } from './virtqueue.js';
import type { Vring } from './vring.js';

/** Virtio features we offer. */
export const DEVICE_FEATURES = RING_FEATURES;
/** vhost-user protocol features we offer (MQ: QEMU's `cryptodev-vhost-user,queues=N`). */
export const PROTOCOL_FEATURES =
  (1n << BigInt(ProtocolFeature.MQ)) |
  (1n << BigInt(ProtocolFeature.REPLY_ACK)) |
  (1n << BigInt(ProtocolFeature.CRYPTO_SESSION));
/** Vrings per device: data queues, one per vring (QEMU keeps the control queue itself). */
export const MAX_VRINGS = 8;
/** Sessions one device may hold open. */
export const MAX_SESSIONS = 4096;
/** Requests served in one go before yielding to the event loop. */
const BATCH = 256;

/** Counters a crypto device adds to. */
export interface DeviceCounters {
  requests: number;
  failed: number;
  bytes: number;
  sessionsCreated: number;
}

/** The crypto device behind one vhost-user connection. */
export class CryptoDevice implements DeviceModel {
  readonly kind = 'crypto';
  readonly features = DEVICE_FEATURES;
  readonly protocolFeatures = PROTOCOL_FEATURES;
  readonly vrings = MAX_VRINGS;
  readonly #engine: CipherEngine;
  readonly #log: Logger;
  readonly #counters: DeviceCounters;
  readonly #sessions = new Map<bigint, CipherSession>();
  #nextSession = 1n;

  constructor(options: { engine: CipherEngine; log: Logger; counters: DeviceCounters }) {
    this.#engine = options.engine;
    this.#log = options.log;
    this.#counters = options.counters;
  }

  /** Open sessions. */
  get sessions(): number {
    return this.#sessions.size;
  }

  request(message: Message): Uint8Array | null | undefined {
    switch (message.request) {
      case Request.CREATE_CRYPTO_SESSION:
        return sessionReply(message.payload, this.#createSession(message.payload));
      case Request.CLOSE_CRYPTO_SESSION: {
        const id = readU64(message.payload, 'CLOSE_CRYPTO_SESSION');
        if (!this.#sessions.delete(id)) throw new VaccelError('ENOENT', `no crypto session ${id}`);
        return null;
      }
      default:
        return undefined;
    }
  }

  reset(): void {
    this.#sessions.clear();
  }

  close(): void {
    this.#sessions.clear();
  }

  readonly serve = async (queue: SplitQueue, ring: Vring): Promise<void> => {
    const counters = this.#counters;
    const log = this.#log;
    for (;;) {
      if (ring.queue !== queue) return;
      let served = 0;
      for (let head = queue.pop(); head !== undefined; head = queue.pop()) {
        let written = 0;
        try {
          const chain = queue.chain(head);
          const pending = handleRequest(chain, this.#sessions, this.#engine.run);
          const outcome = pending instanceof Promise ? await pending : pending;
          written = outcome.written;
          counters.requests++;
          if (outcome.status === Status.OK) counters.bytes += outcome.processed;
          else {
            counters.failed++;
            log.debug({ status: outcome.status, reason: outcome.reason }, 'crypto request failed');
          }
        } catch (error) {
          // The chain itself is unusable: return it empty so the driver gets its buffer back.
          counters.requests++;
          counters.failed++;
          log.warn({ vring: ring.index, head, err: error }, 'malformed request returned unread');
        }
        if (ring.queue !== queue) return; // stopped (or remapped) while a cipher ran
        queue.push(head, written);
        if (++served % BATCH === 0) {
          ring.notify();
          await new Promise((resolve) => setImmediate(resolve));
          if (ring.queue !== queue) return;
        }
      }
      queue.requestKick();
      ring.notify();
      // A buffer made available between our last look and avail_event's update sent no kick.
      if (!queue.pending) return;
    }
  };

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
}

/**
 * The vhost-user wire format (QEMU docs/interop/vhost-user.rst): a 12-byte header (request, flags,
 * size) and a little-endian payload, with file descriptors passed alongside as SCM_RIGHTS.
 * @module
 */
import { VaccelError } from '@vaccel/core';
import type { MemoryRegion } from './memory.js';
import type { SessionInfo } from './virtio-crypto.js';

/** Front-end → back-end requests (the ones a crypto device meets, and their neighbours). */
export const Request = {
  GET_FEATURES: 1,
  SET_FEATURES: 2,
  SET_OWNER: 3,
  RESET_OWNER: 4,
  SET_MEM_TABLE: 5,
  SET_LOG_BASE: 6,
  SET_LOG_FD: 7,
  SET_VRING_NUM: 8,
  SET_VRING_ADDR: 9,
  SET_VRING_BASE: 10,
  GET_VRING_BASE: 11,
  SET_VRING_KICK: 12,
  SET_VRING_CALL: 13,
  SET_VRING_ERR: 14,
  GET_PROTOCOL_FEATURES: 15,
  SET_PROTOCOL_FEATURES: 16,
  GET_QUEUE_NUM: 17,
  SET_VRING_ENABLE: 18,
  SET_BACKEND_REQ_FD: 21,
  GET_CONFIG: 24,
  SET_CONFIG: 25,
  CREATE_CRYPTO_SESSION: 26,
  CLOSE_CRYPTO_SESSION: 27,
  GET_INFLIGHT_FD: 31,
  SET_INFLIGHT_FD: 32,
  RESET_DEVICE: 34,
  GET_MAX_MEM_SLOTS: 36,
} as const;

/** Header flags. */
export const Flags = { VERSION: 0x1, REPLY: 0x4, NEED_REPLY: 0x8 } as const;
/** Virtio and vhost-user feature bits we use. */
export const Feature = {
  RING_INDIRECT_DESC: 28,
  RING_EVENT_IDX: 29,
  PROTOCOL_FEATURES: 30,
  VERSION_1: 32,
} as const;
/** Protocol feature bits. */
export const ProtocolFeature = { MQ: 0, REPLY_ACK: 3, CRYPTO_SESSION: 7, CONFIG: 9 } as const;

export const HEADER_SIZE = 12;
/** No vhost-user payload we accept is larger (the biggest, a crypto session, is 1,072 bytes). */
export const MAX_PAYLOAD = 4096;
/** Memory regions in one SET_MEM_TABLE. */
export const MAX_REGIONS = 8;
/** The low byte of a vring kick/call/err payload is the index; this bit says "no descriptor". */
export const VRING_NOFD = 0x100;

/** One message. */
export interface Message {
  request: number;
  flags: number;
  payload: Uint8Array;
  /** Descriptors that came with it (the receiver owns them). */
  fds: number[];
}

/** Requests that carry descriptors; every other request gets none of what arrives. */
export const CARRIES_FDS: ReadonlySet<number> = new Set<number>([
  Request.SET_MEM_TABLE,
  Request.SET_LOG_BASE,
  Request.SET_LOG_FD,
  Request.SET_VRING_KICK,
  Request.SET_VRING_CALL,
  Request.SET_VRING_ERR,
  Request.SET_BACKEND_REQ_FD,
  Request.SET_INFLIGHT_FD,
]);

const view = (bytes: Uint8Array): DataView => new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);

/** Encodes a message (header + payload). */
export function encodeMessage(
  request: number,
  flags: number,
  payload: Uint8Array = new Uint8Array(0),
): Uint8Array {
  const bytes = new Uint8Array(HEADER_SIZE + payload.byteLength);
  const header = view(bytes);
  header.setUint32(0, request, true);
  header.setUint32(4, flags, true);
  header.setUint32(8, payload.byteLength, true);
  bytes.set(payload, HEADER_SIZE);
  return bytes;
}

/**
 * Splits a byte stream into messages. QEMU sends each message in one sendmsg, but a stream socket
 * may still split or join them, so bytes are buffered until a whole message is there.
 */
export class MessageReader {
  #pending: Uint8Array = new Uint8Array(0);
  #fds: number[] = [];

  /** Adds received bytes and descriptors; returns the messages now complete. */
  push(bytes: Uint8Array, fds: readonly number[]): Message[] {
    this.#fds.push(...fds);
    const joined = new Uint8Array(this.#pending.byteLength + bytes.byteLength);
    joined.set(this.#pending);
    joined.set(bytes, this.#pending.byteLength);
    const messages: Message[] = [];
    let at = 0;
    while (joined.byteLength - at >= HEADER_SIZE) {
      const header = new DataView(joined.buffer, at, HEADER_SIZE);
      const request = header.getUint32(0, true);
      const flags = header.getUint32(4, true);
      const size = header.getUint32(8, true);
      if ((flags & 0x3) !== Flags.VERSION)
        throw new VaccelError('EPROTO', `vhost-user message with version ${flags & 0x3} (only 1 exists)`);
      if (size > MAX_PAYLOAD)
        throw new VaccelError('EPROTO', `vhost-user payload of ${size} bytes (request ${request})`);
      if (joined.byteLength - at < HEADER_SIZE + size) break;
      const payload = joined.slice(at + HEADER_SIZE, at + HEADER_SIZE + size);
      const fds = CARRIES_FDS.has(request) ? this.#fds.splice(0) : [];
      messages.push({ request, flags, payload, fds });
      at += HEADER_SIZE + size;
    }
    this.#pending = joined.slice(at);
    return messages;
  }

  /** Bytes of a message not complete yet (its descriptors may already have arrived). */
  get pendingBytes(): number {
    return this.#pending.byteLength;
  }

  /** Descriptors received but not (yet) claimed by a message; the caller closes them. */
  takeStrayFds(): number[] {
    return this.#fds.splice(0);
  }
}

const need = (payload: Uint8Array, size: number, what: string): DataView => {
  if (payload.byteLength < size)
    throw new VaccelError('EPROTO', `${what} payload is ${payload.byteLength} bytes, needs ${size}`);
  return view(payload);
};

/** A u64 payload (as a bigint: feature masks use all 64 bits). */
export const readU64 = (payload: Uint8Array, what: string): bigint =>
  need(payload, 8, what).getBigUint64(0, true);

/** Encodes a u64 payload. */
export function u64(value: bigint | number): Uint8Array {
  const bytes = new Uint8Array(8);
  view(bytes).setBigUint64(0, BigInt(value), true);
  return bytes;
}

/** A vring state payload: { index, num }. */
export function readVringState(payload: Uint8Array, what: string): { index: number; num: number } {
  const data = need(payload, 8, what);
  return { index: data.getUint32(0, true), num: data.getUint32(4, true) };
}

/** Encodes a vring state payload. */
export function vringState(index: number, num: number): Uint8Array {
  const bytes = new Uint8Array(8);
  view(bytes).setUint32(0, index, true);
  view(bytes).setUint32(4, num, true);
  return bytes;
}

const safe = (value: bigint, what: string): number => {
  if (value > BigInt(Number.MAX_SAFE_INTEGER))
    throw new VaccelError('EFAULT', `${what} 0x${value.toString(16)} is too large`);
  return Number(value);
};

/** A SET_VRING_ADDR payload. */
export function readVringAddress(payload: Uint8Array): {
  index: number;
  flags: number;
  descriptors: number;
  used: number;
  available: number;
} {
  const data = need(payload, 40, 'SET_VRING_ADDR');
  return {
    index: data.getUint32(0, true),
    flags: data.getUint32(4, true),
    descriptors: safe(data.getBigUint64(8, true), 'descriptor table address'),
    used: safe(data.getBigUint64(16, true), 'used ring address'),
    available: safe(data.getBigUint64(24, true), 'available ring address'),
  };
}

/** A SET_MEM_TABLE payload. */
export function readMemoryTable(payload: Uint8Array): MemoryRegion[] {
  const data = need(payload, 8, 'SET_MEM_TABLE');
  const count = data.getUint32(0, true);
  if (count > MAX_REGIONS)
    throw new VaccelError('EPROTO', `memory table with ${count} regions (at most ${MAX_REGIONS})`);
  need(payload, 8 + 32 * count, 'SET_MEM_TABLE');
  const regions: MemoryRegion[] = [];
  for (let i = 0; i < count; i++) {
    const at = 8 + 32 * i;
    const region = {
      guestAddress: safe(data.getBigUint64(at, true), 'region guest address'),
      size: safe(data.getBigUint64(at + 8, true), 'region size'),
      userAddress: safe(data.getBigUint64(at + 16, true), 'region user address'),
      mmapOffset: safe(data.getBigUint64(at + 24, true), 'region mmap offset'),
    };
    if (region.size === 0) throw new VaccelError('EPROTO', 'memory region of 0 bytes');
    regions.push(region);
  }
  return regions;
}

/** Encodes a SET_MEM_TABLE payload (front-ends and tests use it). */
export function memoryTable(regions: readonly MemoryRegion[]): Uint8Array {
  const bytes = new Uint8Array(8 + 32 * MAX_REGIONS);
  const data = view(bytes);
  data.setUint32(0, regions.length, true);
  regions.forEach((region, i) => {
    const at = 8 + 32 * i;
    data.setBigUint64(at, BigInt(region.guestAddress), true);
    data.setBigUint64(at + 8, BigInt(region.size), true);
    data.setBigUint64(at + 16, BigInt(region.userAddress), true);
    data.setBigUint64(at + 24, BigInt(region.mmapOffset), true);
  });
  return bytes;
}

/*
 * CREATE_CRYPTO_SESSION payload. CryptoDevBackendSymSessionInfo is 48 bytes: u32 cipher_alg,
 * key_len, hash_alg, hash_result_len, auth_key_len, add_len; u8 op_type, direction, hash_mode,
 * alg_chain_order; two pointers (meaningless here). QEMU 7.1+ sends {u64 op_code; union {sym:
 * info, key[64], auth_key[512]; asym: 32 + 1024}; i64 session_id} = 1,072 bytes; older QEMU sent
 * {i64 session_id; info; key[64]; auth_key[512]} = 632 bytes. The reply is the same payload with
 * session_id set (negative on failure).
 */
const SYM_INFO = 48;
const SYM_KEY = 64;
/** Payload sizes of the two layouts. */
export const SESSION_PAYLOAD = { legacy: 8 + SYM_INFO + SYM_KEY + 512, current: 8 + 1056 + 8 } as const;

/** Where the parts of a session payload are, by layout. */
function sessionLayout(size: number): { info: number; key: number; id: number; opcode?: number } {
  if (size === SESSION_PAYLOAD.current) return { opcode: 0, info: 8, key: 8 + SYM_INFO, id: 8 + 1056 };
  if (size === SESSION_PAYLOAD.legacy) return { id: 0, info: 8, key: 8 + SYM_INFO };
  throw new VaccelError(
    'EPROTO',
    `CREATE_CRYPTO_SESSION payload is ${size} bytes (expected ${SESSION_PAYLOAD.current}, or ${SESSION_PAYLOAD.legacy} from QEMU < 7.1)`,
  );
}

/** Decodes a CREATE_CRYPTO_SESSION payload. */
export function readSessionRequest(payload: Uint8Array): SessionInfo {
  const layout = sessionLayout(payload.byteLength);
  const data = view(payload);
  const keyLength = data.getUint32(layout.info + 4, true);
  if (keyLength > SYM_KEY)
    throw new VaccelError('EPROTO', `cipher key of ${keyLength} bytes (at most ${SYM_KEY})`);
  return {
    opcode: layout.opcode === undefined ? 0 : Number(data.getBigUint64(layout.opcode, true) & 0xffffffffn),
    cipherAlgorithm: data.getUint32(layout.info, true),
    opType: data.getUint8(layout.info + 24),
    direction: data.getUint8(layout.info + 25),
    key: payload.slice(layout.key, layout.key + keyLength),
  };
}

/** Encodes a CREATE_CRYPTO_SESSION request in the current (QEMU 7.1+) layout; tests use it. */
export function sessionRequest(info: SessionInfo): Uint8Array {
  const bytes = new Uint8Array(SESSION_PAYLOAD.current);
  const data = view(bytes);
  data.setBigUint64(0, BigInt(info.opcode), true);
  data.setUint32(8, info.cipherAlgorithm, true);
  data.setUint32(12, info.key.byteLength, true);
  data.setUint8(8 + 24, info.opType);
  data.setUint8(8 + 25, info.direction);
  bytes.set(info.key, 8 + SYM_INFO);
  return bytes;
}

/** The reply to a CREATE_CRYPTO_SESSION: its payload with `session_id` filled in. */
export function sessionReply(request: Uint8Array, id: bigint): Uint8Array {
  const reply = request.slice();
  view(reply).setBigInt64(sessionLayout(request.byteLength).id, id, true);
  return reply;
}

/** The session id in a CREATE_CRYPTO_SESSION reply. */
export function readSessionReply(payload: Uint8Array): bigint {
  return view(payload).getBigInt64(sessionLayout(payload.byteLength).id, true);
}

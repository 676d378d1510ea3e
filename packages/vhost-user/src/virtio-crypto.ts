/**
 * virtio-crypto (virtio 1.2 §5.9) as a vhost-user backend sees it: sessions arrive as vhost-user
 * CREATE_CRYPTO_SESSION messages (QEMU keeps the control queue), data requests arrive on the data
 * queues as descriptor chains. Symmetric ciphers only; anything else is answered `NOTSUPP`.
 * @module
 */
import { VaccelError } from '@vaccel/core';
import { type Chain, gather, scatter } from './virtqueue.js';

/** Status codes the device writes into a request's `virtio_crypto_inhdr`. */
export const Status = {
  OK: 0,
  ERR: 1,
  BADMSG: 2,
  NOTSUPP: 3,
  INVSESS: 4,
  NOSPACE: 5,
  KEY_REJECTED: 6,
} as const;
/** A request status. */
export type StatusCode = (typeof Status)[keyof typeof Status];

/** Services (the high byte of an opcode). */
export const Service = { CIPHER: 0, HASH: 1, MAC: 2, AEAD: 3, AKCIPHER: 4 } as const;
const opcode = (service: number, op: number): number => (service << 8) | op;
/** Opcodes used here. */
export const Opcode = {
  CIPHER_ENCRYPT: opcode(Service.CIPHER, 0),
  CIPHER_DECRYPT: opcode(Service.CIPHER, 1),
  CIPHER_CREATE_SESSION: opcode(Service.CIPHER, 2),
  CIPHER_DESTROY_SESSION: opcode(Service.CIPHER, 3),
} as const;

/** Cipher algorithm numbers (VIRTIO_CRYPTO_CIPHER_*). */
export const CipherAlgorithm = { AES_ECB: 2, AES_CBC: 3, AES_CTR: 4 } as const;
/** Symmetric operation types. */
export const SymOp = { NONE: 0, CIPHER: 1, ALGORITHM_CHAINING: 2 } as const;
/** Session directions. */
export const Direction = { ENCRYPT: 1, DECRYPT: 2 } as const;

/** The node:crypto cipher for a virtio algorithm and key length, or undefined when unsupported. */
export function opensslCipher(algorithm: number, keyLength: number): string | undefined {
  const mode = {
    [CipherAlgorithm.AES_ECB]: 'ecb',
    [CipherAlgorithm.AES_CBC]: 'cbc',
    [CipherAlgorithm.AES_CTR]: 'ctr',
  }[algorithm];
  if (!mode || ![16, 24, 32].includes(keyLength)) return undefined;
  return `aes-${keyLength * 8}-${mode}`;
}

/** A symmetric session's parameters, from CREATE_CRYPTO_SESSION. */
export interface SessionInfo {
  /** The service opcode QEMU sent (0 in messages from QEMU before 7.1, which carry none). */
  opcode: number;
  cipherAlgorithm: number;
  key: Uint8Array;
  direction: number;
  opType: number;
}

/** A created session, as the data path uses it. */
export interface CipherSession {
  id: bigint;
  /** node:crypto name, e.g. `aes-128-cbc`. */
  cipher: string;
  key: Uint8Array;
  direction: number;
}

/** Bytes of `struct virtio_crypto_op_data_req`, the header every data request starts with. */
export const REQUEST_HEADER_SIZE = 72;

/** The fields of a symmetric cipher data request. */
export interface CipherRequest {
  opcode: number;
  algorithm: number;
  sessionId: bigint;
  opType: number;
  ivLength: number;
  sourceLength: number;
  destinationLength: number;
}

/** Decodes the 72-byte request header (little endian, virtio 1.x). */
export function decodeRequestHeader(header: Uint8Array): CipherRequest {
  if (header.byteLength < REQUEST_HEADER_SIZE)
    throw new VaccelError(
      'EBADMSG',
      `a request header is ${REQUEST_HEADER_SIZE} bytes, got ${header.byteLength}`,
    );
  const view = new DataView(header.buffer, header.byteOffset, REQUEST_HEADER_SIZE);
  return {
    opcode: view.getUint32(0, true),
    algorithm: view.getUint32(4, true),
    sessionId: view.getBigUint64(8, true),
    // virtio_crypto_sym_data_req: para {iv_len, src_data_len, dst_data_len, padding}, padding[24], op_type
    ivLength: view.getUint32(24, true),
    sourceLength: view.getUint32(28, true),
    destinationLength: view.getUint32(32, true),
    opType: view.getUint32(64, true),
  };
}

/** Encodes a request header (the inverse of {@link decodeRequestHeader}; drivers and tests use it). */
export function encodeRequestHeader(request: CipherRequest): Uint8Array {
  const bytes = new Uint8Array(REQUEST_HEADER_SIZE);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, request.opcode, true);
  view.setUint32(4, request.algorithm, true);
  view.setBigUint64(8, request.sessionId, true);
  view.setUint32(24, request.ivLength, true);
  view.setUint32(28, request.sourceLength, true);
  view.setUint32(32, request.destinationLength, true);
  view.setUint32(64, request.opType, true);
  return bytes;
}

/** The header of an AES-CBC request on `sessionId` for `length` bytes (drivers, the loopback, tests). */
export function aesCbcRequestHeader(sessionId: bigint, length: number, decrypt = false): Uint8Array {
  return encodeRequestHeader({
    opcode: decrypt ? Opcode.CIPHER_DECRYPT : Opcode.CIPHER_ENCRYPT,
    algorithm: CipherAlgorithm.AES_CBC,
    sessionId,
    opType: SymOp.CIPHER,
    ivLength: 16,
    sourceLength: length,
    destinationLength: length,
  });
}

/** Runs one cipher: the bytes out, or a promise of them. */
export type CipherRunner = (
  session: CipherSession,
  encrypt: boolean,
  iv: Uint8Array,
  source: Uint8Array,
) => Uint8Array | Promise<Uint8Array>;

/** What a request came to: status and the bytes written into the chain (for the used ring). */
export interface Outcome {
  status: StatusCode;
  written: number;
  /** Bytes ciphered (0 unless OK). */
  processed: number;
  /** Why the status is not OK (for logs). */
  reason?: string;
}

/**
 * Writes the status into the last writable byte, where `virtio_crypto_inhdr` is: drivers may hand
 * over more destination buffer than `dst_data_len` (Linux passes whole scatterlists), so the
 * status is found from the end, as QEMU's own device does. Returns the bytes the chain now holds.
 */
export function writeStatus(chain: Chain, status: StatusCode): number {
  if (chain.writableBytes === 0) return 0;
  scatter(chain.writable, chain.writableBytes - 1, Uint8Array.of(status));
  return chain.writableBytes;
}

const fail = (chain: Chain, status: StatusCode, reason: string): Outcome => ({
  status,
  written: writeStatus(chain, status),
  processed: 0,
  reason,
});

/**
 * Handles one data request chain: decodes it, checks it against the session, runs the cipher and
 * writes the result and status back. Never throws for what the guest sent: a bad request gets
 * an error status (written where the spec puts it, or in the last writable byte).
 */
export function handleRequest(
  chain: Chain,
  sessions: ReadonlyMap<bigint, CipherSession>,
  run: CipherRunner,
): Outcome | Promise<Outcome> {
  if (chain.readableBytes < REQUEST_HEADER_SIZE)
    return fail(chain, Status.BADMSG, `request of ${chain.readableBytes} bytes has no header`);
  const request = decodeRequestHeader(gather(chain.readable, 0, REQUEST_HEADER_SIZE));
  if (request.opcode !== Opcode.CIPHER_ENCRYPT && request.opcode !== Opcode.CIPHER_DECRYPT)
    return fail(chain, Status.NOTSUPP, `opcode 0x${request.opcode.toString(16)} is not a cipher operation`);
  if (request.opType !== SymOp.CIPHER)
    return fail(chain, Status.NOTSUPP, `symmetric op type ${request.opType} (only plain ciphers)`);
  const session = sessions.get(request.sessionId);
  if (!session) return fail(chain, Status.INVSESS, `no session ${request.sessionId}`);
  const mode = session.cipher.slice(-3);
  const expectedIv = mode === 'ecb' ? 0 : 16;
  if (request.ivLength !== expectedIv)
    return fail(chain, Status.BADMSG, `IV of ${request.ivLength} bytes for ${session.cipher}`);
  if (mode !== 'ctr' && request.sourceLength % 16 !== 0)
    return fail(chain, Status.BADMSG, `${request.sourceLength} bytes is not whole AES blocks`);
  if (REQUEST_HEADER_SIZE + request.ivLength + request.sourceLength > chain.readableBytes)
    return fail(chain, Status.BADMSG, 'the readable buffers are shorter than IV + source');
  if (request.destinationLength < request.sourceLength)
    return fail(chain, Status.NOSPACE, 'destination shorter than source');
  if (request.sourceLength + 1 > chain.writableBytes)
    return fail(chain, Status.NOSPACE, 'the writable buffers are shorter than the output + status');
  const iv = gather(chain.readable, REQUEST_HEADER_SIZE, request.ivLength);
  const source = gather(chain.readable, REQUEST_HEADER_SIZE + request.ivLength, request.sourceLength);
  const encrypt = request.opcode === Opcode.CIPHER_ENCRYPT;
  const finish = (output: Uint8Array): Outcome => {
    scatter(chain.writable, 0, output);
    return { status: Status.OK, written: writeStatus(chain, Status.OK), processed: output.byteLength };
  };
  const failed = (error: unknown): Outcome =>
    fail(chain, Status.ERR, `cipher failed: ${(error as Error)?.message ?? error}`);
  try {
    const output = run(session, encrypt, iv, source);
    return output instanceof Uint8Array ? finish(output) : output.then(finish, failed);
  } catch (error) {
    return failed(error);
  }
}

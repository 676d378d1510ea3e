/**
 * Streams large inputs through the (stateless) AES ops chunk by chunk, producing exactly the bytes
 * one big call would: CBC chains each chunk's IV from the previous chunk's last ciphertext block,
 * CTR advances the counter by the blocks already done. GCM cannot be split across stateless calls
 * (the tag covers the whole message), so it is buffered and sent in one call.
 * @module
 */
import { copyBytes } from '../api/arg.js';
import { VaccelError } from '../api/error.js';
import type { CallOptions, Session } from '../runtime/session.js';
import { AES_BLOCK, type DecryptParams, type EncryptParams } from './cipher.js';

/** Options of {@link encryptStream} and {@link decryptStream}. */
export interface CipherStreamOptions extends CallOptions {
  /** Bytes per op call, a multiple of 16 (default 1 MiB). */
  chunkSize?: number;
  /** GCM only: the most bytes it will buffer (default 1 GiB); more rejects with `E2BIG`. */
  maxBuffered?: number;
}

interface Chunk {
  data: Uint8Array;
  last: boolean;
}

/** Re-chunks a byte stream into `size`-byte chunks; the final chunk (maybe shorter or empty) has `last`. */
async function* rechunk(source: AsyncIterable<Uint8Array>, size: number): AsyncGenerator<Chunk> {
  let pieces: Uint8Array[] = [];
  let buffered = 0;
  const take = (n: number): Uint8Array => {
    const out = new Uint8Array(n);
    let at = 0;
    while (at < n) {
      const piece = pieces[0]!;
      const used = Math.min(piece.byteLength, n - at);
      out.set(piece.subarray(0, used), at);
      at += used;
      if (used === piece.byteLength) pieces.shift();
      else pieces[0] = piece.subarray(used);
    }
    buffered -= n;
    return out;
  };
  for await (const piece of source) {
    if (piece.byteLength === 0) continue;
    pieces.push(piece);
    buffered += piece.byteLength;
    // Strictly more than one chunk: something always remains for the final (padded) call.
    while (buffered > size) yield { data: take(size), last: false };
  }
  yield { data: take(buffered), last: true };
  pieces = [];
}

/** Adds `blocks` to a 16-byte big-endian counter block. */
function addToCounter(iv: Uint8Array, blocks: number): Uint8Array {
  const out = new Uint8Array(iv);
  let carry = BigInt(blocks);
  for (let i = out.length - 1; i >= 0 && carry > 0n; i--) {
    const sum = BigInt(out[i]!) + (carry & 0xffn);
    out[i] = Number(sum & 0xffn);
    carry = (carry >> 8n) + (sum >> 8n);
  }
  return out;
}

function checkChunkSize(size: number): void {
  if (!Number.isSafeInteger(size) || size <= 0 || size % AES_BLOCK !== 0) {
    throw new VaccelError('EINVAL', `chunkSize must be a positive multiple of ${AES_BLOCK}, got ${size}`);
  }
}

async function collect(source: AsyncIterable<Uint8Array>, max: number): Promise<Uint8Array> {
  const pieces: Uint8Array[] = [];
  let total = 0;
  for await (const piece of source) {
    total += piece.byteLength;
    if (total > max) throw new VaccelError('E2BIG', `GCM input over ${max} bytes cannot be buffered`);
    pieces.push(piece);
  }
  return Buffer.concat(pieces, total);
}

/** One chunked pass: `call` runs one chunk; CBC chains from the ciphertext side (output when encrypting). */
async function* chunked(
  direction: 'encrypt' | 'decrypt',
  params: Omit<EncryptParams & DecryptParams, 'data'>,
  source: AsyncIterable<Uint8Array>,
  chunkSize: number,
  call: (chunk: EncryptParams & DecryptParams) => Promise<Uint8Array>,
): AsyncGenerator<Uint8Array> {
  checkChunkSize(chunkSize);
  const mode = params.algorithm.slice(-3);
  let iv = params.iv;
  let done = 0;
  for await (const { data, last } of rechunk(source, chunkSize)) {
    const padding = mode === 'cbc' ? (last ? (params.padding ?? true) : false) : undefined;
    const chunkIv = mode === 'ctr' ? addToCounter(params.iv, done / AES_BLOCK) : iv;
    const out = await call({ ...params, iv: chunkIv, data, padding });
    const ciphertext = direction === 'encrypt' ? out : data;
    if (mode === 'cbc' && ciphertext.byteLength >= AES_BLOCK)
      iv = copyBytes(ciphertext.subarray(ciphertext.byteLength - AES_BLOCK));
    done += data.byteLength;
    yield out;
  }
}

/**
 * Encrypts a byte stream. For GCM the tag is yielded last, after the ciphertext.
 * @throws VaccelError as {@link Session.encrypt}.
 */
export async function* encryptStream(
  session: Session,
  params: Omit<EncryptParams, 'data'>,
  source: AsyncIterable<Uint8Array>,
  options: CipherStreamOptions = {},
): AsyncGenerator<Uint8Array> {
  if (params.algorithm.endsWith('gcm')) {
    const data = await collect(source, options.maxBuffered ?? 1 << 30);
    const { data: out, tag } = await session.encrypt({ ...params, data }, options);
    yield out;
    if (tag) yield tag;
    return;
  }
  const call = async (chunk: EncryptParams): Promise<Uint8Array> =>
    (await session.encrypt(chunk, options)).data;
  yield* chunked('encrypt', params, source, options.chunkSize ?? 1 << 20, call);
}

/**
 * Decrypts a byte stream. For GCM, pass the tag in `params.tag`.
 * @throws VaccelError as {@link Session.decrypt}; `EBADMSG` for bad padding or tag.
 */
export async function* decryptStream(
  session: Session,
  params: Omit<DecryptParams, 'data'>,
  source: AsyncIterable<Uint8Array>,
  options: CipherStreamOptions = {},
): AsyncGenerator<Uint8Array> {
  if (params.algorithm.endsWith('gcm')) {
    yield await session.decrypt(
      { ...params, data: await collect(source, options.maxBuffered ?? 1 << 30) },
      options,
    );
    return;
  }
  const call = (chunk: DecryptParams): Promise<Uint8Array> => session.decrypt(chunk, options);
  yield* chunked('decrypt', params, source, options.chunkSize ?? 1 << 20, call);
}

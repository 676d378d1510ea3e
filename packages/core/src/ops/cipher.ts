/**
 * AES encrypt/decrypt (vaccel-ts extension ops 64 and 65; upstream has no crypto ops).
 *
 * Genop layout — AES_ENCRYPT read: algorithm (STRING, e.g. `aes-128-cbc`), key (UINT8_ARRAY), iv
 * (UINT8_ARRAY), data (RAW), padding (UINT8: 1 = PKCS#7, CBC only), aad (RAW, GCM only), tag
 * length (UINT32, GCM only); write: ciphertext (RAW), tag (RAW) — both sized by the plugin.
 * AES_DECRYPT read: the same but the last arg is the tag (RAW, GCM only); write: plaintext (RAW,
 * sized by the plugin).
 * @module
 */
import { type Arg, Args, ReadArg } from '../api/arg.js';
import { VaccelError } from '../api/error.js';
import type { OpContext, OpHandler } from '../runtime/plugin.js';

/** Cipher modes. */
export type CipherMode = 'cbc' | 'ctr' | 'gcm';
/** Supported algorithms: AES with a 128, 192 or 256-bit key in CBC, CTR or GCM mode. */
export type CipherAlgorithm = `aes-${128 | 192 | 256}-${CipherMode}`;

/** Every supported algorithm name. */
export const CIPHER_ALGORITHMS: readonly CipherAlgorithm[] = (['cbc', 'ctr', 'gcm'] as const).flatMap(
  (mode) => ([128, 192, 256] as const).map((bits): CipherAlgorithm => `aes-${bits}-${mode}`),
);

/** AES block size in bytes. */
export const AES_BLOCK = 16;

/** Parameters common to encryption and decryption. */
export interface CipherParams {
  algorithm: CipherAlgorithm;
  /** 16, 24 or 32 bytes, matching the algorithm. */
  key: Uint8Array;
  /** 16 bytes for CBC and CTR (the initial counter block); GCM: any non-zero length, 12 recommended. */
  iv: Uint8Array;
  data: Uint8Array;
  /** CBC only: PKCS#7 padding (default true). Without it, data must be whole 16-byte blocks. */
  padding?: boolean;
  /** GCM only: additional authenticated data. */
  aad?: Uint8Array;
  /**
   * Where to write the result, e.g. a view in shared memory (then the agent writes it in place).
   * It must hold {@link cipherOutputLength} bytes; the result is a view of its start. Default: new
   * memory sized by the plugin.
   */
  output?: Uint8Array;
}

/** Parameters of an encryption. */
export interface EncryptParams extends CipherParams {
  /** GCM only: tag length in bytes, 4, 8 or 12–16 (default 16). */
  tagLength?: number;
}

/** Parameters of a decryption. */
export interface DecryptParams extends CipherParams {
  /** GCM only, required: the authentication tag. */
  tag?: Uint8Array;
}

/** Result of an encryption. */
export interface EncryptResult {
  data: Uint8Array;
  /** GCM only: the authentication tag. */
  tag?: Uint8Array;
}

/** Checked, defaulted cipher parameters, as a plugin receives them. */
export interface CipherArgs {
  algorithm: CipherAlgorithm;
  mode: CipherMode;
  key: Uint8Array;
  iv: Uint8Array;
  data: Uint8Array;
  padding: boolean;
  aad: Uint8Array;
  tagLength: number;
  tag: Uint8Array;
  /** Where the result goes, when the caller gave room for it. */
  output?: Uint8Array;
}

const EMPTY = new Uint8Array(0);
const validTagLengths = new Set([4, 8, 12, 13, 14, 15, 16]);

/**
 * Checks and defaults cipher parameters.
 * @throws VaccelError `EINVAL` naming what is wrong (algorithm, key or IV length, padding, tag).
 */
export function checkCipher(direction: 'encrypt' | 'decrypt', p: EncryptParams & DecryptParams): CipherArgs {
  const algorithm = p.algorithm;
  if (!CIPHER_ALGORITHMS.includes(algorithm)) {
    throw new VaccelError(
      'EINVAL',
      `unsupported algorithm ${String(algorithm)} (supported: ${CIPHER_ALGORITHMS.join(', ')})`,
    );
  }
  const mode = algorithm.slice(-3) as CipherMode;
  const keyBytes = Number(algorithm.slice(4, 7)) / 8;
  for (const [name, value] of Object.entries({ key: p.key, iv: p.iv, data: p.data })) {
    if (!(value instanceof Uint8Array))
      throw new VaccelError('EINVAL', `${direction}: ${name} must be a Uint8Array`);
  }
  if (p.key.byteLength !== keyBytes) {
    throw new VaccelError(
      'EINVAL',
      `${algorithm} needs a ${keyBytes}-byte key, got ${p.key.byteLength} bytes`,
    );
  }
  if (mode === 'gcm' ? p.iv.byteLength === 0 : p.iv.byteLength !== AES_BLOCK) {
    const want = mode === 'gcm' ? 'a non-empty IV (12 bytes recommended)' : `a ${AES_BLOCK}-byte IV`;
    throw new VaccelError('EINVAL', `${algorithm} needs ${want}, got ${p.iv.byteLength} bytes`);
  }
  const padding = mode === 'cbc' ? (p.padding ?? true) : false;
  if (mode !== 'cbc' && p.padding === true) throw new VaccelError('EINVAL', `${algorithm} takes no padding`);
  if (mode === 'cbc' && !padding && p.data.byteLength % AES_BLOCK !== 0) {
    throw new VaccelError(
      'EINVAL',
      `${algorithm} without padding needs data in whole ${AES_BLOCK}-byte blocks, got ${p.data.byteLength} bytes`,
    );
  }
  const aad = p.aad ?? EMPTY;
  const tag = p.tag ?? EMPTY;
  if (mode !== 'gcm' && (aad.byteLength > 0 || tag.byteLength > 0 || p.tagLength !== undefined)) {
    throw new VaccelError('EINVAL', `${algorithm} takes no aad or tag (only GCM does)`);
  }
  const tagLength = direction === 'decrypt' ? tag.byteLength : (p.tagLength ?? (mode === 'gcm' ? 16 : 0));
  if (mode === 'gcm' && !validTagLengths.has(tagLength)) {
    throw new VaccelError('EINVAL', `${algorithm} needs a tag of 4, 8 or 12–16 bytes, got ${tagLength}`);
  }
  const output = p.output;
  if (output !== undefined) {
    if (!(output instanceof Uint8Array))
      throw new VaccelError('EINVAL', `${direction}: output must be a Uint8Array`);
    const need = cipherOutputLength(direction, p.data.byteLength, padding);
    if (output.byteLength < need)
      throw new VaccelError(
        'EINVAL',
        `${direction}: output has ${output.byteLength} bytes, the result needs room for ${need}`,
      );
  }
  return { algorithm, mode, key: p.key, iv: p.iv, data: p.data, padding, aad, tagLength, tag, output };
}

/**
 * Room a cipher's result needs: encryption with PKCS#7 padding adds 1–16 bytes; anything else is
 * at most the input's length.
 */
export function cipherOutputLength(
  direction: 'encrypt' | 'decrypt',
  dataLength: number,
  padding: boolean,
): number {
  return direction === 'encrypt' && padding
    ? (Math.floor(dataLength / AES_BLOCK) + 1) * AES_BLOCK
    : dataLength;
}

/** Packs a cipher call into genop args. */
export function packCipher(
  direction: 'encrypt' | 'decrypt',
  p: EncryptParams & DecryptParams,
): { read: Arg[]; write: Arg[] } {
  const read = [
    Args.string(p.algorithm),
    Args.uint8Array(p.key),
    Args.uint8Array(p.iv),
    Args.raw(p.data),
    Args.uint8(p.padding === false ? 0 : 1),
    Args.raw(p.aad),
    direction === 'encrypt' ? Args.uint32(p.tagLength ?? 0) : Args.raw(p.tag),
  ];
  // An empty first write arg lets the plugin size the result; a given output is filled in place.
  const out = Args.raw(p.output);
  return { read, write: direction === 'encrypt' ? [out, Args.raw()] : [out] };
}

/** Unpacks and checks cipher genop args. @throws VaccelError `EINVAL`. */
export function unpackCipher(
  direction: 'encrypt' | 'decrypt',
  read: readonly Arg[],
  write: readonly Arg[],
): CipherArgs {
  const writes = direction === 'encrypt' ? 2 : 1;
  if (read.length !== 7 || write.length !== writes) {
    throw new VaccelError(
      'EINVAL',
      `${direction} takes 7 read args and ${writes} write args, got ${read.length} and ${write.length}`,
    );
  }
  const algorithm = ReadArg.string(read[0], `${direction} algorithm`) as CipherAlgorithm;
  const mode = algorithm.slice(-3);
  const tagLength = direction === 'encrypt' ? ReadArg.uint32(read[6], `${direction} tag length`) : undefined;
  return checkCipher(direction, {
    algorithm,
    key: ReadArg.bytes(read[1], `${direction} key`),
    iv: ReadArg.bytes(read[2], `${direction} iv`),
    data: ReadArg.bytes(read[3], `${direction} data`),
    // The wire always carries these; map "absent" values back so checkCipher sees the caller's intent.
    padding: mode === 'cbc' ? ReadArg.uint8(read[4], `${direction} padding`) !== 0 : undefined,
    aad: ReadArg.bytes(read[5], `${direction} aad`),
    tagLength: mode === 'gcm' && tagLength !== 0 ? tagLength : undefined,
    tag: direction === 'decrypt' ? ReadArg.bytes(read[6], `${direction} tag`) : undefined,
    output: write[0]!.buf.byteLength > 0 ? write[0]!.buf : undefined,
  });
}

/**
 * Makes an encrypt or decrypt op handler from a function that does the cipher. Where the caller
 * gave an output, the function writes its result there (or the handler copies it there) and the
 * write arg becomes the filled part of it.
 */
export function cipherHandler(
  direction: 'encrypt' | 'decrypt',
  run: (args: CipherArgs, ctx: OpContext) => Promise<EncryptResult> | EncryptResult,
): OpHandler {
  return async ({ read, write }, ctx) => {
    const args = unpackCipher(direction, read, write);
    const result = await run(args, ctx);
    let data = result.data;
    if (args.output && data.buffer !== args.output.buffer) {
      args.output.set(data);
      data = args.output.subarray(0, data.byteLength);
    }
    write[0]!.buf = data;
    if (direction === 'encrypt') write[1]!.buf = result.tag ?? EMPTY;
  };
}

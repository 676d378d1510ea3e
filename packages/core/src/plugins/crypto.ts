/**
 * The crypto plugin: AES (CBC, CTR, GCM) with the host's OpenSSL through node:crypto.
 * @module
 */
import { type CipherGCM, createCipheriv, createDecipheriv, type DecipherGCM } from 'node:crypto';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { VaccelError } from '../api/error.js';
import { OpType } from '../api/op.js';
import { type CipherArgs, cipherHandler, type EncryptResult } from '../ops/cipher.js';
import { type OpContext, type Plugin, PluginType } from '../runtime/plugin.js';

/** Work is done in slices this big, yielding to the event loop between them, so big calls never stall it. */
const SLICE = 1 << 20;

/** OpenSSL failures that mean "this ciphertext is not valid" rather than a fault of ours. */
const badMessage = new Set(['ERR_OSSL_BAD_DECRYPT', 'ERR_OSSL_WRONG_FINAL_BLOCK_LENGTH']);

/** A plain Uint8Array view of a Buffer, so results look the same in-process and remote. */
const plain = (buffer: Uint8Array): Uint8Array =>
  new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);

async function run(
  direction: 'encrypt' | 'decrypt',
  args: CipherArgs,
  ctx: OpContext,
): Promise<EncryptResult> {
  const { algorithm, mode, key, iv, data } = args;
  const gcm = mode === 'gcm' ? { authTagLength: args.tagLength } : undefined;
  const cipher =
    direction === 'encrypt'
      ? createCipheriv(algorithm, key, iv, gcm as never)
      : createDecipheriv(algorithm, key, iv, gcm as never);
  cipher.setAutoPadding(args.padding);
  if (mode === 'gcm') {
    if (args.aad.byteLength > 0) (cipher as CipherGCM).setAAD(args.aad);
    if (direction === 'decrypt') (cipher as DecipherGCM).setAuthTag(args.tag);
  }
  // With an output (say a view in shared memory) each piece is written straight into it; without
  // one, a single piece needs no join (a fresh copy of the whole output).
  const output = args.output;
  const parts: Uint8Array[] = [];
  let written = 0;
  const put = (part: Uint8Array): void => {
    if (part.byteLength === 0) return;
    if (output) output.set(part, written);
    else parts.push(part);
    written += part.byteLength;
  };
  for (let at = 0; at < data.byteLength; at += SLICE) {
    if (at > 0) {
      await yieldToLoop();
      ctx.signal?.throwIfAborted();
    }
    put(cipher.update(data.subarray(at, at + SLICE)));
  }
  try {
    put(cipher.final());
  } catch (error) {
    const code = (error as { code?: string }).code ?? '';
    if (direction === 'decrypt' && (badMessage.has(code) || mode === 'gcm')) {
      const what =
        mode === 'gcm'
          ? 'authentication failed (bad tag, key, IV, aad or data)'
          : 'bad padding or wrong key/IV';
      throw new VaccelError('EBADMSG', `${algorithm} decrypt: ${what}`, { cause: error });
    }
    throw error;
  }
  const out = output
    ? output.subarray(0, written)
    : parts.length === 1
      ? plain(parts[0]!)
      : plain(Buffer.concat(parts, written));
  const tag = direction === 'encrypt' && gcm ? plain((cipher as CipherGCM).getAuthTag()) : undefined;
  return tag ? { data: out, tag } : { data: out };
}

/** Creates the crypto plugin. */
export function cryptoPlugin(): Plugin {
  return {
    name: 'crypto',
    version: '0.1.0',
    types: PluginType.Cpu | PluginType.Software,
    ops: {
      [OpType.AesEncrypt]: cipherHandler('encrypt', (args, ctx) => run('encrypt', args, ctx)),
      [OpType.AesDecrypt]: cipherHandler('decrypt', (args, ctx) => run('decrypt', args, ctx)),
    },
  };
}

/**
 * Cipher engines: what actually runs a guest's AES request. The default is the host's OpenSSL
 * through node:crypto (AES-NI where the CPU has it); {@link vaccelEngine} routes requests to
 * whichever vAccel plugin implements AES — in process, or on an agent given by address.
 * @module
 */
import { createCipheriv, createDecipheriv, createSecretKey, type KeyObject } from 'node:crypto';
import { type CipherAlgorithm, Vaccel, VaccelError } from '@vaccel/core';
import type { CipherRunner, CipherSession } from './virtio-crypto.js';

/** Runs the cipher requests of a backend. */
export interface CipherEngine {
  /** Shown in logs and `stats()`. */
  readonly name: string;
  /** True when it can run `cipher` (a node:crypto name such as `aes-128-cbc`). */
  supports(cipher: string): boolean;
  /** Runs one request. */
  readonly run: CipherRunner;
  /** Releases what it holds. */
  close?(): Promise<void>;
}

/** The host's OpenSSL (node:crypto): synchronous, no copies beyond the output buffer. */
export function opensslEngine(): CipherEngine {
  const keys = new WeakMap<CipherSession, KeyObject>();
  const keyOf = (session: CipherSession): KeyObject => {
    let key = keys.get(session);
    if (!key) {
      key = createSecretKey(session.key);
      keys.set(session, key);
    }
    return key;
  };
  return {
    name: 'openssl',
    supports: (cipher) => /^aes-(128|192|256)-(cbc|ecb|ctr)$/.test(cipher),
    run(session, encrypt, iv, source) {
      const ivOrNull = iv.byteLength === 0 ? null : iv;
      const cipher = encrypt
        ? createCipheriv(session.cipher, keyOf(session), ivOrNull)
        : createDecipheriv(session.cipher, keyOf(session), ivOrNull);
      cipher.setAutoPadding(false);
      const head = cipher.update(source);
      const tail = cipher.final();
      return tail.byteLength === 0 ? head : Buffer.concat([head, tail]);
    },
  };
}

/** Options of {@link vaccelEngine}. */
export interface VaccelEngineOptions {
  /** An agent address (e.g. `unix:///run/vaccel.sock`); default: the in-process builtin plugins. */
  rpcAddress?: string;
}

/** Runs requests through a vAccel session (any plugin that implements AES-CBC/CTR). */
export async function vaccelEngine(options: VaccelEngineOptions = {}): Promise<CipherEngine> {
  const vaccel = await Vaccel.open(options.rpcAddress ? { rpcAddress: options.rpcAddress } : {});
  const session = await vaccel.createSession();
  return {
    name: options.rpcAddress ? `vaccel (${options.rpcAddress})` : 'vaccel',
    supports: (cipher) => /^aes-(128|192|256)-(cbc|ctr)$/.test(cipher),
    async run(cipherSession, encrypt, iv, source) {
      const params = {
        algorithm: cipherSession.cipher as CipherAlgorithm,
        key: cipherSession.key,
        iv,
        data: source,
        padding: false,
      };
      const output = encrypt ? (await session.encrypt(params)).data : await session.decrypt(params);
      if (output.byteLength !== source.byteLength)
        throw new VaccelError(
          'EPROTO',
          `the plugin returned ${output.byteLength} bytes for ${source.byteLength}`,
        );
      return output;
    },
    async close() {
      await session.release();
      await vaccel.close();
    },
  };
}

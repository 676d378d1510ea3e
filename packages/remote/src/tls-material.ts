/**
 * TLS material of the RPC plugin: from its options, else read (once, when first needed) from the
 * files the environment names.
 * @internal
 */
import { readFile } from 'node:fs/promises';
import { VaccelError } from '@vaccel/core';
import type { TlsClientOptions } from '@vaccel/protocol';

/** TLS material from options, else read (once, when first needed) from the files the environment names. */
export function tlsMaterial(
  given: TlsClientOptions | undefined,
  env: Readonly<Record<string, string | undefined>>,
): () => Promise<TlsClientOptions | undefined> {
  let read: Promise<TlsClientOptions | undefined> | undefined;
  return () => {
    read ??= (async () => {
      if (given) return given;
      const file = async (variable: string) => {
        const path = env[variable];
        if (!path) return undefined;
        try {
          return await readFile(path);
        } catch (cause) {
          throw new VaccelError('ENOENT', `${variable}: cannot read ${path}: ${(cause as Error).message}`, {
            cause,
          });
        }
      };
      const [ca, cert, key] = await Promise.all(
        ['VACCEL_RPC_TLS_CA', 'VACCEL_RPC_TLS_CERT', 'VACCEL_RPC_TLS_KEY'].map(file),
      );
      if (!cert !== !key)
        throw new VaccelError(
          'EINVAL',
          'VACCEL_RPC_TLS_CERT and VACCEL_RPC_TLS_KEY go together (a client certificate and its key)',
        );
      const servername = env.VACCEL_RPC_TLS_SERVERNAME;
      return {
        ...(ca ? { ca } : {}),
        ...(cert ? { cert } : {}),
        ...(key ? { key } : {}),
        ...(servername ? { servername } : {}),
      };
    })();
    read.catch(() => {
      read = undefined;
    });
    return read;
  };
}

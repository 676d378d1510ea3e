import { createReadStream, createWriteStream } from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { CIPHER_ALGORITHMS, type CipherAlgorithm, decryptStream, encryptStream } from '@vaccel/core';
import { hexBytes, parse, positiveInt, printJson, UsageError } from '../io.js';
import { openRuntime } from '../runtime.js';
import { COMMON_HELP, type Command } from './command.js';

const GCM_TAG = 16;

async function* counted(
  source: AsyncIterable<Uint8Array>,
  total: { bytes: number },
): AsyncGenerator<Uint8Array> {
  for await (const chunk of source) {
    total.bytes += chunk.byteLength;
    yield chunk;
  }
}

/** Splits a GCM input into ciphertext and its trailing tag (our file format: ciphertext ‖ tag). */
async function splitTag(source: AsyncIterable<Uint8Array>): Promise<{ data: Uint8Array; tag: Uint8Array }> {
  const parts: Uint8Array[] = [];
  for await (const part of source) parts.push(part);
  const all = Buffer.concat(parts);
  if (all.byteLength < GCM_TAG) throw new UsageError(`GCM input must end with its ${GCM_TAG}-byte tag`);
  return { data: all.subarray(0, all.byteLength - GCM_TAG), tag: all.subarray(all.byteLength - GCM_TAG) };
}

function cipherCommand(direction: 'encrypt' | 'decrypt'): Command {
  return {
    name: direction,
    summary: `AES-${direction} a file or stdin (CBC, CTR, GCM), streaming large inputs`,
    help: `Usage: vaccel ${direction} --alg ALG --key HEX --iv HEX [options] [IN] [OUT]

${direction === 'encrypt' ? 'Encrypts' : 'Decrypts'} IN (default: stdin) into OUT (default: stdout) through the op
dispatch path, chunk by chunk, so files of any size stream in bounded memory. The bytes equal
\`openssl enc -${direction === 'encrypt' ? 'e' : 'd'} -aes-128-cbc -K … -iv …\` for CBC and CTR.
GCM cannot be split into stateless calls, so GCM input is buffered whole; the 16-byte tag is
appended to the ciphertext when encrypting and expected at its end when decrypting.

  --alg ALG        ${CIPHER_ALGORITHMS.join(', ')}
  --key HEX        16, 24 or 32-byte key, as hex
  --iv HEX         16-byte IV (CBC) or initial counter block (CTR); GCM: 12 bytes recommended
  --aad HEX        GCM only: additional authenticated data
  --no-padding     CBC only: no PKCS#7 padding (input must be whole 16-byte blocks)
  --chunk BYTES    bytes per op call, a multiple of 16 (default 1048576)

${COMMON_HELP}`,
    async run(args, io) {
      const { values, positionals } = parse(
        args,
        {
          alg: { type: 'string' },
          key: { type: 'string' },
          iv: { type: 'string' },
          aad: { type: 'string' },
          'no-padding': { type: 'boolean' },
          chunk: { type: 'string' },
        },
        true,
      );
      if (positionals.length > 2)
        throw new UsageError(`${direction} takes at most IN and OUT, got ${positionals.length} files`);
      for (const required of ['alg', 'key', 'iv'] as const) {
        if (values[required] === undefined) throw new UsageError(`${direction} needs --${required}`);
      }
      const algorithm = values.alg as CipherAlgorithm;
      if (!CIPHER_ALGORITHMS.includes(algorithm))
        throw new UsageError(`--alg must be one of ${CIPHER_ALGORITHMS.join(', ')}`);
      const [input = '-', output = '-'] = positionals;
      if (direction === 'encrypt' && output === '-' && io.stdout.isTTY) {
        throw new UsageError('refusing to write ciphertext to a terminal; give OUT or redirect stdout');
      }
      const params = {
        algorithm,
        key: hexBytes(values.key, 'key')!,
        iv: hexBytes(values.iv, 'iv')!,
        ...(values.aad !== undefined ? { aad: hexBytes(values.aad, 'aad') } : {}),
        ...(values['no-padding'] ? { padding: false } : {}),
      };
      const options = { chunkSize: positiveInt(values.chunk, 'chunk', 1 << 20) };
      await using vaccel = await openRuntime(io, values);
      await using session = await vaccel.createSession();
      // Byte streams (no encoding set) yield Buffers.
      const source = (input === '-' ? io.stdin : createReadStream(input)) as AsyncIterable<Uint8Array>;
      const read = { bytes: 0 };
      const written = { bytes: 0 };
      const started = performance.now();
      let produced: AsyncIterable<Uint8Array>;
      if (direction === 'encrypt') produced = encryptStream(session, params, counted(source, read), options);
      else if (algorithm.endsWith('gcm')) {
        const { data, tag } = await splitTag(counted(source, read));
        produced = decryptStream(session, { ...params, tag }, Readable.from([data]), options);
      } else produced = decryptStream(session, params, counted(source, read), options);
      const sink = output === '-' ? io.stdout : createWriteStream(output);
      await pipeline(Readable.from(counted(produced, written)), sink, { end: output !== '-' });
      const summary = {
        op: direction,
        algorithm,
        bytesIn: read.bytes,
        bytesOut: written.bytes,
        ms: performance.now() - started,
      };
      if (values.json && output === '-')
        io.stderr.write(`${JSON.stringify(summary)}\n`); // stdout carries the data
      else if (values.json) printJson(io, summary);
      return 0;
    },
  };
}

export const encryptCommand = cipherCommand('encrypt');
export const decryptCommand = cipherCommand('decrypt');

#!/usr/bin/env node
// A batch function: multiply two N×N matrices (SGEMM), encrypt the product with AES-256-GCM,
// decrypt it and check it came back intact; prints one JSON line with what it did and how long
// each step took.
//
//   node examples/batch-function/index.mjs [--n 256]      # builtin plugins, in this process
//   VACCEL_RPC_ADDRESS=unix:///run/vaccel.sock node …      # on a vaccel-agent
//   npx vaccel-vm run -- node /app/examples/batch-function/index.mjs --n 64   # in a QEMU guest
//
// It imports only the slim bundled guest library: embedded it runs the builtin plugins, offloaded
// the RPC plugin; nothing else changes.
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { Vaccel } from '@vaccel/remote/guest';

const { values } = parseArgs({ options: { n: { type: 'string', default: '256' } } });
const n = Number(values.n);
if (!Number.isSafeInteger(n) || n < 1 || n > 4096) {
  console.error(`--n must be an integer in 1–4096, got ${values.n}`);
  process.exit(2);
}

const time = async (work) => {
  const started = performance.now();
  const value = await work();
  return [value, performance.now() - started];
};

const vaccel = await Vaccel.open();
const session = await vaccel.createSession();
// Deterministic inputs, so a run here and a run elsewhere can be compared.
const a = Float32Array.from({ length: n * n }, (_, i) => ((i * 7) % 13) - 6);
const b = Float32Array.from({ length: n * n }, (_, i) => ((i * 5) % 11) - 5);
const [c, sgemmMs] = await time(() => session.sgemm({ m: n, n, k: n, a, b }));
const key = randomBytes(32);
const iv = randomBytes(12);
const plaintext = new Uint8Array(c.buffer, c.byteOffset, c.byteLength);
const [sealed, encryptMs] = await time(() =>
  session.encrypt({ algorithm: 'aes-256-gcm', key, iv, data: plaintext }),
);
const [opened, decryptMs] = await time(() =>
  session.decrypt({ algorithm: 'aes-256-gcm', key, iv, data: sealed.data, tag: sealed.tag }),
);
const intact = Buffer.from(opened).equals(Buffer.from(plaintext));
let checksum = 0;
for (const x of c) checksum += x;
console.log(
  JSON.stringify({
    n,
    where: vaccel
      .plugins()
      .map((p) => p.name)
      .includes('remote')
      ? 'agent'
      : 'in-process',
    checksum,
    encryptedBytes: sealed.data.byteLength,
    intact,
    ms: { sgemm: sgemmMs, encrypt: encryptMs, decrypt: decryptMs },
  }),
);
await vaccel.close(); // releases the session too
process.exitCode = intact ? 0 : 1;

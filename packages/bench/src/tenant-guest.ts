/**
 * One guest process of `vaccel-bench tenants`, on the public API over the RPC plugin. Started by
 * the figure, never by hand:
 *
 *   tenant-guest sgemm ADDRESS        — a noisy neighbour: 1024² SGEMMs back to back
 *   tenant-guest detect ADDRESS PHOTO — detects PHOTO once, then on each stdin line `go N` runs N
 *                                       detections and prints `done`
 *
 * Prints `ready` once its first call has been answered; exits when stdin closes.
 * @module
 */
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { Vaccel } from '@vaccel/core';
import { remotePlugin } from '@vaccel/remote';

const [role, address, photoPath] = process.argv.slice(2);
const vaccel = await Vaccel.open({ plugins: [remotePlugin({ address: address! })] });
const session = await vaccel.createSession();
process.stdin.once('end', () => process.exit(0));

if (role === 'sgemm') {
  const n = 1024;
  const [a, b, c] = [
    new Float32Array(n * n).fill(1),
    new Float32Array(n * n).fill(1),
    new Float32Array(n * n),
  ];
  for (let first = true; ; first = false) {
    await session.sgemm({ m: n, n, k: n, alpha: 1, a, b, beta: 0, c });
    if (first) process.stdout.write('ready\n');
  }
} else if (role === 'detect') {
  const photo = new Uint8Array(readFileSync(photoPath!));
  await session.imageDetect(photo);
  process.stdout.write('ready\n');
  for await (const line of createInterface({ input: process.stdin })) {
    const count = Number(/^go (\d+)$/.exec(line)?.[1] ?? Number.NaN);
    for (let i = 0; i < count; i++) await session.imageDetect(photo);
    process.stdout.write('done\n');
  }
} else {
  throw new Error(`tenant-guest: unknown role ${role}`);
}

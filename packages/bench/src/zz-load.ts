import { Vaccel } from '@vaccel/core';
import { remotePlugin } from '@vaccel/remote';

const address = process.argv[2]!;
const vaccel = await Vaccel.open({ plugins: [remotePlugin({ address })] });
const session = await vaccel.createSession();
const seconds = Number(process.argv[3] ?? 5);
let calls = 0;
const end = performance.now() + seconds * 1000;
await Promise.all(
  Array.from({ length: 256 }, async () => {
    while (performance.now() < end) {
      await session.noop();
      calls++;
    }
  }),
);
console.log('pipelined noop calls/s', Math.round(calls / seconds));
const t: number[] = [];
for (let i = 0; i < 5000; i++) {
  const a = performance.now();
  await session.noop();
  t.push((performance.now() - a) * 1000);
}
t.sort((a, b) => a - b);
console.log('noop p50 µs', t[2500]!.toFixed(1));
await vaccel.close();

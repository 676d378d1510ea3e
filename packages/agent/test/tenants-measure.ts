// Issue 22: a light tenant's latency alone and beside 4 noisy neighbours (separate processes
// looping 1024² SGEMMs), through the public API against a real agent. Not a test: numbers for
// the report.
// Usage: node --import tsx --conditions=@vaccel/source packages/agent/test/tenants-measure.ts [agent args…]
//   e.g. `--no-scheduling` (before issue 22), `--compute-slots 1`
//   … tenants-measure.ts --throughput [agent args…]: 16 guests' detections/s ÷ an in-process loop's
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Vaccel } from '@vaccel/core';
import { remotePlugin } from '@vaccel/remote';
import { startAgent, tempDir } from './helpers.js';

const N = 1024;
const self = fileURLToPath(import.meta.url);
const open = async (address: string) => {
  const vaccel = await Vaccel.open({ plugins: [remotePlugin({ address })] });
  return { vaccel, session: await vaccel.createSession() };
};

if (process.argv[2] === '--noisy') {
  // A noisy neighbour: SGEMMs back to back until killed.
  const { session } = await open(process.argv[3]!);
  const a = new Float32Array(N * N).fill(1);
  const b = new Float32Array(N * N).fill(1);
  const c = new Float32Array(N * N);
  let first = true;
  for (;;) {
    await session.sgemm({ m: N, n: N, k: N, alpha: 1, a, b, beta: 0, c });
    if (first) process.stdout.write('running\n');
    first = false;
  }
}

if (process.argv[2] === '--throughput') {
  // 16 guests' detections/s through the agent ÷ one in-process loop's, each for `rounds` detections.
  const { hostPlugins } = await import('@vaccel/plugin-onnx');
  const photo = new Uint8Array(readFileSync(new URL('../../../examples/images/horses.jpg', import.meta.url)));
  const total = Number(process.env.ROUNDS ?? 64);
  const local = await Vaccel.open({ plugins: hostPlugins(process.env) });
  const own = await local.createSession();
  for (let i = 0; i < 3; i++) await own.imageDetect(photo);
  let t = performance.now();
  for (let i = 0; i < total; i++) await own.imageDetect(photo);
  const inProcess = total / ((performance.now() - t) / 1e3);
  await local.close();
  const agentArgs = process.argv.slice(3);
  const address = `unix://${join(tempDir(), 'throughput.sock')}`;
  const agent = await startAgent(['-a', address, ...agentArgs]);
  const guests = await Promise.all(Array.from({ length: 16 }, () => open(address)));
  await Promise.all(guests.map((g) => g.session.imageDetect(photo)));
  let left = total;
  t = performance.now();
  await Promise.all(
    guests.map(async (g) => {
      while (left-- > 0) await g.session.imageDetect(photo);
    }),
  );
  const remote = total / ((performance.now() - t) / 1e3);
  for (const g of guests) await g.vaccel.close();
  await agent.stop();
  console.log(
    JSON.stringify({
      agentArgs: agentArgs.join(' '),
      total,
      inProcess: Math.round(inProcess * 10) / 10,
      guests16: Math.round(remote * 10) / 10,
      ratio: Math.round((remote / inProcess) * 100) / 100,
    }),
  );
  process.exit(0);
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? Number.NaN;
};
const round = (x: number) => Math.round(x * 100) / 100;
const image = new Uint8Array(readFileSync(new URL('../../../examples/images/cat.jpg', import.meta.url)));

/** The light tenant: noop, then classify, then 5 ms of nothing; `rounds` times. */
async function light(address: string, rounds: number) {
  const { vaccel, session } = await open(address);
  for (let i = 0; i < 10; i++) await session.imageClassify(image); // warm: model loaded, caches hot
  const noop: number[] = [];
  const classify: number[] = [];
  for (let i = 0; i < rounds; i++) {
    let t = performance.now();
    await session.noop();
    noop.push(performance.now() - t);
    t = performance.now();
    await session.imageClassify(image);
    classify.push(performance.now() - t);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  await vaccel.close();
  return {
    noopP50: round(pct(noop, 50)),
    noopP99: round(pct(noop, 99)),
    classifyP50: round(pct(classify, 50)),
    classifyP99: round(pct(classify, 99)),
  };
}

const agentArgs = process.argv.slice(2);
const address = `unix://${join(tempDir(), 'tenants.sock')}`;
const agent = await startAgent(['-a', address, ...agentArgs]);
const rounds = Number(process.env.ROUNDS ?? 200);
const alone = await light(address, rounds);
const noisy = Array.from({ length: 4 }, () =>
  spawn(process.execPath, [...process.execArgv, self, '--noisy', address], {
    stdio: ['ignore', 'pipe', 'inherit'],
  }),
);
await Promise.all(
  noisy.map((child) => new Promise<void>((resolve) => child.stdout!.once('data', () => resolve()))),
);
const beside = await light(address, rounds);
for (const child of noisy) child.kill('SIGKILL');
await agent.stop();
console.log(
  JSON.stringify({
    agentArgs: agentArgs.join(' '),
    rounds,
    alone,
    beside,
    classifyRatio: round(beside.classifyP50 / alone.classifyP50),
  }),
);
process.exit(0);

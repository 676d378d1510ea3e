// Measures the pixel bomb and SGEMM-after-deadline against a real agent (not a test: numbers for the report).
// Usage: node --import tsx --conditions=@vaccel/source /tmp/walls/measure.ts bomb|sgemm [agent args…]
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Vaccel } from '@vaccel/core';
import { remotePlugin } from '@vaccel/remote';
import sharp from 'sharp';
import { startAgent, tempDir } from './helpers.js';

const [mode = 'bomb', ...agentArgs] = process.argv.slice(2);
const address = `unix://${join(tempDir(), 'm.sock')}`;
const agent = await startAgent(['-a', address, ...agentArgs]);
const pid = agent.process.pid!;
const status = (key: string) => {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${key}:`));
  return Number(line?.split(/\s+/)[1]) / 1024; // MiB
};
const cpu = () => {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10; // ms (USER_HZ 100)
};
const open = async (options = {}) => {
  const vaccel = await Vaccel.open({ plugins: [remotePlugin({ address, ...options })] });
  return { vaccel, session: await vaccel.createSession() };
};
const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? Number.NaN;
};
const neighbour = await open();
await neighbour.session.noop();
const latencies: number[] = [];
let attacking = true;
const pinger = (async () => {
  while (attacking) {
    const t = performance.now();
    await neighbour.session.noop();
    latencies.push(performance.now() - t);
    await new Promise((r) => setTimeout(r, 2)); // paced: a neighbour, not a flood
  }
})();

if (mode === 'bomb') {
  const bomb = await sharp({ create: { width: 16000, height: 16000, channels: 3, background: '#3070b0' } })
    .png({ compressionLevel: 9 })
    .toBuffer();
  const attackers = await Promise.all([open(), open()]);
  await attackers[0]!.session.noop();
  await attackers[1]!.session.noop();
  const before = status('VmHWM');
  latencies.length = 0; // the neighbour's latency during the attack only
  const t = performance.now();
  const outcomes = await Promise.allSettled(
    attackers.map(({ session }) => session.imageSegment(bomb, { annotate: true })),
  );
  const took = performance.now() - t;
  attacking = false;
  await pinger;
  console.log(
    JSON.stringify({
      mode,
      bombBytes: bomb.byteLength,
      attackMs: Math.round(took),
      outcomes: outcomes.map((o) =>
        o.status === 'fulfilled' ? 'ok' : String((o.reason as Error).message).slice(0, 160),
      ),
      vmHwmBeforeMiB: Math.round(before),
      vmHwmAfterMiB: Math.round(status('VmHWM')),
      noops: latencies.length,
      noopP50ms: +pct(latencies, 50).toFixed(2),
      noopP99ms: +pct(latencies, 99).toFixed(2),
      noopMaxMs: +latencies.reduce((x, y) => Math.max(x, y), 0).toFixed(2),
    }),
  );
  for (const a of attackers) await a.vaccel.close();
} else {
  // SGEMM 4096³ under a 50 ms deadline. Run 1: nothing else runs; the agent's CPU time from the
  // rejection until it is idle again. Run 2: a neighbour's noop latency while it happens.
  attacking = false;
  await pinger;
  const n = 4096;
  const attacker = await open({ timeoutMs: 50 });
  await attacker.session.noop();
  // A, B and C in memory shared with the agent: the request carries references, so it arrives at
  // once and the agent's deadline starts when the guest's does (in-band, reading 192 MiB would
  // count as CPU after the guest gave up and before the agent's deadline even started).
  const region = await attacker.vaccel.sharedMemory(3 * n * n * 4 + 4096);
  const a = region.float32(n * n).fill(1);
  const b = region.float32(n * n).fill(1);
  const c = region.float32(n * n);
  // warm the shape once without a deadline (session creation is not what we measure)
  const warm = await open();
  await warm.session.sgemm({ m: n, n, k: n, a: new Float32Array(n * n), b: new Float32Array(n * n) });
  await warm.vaccel.close();
  const idleAgain = async () => {
    let last = cpu();
    for (;;) {
      await new Promise((r) => setTimeout(r, 300));
      const now = cpu();
      if (now - last < 20) return now;
      last = now;
    }
  };
  await idleAgain();
  const before = cpu();
  const t = performance.now();
  let at = 0;
  let cpuAtDeadline = 0;
  const err = await attacker.session.sgemm({ m: n, n, k: n, a, b, c }).then(
    () => 'ok',
    (e: Error) => {
      at = performance.now() - t;
      cpuAtDeadline = cpu();
      return e.message;
    },
  );
  const cpuIdle = await idleAgain();
  // Run 2, with a neighbour.
  latencies.length = 0;
  attacking = true;
  const pinger2 = (async () => {
    while (attacking) {
      const t0 = performance.now();
      await neighbour.session.noop();
      latencies.push(performance.now() - t0);
      await new Promise((r) => setTimeout(r, 2));
    }
  })();
  await new Promise((r) => setTimeout(r, 100));
  await attacker.session.sgemm({ m: n, n, k: n, a, b, c }).catch(() => {});
  await idleAgain();
  attacking = false;
  await pinger2;
  console.log(
    JSON.stringify({
      mode,
      outcome: err.slice(0, 120),
      guestRejectedAfterMs: Math.round(at),
      agentCpuBeforeRejectionMs: cpuAtDeadline - before,
      agentCpuAfterRejectionMs: cpuIdle - cpuAtDeadline - 0,
      noops: latencies.length,
      noopP50ms: +pct(latencies, 50).toFixed(2),
      noopP99ms: +pct(latencies, 99).toFixed(2),
      noopMaxMs: +latencies.reduce((x, y) => Math.max(x, y), 0).toFixed(2),
    }),
  );
  for (const line of agent.logs) if (/^sgemm/.test(String(line.msg))) console.log(JSON.stringify(line));
  await region.close();
  await attacker.vaccel.close();
}
await neighbour.vaccel.close();
await agent.stop();
process.exit(0);

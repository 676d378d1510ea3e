/**
 * Many agents behind one RPC plugin: sessions spread by calls in flight; one of three agents killed
 * under load fails only the calls in flight on it, its sessions move on, and new sessions land on
 * the live agents at once.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { type Session, Vaccel } from '@vaccel/core';
import { remotePlugin } from '@vaccel/remote';
import { type RunningAgent, startAgent, tempDir } from './helpers.js';

const sessionsOf = (agent: RunningAgent) => agent.logs.filter((l) => l.msg === 'guest connected').length;

test('three agents: spread, one killed under load, failover', async () => {
  const dir = tempDir();
  const addresses = [0, 1, 2].map((i) => `unix://${join(dir, `agent${i}.sock`)}`);
  const agents = await Promise.all(addresses.map((a) => startAgent(['-a', a, '--plugins', 'noop:sgemm-js'])));
  try {
    await using vaccel = await Vaccel.open({ plugins: [remotePlugin({ address: addresses.join(',') })] });
    const sessions: Session[] = [];
    for (let i = 0; i < 9; i++) {
      const session = await vaccel.createSession();
      await session.noop(); // placed on its first call
      sessions.push(session);
    }
    // Each agent got a connection (the plugin keeps one per agent) and serves some sessions.
    assert.deepEqual(agents.map(sessionsOf), [1, 1, 1]);

    let stop = false;
    let calls = 0;
    const failures: string[] = [];
    const workers = sessions.map(async (session) => {
      while (!stop) {
        try {
          await session.sgemm({
            m: 8,
            n: 8,
            k: 8,
            a: new Float32Array(64).fill(1),
            b: new Float32Array(64).fill(1),
          });
          calls++;
        } catch (error) {
          failures.push(`${(error as { code?: string }).code}: ${(error as Error).message}`);
        }
      }
    });
    await new Promise((resolve) => setTimeout(resolve, 500));
    const before = calls;
    await agents[1]!.kill();
    const killedAt = performance.now();
    // A new session right after the kill is placed on a live agent and answers at once.
    const fresh = await vaccel.createSession();
    await fresh.noop();
    const placedWithin = performance.now() - killedAt;
    await new Promise((resolve) => setTimeout(resolve, 1500));
    stop = true;
    await Promise.all(workers);
    console.log(
      `# failover: ${failures.length} failed calls, new session answered ${placedWithin.toFixed(0)} ms after the kill, ${calls - before} calls after`,
    );
    assert.ok(calls > before + 100, `work went on after the kill (${calls - before} more calls)`);
    // Only calls in flight on the killed agent fail: at most one per session it served.
    assert.ok(failures.length <= 3, `${failures.length} failures: ${failures.join(' | ')}`);
    for (const f of failures) assert.match(f, /^ECONNRESET: .*agent .*agent1\.sock/);
    assert.ok(placedWithin < 1000, `a new session answered ${placedWithin.toFixed(0)} ms after the kill`);
    // Every session still works.
    for (const session of sessions) await session.noop();
    await fresh.release();
  } finally {
    await Promise.all([agents[0]!, agents[2]!].map((a) => a.stop()));
  }
});

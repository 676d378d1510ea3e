/**
 * Many agents behind one RPC plugin: sessions spread by calls in flight; one of three agents killed
 * while every agent has calls in flight fails only the calls on it, its sessions move on, and new
 * sessions land on the live agents. Synchronised on events: each agent's gate says when the calls
 * are running, the client's own log says where sessions were placed and moved.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { type Logger, type Session, Vaccel, type VaccelError } from '@vaccel/core';
import { remotePlugin } from '@vaccel/remote';
import { GATE_PLUGIN, gatedNoop, openGate } from './gate.js';
import { type RunningAgent, startAgent, tempDir } from './helpers.js';

const connectionsOf = (agent: RunningAgent) => agent.logs.filter((l) => l.msg === 'guest connected').length;

/** A logger that keeps every entry (with its bindings), for the client's own account of events. */
function recordingLogger(): { logger: Logger; entries: Record<string, unknown>[] } {
  const entries: Record<string, unknown>[] = [];
  const make = (bindings: Record<string, unknown>): Logger => {
    const at =
      (level: string) =>
      (fields: object, msg?: string): void => {
        entries.push({ ...bindings, ...fields, level, msg });
      };
    return {
      error: at('error'),
      warn: at('warn'),
      info: at('info'),
      debug: at('debug'),
      child: (more) => make({ ...bindings, ...more }),
    };
  };
  return { logger: make({}), entries };
}

test('three agents: spread, one killed with calls in flight everywhere, failover', async () => {
  const dir = tempDir();
  const addresses = [0, 1, 2].map((i) => `unix://${join(dir, `agent${i}.sock`)}`);
  const gates = await Promise.all(addresses.map(() => openGate()));
  const agents = await Promise.all(
    addresses.map((a, i) =>
      startAgent(['-a', a, '--plugins', `noop:sgemm-js:${GATE_PLUGIN}`], gates[i]!.env),
    ),
  );
  const { logger, entries } = recordingLogger();
  try {
    // The killed agent stays left out for the whole test: placement never depends on how long
    // the steps below take.
    await using vaccel = await Vaccel.open({
      logger,
      plugins: [remotePlugin({ address: addresses.join(','), agentDownMs: 3_600_000 })],
    });
    const placed = (session: Session): number => {
      const entry = entries.find((e) => e.msg === 'session placed' && e.session === session.id);
      return addresses.indexOf(String(entry?.agent));
    };
    const sessions: Session[] = [];
    for (let i = 0; i < 9; i++) {
      const session = await vaccel.createSession();
      await session.noop(); // placed on its first call
      sessions.push(session);
    }
    // Each agent got a connection (the plugin keeps one per agent) and three sessions.
    assert.deepEqual(agents.map(connectionsOf), [1, 1, 1]);
    assert.deepEqual(
      [0, 1, 2].map((a) => sessions.filter((s) => placed(s) === a).length),
      [3, 3, 3],
    );

    // One call in flight per session, held in its agent: every agent is busy when one dies.
    const calls = sessions.map((s) => gatedNoop(s, `session ${s.id}`));
    const held = await Promise.all(sessions.map((s) => gates[placed(s)]!.entered(`session ${s.id}`)));
    await agents[1]!.kill();
    const onKilled = sessions.flatMap((s, i) => (placed(s) === 1 ? [i] : []));
    for (const i of onKilled) {
      const outcome = await calls[i]!;
      assert.ok(!outcome.ok, 'a call in flight on the killed agent fails');
      assert.equal((outcome.error as VaccelError).code, 'ECONNRESET');
      assert.match((outcome.error as Error).message, /agent .*agent1\.sock/);
    }
    assert.ok(
      entries.some((e) => e.msg === 'agent failed: left out for a while' && e.agent === addresses[1]),
      'the client took the agent out of placement',
    );

    // A new session is placed on a live agent and answers.
    const fresh = await vaccel.createSession();
    await fresh.noop();
    assert.notEqual(placed(fresh), 1);
    assert.ok(placed(fresh) >= 0);

    // The killed agent's sessions move on their next call, each once, to a live agent.
    for (const i of onKilled) {
      const c = await sessions[i]!.sgemm({
        m: 2,
        n: 2,
        k: 2,
        a: new Float32Array([1, 2, 3, 4]),
        b: new Float32Array([5, 6, 7, 8]),
      });
      assert.deepEqual([...c], [19, 22, 43, 50]);
    }
    const moves = entries.filter((e) => e.msg === 'session moved to another agent');
    assert.deepEqual(moves.map((m) => m.session).sort(), onKilled.map((i) => sessions[i]!.id).sort());
    for (const move of moves) {
      assert.equal(move.from, addresses[1]);
      assert.notEqual(move.to, addresses[1]);
    }

    // The calls held on the live agents were never disturbed: let them finish.
    for (const [i, op] of held.entries()) if (!onKilled.includes(i)) op.release();
    for (const [i, call] of calls.entries())
      if (!onKilled.includes(i)) assert.deepEqual(await call, { ok: true });
    // Every session still works.
    for (const session of sessions) await session.noop();
    await fresh.release();
  } finally {
    await Promise.all(gates.map((g) => g.close())); // ops still held (a failed assert) fail
    await Promise.all([agents[0]!, agents[2]!].map((a) => a.stop()));
  }
});

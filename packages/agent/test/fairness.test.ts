/**
 * Issue 22: the agent schedules compute. Heavy ops from all guests go through per-guest queues
 * into a bounded compute pool, in fair order; cheap ops never wait behind them; a guest's queue
 * is bounded; a queued call whose deadline passes leaves its queue and never runs. Every op here
 * is held in the agent by the gate plugin, so the tests wait for events, never for time.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite, test } from 'node:test';
import { VaccelError } from '@vaccel/core';
import { GATE_PLUGIN, type Gate, gatedCompute, type Outcome, openGate } from './gate.js';
import { freePort, type RunningAgent, tempDir } from './helpers.js';
import { guest, logEvent, metric, metricReaches, startReadyAgent } from './walls-helpers.js';

const QUEUED = 'vaccel_agent_tenant_queue_depth{tenant="guest"}';
/** A safety net only: a broken scheduler hangs a test, and this ends it as a failure. */
const HANG = { timeout: 120_000 };

async function setup(flags: string[]): Promise<{
  gate: Gate;
  agent: RunningAgent;
  address: string;
  port: number;
  [Symbol.asyncDispose](): Promise<void>;
}> {
  const gate = await openGate();
  const address = `unix://${join(tempDir(), 'agent.sock')}`;
  const port = await freePort();
  const agent = await startReadyAgent(
    ['-a', address, '--plugins', `noop:${GATE_PLUGIN}`, '--metrics', `127.0.0.1:${port}`, ...flags],
    gate.env,
  );
  return {
    gate,
    agent,
    address,
    port,
    async [Symbol.asyncDispose]() {
      await agent.kill();
      await gate.close();
    },
  };
}

/** Waits for each of `labels` to enter the gate; `first` is the label that entered first. */
function entering(gate: Gate, labels: string[]) {
  const ops = new Map(labels.map((label) => [label, gate.entered(label)]));
  return {
    first: Promise.race(labels.map((label) => ops.get(label)!.then(() => label))),
    op: (label: string) => ops.get(label)!,
  };
}

const failedWith = (outcome: Outcome, code: string): boolean =>
  !outcome.ok && outcome.error instanceof VaccelError && outcome.error.code === code;

suite('fairness: the compute scheduler', () => {
  test("a guest's op runs before a busy neighbour's next queued op", HANG, async () => {
    await using s = await setup(['--compute-slots', '1']);
    const a = await guest(s.address);
    const b = await guest(s.address);
    try {
      const a1 = gatedCompute(a.session, 'a1');
      const held = await s.gate.entered('a1');
      const a2 = gatedCompute(a.session, 'a2');
      const a3 = gatedCompute(a.session, 'a3');
      await metricReaches(s.port, QUEUED, (n) => n === 2);
      const b1 = gatedCompute(b.session, 'b1');
      await metricReaches(s.port, QUEUED, (n) => n === 3);
      held.release();
      // First come, first served would run a2 here; a fair scheduler serves b, which has had nothing.
      const next = entering(s.gate, ['a2', 'b1']);
      assert.equal(await next.first, 'b1');
      (await next.op('b1')).release();
      (await next.op('a2')).release();
      (await s.gate.entered('a3')).release();
      assert.deepEqual(await Promise.all([a1, a2, a3, b1]), [
        { ok: true },
        { ok: true },
        { ok: true },
        { ok: true },
      ]);
      assert.deepEqual(s.gate.arrivals, ['a1', 'b1', 'a2', 'a3']);
    } finally {
      await a.vaccel.close();
      await b.vaccel.close();
    }
  });

  test('a noop is answered while every compute slot is held', HANG, async () => {
    await using s = await setup(['--compute-slots', '2']);
    const heavy = await guest(s.address);
    const light = await guest(s.address);
    try {
      const runs = [gatedCompute(heavy.session, 'h1'), gatedCompute(heavy.session, 'h2')];
      const held = [await s.gate.entered('h1'), await s.gate.entered('h2')];
      // A third compute op waits for a slot; cheap ones pass it by.
      runs.push(gatedCompute(light.session, 'l1'));
      await metricReaches(s.port, QUEUED, (n) => n === 1);
      await light.session.noop();
      await heavy.session.noop();
      assert.equal(await metric(s.port, 'vaccel_agent_compute_slots_busy'), 2);
      // Both hold a slot (in either order: they run at once); the third waits.
      assert.deepEqual([...s.gate.arrivals].sort(), ['h1', 'h2']);
      for (const op of held) op.release();
      (await s.gate.entered('l1')).release();
      assert.ok((await Promise.all(runs)).every((o) => o.ok));
    } finally {
      await heavy.vaccel.close();
      await light.vaccel.close();
    }
  });

  test(
    "a full queue is RESOURCE_EXHAUSTED (EBUSY), and the guest's other calls still run",
    HANG,
    async () => {
      await using s = await setup(['--compute-slots', '1', '--max-queued', '2']);
      const a = await guest(s.address);
      try {
        const c1 = gatedCompute(a.session, 'c1');
        const held = await s.gate.entered('c1');
        // One running, one may queue: of the next two, whichever arrives last is refused.
        const [c2, c3] = [gatedCompute(a.session, 'c2'), gatedCompute(a.session, 'c3')];
        const refused = await Promise.race([c2, c3]);
        assert.ok(failedWith(refused, 'EBUSY'), `EBUSY, got ${JSON.stringify(refused)}`);
        assert.match(
          String((refused as { error: Error }).error.message),
          /2 compute calls queued or running/,
        );
        assert.equal(await metric(s.port, 'vaccel_agent_refusals_total{reason="compute_queue"}'), 1);
        await a.session.noop(); // cheap calls are not counted against the queue
        held.release();
        const next = entering(s.gate, ['c2', 'c3']);
        const queued = await next.first;
        (await next.op(queued)).release();
        assert.deepEqual(await c1, { ok: true });
        const outcomes = await Promise.all([c2, c3]);
        assert.equal(outcomes.filter((o) => o.ok).length, 1);
        assert.deepEqual(s.gate.arrivals, ['c1', queued]);
      } finally {
        await a.vaccel.close();
      }
    },
  );

  test('a queued call whose deadline passes leaves the queue and never runs', HANG, async () => {
    await using s = await setup(['--compute-slots', '1']);
    const a = await guest(s.address);
    // The deadline only bounds how long the call may wait; the test waits for its failure.
    const b = await guest(s.address, { timeoutMs: 1500 });
    try {
      const a1 = gatedCompute(a.session, 'a1');
      const held = await s.gate.entered('a1');
      const late = await gatedCompute(b.session, 'late');
      assert.ok(failedWith(late, 'ETIMEDOUT'), `ETIMEDOUT, got ${JSON.stringify(late)}`);
      // It left the queue: the slot is still held, and nothing waits for it.
      await metricReaches(s.port, QUEUED, (n) => n === 0);
      held.release();
      const next = gatedCompute(b.session, 'next');
      (await s.gate.entered('next')).release();
      assert.deepEqual(await Promise.all([a1, next]), [{ ok: true }, { ok: true }]);
      assert.deepEqual(s.gate.arrivals, ['a1', 'next']);
    } finally {
      await a.vaccel.close();
      await b.vaccel.close();
    }
  });

  test(
    "with a tenants file, a token's group is one tenant: its connections share a queue",
    HANG,
    async () => {
      const file = join(tempDir(), 'tenants');
      writeFileSync(file, '# token group weight\nalpha-1 team-a\nalpha-2 team-a\nbravo-1 team-b 1\n');
      await using s = await setup(['--compute-slots', '1', '--tenants-file', file]);
      const a1 = await guest(s.address, { token: 'alpha-1' });
      const a2 = await guest(s.address, { token: 'alpha-2' });
      const b = await guest(s.address, { token: 'bravo-1' });
      try {
        await assert.rejects(
          (await guest(s.address, { token: 'nobody' })).session.noop(),
          (e: unknown) => e instanceof VaccelError && e.code === 'EACCES',
        );
        const first = gatedCompute(a1.session, 'a1');
        const held = await s.gate.entered('a1');
        // Two connections, one group: both calls wait in team-a's one queue (a2 first: the test
        // waits for it to be queued before sending a3, over the other connection).
        const teamA = 'vaccel_agent_tenant_queue_depth{tenant="team-a"}';
        const second = gatedCompute(a2.session, 'a2');
        await metricReaches(s.port, teamA, (n) => n === 1);
        const third = gatedCompute(a1.session, 'a3');
        await metricReaches(s.port, teamA, (n) => n === 2);
        const other = gatedCompute(b.session, 'b1');
        await metricReaches(s.port, 'vaccel_agent_tenant_queue_depth{tenant="team-b"}', (n) => n === 1);
        held.release();
        // team-a has had its turn (a1, whichever connection sent it): team-b goes next.
        const next = entering(s.gate, ['a2', 'b1']);
        assert.equal(await next.first, 'b1');
        (await next.op('b1')).release();
        (await next.op('a2')).release();
        (await s.gate.entered('a3')).release();
        assert.ok((await Promise.all([first, second, third, other])).every((o) => o.ok));
      } finally {
        for (const g of [a1, a2, b]) await g.vaccel.close();
      }
    },
  );

  test('an aborted op that cannot stop keeps its compute slot until it really ends', HANG, async () => {
    await using s = await setup(['--compute-slots', '1']);
    const a = await guest(s.address);
    const b = await guest(s.address);
    try {
      const stubborn = gatedCompute(a.session, 'stubborn-a1');
      const held = await s.gate.entered('stubborn-a1');
      const waiting = gatedCompute(b.session, 'b1');
      await metricReaches(s.port, QUEUED, (n) => n === 1);
      // a's connection closes: its call is aborted, but the op goes on (it ignores the abort).
      const gone = logEvent(s.agent, (line) => line.msg === 'guest disconnected');
      await a.vaccel.close();
      await gone;
      await stubborn;
      assert.equal(await metric(s.port, QUEUED), 1, 'b still waits: the slot is still taken');
      assert.deepEqual(s.gate.arrivals, ['stubborn-a1']);
      held.release();
      (await s.gate.entered('b1')).release();
      assert.deepEqual(await waiting, { ok: true });
    } finally {
      await b.vaccel.close();
    }
  });
});

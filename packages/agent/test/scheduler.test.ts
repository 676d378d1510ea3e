/**
 * The compute scheduler on its own (scheduler.ts): which waiting call a freed slot goes to. Runs
 * are ended by the test, in the order it chooses; nothing here waits for time.
 */
import assert from 'node:assert/strict';
import { suite, test } from 'node:test';
import { OpType, VaccelError } from '@vaccel/core';
import { isCompute, Scheduler, SMALL_OP_BYTES, Tenant } from '../src/scheduler.js';

/** Starts a call for `tenant`, recording `label` in `order` when it gets its slot. */
function start(scheduler: Scheduler, tenant: Tenant, label: string, order: string[], signal?: AbortSignal) {
  return scheduler.acquire(tenant, OpType.ImageClassify, signal).then((release) => {
    order.push(label);
    return release;
  });
}

/** Lets queued promise callbacks run (the scheduler resolves waiters as slots free). */
const settle = () => new Promise((resolve) => setImmediate(resolve));

suite('scheduler', () => {
  test('classifies ops by the op table and the size of their args', () => {
    assert.equal(isCompute(OpType.Noop, 1 << 30), false);
    assert.equal(isCompute(OpType.ListOperations, 0), false);
    assert.equal(isCompute(OpType.ImageClassify, 10), true);
    assert.equal(isCompute(OpType.BlasSgemm, SMALL_OP_BYTES - 1), false);
    assert.equal(isCompute(OpType.BlasSgemm, SMALL_OP_BYTES), true);
    assert.equal(isCompute(OpType.AesEncrypt, 1 << 20), true);
  });

  test('a freed slot goes to the tenant that has had the least service', async () => {
    // Every run takes 10 ms on the test's clock.
    let now = 0;
    const scheduler = new Scheduler({ slots: 1, clock: () => now });
    const tenants = { a: new Tenant('a', 'guest'), b: new Tenant('b', 'guest'), c: new Tenant('c', 'guest') };
    const order: string[] = [];
    const runs = new Map<string, Promise<() => void>>();
    for (const label of ['a1', 'a2', 'a3', 'b1', 'b2', 'c1'])
      runs.set(label, start(scheduler, tenants[label[0] as 'a' | 'b' | 'c'], label, order));
    for (let done = 0; done < runs.size; done++) {
      await settle();
      assert.equal(order.length, done + 1, 'one run at a time');
      now += 10;
      (await runs.get(order[done]!)!)();
    }
    // First come, first served would give a1 a2 a3 b1 b2 c1.
    assert.deepEqual(order, ['a1', 'b1', 'c1', 'a2', 'b2', 'a3']);
  });

  test("a long op's checkpoint hands its slot to a waiting tenant, then resumes it", async () => {
    let now = 0;
    const scheduler = new Scheduler({ slots: 1, clock: () => now });
    const [heavy, light] = [new Tenant('heavy', 'guest'), new Tenant('light', 'guest')];
    const events: string[] = [];
    let lightDone!: () => void;
    const lightFinished = new Promise<void>((resolve) => (lightDone = resolve));
    const heavyRun = scheduler.run(heavy, OpType.ImageClassify, 0, undefined, async (checkpoint) => {
      events.push('heavy block 0');
      await checkpoint!(); // nobody waits: it keeps the slot
      events.push('heavy block 1');
      now += 10;
      // light asks for a slot while heavy holds the only one.
      const lightRun = scheduler.run(light, OpType.ImageClassify, 0, undefined, async () => {
        events.push('light');
        now += 1;
      });
      void lightRun.then(lightDone);
      await settle();
      assert.deepEqual(events.at(-1), 'heavy block 1', 'light waits: heavy holds the slot');
      await checkpoint!(); // light is waiting: heavy steps aside until light is done
      events.push('heavy block 2');
    });
    await Promise.all([heavyRun, lightFinished]);
    assert.deepEqual(events, ['heavy block 0', 'heavy block 1', 'light', 'heavy block 2']);
    assert.equal(scheduler.busy, 0, 'every slot is back');
  });

  test('a tenant of weight 2 gets two runs to one of weight 1', async () => {
    let now = 0;
    const scheduler = new Scheduler({ slots: 1, clock: () => now });
    const [heavy, light] = [new Tenant('heavy', 'gold', 2), new Tenant('light', 'bronze', 1)];
    const order: string[] = [];
    const runs = new Map<string, Promise<() => void>>();
    for (let i = 0; i < 6; i++) {
      runs.set(`g${i}`, start(scheduler, heavy, `g${i}`, order));
      runs.set(`b${i}`, start(scheduler, light, `b${i}`, order));
    }
    for (let done = 0; done < 9; done++) {
      await settle();
      now += 10;
      (await runs.get(order[done]!)!)();
    }
    await settle();
    const firstNine = order.slice(0, 9).map((label) => label[0]);
    assert.equal(firstNine.filter((t) => t === 'g').length, 6, order.join(' '));
    for (const label of order.slice(9)) (await runs.get(label)!)();
  });

  test('a tenant that was idle banks no credit', async () => {
    let now = 0;
    const scheduler = new Scheduler({ slots: 1, clock: () => now });
    const [busy, idle] = [new Tenant('busy', 'guest'), new Tenant('idle', 'guest')];
    const order: string[] = [];
    // busy runs alone for a long while.
    for (let i = 0; i < 5; i++) {
      const release = await start(scheduler, busy, `busy${i}`, order);
      now += 100;
      release();
    }
    // Then both queue up: idle goes first, but does not get all its turns before busy's next.
    const hold = await start(scheduler, busy, 'hold', order);
    const runs = new Map<string, Promise<() => void>>();
    for (const label of ['busy5', 'busy6', 'idle0', 'idle1', 'idle2'])
      runs.set(label, start(scheduler, label.startsWith('busy') ? busy : idle, label, order));
    now += 10;
    hold();
    for (let done = 6; done < 11; done++) {
      await settle();
      now += 10;
      (await runs.get(order[done]!)!)();
    }
    const after = order.slice(6);
    assert.equal(after[0], 'idle0');
    // Credit banked while idle would let idle run all three first.
    assert.ok(after.indexOf('busy5') < after.indexOf('idle2'), after.join(' '));
  });

  test('a full tenant is refused with EBUSY; an aborted waiter leaves the queue', async () => {
    const scheduler = new Scheduler({ slots: 1, maxQueued: 2 });
    const a = new Tenant('a', 'guest');
    const order: string[] = [];
    const a1 = await start(scheduler, a, 'a1', order);
    const controller = new AbortController();
    const a2 = start(scheduler, a, 'a2', order, controller.signal);
    await assert.rejects(
      start(scheduler, a, 'a3', order),
      (e: unknown) => e instanceof VaccelError && e.code === 'EBUSY',
    );
    controller.abort(new Error('gone'));
    await assert.rejects(a2, /gone/);
    // Its place is free again, and it never ran.
    const a4 = start(scheduler, a, 'a4', order);
    a1();
    (await a4)();
    assert.deepEqual(order, ['a1', 'a4']);
    assert.equal(scheduler.busy, 0);
  });
});

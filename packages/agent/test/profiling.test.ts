/**
 * Profiling through the agent: GetProfiler (0.8) and GetTimers (0.7.1) as upstream clients call
 * them, and the RPC plugin's session profile with the agent's regions.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, suite, test } from 'node:test';
import { OpType, Vaccel } from '@vaccel/core';
import { connect } from '@vaccel/protocol';
import {
  AGENT_SERVICE_SYNC,
  AgentServiceV071,
  SyncAgentService,
  serviceClient,
} from '@vaccel/protocol/service';
import { remotePlugin } from '@vaccel/remote';
import { Client } from '@vaccel/ttrpc';
import { type RunningAgent, startAgent, tempDir } from './helpers.js';

suite('profiling on the agent', () => {
  let agent: RunningAgent;
  let address: string;
  before(async () => {
    address = `unix://${join(tempDir(), 'agent.sock')}`;
    agent = await startAgent(['-a', address, '--profiling']);
  });
  after(async () => assert.equal(await agent.stop(), 0));

  test('GetProfiler and GetTimers report the session regions; unknown sessions are NOT_FOUND', async () => {
    const client = new Client(await connect(address));
    try {
      const stub = serviceClient(client, SyncAgentService, AGENT_SERVICE_SYNC);
      const old = serviceClient(client, AgentServiceV071, AgentServiceV071.typeName);
      const { sessionId } = await stub.createSession({ flags: 0 });
      const noop = {
        sessionId,
        readArgs: [{ buf: new Uint8Array([OpType.Noop]), size: 1, argType: 9 }],
        writeArgs: [],
      };
      for (let i = 0; i < 3; i++) await stub.genop(noop);
      const { profiler } = await stub.getProfiler({ sessionId });
      assert.equal(profiler?.componentName, 'vaccel-ts agent');
      assert.deepEqual(Object.keys(profiler!.regions), ['vaccel_noop_op']);
      assert.equal(profiler!.regions.vaccel_noop_op!.samples.length, 3);
      const { timers } = await old.getTimers({ sessionId });
      assert.deepEqual(
        timers.map((t) => [t.name, t.samples.length]),
        [['vaccel_noop_op', 3]],
      );
      assert.deepEqual(
        timers[0]!.samples.map((s) => s.time),
        profiler!.regions.vaccel_noop_op!.samples.map((s) => s.time),
      );
      await assert.rejects(stub.getProfiler({ sessionId: 999n }), { code: 5 });
      await assert.rejects(old.getTimers({ sessionId: 999n }), { code: 5 });
    } finally {
      client.close();
    }
  });

  test("the guest's session profile holds its own regions and the agent's", async () => {
    await using vaccel = await Vaccel.open({ plugins: [remotePlugin({ address })], profiling: true });
    const session = await vaccel.createSession();
    await session.noop();
    await session.sgemm({
      m: 4,
      n: 4,
      k: 4,
      a: new Float32Array(16).fill(1),
      b: new Float32Array(16).fill(1),
    });
    const names = (await session.profile()).map((r) => r.name);
    assert.deepEqual(names.sort(), [
      'agent:vaccel_blas_sgemm_op',
      'agent:vaccel_noop_op',
      'vaccel_blas_sgemm_op',
      'vaccel_noop_op',
    ]);
    await session.release();
    // Collected before the agent forgot the session.
    assert.equal((await vaccel.profile()).length, 4);
  });
});

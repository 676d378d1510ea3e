/**
 * A hostile TensorFlow graph against a real agent: a GraphDef of under 100 bytes declaring a 1 GiB
 * constant, loaded by one guest through model_load and TensorflowModelLoad. That guest gets a clear
 * E2BIG; the agent stays up, another guest's calls go on being answered, and the same guest loads
 * an honest graph after. The agent's peak RSS stays far below the GiBs the graph asks for.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, suite, test } from 'node:test';
import { create, toBinary } from '@bufbuild/protobuf';
import { ErrorCodes, isVaccelError, ResourceType, tensor, Vaccel } from '@vaccel/core';
import { connect, detailErrno } from '@vaccel/protocol';
import { AGENT_SERVICE_SYNC, SyncAgentService, serviceClient } from '@vaccel/protocol/service';
import { remotePlugin } from '@vaccel/remote';
import { DataType, GraphDefSchema, type NodeDef } from '@vaccel/tf2onnx/tensorflow';
import { Client, TtrpcError } from '@vaccel/ttrpc';
import { type RunningAgent, startAgent, tempDir } from './helpers.js';

const type = (value: DataType) => ({ value: { case: 'type' as const, value } });
const graph = (...node: object[]) =>
  toBinary(GraphDefSchema, create(GraphDefSchema, { node: node as NodeDef[] }));

/** One Const of [16384,16384] (2^28 float32s) from a single float_val, read by an Identity. */
const HOSTILE = graph(
  {
    name: 'c',
    op: 'Const',
    attr: {
      dtype: type(DataType.DT_FLOAT),
      value: {
        value: {
          case: 'tensor',
          value: {
            dtype: DataType.DT_FLOAT,
            tensorShape: { dim: [{ size: 16384n }, { size: 16384n }] },
            floatVal: [1],
          },
        },
      },
    },
  },
  { name: 'y', op: 'Identity', input: ['c'], attr: { T: type(DataType.DT_FLOAT) } },
);

/** y = relu(x), x of [2,3]. */
const SMALL = graph(
  {
    name: 'x',
    op: 'Placeholder',
    attr: {
      dtype: type(DataType.DT_FLOAT),
      shape: { value: { case: 'shape', value: { dim: [{ size: 2n }, { size: 3n }] } } },
    },
  },
  { name: 'y', op: 'Relu', input: ['x'], attr: { T: type(DataType.DT_FLOAT) } },
);

/** Peak resident memory of a process, from /proc (Linux). */
const peakRssKb = (pid: number): number =>
  Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);

const HOSTILE_MESSAGE =
  /node c: a float32 constant of shape \[16384,16384\] takes 1073741824 bytes.*VACCEL_MODEL_MAX_CONSTANT_BYTES/;
/** The guest's error: E2BIG saying what and how to raise the limit. */
const E2BIG = (e: unknown) => isVaccelError(e) && e.code === 'E2BIG' && HOSTILE_MESSAGE.test(e.message);
/** The same over raw RPC: the status carries the errno and the message. */
const E2BIG_STATUS = (e: unknown) =>
  e instanceof TtrpcError && detailErrno(e.details) === ErrorCodes.E2BIG && HOSTILE_MESSAGE.test(e.message);

suite('a hostile TensorFlow graph on the agent', () => {
  let agent: RunningAgent;
  let address: string;
  before(async () => {
    address = `unix://${join(tempDir(), 'agent.sock')}`;
    agent = await startAgent(['-a', address]);
  });
  after(async () => {
    assert.equal(await agent.stop(), 0);
  });

  test('model_load of the ~100-byte graph: that guest gets E2BIG, the agent and its other guests carry on', async () => {
    assert.ok(HOSTILE.byteLength < 134);
    await using attacker = await Vaccel.open({ plugins: [remotePlugin({ address })] });
    await using bystander = await Vaccel.open({ plugins: [remotePlugin({ address })] });
    await using session = await attacker.createSession();
    await using other = await bystander.createSession();
    await using hostile = await attacker.createResource({
      type: ResourceType.Model,
      blobs: [{ name: 'g.pb', data: HOSTILE }],
    });
    session.registerResource(hostile);
    await assert.rejects(session.modelLoad(hostile, { tensorflow: true }), E2BIG);
    await assert.rejects(session.modelLoad(hostile), E2BIG);

    assert.equal(agent.process.exitCode, null);
    assert.equal(agent.process.signalCode, null);
    await other.noop();
    await session.noop();
    // The same guest loads and runs an honest graph afterwards.
    await using small = await attacker.createResource({
      type: ResourceType.Model,
      blobs: [{ name: 'g.pb', data: SMALL }],
    });
    session.registerResource(small);
    await session.modelLoad(small);
    const out = await session.modelRun(small, {
      'x:0': tensor('float32', [2, 3], Float32Array.from([-1, 0, 1, 2, -3, 4])),
    });
    assert.deepEqual(Array.from(Object.values(out)[0]!.data as Float32Array), [0, 0, 1, 2, 0, 4]);
    // Converting the graph would take GiBs; the agent stayed well under 1 GiB (it idles near 150 MiB).
    assert.ok(peakRssKb(agent.process.pid!) < 1024 * 1024, `peak RSS ${peakRssKb(agent.process.pid!)} kB`);
  });

  test('TensorflowModelLoad of the same graph: a clear error, the connection and the agent keep serving', async () => {
    const client = new Client(await connect(address));
    const bystander = new Client(await connect(address));
    try {
      const stub = serviceClient(client, SyncAgentService, AGENT_SERVICE_SYNC);
      const other = serviceClient(bystander, SyncAgentService, AGENT_SERVICE_SYNC);
      const { sessionId } = await stub.createSession({ flags: 0 });
      const { resourceId: modelId } = await stub.registerResource({
        sessionId,
        resourceType: ResourceType.Model,
        blobs: [{ name: 'g.pb', data: HOSTILE, size: HOSTILE.byteLength }],
      });
      await assert.rejects(stub.tensorflowModelLoad({ sessionId, modelId }), E2BIG_STATUS);
      assert.equal(agent.process.exitCode, null);
      const noop = (id: bigint) => ({
        sessionId: id,
        readArgs: [{ buf: new Uint8Array([0]), size: 1, argType: 9 }],
        writeArgs: [],
      });
      const { sessionId: otherId } = await other.createSession({ flags: 0 });
      await other.genop(noop(otherId));
      await stub.genop(noop(sessionId));
      await stub.destroySession({ sessionId });
      await other.destroySession({ sessionId: otherId });
    } finally {
      client.close();
      bystander.close();
    }
  });
});

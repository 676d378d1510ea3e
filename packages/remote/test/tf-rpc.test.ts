/**
 * tf_model ops through the RPC plugin to an upstream-style agent, which serves TensorFlow only as
 * the TensorflowModelLoad/Run/Unload RPCs: the plugin translates, and the agent sees upstream's
 * messages (nodes {name, id}, raw tensors with tf.DataType numbers).
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ResourceType, tensor, Vaccel, VaccelError } from '@vaccel/core';
import { AGENT_SERVICE_SYNC, SyncAgentService, serviceHandlers } from '@vaccel/protocol/service';
import { remotePlugin } from '@vaccel/remote';
import { Server } from '@vaccel/ttrpc';

test('tf_model_load/run/unload on an upstream agent go through its TensorFlow RPCs', async () => {
  const seen: string[] = [];
  const server = new Server();
  server.register(
    AGENT_SERVICE_SYNC,
    serviceHandlers(SyncAgentService, {
      createSession: () => ({ sessionId: 7n }),
      destroySession: () => ({}),
      registerResource: ({ blobs }) => {
        seen.push(`register ${blobs.map((b) => b.name).join(',')}`);
        return { resourceId: 42n };
      },
      // Upstream refuses our ListOperations probe (and any op ≥ 24) with an error.
      genop: () => {
        throw new VaccelError('EINVAL', 'unknown op');
      },
      tensorflowModelLoad: ({ sessionId, modelId }) => {
        seen.push(`load ${sessionId} ${modelId}`);
        return { graphDef: new Uint8Array(), status: { code: 0, message: '' } };
      },
      tensorflowModelRun: ({ modelId, inNodes, outNodes, inTensors }) => {
        seen.push(
          `run ${modelId} ${inNodes.map((n) => `${n.name}:${n.id}`)} → ${outNodes.map((n) => `${n.name}:${n.id}`)}`,
        );
        const x = new Float32Array(inTensors[0]!.data.slice().buffer);
        assert.equal(inTensors[0]!.type, 1);
        assert.deepEqual(inTensors[0]!.dims, [1n, 3n]);
        return {
          outTensors: [{ data: new Uint8Array(x.map((v) => v * 2).buffer), dims: [1n, 3n], type: 1 }],
        };
      },
      tensorflowModelUnload: ({ modelId }) => {
        seen.push(`unload ${modelId}`);
        return {};
      },
    }),
  );
  const path = join(mkdtempSync(join(tmpdir(), 'vaccel-tf-')), 'agent.sock');
  const listener = createServer();
  server.listen(listener);
  await new Promise<void>((resolve) => listener.listen(path, resolve));
  try {
    await using vaccel = await Vaccel.open({ plugins: [remotePlugin({ address: `unix://${path}` })] });
    await using session = await vaccel.createSession();
    await using model = await vaccel.createResource({
      type: ResourceType.Model,
      blobs: [{ name: 'frozen.pb', data: new Uint8Array([1, 2, 3]) }],
    });
    session.registerResource(model);
    assert.deepEqual(await session.modelLoad(model, { tensorflow: true }), { inputs: [], outputs: [] });
    const out = await session.modelRun(
      model,
      { 'serving_default_x:0': tensor('float32', [1, 3], new Float32Array([1, 2, 3])) },
      { outputs: ['StatefulPartitionedCall:1'], tensorflow: true },
    );
    assert.deepEqual(Array.from(out['StatefulPartitionedCall:1']!.data as Float32Array), [2, 4, 6]);
    await assert.rejects(session.modelRun(model, {}, { tensorflow: true }), {
      code: 'EINVAL',
      message: /needs the output names/,
    });
    await session.modelUnload(model, { tensorflow: true });
    assert.deepEqual(seen, [
      'register frozen.pb',
      'load 7 42',
      'run 42 serving_default_x:0 → StatefulPartitionedCall:1',
      'unload 42',
    ]);
  } finally {
    server.close();
    listener.close();
  }
});

/**
 * tf_model and tflite_model ops through the RPC plugin to an upstream-style agent, which serves
 * them only as the TensorflowModel* and TensorflowLiteModel* RPCs: the plugin translates, and the
 * agent sees upstream's messages (TF: nodes {name, id}, raw tensors with tf.DataType numbers;
 * TFLite: positional tensors with TfLiteType numbers and int32 dims, a count of outputs).
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

/** Serves `server` on a fresh unix socket. */
async function listenOn(server: Server): Promise<{ address: string; close: () => void }> {
  const path = join(mkdtempSync(join(tmpdir(), 'vaccel-tf-')), 'agent.sock');
  const listener = createServer();
  server.listen(listener);
  await new Promise<void>((resolve) => listener.listen(path, resolve));
  return {
    address: `unix://${path}`,
    close: () => {
      server.close();
      listener.close();
    },
  };
}

/** The session, resource and genop RPCs of an upstream agent; `seen` logs the registrations. */
const upstreamBasics = (seen: string[]) => ({
  createSession: () => ({ sessionId: 7n }),
  destroySession: () => ({}),
  registerResource: ({ blobs }: { blobs: { name: string }[] }) => {
    seen.push(`register ${blobs.map((b) => b.name).join(',')}`);
    return { resourceId: 42n };
  },
  // Upstream refuses our ListOperations probe (and any op ≥ 24) with an error.
  genop: () => {
    throw new VaccelError('EINVAL', 'unknown op');
  },
});

test('tf_model_load/run/unload on an upstream agent go through its TensorFlow RPCs', async () => {
  const seen: string[] = [];
  const server = new Server();
  server.register(
    AGENT_SERVICE_SYNC,
    serviceHandlers(SyncAgentService, {
      ...upstreamBasics(seen),
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
  const { address, close } = await listenOn(server);
  try {
    await using vaccel = await Vaccel.open({ plugins: [remotePlugin({ address })] });
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
    close();
  }
});

test('tflite_model_load/run/unload on an upstream agent go through its TensorFlow Lite RPCs, positionally', async () => {
  const seen: string[] = [];
  const server = new Server();
  server.register(
    AGENT_SERVICE_SYNC,
    serviceHandlers(SyncAgentService, {
      ...upstreamBasics(seen),
      tensorflowLiteModelLoad: ({ sessionId, modelId }) => {
        seen.push(`load ${sessionId} ${modelId}`);
        return {};
      },
      tensorflowLiteModelRun: ({ modelId, inTensors, nrOutTensors }) => {
        seen.push(
          `run ${modelId} ${inTensors.map((t) => `${t.type}[${t.dims}]`).join(' ')} → ${nrOutTensors}`,
        );
        const x = new Float32Array(inTensors[0]!.data.slice().buffer);
        const n = new Int32Array(inTensors[1]!.data.slice().buffer);
        const outputs = [
          { data: new Uint8Array(x.map((v) => v + n[0]!).buffer), dims: [1, 3], type: 1 },
          { data: new Uint8Array(new Int32Array([n[0]! * 2]).buffer), dims: [1], type: 2 },
          { data: new Uint8Array(1), dims: [1], type: 3 },
        ];
        return { outTensors: outputs.slice(0, Number(nrOutTensors)), status: { code: 0, message: '' } };
      },
      tensorflowLiteModelUnload: ({ modelId }) => {
        seen.push(`unload ${modelId}`);
        return {};
      },
    }),
  );
  const { address, close } = await listenOn(server);
  try {
    await using vaccel = await Vaccel.open({ plugins: [remotePlugin({ address })] });
    await using session = await vaccel.createSession();
    await using model = await vaccel.createResource({
      type: ResourceType.Model,
      blobs: [{ name: 'model.tflite', data: new Uint8Array([1, 2, 3]) }],
    });
    session.registerResource(model);
    assert.deepEqual(await session.modelLoad(model, { tflite: true }), { inputs: [], outputs: [] });
    // Inputs go in the order given; the model's first two outputs come back under the names asked for.
    const out = await session.modelRun(
      model,
      {
        x: tensor('float32', [1, 3], new Float32Array([1, 2, 3])),
        n: tensor('int32', [1], new Int32Array([10])),
      },
      { outputs: ['sum', 'twice'], tflite: true },
    );
    assert.deepEqual(Object.keys(out), ['sum', 'twice']);
    assert.deepEqual(Array.from(out.sum!.data as Float32Array), [11, 12, 13]);
    assert.deepEqual(out.twice, { dtype: 'int32', dims: [1], data: new Int32Array([20]) });
    await assert.rejects(session.modelRun(model, {}, { tflite: true }), {
      code: 'EINVAL',
      message: /needs the output names/,
    });
    await session.modelUnload(model, { tflite: true });
    assert.deepEqual(seen, ['register model.tflite', 'load 7 42', 'run 42 1[1,3] 2[1] → 2', 'unload 42']);
  } finally {
    close();
  }
});

/**
 * Upstream's TensorFlow RPCs on our agent, as an upstream client sends them: a TF.js graph model
 * uploaded as blobs, loaded, run with {name, id} nodes and raw tensors; results equal the same
 * model run in-process; bad requests get clear errors and leave the agent serving.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, suite, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ResourceType, tensor, Vaccel } from '@vaccel/core';
import { onnxPlugin } from '@vaccel/plugin-onnx';
import { connect } from '@vaccel/protocol';
import { AGENT_SERVICE_SYNC, SyncAgentService, serviceClient } from '@vaccel/protocol/service';
import { remotePlugin } from '@vaccel/remote';
import { Client } from '@vaccel/ttrpc';
import { humanModelsDir } from '../../../models/human.js';
import { type RunningAgent, startAgent, tempDir } from './helpers.js';

const dir = humanModelsDir();
const blobs = [
  { name: 'model.json', data: new Uint8Array(readFileSync(join(dir, 'selfie.json'))) },
  { name: 'selfie.bin', data: new Uint8Array(readFileSync(join(dir, 'selfie.bin'))) },
];
const input = Float32Array.from({ length: 256 * 256 * 3 }, (_, i) => ((i * 7919) % 256) / 255);

suite('TensorFlow RPCs (upstream 0.8) on the agent', () => {
  let agent: RunningAgent;
  let address: string;
  let client: Client;
  let stub: ReturnType<typeof serviceClient<(typeof SyncAgentService)['method']>>;
  before(async () => {
    address = `unix://${join(tempDir(), 'agent.sock')}`;
    agent = await startAgent(['-a', address]);
    client = new Client(await connect(address));
    stub = serviceClient(client, SyncAgentService, AGENT_SERVICE_SYNC);
  });
  after(async () => {
    client.close();
    assert.equal(await agent.stop(), 0);
  });

  test('load, run and unload a TF.js graph model; outputs equal an in-process run', async () => {
    const { sessionId } = await stub.createSession({ flags: 0 });
    const { resourceId: modelId } = await stub.registerResource({
      sessionId,
      resourceType: ResourceType.Model,
      blobs,
    });
    const loaded = await stub.tensorflowModelLoad({ sessionId, modelId });
    assert.equal(loaded.status?.code, 0);
    const run = await stub.tensorflowModelRun({
      sessionId,
      modelId,
      inNodes: [{ name: 'input_1', id: 0 }],
      outNodes: [{ name: 'activation_10', id: 0 }],
      inTensors: [{ data: new Uint8Array(input.buffer), dims: [1n, 256n, 256n, 3n], type: 1 }],
    });
    assert.equal(run.status?.code, 0);
    assert.equal(run.outTensors.length, 1);
    const [out] = run.outTensors;
    assert.deepEqual(out!.dims, [1n, 256n, 256n, 1n]);
    assert.equal(out!.type, 1);

    await using local = await Vaccel.open({ plugins: [onnxPlugin({ threads: 1 })] });
    await using session = await local.createSession();
    await using model = await local.createResource({ type: ResourceType.Model, blobs });
    session.registerResource(model);
    const info = await session.modelLoad(model, { tensorflow: true });
    assert.deepEqual(
      info.inputs.map((i) => i.name),
      ['input_1:0'],
    );
    const here = await session.modelRun(
      model,
      { 'input_1:0': tensor('float32', [1, 256, 256, 3], input) },
      { tensorflow: true },
    );
    const expected = here['activation_10:0']!.data as Float32Array;
    assert.deepEqual(
      Buffer.from(out!.data),
      Buffer.from(expected.buffer, expected.byteOffset, expected.byteLength),
    );
    await stub.tensorflowModelUnload({ sessionId, modelId });
    await stub.destroySession({ sessionId });
  });

  test("tf_model_load/run/unload through the guest's RPC plugin: the load reports the graph's inputs and outputs, the run its tensors", async () => {
    await using guest = await Vaccel.open({ plugins: [remotePlugin({ address })] });
    await using session = await guest.createSession();
    await using model = await guest.createResource({ type: ResourceType.Model, blobs });
    session.registerResource(model);
    const info = await session.modelLoad(model, { tensorflow: true });
    assert.deepEqual(
      info.inputs.map((i) => [i.name, i.dtype]),
      [['input_1:0', 'float32']],
    );
    assert.ok(info.outputs.some((o) => o.name === 'activation_10:0'));
    const out = await session.modelRun(
      model,
      { 'input_1:0': tensor('float32', [1, 256, 256, 3], input) },
      { outputs: ['activation_10:0'], tensorflow: true },
    );
    assert.deepEqual(out['activation_10:0']?.dims, [1, 256, 256, 1]);
    await session.modelUnload(model, { tensorflow: true });
  });

  test('a big graph converts off the event loop: other calls are answered meanwhile', async () => {
    const { sessionId } = await stub.createSession({ flags: 0 });
    const nanodet = [
      { name: 'model.json', data: new Uint8Array(readFileSync(join(dir, 'nanodet.json'))) },
      { name: 'nanodet.bin', data: new Uint8Array(readFileSync(join(dir, 'nanodet.bin'))) },
    ];
    const { resourceId: modelId } = await stub.registerResource({
      sessionId,
      resourceType: ResourceType.Model,
      blobs: nanodet,
    });
    let loaded = false;
    const load = stub.tensorflowModelLoad({ sessionId, modelId }).then(() => {
      loaded = true;
    });
    const noop = { sessionId, readArgs: [{ buf: new Uint8Array([0]), size: 1, argType: 9 }], writeArgs: [] };
    // One noop at a time on the same connection, while the load's reply has not come. Replies
    // come in the order the agent sends them, so a noop answered first was answered while the
    // graph converted. A conversion on the event loop would let at most the first one through
    // (sent before it started); off the loop they keep coming for as long as it runs (thousands).
    let answeredMeanwhile = 0;
    while (!loaded && answeredMeanwhile < 3) {
      await stub.genop(noop);
      if (!loaded) answeredMeanwhile++;
    }
    await load;
    assert.equal(answeredMeanwhile, 3, 'noops were answered while the graph converted');
    await stub.destroySession({ sessionId });
  });

  test('bad requests: unknown nodes, wrong sizes and types, unloaded models, junk models', async () => {
    const { sessionId } = await stub.createSession({ flags: 0 });
    const { resourceId: modelId } = await stub.registerResource({
      sessionId,
      resourceType: ResourceType.Model,
      blobs,
    });
    const ok = { data: new Uint8Array(input.buffer), dims: [1n, 256n, 256n, 3n], type: 1 };
    const run = (over: object) =>
      stub.tensorflowModelRun({
        sessionId,
        modelId,
        inNodes: [{ name: 'input_1', id: 0 }],
        outNodes: [{ name: 'activation_10', id: 0 }],
        inTensors: [ok],
        ...over,
      });
    await assert.rejects(run({}), /not loaded in this session/);
    await stub.tensorflowModelLoad({ sessionId, modelId });
    await assert.rejects(run({ outNodes: [{ name: 'nowhere', id: 0 }] }), /no output "nowhere:0"/);
    await assert.rejects(
      run({ inTensors: [{ ...ok, data: ok.data.subarray(4) }] }),
      /bytes for 196608 float32 values/,
    );
    await assert.rejects(run({ inTensors: [{ ...ok, type: 7 }] }), /tf.DataType 7 is not supported/);
    await assert.rejects(run({ inTensors: [] }), /1 input nodes but 0 input tensors/);
    await assert.rejects(stub.tensorflowModelLoad({ sessionId, modelId: 0n }), /model id 0 must be > 0/);
    const junk = await stub.registerResource({
      sessionId,
      resourceType: ResourceType.Model,
      blobs: [{ name: 'g.pb', data: new Uint8Array([8, 1, 2, 3]), size: 4 }],
    });
    await assert.rejects(stub.tensorflowModelLoad({ sessionId, modelId: junk.resourceId }), /GraphDef/);
    // Torch: a clear ENOTSUP (ffi_error 95) saying what runs instead.
    await assert.rejects(
      stub.torchModelLoad({ sessionId, modelId }),
      /TorchScript models do not run here: export the model to ONNX/,
    );
    // Still serving.
    assert.equal((await run({})).outTensors.length, 1);
    await stub.destroySession({ sessionId });
  });
});

suite('tf_model_load through the RPC plugin from an agent that describes no graph', () => {
  let agent: RunningAgent;
  let address: string;
  before(async () => {
    address = `unix://${join(tempDir(), 'agent.sock')}`;
    const silent = fileURLToPath(new URL('./fixtures/tf-silent-plugin.ts', import.meta.url));
    agent = await startAgent(['-a', address, '--plugins', `noop:${silent}`]);
  });
  after(async () => {
    assert.equal(await agent.stop(), 0);
  });

  test('a load answered with no model info is loaded, declaring nothing', async () => {
    await using guest = await Vaccel.open({ plugins: [remotePlugin({ address })] });
    await using session = await guest.createSession();
    await using model = await guest.createResource({ type: ResourceType.Model, blobs });
    session.registerResource(model);
    assert.deepEqual(await session.modelLoad(model, { tensorflow: true }), { inputs: [], outputs: [] });
    await session.modelUnload(model, { tensorflow: true });
  });
});

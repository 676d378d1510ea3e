/**
 * TensorFlow Lite models on the agent, both ways a guest reaches them, with the same results as
 * in-process: upstream's TensorflowLiteModelLoad/Run/Unload RPCs as an upstream client sends them
 * (a `.tflite` blob; positional tensors with TfLiteType numbers and int32 dims; the first
 * `nr_out_tensors` outputs), and our RPC plugin's tflite_model_* ops over Genop. The model is
 * MediaPipe's selfie segmenter as its npm package ships it. Bad requests get clear errors and
 * leave the agent serving.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { after, before, suite, test } from 'node:test';
import { ResourceType, tensor, Vaccel } from '@vaccel/core';
import { onnxPlugin } from '@vaccel/plugin-onnx';
import { connect, TFLITE_DATA_TYPES } from '@vaccel/protocol';
import { AGENT_SERVICE_SYNC, SyncAgentService, serviceClient } from '@vaccel/protocol/service';
import { remotePlugin } from '@vaccel/remote';
import { Client } from '@vaccel/ttrpc';
import { type RunningAgent, startAgent, tempDir } from './helpers.js';

const require = createRequire(import.meta.url);
const selfiePath = join(
  dirname(require.resolve('@mediapipe/selfie_segmentation/package.json')),
  'selfie_segmentation.tflite',
);
const blobs = [{ name: 'selfie_segmentation.tflite', data: new Uint8Array(readFileSync(selfiePath)) }];
const input = Float32Array.from({ length: 256 * 256 * 3 }, (_, i) => ((i * 7919) % 256) / 255);
const FLOAT32 = 1; // TfLiteType kTfLiteFloat32: what upstream puts on the wire (docs/protocol.md §4)

/** The selfie mask of `input`, run in-process: what every path through the agent must answer. */
async function inProcess(): Promise<Float32Array> {
  await using local = await Vaccel.open({ plugins: [onnxPlugin({ threads: 1 })] });
  await using session = await local.createSession();
  await using model = await local.createResource({ type: ResourceType.Model, blobs });
  session.registerResource(model);
  await session.modelLoad(model, { tflite: true });
  const out = await session.modelRun(
    model,
    { input_1: tensor('float32', [1, 256, 256, 3], input) },
    { tflite: true },
  );
  return out.activation_10!.data as Float32Array;
}

const bytes = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

suite('TensorFlow Lite on the agent (upstream 0.8 RPCs and Genop)', () => {
  let agent: RunningAgent;
  let address: string;
  let client: Client;
  let stub: ReturnType<typeof serviceClient<(typeof SyncAgentService)['method']>>;
  let expected: Float32Array;
  before(async () => {
    address = `unix://${join(tempDir(), 'agent.sock')}`;
    [agent, expected] = await Promise.all([startAgent(['-a', address]), inProcess()]);
    client = new Client(await connect(address));
    stub = serviceClient(client, SyncAgentService, AGENT_SERVICE_SYNC);
  });
  after(async () => {
    client.close();
    assert.equal(await agent.stop(), 0);
  });

  test('TensorflowLiteModelLoad/Run/Unload as an upstream client sends them: the in-process result', async () => {
    assert.equal(TFLITE_DATA_TYPES.float32, FLOAT32);
    const { sessionId } = await stub.createSession({ flags: 0 });
    // Under a name without `.tflite` (a client's buffer): recognised by its file identifier.
    const { resourceId: modelId } = await stub.registerResource({
      sessionId,
      resourceType: ResourceType.Model,
      blobs: [{ name: 'selfie', data: blobs[0]!.data }],
    });
    await stub.tensorflowLiteModelLoad({ sessionId, modelId });
    const run = await stub.tensorflowLiteModelRun({
      sessionId,
      modelId,
      inTensors: [{ data: new Uint8Array(input.buffer), dims: [1, 256, 256, 3], type: FLOAT32 }],
      nrOutTensors: 1n,
    });
    assert.equal(run.status?.code, 0);
    assert.equal(run.outTensors.length, 1);
    const [out] = run.outTensors;
    assert.deepEqual(out!.dims, [1, 256, 256, 1]);
    assert.equal(out!.type, FLOAT32);
    assert.deepEqual(Buffer.from(out!.data), bytes(expected));
    await stub.tensorflowLiteModelUnload({ sessionId, modelId });
    await assert.rejects(
      stub.tensorflowLiteModelRun({
        sessionId,
        modelId,
        inTensors: [{ data: new Uint8Array(input.buffer), dims: [1, 256, 256, 3], type: FLOAT32 }],
        nrOutTensors: 1n,
      }),
      /not loaded in this session/,
    );
    await stub.destroySession({ sessionId });
  });

  test("tflite_model_load/run/unload through the guest's RPC plugin (Genop): the model's description and the in-process result", async () => {
    await using guest = await Vaccel.open({ plugins: [remotePlugin({ address })] });
    await using session = await guest.createSession();
    await using model = await guest.createResource({ type: ResourceType.Model, blobs });
    session.registerResource(model);
    const info = await session.modelLoad(model, { tflite: true });
    assert.deepEqual(info.inputs, [{ name: 'input_1', dtype: 'float32', dims: [1, 256, 256, 3] }]);
    assert.deepEqual(info.outputs, [{ name: 'activation_10', dtype: 'float32', dims: [1, 256, 256, 1] }]);
    const out = await session.modelRun(
      model,
      { input_1: tensor('float32', [1, 256, 256, 3], input) },
      { tflite: true },
    );
    assert.deepEqual(bytes(out.activation_10!.data as Float32Array), bytes(expected));
    await session.modelUnload(model, { tflite: true });
  });

  test('bad requests: wrong counts, types and sizes, unloaded or junk models; the agent keeps serving', async () => {
    const { sessionId } = await stub.createSession({ flags: 0 });
    const { resourceId: modelId } = await stub.registerResource({
      sessionId,
      resourceType: ResourceType.Model,
      blobs,
    });
    const ok = { data: new Uint8Array(input.buffer), dims: [1, 256, 256, 3], type: FLOAT32 };
    const run = (over: object) =>
      stub.tensorflowLiteModelRun({ sessionId, modelId, inTensors: [ok], nrOutTensors: 1n, ...over });
    await assert.rejects(run({}), /not loaded in this session; load it first/);
    await stub.tensorflowLiteModelLoad({ sessionId, modelId });
    await assert.rejects(run({ inTensors: [] }), /takes 1 input tensors \(input_1\), the request has 0/);
    await assert.rejects(run({ nrOutTensors: 0n }), /nr_out_tensors 0 must be 1 to the model's 1 outputs/);
    await assert.rejects(run({ nrOutTensors: 2n }), /nr_out_tensors 2/);
    await assert.rejects(run({ inTensors: [{ ...ok, type: 5 }] }), /TfLiteType 5 is not supported/);
    await assert.rejects(
      run({ inTensors: [{ ...ok, data: ok.data.subarray(4) }] }),
      /bytes for 196608 float32 values/,
    );
    await assert.rejects(
      run({ inTensors: [{ ...ok, dims: [1, -256, 256, 3] }] }),
      /dimension -256 is out of range/,
    );
    await assert.rejects(
      run({ inTensors: [{ ...ok, data: new Uint8Array(4 * 128 * 128 * 3), dims: [1, 128, 128, 3] }] }),
      /input "input_1" must have shape \[1, 256, 256, 3\], got \[1, 128, 128, 3\]/,
    );
    await assert.rejects(stub.tensorflowLiteModelLoad({ sessionId, modelId: 0n }), /model id 0 must be > 0/);
    await assert.rejects(stub.tensorflowLiteModelLoad({ sessionId, modelId: 99n }), /99/);
    const junk = await stub.registerResource({
      sessionId,
      resourceType: ResourceType.Model,
      blobs: [{ name: 'junk.tflite', data: new Uint8Array([8, 1, 2, 3, 4, 5, 6, 7]), size: 8 }],
    });
    await assert.rejects(
      stub.tensorflowLiteModelLoad({ sessionId, modelId: junk.resourceId }),
      /TFLite|flatbuffer/i,
    );
    // Still serving.
    assert.equal((await run({})).outTensors.length, 1);
    await stub.destroySession({ sessionId });
  });
});

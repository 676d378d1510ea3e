/**
 * A guest's loaded models survive its agent's restart: the RPC plugin notes every model load and
 * unload (from the op table) and, when a reconnect gives the session a new agent session, loads
 * them again with the op that first loaded them — model_load for an ONNX-route model,
 * tf_model_load for a TensorFlow one — so the next run finds the model without the guest asking.
 * An unloaded model is not loaded again.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { create, toBinary } from '@bufbuild/protobuf';
import { isVaccelError, ResourceType, tensor, Vaccel } from '@vaccel/core';
import { remotePlugin } from '@vaccel/remote';
import { DataType, GraphDefSchema, type NodeDef } from '@vaccel/tf2onnx/tensorflow';
import { startAgent, tempDir } from './helpers.js';

const type = (value: DataType) => ({ value: { case: 'type' as const, value } });
/** y = relu(x) (or `op`(x)), x of [2,3]. */
const graph = (op: string) =>
  toBinary(
    GraphDefSchema,
    create(GraphDefSchema, {
      node: [
        {
          name: 'x',
          op: 'Placeholder',
          attr: {
            dtype: type(DataType.DT_FLOAT),
            shape: { value: { case: 'shape', value: { dim: [{ size: 2n }, { size: 3n }] } } },
          },
        },
        { name: 'y', op, input: ['x'], attr: { T: type(DataType.DT_FLOAT) } },
      ] as unknown as NodeDef[],
    }),
  );

const x = () => tensor('float32', [2, 3], Float32Array.from([-1, 0, 1, 2, -3, 4]));
const values = (out: Record<string, { data: unknown }>) =>
  Array.from(Object.values(out)[0]!.data as Float32Array);

test('after an agent restart, the models a session loaded are loaded again with their own load op', async () => {
  const address = `unix://${join(tempDir(), 'models.sock')}`;
  let agent = await startAgent(['-a', address]);
  try {
    await using vaccel = await Vaccel.open({ plugins: [remotePlugin({ address })] });
    await using session = await vaccel.createSession();
    const resource = (name: string, op: string) =>
      vaccel.createResource({ type: ResourceType.Model, blobs: [{ name, data: graph(op) }] });
    await using viaOnnx = await resource('relu.pb', 'Relu');
    await using viaTf = await resource('neg.pb', 'Neg');
    await using dropped = await resource('abs.pb', 'Abs');
    for (const r of [viaOnnx, viaTf, dropped]) session.registerResource(r);
    await session.modelLoad(viaOnnx);
    await session.modelLoad(viaTf, { tensorflow: true });
    await session.modelLoad(dropped);
    await session.modelUnload(dropped);
    assert.deepEqual(values(await session.modelRun(viaOnnx, { 'x:0': x() })), [0, 0, 1, 2, 0, 4]);

    assert.equal(await agent.stop(), 0);
    agent = await startAgent(['-a', address]);

    // No load from the guest: the plugin loaded both again on the new agent session.
    assert.deepEqual(values(await session.modelRun(viaOnnx, { 'x:0': x() })), [0, 0, 1, 2, 0, 4]);
    assert.deepEqual(
      values(await session.modelRun(viaTf, { 'x:0': x() }, { tensorflow: true })),
      [1, -0, -1, -2, 3, -4],
    );
    await assert.rejects(
      session.modelRun(dropped, { 'x:0': x() }),
      (e: unknown) => isVaccelError(e) && /not loaded|ENOENT|EINVAL/.test(`${e.code} ${e.message}`),
    );
  } finally {
    await agent.kill();
  }
});

test('a model that cannot be loaded again fails one op after the restart, then is forgotten', async () => {
  const address = `unix://${join(tempDir(), 'forgotten.sock')}`;
  let agent = await startAgent(['-a', address]);
  try {
    await using vaccel = await Vaccel.open({ plugins: [remotePlugin({ address })] });
    await using session = await vaccel.createSession();
    await using model = await vaccel.createResource({
      type: ResourceType.Model,
      blobs: [{ name: 'relu.pb', data: graph('Relu') }],
    });
    session.registerResource(model);
    await session.modelLoad(model);
    // Unregistered while loaded: nothing can upload it to a new agent session.
    session.unregisterResource(model);
    for (const round of [1, 2]) {
      assert.equal(await agent.stop(), 0);
      agent = await startAgent(['-a', address]);
      if (round === 1)
        await assert.rejects(
          session.noop(),
          (e: unknown) => isVaccelError(e) && /not registered/.test(e.message),
        );
      await session.noop(); // the replay gave up on that model: no failure on later reconnects
    }
  } finally {
    await agent.kill();
  }
});

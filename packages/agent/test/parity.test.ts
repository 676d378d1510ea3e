import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, suite, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  Args,
  CIPHER_ALGORITHMS,
  OpType,
  packMinmax,
  packTorchSgemm,
  ResourceType,
  type Session,
  tensor,
  Vaccel,
  VaccelError,
} from '@vaccel/core';
import { execPlugin } from '@vaccel/core/plugins';
import { DEFAULT_MODEL_DIR, hostPlugins } from '@vaccel/plugin-onnx';
import { remotePlugin } from '@vaccel/remote';
import fc from 'fast-check';
import { fakeVmm, freePort, type RunningAgent, startAgent, tempDir } from './helpers.js';

const cat = new Uint8Array(readFileSync(new URL('../../../examples/images/cat.jpg', import.meta.url)));
const dog = new Uint8Array(readFileSync(new URL('../../../examples/images/dog.jpg', import.meta.url)));
const person = new Uint8Array(readFileSync(new URL('../../../examples/images/person.jpg', import.meta.url)));
const uploadedModule =
  'export function negate(read, write) { write[0].buf.set(read[0].buf.map((b) => 255 - b)); }\nexport function secret() {}\n';
const execFixture = fileURLToPath(new URL('../../core/test/fixtures/exec-functions.mjs', import.meta.url));

/** Runs `work` on a session and captures its outcome as comparable data. */
async function outcome(session: Session, work: (s: Session) => Promise<unknown>): Promise<unknown> {
  try {
    const value = await work(session);
    return {
      ok:
        value instanceof Uint8Array || ArrayBuffer.isView(value)
          ? Buffer.from(
              (value as Uint8Array).buffer,
              (value as Uint8Array).byteOffset,
              (value as Uint8Array).byteLength,
            ).toString('hex')
          : value,
    };
  } catch (error) {
    assert.ok(error instanceof VaccelError, `not a VaccelError: ${error}`);
    return { error: error.code };
  }
}

suite('remote vs in-process: byte-identical results over every transport', () => {
  const dir = tempDir();
  let agent: RunningAgent;
  let vmm: Awaited<ReturnType<typeof fakeVmm>>;
  const addresses: [string, string][] = [];
  let local: Vaccel;
  let localSession: Session;

  before(async () => {
    const port = await freePort();
    const unix = `unix://${join(dir, 'agent.sock')}`;
    const hybrid = join(dir, 'fc.vsock');
    agent = await startAgent(['-a', unix, '-a', `tcp://127.0.0.1:${port}`, '-a', `unix://${hybrid}_2048`], {
      VACCEL_EXEC_ALLOWLIST: execFixture,
      VACCEL_EXEC_RESOURCE_ALLOWLIST: `${createHash('sha256').update(uploadedModule).digest('hex')}#negate`,
    });
    vmm = await fakeVmm(hybrid);
    // Guest → host over hybrid vsock arrives at <uds>_<port>; host → guest goes through CONNECT.
    addresses.push(
      ['unix', unix],
      ['tcp', `tcp://127.0.0.1:${port}`],
      ['vsock (guest→host)', `unix://${hybrid}_2048`],
      ['vsock (CONNECT)', `hvsock://${hybrid}:2048`],
    );
    local = await Vaccel.open({
      // The agent's default set: the builtin plugins and the ONNX plugin (exec allowlisted as there),
      // with the ONNX Runtime threads per run the agent gives by default (cores ÷ compute slots,
      // slots = cores: 1). MLAS's float sums depend on the thread count, so with another count
      // SGEMM results may differ in the last bits (and run on this thread, not compute threads).
      plugins: [
        ...hostPlugins({ ...process.env, VACCEL_ONNX_THREADS: '1' }).filter((p) => p !== 'exec'),
        execPlugin({ allow: [execFixture] }),
      ],
    });
    localSession = await local.createSession();
  });
  after(async () => {
    await local.close();
    vmm.close();
    assert.equal(await agent.stop(), 0, 'the agent exits 0 on SIGTERM');
  });

  const cases: [string, (s: Session) => Promise<unknown>][] = [
    ['noop echo', async (s) => {
      const out = Args.raw(new Uint8Array(9));
      await s.doOperation(OpType.Noop, [Args.raw(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]))], [out]);
      return out.buf;
    }],
    ['sgemm with alpha, beta and padded leading dimensions', (s) =>
      s.sgemm({ m: 3, n: 4, k: 5, lda: 6, ldb: 5, ldc: 7, alpha: 0.5, beta: -1, a: Float32Array.from({ length: 18 }, (_, i) => i / 7), b: Float32Array.from({ length: 25 }, (_, i) => Math.sin(i)), c: Float32Array.from({ length: 21 }, (_, i) => i) })],
    ['sgemm big enough for worker threads', (s) => s.sgemm({ m: 120, n: 130, k: 140, a: Float32Array.from({ length: 120 * 140 }, (_, i) => Math.cos(i)), b: Float32Array.from({ length: 140 * 130 }, (_, i) => Math.sin(i)) })],
    ['sgemm shape mismatch', (s) => s.sgemm({ m: 2, n: 2, k: 2, a: new Float32Array(3), b: new Float32Array(4) })],
    ['exec of an allowlisted function', async (s) => {
      const out = Args.int32(0);
      await s.exec(execFixture, 'sum', [Args.int32(40), Args.int32(2)], [out]);
      return out.buf;
    }],
    ['exec refused', (s) => s.exec(execFixture, 'fail', [], [])],
    ['classify a photo with the default model', (s) => s.imageClassify(cat, { topK: 5 })],
    ['classify a corrupt image', (s) => s.imageClassify(new Uint8Array([1, 2, 3]))],
    ['upstream image_classify op', async (s) => {
      const [name, text] = [Args.raw(new Uint8Array(1024)), Args.raw(new Uint8Array(1024))];
      await s.doOperation(OpType.ImageClassify, [Args.buffer(cat)], [name, text]);
      return [name.buf, text.buf];
    }],
    ['detect objects, with the annotated image', (s) => s.imageDetect(dog, { annotate: true })],
    ['detect in a corrupt image', (s) => s.imageDetect(new Uint8Array([0xff, 0xd8, 1]))],
    ['estimate a pose', (s) => s.imagePose(person)],
    ['segment a person', (s) => s.imageSegment(person, { annotate: true })],
    ['upstream image_detect, image_pose, image_segment ops', async (s) => {
      const outs = [OpType.ImageDetect, OpType.ImagePose, OpType.ImageSegment].map(() => Args.raw(new Uint8Array(256)));
      for (const [i, op] of [OpType.ImageDetect, OpType.ImagePose, OpType.ImageSegment].entries())
        await s.doOperation(op, [Args.buffer(person)], [outs[i]!]);
      return outs.map((o) => o.buf);
    }],
    ['minmax (upstream layout)', async (s) => {
      const { read, write } = packMinmax(Float64Array.from([3, -1, 99, 4.5]), 0, 10);
      await s.doOperation(OpType.MinMax, read, write);
      return write.map((w) => w.buf);
    }],
    ['fpga ops (upstream layouts)', async (s) => {
      const f32 = (a: number[]) => Args.float32Array(Float32Array.from(a));
      const outs = [Args.raw(new Uint8Array(8)), f32([0, 0]), f32([0, 0]), f32([0, 0]), f32([0, 0, 0, 0])];
      await s.doOperation(OpType.FpgaArrayCopy, [Args.raw(new Uint8Array([1, 0, 0, 0, 2, 0, 0, 0]))], [outs[0]!]);
      await s.doOperation(OpType.FpgaVectorAdd, [f32([1, 2]), f32([3, 4])], [outs[1]!]);
      await s.doOperation(OpType.FpgaParallel, [f32([1, 2]), f32([3, 4])], [outs[2]!, outs[3]!]);
      await s.doOperation(OpType.FpgaMmult, [f32([1, 2, 3, 4]), f32([4, 3, 2, 1])], [outs[4]!]);
      return outs.map((o) => o.buf);
    }],
    ['fpga_mmult of a non-square size', (s) => s.doOperation(OpType.FpgaMmult, [Args.float32Array(new Float32Array(3)), Args.float32Array(new Float32Array(3))], [Args.float32Array(new Float32Array(3))])],
    ['torch_sgemm', async (s) => {
      const { read, write } = packTorchSgemm(Float32Array.from({ length: 12 }, (_, i) => i), Float32Array.from({ length: 20 }, (_, i) => i / 3), new Float32Array(15).fill(1), 3, 5, 4);
      await s.doOperation(OpType.TorchSgemm, read, write);
      return write[0]!.buf;
    }],
    ['decrypt with a bad tag', (s) => s.decrypt({ algorithm: 'aes-128-gcm', key: new Uint8Array(16), iv: new Uint8Array(12), data: new Uint8Array(5), tag: new Uint8Array(16) })],
    ['decrypt with bad padding', (s) => s.decrypt({ algorithm: 'aes-256-cbc', key: new Uint8Array(32), iv: new Uint8Array(16), data: new Uint8Array(32) })],
    ['encrypt with a wrong key length', (s) => s.encrypt({ algorithm: 'aes-192-ctr', key: new Uint8Array(16), iv: new Uint8Array(16), data: new Uint8Array(5) })],
    ['malformed args', (s) => s.doOperation(OpType.BlasSgemm, [Args.int32(1)], [])],
  ]; // biome-ignore format: a table reads better packed

  for (const [name, work] of cases) {
    test(name, async () => {
      const expected = await outcome(localSession, work);
      for (const [transport, address] of addresses) {
        await using remote = await Vaccel.open({ plugins: [remotePlugin({ address })] });
        await using session = await remote.createSession();
        assert.deepEqual(await outcome(session, work), expected, transport);
      }
    });
  }

  test('AES in every mode and key size, random data (property)', async () => {
    await using remote = await Vaccel.open({ plugins: [remotePlugin({ address: addresses[0]![1] })] });
    await using session = await remote.createSession();
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...CIPHER_ALGORITHMS),
        fc.uint8Array({ maxLength: 2000 }),
        fc.uint8Array({ maxLength: 20 }),
        async (algorithm, data, aad) => {
          const gcm = algorithm.endsWith('gcm');
          const params = {
            algorithm,
            key: randomBytes(Number(algorithm.slice(4, 7)) / 8),
            iv: randomBytes(gcm ? 12 : 16),
            ...(gcm ? { aad } : {}),
          };
          const here = await localSession.encrypt({ ...params, data });
          const there = await session.encrypt({ ...params, data });
          assert.deepEqual(Buffer.from(there.data), Buffer.from(here.data));
          assert.deepEqual(there.tag && Buffer.from(there.tag), here.tag && Buffer.from(here.tag));
          const back = await session.decrypt({ ...params, data: there.data, tag: there.tag });
          assert.deepEqual(Buffer.from(back), Buffer.from(data));
        },
      ),
      { numRuns: 60 },
    );
  });

  test('exec_with_resource runs an uploaded module the agent allowlists by sha256, and only that', async () => {
    await using remote = await Vaccel.open({ plugins: [remotePlugin({ address: addresses[0]![1] })] });
    await using session = await remote.createSession();
    await using lib = await remote.createResource({
      type: ResourceType.Lib,
      blobs: [{ name: 'negate.mjs', data: new TextEncoder().encode(uploadedModule) }],
    });
    session.registerResource(lib);
    const out = Args.raw(new Uint8Array(3));
    await session.execWithResource(lib, 'negate', [Args.raw(new Uint8Array([0, 1, 255]))], [out]);
    assert.deepEqual([...out.buf], [255, 254, 0]);
    await assert.rejects(session.execWithResource(lib, 'secret', [], []), { code: 'EPERM' });
  });

  test("listOperations reports the agent's ops; resources upload once per connection", async () => {
    await using remote = await Vaccel.open({ plugins: [remotePlugin({ address: addresses[0]![1] })] });
    const ops = await remote.listOperations();
    assert.deepEqual(
      ops.map((o) => o.name),
      (await local.listOperations()).map((o) => o.name),
    );
    assert.ok(ops.every((o) => o.plugin === 'remote'));
    await using session = await remote.createSession();
    await using model = await remote.createResource({
      type: ResourceType.Model,
      paths: `${DEFAULT_MODEL_DIR}model.onnx`,
    });
    session.registerResource(model);
    await using junk = await remote.createResource({
      type: ResourceType.Model,
      blobs: [{ name: 'm.onnx', data: randomBytes(1000) }],
    });
    session.registerResource(junk);
    // The resource travels once; a file that is not ONNX is EINVAL, as in-process.
    await assert.rejects(session.modelLoad(junk), { code: 'EINVAL' });
    await assert.rejects(session.modelLoad(junk), { code: 'EINVAL' });
    // model_load / model_run through the agent equal the same ops in-process.
    await using localModel = await local.createResource({
      type: ResourceType.Model,
      paths: `${DEFAULT_MODEL_DIR}model.onnx`,
    });
    localSession.registerResource(localModel);
    assert.deepEqual(await session.modelLoad(model), await localSession.modelLoad(localModel));
    const input = tensor(
      'float32',
      [1, 224, 224, 3],
      Float32Array.from({ length: 224 * 224 * 3 }, (_, i) => (i % 251) / 251),
    );
    const there = await session.modelRun(model, { input_1: input });
    const here = await localSession.modelRun(localModel, { input_1: input });
    assert.deepEqual(there, here);
    await session.modelUnload(model);
    await localSession.modelUnload(localModel);
  });
});

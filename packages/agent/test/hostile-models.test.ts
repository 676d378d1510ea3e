/**
 * Hostile ONNX models against a real agent, sent by guests through the public API (the RPC plugin):
 *
 * - (a) an initializer kept "outside the model" in `secret`, a file that exists in the agent's
 *   working directory: EINVAL at load (model_load or an image op), the file's bytes never come
 *   back, and no message names a host path;
 * - (b) ConstantOfShape [30000, 30000] → ReduceSum (a few bytes of model, 3.6 GB a run), run with
 *   model_run: ENOMEM (or E2BIG) in a capped runner, while another guest's noop and model run are
 *   answered meanwhile and afterwards, and the agent stays up. The agent's peak RSS over (b) is
 *   reported as a test diagnostic, not asserted.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, suite, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { create } from '@bufbuild/protobuf';
import { isVaccelError, ResourceType, type Session, tensor, type Vaccel } from '@vaccel/core';
import { DataType, initializer, modelBytes, node, valueInfo } from '@vaccel/plugin-onnx';
import { spawnTied } from '@vaccel/process';
import { TensorProto_DataLocation as DataLocation, TensorProtoSchema } from '@vaccel/tf2onnx/onnx';
import { tempDir } from './helpers.js';
import { guest } from './walls-helpers.js';

const bin = fileURLToPath(new URL('../src/bin.ts', import.meta.url));
const repository = fileURLToPath(new URL('../../..', import.meta.url));

const SECRET = 'host secret: never for guests 0123456789abcdef'.padEnd(64, '.');

/** An agent started from the sources with `cwd` as its working directory. */
interface AgentIn {
  process: ChildProcess;
  /** SIGTERM; resolves to the exit code. */
  stop(): Promise<number | null>;
}

/**
 * Starts `vaccel-agent` in `cwd` (helpers.ts' startAgent runs it in the test's own directory);
 * resolves once it logs that it listens.
 */
function startAgentIn(cwd: string, address: string): Promise<AgentIn> {
  // tsx by absolute URL: `--import tsx` would resolve from `cwd`, where there is no node_modules.
  const child = spawnTied(
    process.execPath,
    ['--import', import.meta.resolve('tsx'), '--conditions=@vaccel/source', bin, '-a', address],
    { cwd, env: { ...process.env, VACCEL_LOG_LEVEL: 'info' }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let stderr = '';
  child.stderr!.on('data', (chunk) => {
    stderr += chunk;
  });
  return new Promise((resolve, reject) => {
    let buffered = '';
    const onData = (chunk: Buffer): void => {
      buffered += chunk.toString();
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      if (!lines.some((line) => line.includes('"msg":"listening"'))) return;
      child.stdout!.off('data', onData);
      child.stdout!.resume(); // keep draining its log
      resolve({
        process: child,
        stop: () => {
          child.kill('SIGTERM');
          return exited;
        },
      });
    };
    child.stdout!.on('data', onData);
    exited.then((code) => reject(new Error(`agent exited with ${code} before listening: ${stderr}`)));
  });
}

/** y = Identity(w), w a float32 [16] whose 64 bytes ONNX Runtime would read from `location`. */
const leakModel = (location: string) =>
  modelBytes({
    name: 'leak',
    nodes: [node('Identity', ['w'], ['y'])],
    inputs: [],
    outputs: [valueInfo('y', DataType.FLOAT, [16])],
    initializers: [
      create(TensorProtoSchema, {
        name: 'w',
        dataType: DataType.FLOAT,
        dims: [16n],
        dataLocation: DataLocation.EXTERNAL,
        externalData: [
          { key: 'location', value: location },
          { key: 'offset', value: '0' },
          { key: 'length', value: '64' },
        ],
      }),
    ],
  });

/** y = sum(ConstantOfShape([k, k])): a few bytes of model, 4·k² bytes of memory per run. */
const bombModel = (k: number) =>
  modelBytes({
    name: 'bomb',
    nodes: [
      node('ConstantOfShape', ['shape'], ['big']),
      node('ReduceSum', ['big'], ['y'], { keepdims: { int: 0 } }),
    ],
    inputs: [],
    outputs: [valueInfo('y', DataType.FLOAT, [])],
    initializers: [initializer('shape', DataType.INT64, [2], new BigInt64Array([BigInt(k), BigInt(k)]))],
  });

/** y = x · W for x [1, 4], W [4, 3] = 1..12. */
const matmulModel = modelBytes({
  name: 'matmul',
  nodes: [node('MatMul', ['x', 'W'], ['y'])],
  inputs: [valueInfo('x', DataType.FLOAT, [1, 4])],
  outputs: [valueInfo('y', DataType.FLOAT, [1, 3])],
  initializers: [
    initializer(
      'W',
      DataType.FLOAT,
      [4, 3],
      Float32Array.from({ length: 12 }, (_, i) => i + 1),
    ),
  ],
});
const X = new Float32Array([1, 0, 2, -1]);
const XW = [1 + 2 * 7 - 10, 2 + 2 * 8 - 11, 3 + 2 * 9 - 12];

async function upload(vaccel: Vaccel, session: Session, blobs: { name: string; data: Uint8Array }[]) {
  const model = await vaccel.createResource({ type: ResourceType.Model, blobs });
  session.registerResource(model);
  return model;
}

/** Peak resident memory of a process since its start or its last reset, from /proc (Linux). */
const peakRssKb = (pid: number): number =>
  Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);

suite('hostile models on the agent', () => {
  let dir: string;
  let address: string;
  let agent: AgentIn;
  before(async () => {
    dir = tempDir();
    writeFileSync(join(dir, 'secret'), SECRET);
    address = `unix://${join(tempDir(), 'agent.sock')}`;
    agent = await startAgentIn(dir, address);
  });
  after(async () => {
    assert.equal(await agent.stop(), 0);
    rmSync(dir, { recursive: true, force: true });
  });

  test("a model whose initializer lives in a file of the agent's directory is EINVAL; the file never comes back", async () => {
    const attacker = await guest(address);
    try {
      const refused = (e: unknown) => {
        assert.ok(isVaccelError(e) && e.code === 'EINVAL', String(e));
        assert.match(e.message, /external data/);
        for (const path of [dir, repository])
          assert.ok(!e.message.includes(path), `the message names ${path}: ${e.message}`);
        assert.ok(!e.message.includes(SECRET.slice(0, 16)), e.message);
        return true;
      };
      const leak = leakModel('secret');
      const model = await upload(attacker.vaccel, attacker.session, [{ name: 'm.onnx', data: leak }]);
      await assert.rejects(attacker.session.modelLoad(model), refused);
      // Nothing was loaded to run.
      await assert.rejects(
        attacker.session.modelRun(model, {}),
        (e) => isVaccelError(e) && e.code === 'EINVAL',
      );
      // The same model behind an image op's descriptor: refused the same way.
      const descriptor = { name: 'leak', input: { shape: [1, 4, 4, 3] } };
      const classifier = await upload(attacker.vaccel, attacker.session, [
        { name: 'model.json', data: new TextEncoder().encode(JSON.stringify(descriptor)) },
        { name: 'model.onnx', data: leak },
      ]);
      const cat = new Uint8Array(
        readFileSync(fileURLToPath(new URL('../../../examples/images/cat.jpg', import.meta.url))),
      );
      await assert.rejects(attacker.session.imageClassify(cat, { model: classifier }), refused);
      await attacker.session.noop();
    } finally {
      await attacker.vaccel.close();
    }
    assert.equal(agent.process.exitCode, null);
  });

  test('ConstantOfShape [30000, 30000] → ReduceSum is ENOMEM for its guest; another guest is served meanwhile and after', async (t) => {
    const attacker = await guest(address);
    const bystander = await guest(address);
    try {
      const pid = agent.process.pid!;
      // Peak RSS from here on (Linux ≥ 4.0 resets VmHWM on "5"); else since the agent started.
      let reset = true;
      try {
        writeFileSync(`/proc/${pid}/clear_refs`, '5');
      } catch {
        reset = false;
      }
      const matmul = await upload(bystander.vaccel, bystander.session, [
        { name: 'm.onnx', data: matmulModel },
      ]);
      await bystander.session.modelLoad(matmul);
      const runMatmul = async (session: Session, model = matmul) => {
        const out = await session.modelRun(model, { x: tensor('float32', [1, 4], X) });
        assert.deepEqual([...(out.y!.data as Float32Array)], XW);
      };
      const bomb = await upload(attacker.vaccel, attacker.session, [
        { name: 'm.onnx', data: bombModel(30_000) },
      ]);
      await attacker.session.modelLoad(bomb);
      const blast = attacker.session.modelRun(bomb, {});
      blast.catch(() => {}); // asserted below
      // The other guest's calls, sent while the bomb's call is out (not asserted to overlap it: no race).
      await bystander.session.noop();
      await runMatmul(bystander.session);
      await assert.rejects(blast, (e) => {
        assert.ok(isVaccelError(e) && (e.code === 'ENOMEM' || e.code === 'E2BIG'), String(e));
        return true;
      });
      // Afterwards: both guests, the agent still up.
      await bystander.session.noop();
      await runMatmul(bystander.session);
      await attacker.session.noop();
      const own = await upload(attacker.vaccel, attacker.session, [{ name: 'm.onnx', data: matmulModel }]);
      await attacker.session.modelLoad(own);
      await runMatmul(attacker.session, own);
      assert.equal(agent.process.exitCode, null);
      assert.equal(agent.process.signalCode, null);
      t.diagnostic(`agent peak RSS (VmHWM) ${reset ? 'over the bomb' : 'since start'}: ${peakRssKb(pid)} kB`);
    } finally {
      await attacker.vaccel.close();
      await bystander.vaccel.close();
    }
  });
});

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it, test } from 'node:test';
import {
  Args,
  OpType,
  packMinmax,
  packTorchSgemm,
  type Resource,
  ResourceType,
  type Session,
  Vaccel,
} from '@vaccel/core';
import { computePlugin, execPlugin, sgemmJsPlugin } from '@vaccel/core/plugins';

const f32 = (a: ArrayLike<number>) => Args.float32Array(Float32Array.from(a));
const floats = (bytes: Uint8Array) => Array.from(new Float32Array(bytes.slice().buffer));

describe('compute ops (upstream layouts)', () => {
  let vaccel: Vaccel;
  let s: Session;
  before(async () => {
    vaccel = await Vaccel.open({ plugins: [computePlugin(), sgemmJsPlugin({ threads: 0 })] });
    s = await vaccel.createSession();
  });
  after(() => vaccel.close());

  it('minmax clamps to [low, high] and reports the extremes', async () => {
    const data = Float64Array.from([5, -3, 12, 7.5, 0]);
    const { read, write } = packMinmax(data, 0, 10);
    await s.doOperation(OpType.MinMax, read, write);
    assert.deepEqual(Array.from(new Float64Array(write[0]!.buf.slice().buffer)), [5, 0, 10, 7.5, 0]);
    assert.equal(new DataView(write[1]!.buf.buffer, write[1]!.buf.byteOffset).getFloat64(0, true), 0);
    assert.equal(new DataView(write[2]!.buf.buffer, write[2]!.buf.byteOffset).getFloat64(0, true), 10);
    const bad = packMinmax(data, 10, 0);
    await assert.rejects(s.doOperation(OpType.MinMax, bad.read, bad.write), {
      code: 'EINVAL',
      message: /low 10 is above high 0/,
    });
    const short = packMinmax(data, 0, 1);
    short.read[1] = Args.int32(9);
    await assert.rejects(s.doOperation(OpType.MinMax, short.read, short.write), {
      code: 'EINVAL',
      message: /ndata 9/,
    });
    await assert.rejects(s.doOperation(OpType.MinMax, read, write.slice(0, 2)), {
      code: 'EINVAL',
      message: /4 read and 3 write/,
    });
  });

  it('fpga_arraycopy, fpga_vectoradd, fpga_parallel compute element-wise', async () => {
    const copy = Args.raw(new Uint8Array(12));
    await s.doOperation(
      OpType.FpgaArrayCopy,
      [Args.raw(new Uint8Array(Int32Array.from([1, -2, 3]).buffer))],
      [copy],
    );
    assert.deepEqual(Array.from(new Int32Array(copy.buf.slice().buffer)), [1, -2, 3]);
    const c = f32([0, 0, 0]);
    await s.doOperation(OpType.FpgaVectorAdd, [f32([1, 2, 3]), f32([0.5, 0.25, -3])], [c]);
    assert.deepEqual(floats(c.buf), [1.5, 2.25, 0]);
    const [add, mul] = [f32([0, 0]), f32([0, 0])];
    await s.doOperation(OpType.FpgaParallel, [f32([2, 3]), f32([4, -1])], [add, mul]);
    assert.deepEqual(
      [floats(add.buf), floats(mul.buf)],
      [
        [6, 2],
        [8, -3],
      ],
    );
    await assert.rejects(s.doOperation(OpType.FpgaVectorAdd, [f32([1, 2]), f32([1])], [f32([0, 0])]), {
      code: 'EINVAL',
      message: /a has 2 floats, b 1/,
    });
    await assert.rejects(s.doOperation(OpType.FpgaVectorAdd, [f32([1, 2]), f32([1, 2])], [f32([0])]), {
      code: 'EINVAL',
      message: /needs 8 bytes/,
    });
  });

  it('fpga_mmult multiplies square matrices', async () => {
    const c = f32(new Array(4).fill(0));
    await s.doOperation(OpType.FpgaMmult, [f32([1, 2, 3, 4]), f32([5, 6, 7, 8])], [c]);
    assert.deepEqual(floats(c.buf), [19, 22, 43, 50]);
    await assert.rejects(
      s.doOperation(OpType.FpgaMmult, [f32([1, 2, 3]), f32([1, 2, 3])], [f32([0, 0, 0])]),
      { code: 'EINVAL', message: /square/ },
    );
  });

  it('torch_sgemm is A·B + C on the sgemm plugins', async () => {
    const { read, write } = packTorchSgemm(
      Float32Array.from([1, 2, 3, 4, 5, 6]),
      Float32Array.from([1, 0, 0, 1, 1, 1]),
      Float32Array.from([10, 20, 30, 40]),
      2,
      2,
      3,
    );
    await s.doOperation(OpType.TorchSgemm, read, write);
    assert.deepEqual(floats(write[0]!.buf), [14, 25, 40, 51]);
    const bad = packTorchSgemm(new Float32Array(5), new Float32Array(6), new Float32Array(4), 2, 2, 3);
    await assert.rejects(s.doOperation(OpType.TorchSgemm, bad.read, bad.write), {
      code: 'EINVAL',
      message: /A has 5 floats/,
    });
  });
});

describe('exec_with_resource', () => {
  const source =
    'export function double(read, write) { new DataView(write[0].buf.buffer, write[0].buf.byteOffset).setInt32(0, 2 * new DataView(read[0].buf.buffer, read[0].buf.byteOffset).getInt32(0, true), true); }\nexport function other() {}\n';
  const digest = createHash('sha256').update(source).digest('hex');
  let vaccel: Vaccel;
  let s: Session;
  let lib: Resource;
  before(async () => {
    vaccel = await Vaccel.open({ plugins: [execPlugin({ allowResources: [`${digest}#double`] })] });
    s = await vaccel.createSession();
    lib = await vaccel.createResource({
      type: ResourceType.Lib,
      blobs: [{ name: 'double.mjs', data: new TextEncoder().encode(source) }],
    });
    s.registerResource(lib);
  });
  after(() => vaccel.close());

  it('runs an allowlisted function of an uploaded module', async () => {
    const out = Args.int32(0);
    await s.execWithResource(lib, 'double', [Args.int32(21)], [out]);
    assert.equal(new DataView(out.buf.buffer, out.buf.byteOffset).getInt32(0, true), 42);
  });

  it('refuses functions and modules off the allowlist with EPERM, bad resources with EINVAL', async () => {
    await assert.rejects(s.execWithResource(lib, 'other', [], []), {
      code: 'EPERM',
      message: new RegExp(`${digest}#other`),
    });
    await using changed = await vaccel.createResource({
      type: ResourceType.Lib,
      blobs: [{ name: 'double.mjs', data: new TextEncoder().encode(`${source} `) }],
    });
    s.registerResource(changed);
    await assert.rejects(s.execWithResource(changed, 'double', [Args.int32(1)], [Args.int32(0)]), {
      code: 'EPERM',
    });
    await using data = await vaccel.createResource({
      type: ResourceType.Data,
      blobs: [{ name: 'x.mjs', data: new Uint8Array(3) }],
    });
    s.registerResource(data);
    await assert.rejects(s.execWithResource(data, 'double', [], []), {
      code: 'EINVAL',
      message: /not a LIB resource/,
    });
    await assert.rejects(
      s.doOperation(OpType.ExecWithResource, [Args.int64(999), Args.string('double')], []),
      { code: 'EINVAL', message: /not registered/ },
    );
  });
});

test('upstream ops no plugin runs say what to use instead', async () => {
  await using vaccel = await Vaccel.open({ plugins: ['noop'] });
  await using session = await vaccel.createSession();
  await assert.rejects(session.doOperation(OpType.TorchModelRun, [], []), {
    code: 'ENOTSUP',
    message:
      /no plugin provides torch_model_run .*TorchScript models do not run here: export the model to ONNX/,
  });
  await assert.rejects(session.doOperation(OpType.ImageDepth, [], []), {
    code: 'ENOTSUP',
    message: /no depth model/,
  });
});

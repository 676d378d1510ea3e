import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { after, before, suite, test } from 'node:test';
import { create, toBinary } from '@bufbuild/protobuf';
import { ResourceType, type Session, tensor, Vaccel, VaccelError } from '@vaccel/core';
import {
  admitModel,
  DataType,
  DEFAULT_INTAKE,
  DEFAULT_MODEL_DIR,
  DEFAULT_VISION_MODELS,
  initializer,
  modelBytes,
  node,
  onnxPlugin,
  runnerChannel,
  valueInfo,
} from '@vaccel/plugin-onnx';
import {
  AttributeProtoSchema,
  AttributeProto_AttributeType as AttributeType,
  TensorProto_DataLocation as DataLocation,
  GraphProtoSchema,
  ModelProtoSchema,
  type TensorProto,
  TensorProtoSchema,
} from '@vaccel/tf2onnx/onnx';
import { GraphDefSchema, DataType as TfDataType } from '@vaccel/tf2onnx/tensorflow';
import fc from 'fast-check';
import sharp from 'sharp';
import { photo } from './helpers.js';

const code = (expected: string) => (error: unknown) =>
  error instanceof VaccelError && error.code === expected;

// A secret the agent can read, in a folder beside its working directory (where ONNX Runtime looks
// for a relative external-data location when a model comes as bytes).
const SECRET = 'host secret: do not give to guests 0123456789abcdef';
let secretDir: string;
let secretPath: string; // relative to the working directory, as a guest would write it
before(() => {
  secretDir = mkdtempSync(join(process.cwd(), '.hostile-models-'));
  writeFileSync(join(secretDir, 'secret'), SECRET.padEnd(64, '.'));
  secretPath = `${basename(secretDir)}/secret`;
});
after(() => rmSync(secretDir, { recursive: true, force: true }));

/** A float32 [16] tensor whose data ONNX Runtime reads from `location` (64 bytes). */
const externalTensor = (name: string, location: string): TensorProto =>
  create(TensorProtoSchema, {
    name,
    dataType: DataType.FLOAT,
    dims: [16n],
    dataLocation: DataLocation.EXTERNAL,
    externalData: [
      { key: 'location', value: location },
      { key: 'offset', value: '0' },
      { key: 'length', value: '64' },
    ],
  });

const varint = (n: number): number[] => {
  const out: number[] = [];
  for (; n > 0x7f; n >>>= 7) out.push((n & 0x7f) | 0x80);
  out.push(n);
  return out;
};
/** A length-delimited protobuf field, encoded by hand (to write what protobuf-es would not). */
const field = (no: number, body: Uint8Array) =>
  new Uint8Array([...varint((no << 3) | 2), ...varint(body.length), ...body]);
/** A ModelProto (IR 8, opset 13) around hand-encoded GraphProto bytes. */
const modelWithGraph = (graph: Uint8Array) =>
  new Uint8Array([
    ...toBinary(
      ModelProtoSchema,
      create(ModelProtoSchema, { irVersion: 8n, opsetImport: [{ version: 13n }] }),
    ),
    ...field(7, graph),
  ]);

/** y = Identity(w): returns initializer w, which lives in `location`. */
const leakModel = (location: string) =>
  modelBytes({
    name: 'leak',
    nodes: [node('Identity', ['w'], ['y'])],
    inputs: [],
    outputs: [valueInfo('y', DataType.FLOAT, [16])],
    initializers: [externalTensor('w', location)],
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
const W = Float32Array.from({ length: 12 }, (_, i) => i + 1);
const matmulModel = () =>
  modelBytes({
    name: 'matmul',
    nodes: [node('MatMul', ['x', 'W'], ['y'])],
    inputs: [valueInfo('x', DataType.FLOAT, [1, 4])],
    outputs: [valueInfo('y', DataType.FLOAT, [1, 3])],
    initializers: [initializer('W', DataType.FLOAT, [4, 3], W)],
  });
const X = new Float32Array([1, 0, 2, -1]);
const XW = [1 + 2 * 7 - 10, 2 + 2 * 8 - 11, 3 + 2 * 9 - 12];

/** A Loop of 10¹² iterations (x ← x + x): runs until something stops it, in a few bytes of memory. */
const spinModel = () => {
  const body = {
    name: 'body',
    node: [node('Identity', ['cond_in'], ['cond_out']), node('Add', ['x_in', 'x_in'], ['x_out'])],
    input: [
      valueInfo('i', DataType.INT64, []),
      valueInfo('cond_in', DataType.BOOL, []),
      valueInfo('x_in', DataType.FLOAT, [1]),
    ],
    output: [valueInfo('cond_out', DataType.BOOL, []), valueInfo('x_out', DataType.FLOAT, [1])],
  };
  const loop = node('Loop', ['M', 'cond', 'x0'], ['x']);
  loop.attribute.push(create(AttributeProtoSchema, { name: 'body', type: AttributeType.GRAPH, g: body }));
  return modelBytes({
    name: 'spin',
    nodes: [loop],
    inputs: [valueInfo('x0', DataType.FLOAT, [1])],
    outputs: [valueInfo('x', DataType.FLOAT, [1])],
    initializers: [
      initializer('M', DataType.INT64, [], new BigInt64Array([10n ** 12n])),
      initializer('cond', DataType.BOOL, [], new Uint8Array([1])),
    ],
  });
};

async function open(options: Parameters<typeof onnxPlugin>[0] = {}) {
  const vaccel = await Vaccel.open({ plugins: [onnxPlugin({ threads: 1, ...options })] });
  const session = await vaccel.createSession();
  return { vaccel, session };
}

async function upload(vaccel: Vaccel, session: Session, bytes: Uint8Array, name = 'm.onnx') {
  const model = await vaccel.createResource({ type: ResourceType.Model, blobs: [{ name, data: bytes }] });
  session.registerResource(model);
  return model;
}

async function runMatmul(vaccel: Vaccel, session: Session) {
  const model = await upload(vaccel, session, matmulModel());
  await session.modelLoad(model);
  const out = await session.modelRun(model, { x: tensor('float32', [1, 4], X) });
  assert.deepEqual([...(out.y!.data as Float32Array)], XW);
}

/** Resolves with the first `vaccel:onnx:runner` event `pick` accepts. */
function runnerEvent(pick: (event: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> {
  return new Promise((resolve) => {
    const listener = (message: unknown) => {
      if (!pick(message as Record<string, unknown>)) return;
      runnerChannel.unsubscribe(listener);
      resolve(message as Record<string, unknown>);
    };
    runnerChannel.subscribe(listener);
  });
}

suite('hostile models: external data', () => {
  test('an initializer kept in an external file is EINVAL, contained or not, and the file is never read back', async () => {
    for (const modelRunners of [0, 1]) {
      const { vaccel, session } = await open({ modelRunners });
      const model = await upload(vaccel, session, leakModel(secretPath));
      await assert.rejects(session.modelLoad(model), (e) => {
        assert.ok(code('EINVAL')(e), String(e));
        const message = (e as Error).message;
        assert.match(message, /external data/);
        assert.ok(!message.includes(process.cwd()), `the message names the host's folder: ${message}`);
        assert.ok(!message.includes(secretPath), message);
        return true;
      });
      // Running it anyway (as if loaded) is refused: nothing was loaded.
      await assert.rejects(session.modelRun(model, {}), code('EINVAL'));
      await runMatmul(vaccel, session);
      await vaccel.close();
    }
  });

  test('external data anywhere a tensor can be is refused (table)', () => {
    const ext = externalTensor('w', secretPath);
    const y = [valueInfo('y', DataType.FLOAT, [16])];
    const constant = node('Constant', [], ['y'], { value: { tensor: ext } });
    const sparse = create(ModelProtoSchema, {
      irVersion: 8n,
      opsetImport: [{ version: 13n }],
      graph: {
        node: [node('Identity', ['w'], ['y'])],
        output: y,
        sparseInitializer: [
          {
            values: ext,
            indices: initializer('i', DataType.INT64, [16], new BigInt64Array(16)),
            dims: [16n],
          },
        ],
      },
    });
    const branch = { name: 'then', node: [constant], output: y };
    const ifNode = node('If', ['c'], ['y']);
    ifNode.attribute.push(
      create(AttributeProtoSchema, { name: 'then_branch', type: AttributeType.GRAPH, g: branch }),
      create(AttributeProtoSchema, { name: 'else_branch', type: AttributeType.GRAPH, g: branch }),
    );
    const nestedIf = modelBytes({
      name: 'if',
      nodes: [ifNode],
      inputs: [valueInfo('c', DataType.BOOL, [])],
      outputs: y,
    });
    const fn = create(ModelProtoSchema, {
      irVersion: 8n,
      opsetImport: [{ version: 13n }, { domain: 'local', version: 1n }],
      graph: { node: [node('Leak', [], ['y'], {}, 'call')], output: y },
      functions: [
        { name: 'Leak', domain: 'local', output: ['y'], node: [constant], opsetImport: [{ version: 13n }] },
      ],
    });
    fn.graph!.node[0]!.domain = 'local';
    const training = create(ModelProtoSchema, {
      irVersion: 8n,
      opsetImport: [{ version: 13n }],
      graph: { node: [node('Identity', ['x'], ['y'])], input: y, output: y },
      trainingInfo: [{ initialization: { initializer: [ext] } }],
    });
    const noLocation = create(TensorProtoSchema, {
      name: 'w',
      dataType: 1,
      dims: [1n],
      externalData: [{ key: 'location', value: 'x' }],
    });
    const cases: [string, Uint8Array][] = [
      ['initializer', leakModel(secretPath)],
      ['Constant attribute', modelBytes({ name: 'c', nodes: [constant], inputs: [], outputs: y })],
      ['sparse initializer', toBinary(ModelProtoSchema, sparse)],
      ['If subgraph', nestedIf],
      ['model-local function', toBinary(ModelProtoSchema, fn)],
      ['training info', toBinary(ModelProtoSchema, training)],
      ['ORT memory address', leakModel('*/_ORT_MEM_ADDR_/*')],
      [
        'external_data without data_location',
        modelBytes({
          name: 'e',
          nodes: [node('Identity', ['w'], ['y'])],
          inputs: [],
          outputs: y,
          initializers: [noLocation],
        }),
      ],
    ];
    for (const [where, bytes] of cases) {
      assert.throws(
        () => admitModel(bytes, DEFAULT_INTAKE, 'model 1'),
        (e) => code('EINVAL')(e) && /external data/.test((e as Error).message),
        where,
      );
    }
  });

  test("external data hidden from protobuf-es by a wrong wire type (ONNX Runtime's parser would see it) is refused", async () => {
    // TensorProto: raw_data (field 9) sent as a varint N. protobuf-es reads N as the length of
    // raw_data and skips the next N bytes; ONNX Runtime's protobuf skips the mismatched varint and
    // parses those N bytes as fields: data_location EXTERNAL and an external_data location.
    const hidden = toBinary(TensorProtoSchema, externalTensor('', secretPath));
    const visible = toBinary(
      TensorProtoSchema,
      create(TensorProtoSchema, { name: 'w', dataType: DataType.FLOAT, dims: [16n] }),
    );
    const smuggler = new Uint8Array([...visible, (9 << 3) | 0, ...varint(hidden.length), ...hidden]);
    const graph = toBinary(
      GraphProtoSchema,
      create(GraphProtoSchema, {
        node: [node('Identity', ['w'], ['y'])],
        output: [valueInfo('y', DataType.FLOAT, [16])],
      }),
    );
    const bytes = modelWithGraph(new Uint8Array([...graph, ...field(5, smuggler)]));
    assert.throws(
      () => admitModel(bytes, DEFAULT_INTAKE, 'model 1'),
      (e) => code('EINVAL')(e) && /wire type/.test((e as Error).message),
    );
    const { vaccel, session } = await open({ modelRunners: 0 });
    const model = await upload(vaccel, session, bytes);
    await assert.rejects(session.modelLoad(model), code('EINVAL'));
    await vaccel.close();
  });
});

suite('hostile models: budgets and fields', () => {
  test('constants declaring more than the budget are E2BIG; negative dims, EPContext nodes and unknown tensor fields EINVAL', () => {
    const y = [valueInfo('y', DataType.FLOAT, [])];
    const sparseBomb = create(ModelProtoSchema, {
      irVersion: 8n,
      opsetImport: [{ version: 13n }],
      graph: {
        node: [node('ReduceSum', ['w'], ['y'])],
        output: y,
        sparseInitializer: [
          {
            values: initializer('w', DataType.FLOAT, [1], new Float32Array([1])),
            indices: initializer('i', DataType.INT64, [1], new BigInt64Array([0n])),
            dims: [1_000_000n, 1_000_000n],
          },
        ],
      },
    });
    assert.throws(
      () => admitModel(toBinary(ModelProtoSchema, sparseBomb), DEFAULT_INTAKE, 'model 1'),
      (e) => code('E2BIG')(e) && /declare more than/.test((e as Error).message),
    );
    const big = create(TensorProtoSchema, {
      name: 'w',
      dataType: DataType.FLOAT,
      dims: [1n << 20n, 1n << 20n],
    });
    const declared = modelBytes({
      name: 'd',
      nodes: [node('ReduceSum', ['w'], ['y'])],
      inputs: [],
      outputs: y,
      initializers: [big],
    });
    assert.throws(() => admitModel(declared, DEFAULT_INTAKE, 'model 1'), code('E2BIG'));
    // Within the budget by default, over a budget of 1 KiB.
    const small = modelBytes({
      name: 's',
      nodes: [node('ReduceSum', ['w'], ['y'])],
      inputs: [],
      outputs: y,
      initializers: [initializer('w', DataType.FLOAT, [512], new Float32Array(512))],
    });
    admitModel(small, DEFAULT_INTAKE, 'model 1');
    assert.throws(() => admitModel(small, { maxConstantBytes: 1024 }, 'model 1'), code('E2BIG'));
    const negative = create(TensorProtoSchema, { name: 'w', dataType: DataType.FLOAT, dims: [-1n] });
    assert.throws(
      () =>
        admitModel(
          modelBytes({ name: 'n', nodes: [], inputs: [], outputs: y, initializers: [negative] }),
          DEFAULT_INTAKE,
          'm',
        ),
      (e) => code('EINVAL')(e) && /negative/.test((e as Error).message),
    );
    const ep = modelBytes({
      name: 'ep',
      nodes: [node('EPContext', [], ['y'], { ep_cache_context: { string: 'ctx.bin' } })],
      inputs: [],
      outputs: y,
    });
    assert.throws(
      () => admitModel(ep, DEFAULT_INTAKE, 'm'),
      (e) => code('EINVAL')(e) && /EPContext/.test((e as Error).message),
    );
    // TensorProto field 99 (a varint): unknown here, so a place a future ONNX could hide data in.
    const w = toBinary(TensorProtoSchema, initializer('w', DataType.FLOAT, [1], new Float32Array(1)));
    const tensor99 = new Uint8Array([...w, ...varint((99 << 3) | 0), 1]);
    assert.throws(
      () => admitModel(modelWithGraph(field(5, tensor99)), DEFAULT_INTAKE, 'm'),
      (e) => code('EINVAL')(e) && /onnx.TensorProto field 99/.test((e as Error).message),
    );
    admitModel(modelWithGraph(field(5, w)), DEFAULT_INTAKE, 'm');
  });

  test("the plugin's maxConstantBytes holds TensorFlow graphs while they convert, not only at intake", async () => {
    // y = relu(c), c a [300, 300] splat of 2.5 (one float_val): 360000 bytes of constant while
    // converting, a ConstantOfShape once converted, so ONNX intake alone would never see them.
    const type = { value: { case: 'type' as const, value: TfDataType.DT_FLOAT } };
    const splat = toBinary(
      GraphDefSchema,
      create(GraphDefSchema, {
        node: [
          {
            name: 'c',
            op: 'Const',
            attr: {
              dtype: type,
              value: {
                value: {
                  case: 'tensor',
                  value: {
                    dtype: TfDataType.DT_FLOAT,
                    tensorShape: { dim: [{ size: 300n }, { size: 300n }] },
                    floatVal: [2.5],
                  },
                },
              },
            },
          },
          { name: 'y', op: 'Relu', input: ['c'], attr: { T: type } },
        ],
      }),
    );
    const roomy = await open({ modelRunners: 0 });
    const graph = await upload(roomy.vaccel, roomy.session, splat, 'g.pb');
    await roomy.session.modelLoad(graph, { tensorflow: true });
    const out = Object.values(await roomy.session.modelRun(graph, {}, { tensorflow: true }))[0]!;
    assert.deepEqual(out.dims, [300, 300]);
    assert.ok((out.data as Float32Array).every((v) => v === 2.5));
    await roomy.vaccel.close();

    const tight = await open({ modelRunners: 0, maxConstantBytes: 100_000 });
    const refused = await upload(tight.vaccel, tight.session, splat, 'g.pb');
    await assert.rejects(tight.session.modelLoad(refused, { tensorflow: true }), (e) => {
      assert.ok(code('E2BIG')(e), String(e));
      assert.match(
        (e as Error).message,
        /node c: a float32 constant of shape \[300,300\] takes 360000 bytes.* 100000 bytes in all/,
      );
      return true;
    });
    await tight.vaccel.close();
  });

  test('outputs over maxModelOutputBytes are E2BIG, and the runner keeps serving', async () => {
    const { vaccel, session } = await open({ maxModelOutputBytes: 8 });
    const model = await upload(vaccel, session, matmulModel());
    await session.modelLoad(model);
    await assert.rejects(session.modelRun(model, { x: tensor('float32', [1, 4], X) }), code('E2BIG'));
    await vaccel.close();
    const roomy = await open({ maxModelOutputBytes: 12 });
    await runMatmul(roomy.vaccel, roomy.session);
    await roomy.vaccel.close();
  });
});

suite('hostile models: containment', () => {
  test('ConstantOfShape [30000, 30000] → ReduceSum is ENOMEM under the memory cap; the plugin goes on serving', async () => {
    const { vaccel, session } = await open({ modelMemoryLimit: 2 ** 30 });
    const bomb = await upload(vaccel, session, bombModel(30_000));
    await session.modelLoad(bomb);
    for (let i = 0; i < 2; i++) {
      await assert.rejects(session.modelRun(bomb, {}), (e) => {
        assert.ok(code('ENOMEM')(e), String(e));
        assert.match((e as Error).message, /memory/);
        return true;
      });
    }
    // A small one of the same runs: the cap is on memory, not on the model.
    const fine = await upload(vaccel, session, bombModel(100));
    await session.modelLoad(fine);
    const out = await session.modelRun(fine, {});
    assert.deepEqual([...(out.y!.data as Float32Array)], [0]);
    await runMatmul(vaccel, session);
    await vaccel.close();
  });

  test('a runner killed mid-run fails that call only; the next call runs on a new runner', async () => {
    const { vaccel, session } = await open();
    const spin = await upload(vaccel, session, spinModel());
    await session.modelLoad(spin);
    const started = runnerEvent((e) => e.event === 'call' && e.kind === 'run');
    const run = session.modelRun(spin, { x0: tensor('float32', [1], new Float32Array([1])) });
    const { pid } = await started;
    const exited = runnerEvent((e) => e.event === 'exit' && e.pid === pid);
    process.kill(pid as number, 'SIGKILL');
    await assert.rejects(run, (e) => {
      assert.ok(code('ENOMEM')(e) || code('EPROTO')(e), String(e));
      assert.match((e as Error).message, /model runner was killed by SIGKILL/);
      return true;
    });
    assert.equal((await exited).killed, false);
    const next = runnerEvent((e) => e.event === 'call');
    await runMatmul(vaccel, session);
    assert.notEqual((await next).pid, pid);
    await vaccel.close();
  });

  test('abort stops a run at once: the call rejects with the reason and its runner is gone', async () => {
    const { vaccel, session } = await open();
    const spin = await upload(vaccel, session, spinModel());
    await session.modelLoad(spin);
    const controller = new AbortController();
    const started = runnerEvent((e) => e.event === 'call' && e.kind === 'run');
    const run = session.modelRun(
      spin,
      { x0: tensor('float32', [1], new Float32Array([1])) },
      { signal: controller.signal },
    );
    const { pid } = await started;
    const exited = runnerEvent((e) => e.event === 'exit' && e.pid === pid);
    controller.abort(new Error('guest gave up'));
    await assert.rejects(run, /guest gave up/);
    assert.equal((await exited).killed, true);
    await runMatmul(vaccel, session);
    await vaccel.close();
  });

  test('contained and in-process runs agree', async () => {
    const results: number[][] = [];
    for (const modelRunners of [0, 2]) {
      const { vaccel, session } = await open({ modelRunners });
      const model = await upload(vaccel, session, matmulModel());
      const info = await session.modelLoad(model);
      assert.deepEqual(info.inputs, [{ name: 'x', dtype: 'float32', dims: [1, 4] }]);
      await assert.rejects(
        session.modelRun(model, { x: tensor('int32', [1, 4], new Int32Array(4)) }),
        code('EINVAL'),
      );
      const out = await session.modelRun(model, { x: tensor('float32', [1, 4], X) });
      results.push([...(out.y!.data as Float32Array)]);
      await session.modelUnload(model);
      await vaccel.close();
    }
    assert.deepEqual(results, [XW, XW]);
  });
});

/**
 * A classifier-shaped model (x [1, 8, 8, 3] → scores [1, 3], the sum of each colour channel) whose
 * scores also add the sum of ConstantOfShape [k, k] (zeros): 4·k² bytes of memory per run.
 */
const classifierModel = (k: number) =>
  modelBytes({
    name: 'channel-sums',
    nodes: [
      node('ReduceSum', ['x', 'hw'], ['sums'], { keepdims: { int: 0 } }),
      node('ConstantOfShape', ['shape'], ['big']),
      node('ReduceSum', ['big'], ['zero'], { keepdims: { int: 0 } }),
      node('Add', ['sums', 'zero'], ['y']),
    ],
    inputs: [valueInfo('x', DataType.FLOAT, [1, 8, 8, 3])],
    outputs: [valueInfo('y', DataType.FLOAT, [1, 3])],
    initializers: [
      initializer('hw', DataType.INT64, [2], new BigInt64Array([1n, 2n])),
      initializer('shape', DataType.INT64, [2], new BigInt64Array([BigInt(k), BigInt(k)])),
    ],
  });

/** {@link classifierModel} as a guest uploads it: descriptor, ONNX and labels. */
async function uploadClassifier(vaccel: Vaccel, session: Session, k: number) {
  const descriptor = {
    name: `channel-sums-${k}`,
    task: 'classification',
    labels: 'labels.txt',
    input: { shape: [1, 8, 8, 3], scale: 1 / 255 },
    output: { kind: 'logits' },
  };
  const model = await vaccel.createResource({
    type: ResourceType.Model,
    blobs: [
      { name: 'model.json', data: new TextEncoder().encode(JSON.stringify(descriptor)) },
      { name: 'model.onnx', data: classifierModel(k) },
      { name: 'labels.txt', data: new TextEncoder().encode('red\ngreen\nblue\n') },
    ],
  });
  session.registerResource(model);
  return model;
}

/** A reddish 8 × 8 PNG: red scores highest. */
const reddish = async () =>
  new Uint8Array(
    await sharp({ create: { width: 8, height: 8, channels: 3, background: { r: 200, g: 60, b: 20 } } })
      .png()
      .toBuffer(),
  );

suite('hostile models: image ops on guest models', () => {
  test("a classifier whose run takes GiBs is ENOMEM under the runners' memory cap; the plugin goes on serving", async () => {
    const { vaccel, session } = await open({ modelMemoryLimit: 2 ** 30 });
    const image = await reddish();
    const bomb = await uploadClassifier(vaccel, session, 30_000);
    const ran = runnerEvent((e) => e.event === 'call' && e.kind === 'run');
    for (let i = 0; i < 2; i++) {
      await assert.rejects(session.imageClassify(image, { model: bomb, topK: 3 }), (e) => {
        assert.ok(code('ENOMEM')(e), String(e));
        assert.match((e as Error).message, /memory/);
        return true;
      });
    }
    await ran; // in a runner, not here
    const fine = await uploadClassifier(vaccel, session, 2);
    const classes = await session.imageClassify(image, { model: fine, topK: 3 });
    assert.deepEqual(
      classes.map((c) => c.label),
      ['red', 'green', 'blue'],
    );
    assert.equal((await session.imageClassify(photo('cat.jpg'), { topK: 1 }))[0]?.label, 'Neutral');
    await runMatmul(vaccel, session);
    await vaccel.close();
  });

  test('a guest classifier and segmenter give the same results contained as in-process, and as the shipped models', async () => {
    const shipped = await open({ modelRunners: 0 });
    const cat = photo('cat.jpg');
    const person = photo('person.jpg');
    const expected = {
      classes: await shipped.session.imageClassify(cat, { topK: 5 }),
      mask: (await shipped.session.imageSegment(person)).result,
    };
    await shipped.vaccel.close();
    for (const modelRunners of [0, 1]) {
      const { vaccel, session } = await open({ modelRunners });
      const runs: unknown[] = [];
      const onEvent = (e: unknown) => {
        if ((e as { kind?: string }).kind === 'run') runs.push(e);
      };
      runnerChannel.subscribe(onEvent);
      try {
        await using classifier = await vaccel.createResource({
          type: ResourceType.Model,
          paths: DEFAULT_MODEL_DIR,
        });
        await using segmenter = await vaccel.createResource({
          type: ResourceType.Model,
          paths: DEFAULT_VISION_MODELS.segment,
        });
        session.registerResource(classifier);
        session.registerResource(segmenter);
        const classes = await session.imageClassify(cat, { topK: 5, model: classifier });
        assert.deepEqual(
          classes.map((c) => c.label),
          expected.classes.map((c) => c.label),
        );
        for (const [i, c] of classes.entries())
          assert.ok(Math.abs(c.score - expected.classes[i]!.score) < 1e-6, `${c.label} ${c.score}`);
        const { result } = await session.imageSegment(person, { model: segmenter });
        assert.deepEqual(result, expected.mask);
        // Guest models run on the runners when there are any, here when there are none.
        assert.equal(runs.length, modelRunners === 0 ? 0 : 2);
      } finally {
        runnerChannel.unsubscribe(onEvent);
        await vaccel.close();
      }
    }
  });
});

suite('hostile models: any bytes', () => {
  test('random and mutated model bytes give a result or a VaccelError, never a crash or the secret (property)', async () => {
    // A small cap: a mutated bomb may ask for gigabytes.
    const { vaccel, session } = await open({ modelMemoryLimit: 256 * 2 ** 20 });
    const seeds = [matmulModel(), bombModel(4), leakModel(secretPath)];
    const bytes = fc.oneof(
      fc.uint8Array({ maxLength: 256 }),
      fc
        .tuple(
          fc.constantFrom(...seeds),
          fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }),
          // Mostly whole models, some cut short.
          fc.oneof({ arbitrary: fc.constant(null), weight: 3 }, { arbitrary: fc.nat(), weight: 1 }),
        )
        .map(([seed, edits, cut]) => {
          const out = seed.slice();
          for (const [at, value] of edits) out[at % out.length] = value;
          return cut === null ? out : out.subarray(0, cut % (out.length + 1));
        }),
    );
    const secret = Buffer.from(SECRET.slice(0, 16));
    let ran = 0;
    await fc.assert(
      fc.asyncProperty(bytes, async (data) => {
        const model = await upload(vaccel, session, data);
        try {
          const info = await session.modelLoad(model);
          const inputs = Object.fromEntries(
            info.inputs
              .filter((i) => i.dtype === 'float32')
              .map((i) => {
                const dims = i.dims.map((d) => (typeof d === 'number' && d > 0 && d <= 64 ? d : 1));
                return [i.name, tensor('float32', dims, new Float32Array(dims.reduce((a, b) => a * b, 1)))];
              }),
          );
          const out = await session.modelRun(model, inputs);
          ran++;
          for (const t of Object.values(out)) {
            const raw = Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
            assert.ok(!raw.includes(secret), 'a model read the host file');
          }
        } catch (e) {
          if (!(e instanceof VaccelError)) throw e;
        } finally {
          await model.release();
        }
      }),
      // The unmutated model always comes first (fast-check runs examples before random values), so
      // the property is never vacuous, whatever this run's seed draws.
      { numRuns: 60, examples: [[seeds[0]!]] },
    );
    assert.ok(ran > 0, 'a model ran through the same path');
    await runMatmul(vaccel, session);
    await vaccel.close();
  });

  test('intake alone: any bytes are accepted, EINVAL or E2BIG (property)', () => {
    const seed = matmulModel();
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 512 }),
          fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }).map((edits) => {
            const out = seed.slice();
            for (const [at, value] of edits) out[at % out.length] = value;
            return out;
          }),
        ),
        (data) => {
          try {
            admitModel(data, DEFAULT_INTAKE, 'm');
          } catch (e) {
            assert.ok(code('EINVAL')(e) || code('E2BIG')(e), String(e));
          }
        },
      ),
      { numRuns: 2000 },
    );
  });
});

/**
 * Hostile TensorFlow graphs against the converter: a few bytes declaring a GiB constant, folds
 * that multiply constants, weight shards that expand, wire forms that would make the parser build
 * arrays too long to hold, a heap blow-up the budget cannot see, and random small graphs. Every
 * one must end as ONNX bytes or a VaccelError, on a worker that may die but never takes the
 * process with it.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { create, fromBinary, type MessageInitShape, toBinary } from '@bufbuild/protobuf';
import { BinaryWriter, WireType } from '@bufbuild/protobuf/wire';
import { isVaccelError, VaccelError } from '@vaccel/core';
import {
  convertTfGraph,
  DEFAULT_MAX_CONSTANT_BYTES,
  GRAPH_WIRE_LIMITS,
  MAX_CONSTANT_BYTES_ENV,
  parseGraphDef,
  parseTfjsGraphModel,
  supportedTfOps,
} from '@vaccel/tf2onnx';
import { ModelProtoSchema } from '@vaccel/tf2onnx/onnx';
import {
  type AttrValue,
  AttrValueSchema,
  DataType,
  GraphDefSchema,
  type NodeDef,
  TensorProtoSchema,
  TensorShapeProtoSchema,
} from '@vaccel/tf2onnx/tensorflow';
import fc from 'fast-check';
import * as ort from 'onnxruntime-node';
import { onnxModelOffThread } from '../src/model-formats.js';

const type = (value: DataType): AttrValue => create(AttrValueSchema, { value: { case: 'type', value } });
type TensorInit = MessageInitShape<typeof TensorProtoSchema>;
const tensorAttr = (tensor: TensorInit): AttrValue =>
  create(AttrValueSchema, { value: { case: 'tensor', value: create(TensorProtoSchema, tensor) } });
const shape = (...dims: number[]) => ({ dim: dims.map((d) => ({ size: BigInt(d) })) });

/** A Const node. */
function constant(name: string, dtype: DataType, dims: number[], values: TensorInit = {}): Partial<NodeDef> {
  const tensor = create(TensorProtoSchema, values);
  tensor.dtype = dtype;
  tensor.tensorShape = create(TensorShapeProtoSchema, shape(...dims));
  return { name, op: 'Const', attr: { dtype: type(dtype), value: tensorAttr(tensor) } };
}
const op = (name: string, opName: string, inputs: string[], dtype = DataType.DT_FLOAT): Partial<NodeDef> => ({
  name,
  op: opName,
  input: inputs,
  attr: { T: type(dtype) },
});
const graphBytes = (...node: Partial<NodeDef>[]) =>
  toBinary(GraphDefSchema, create(GraphDefSchema, { node: node as NodeDef[] }));

/** The measured attack: one Const of [16384,16384] (2^28 float32s, 1 GiB) from a single float_val. */
const HOSTILE = graphBytes(
  constant('c', DataType.DT_FLOAT, [16384, 16384], { floatVal: [1] }),
  op('y', 'Identity', ['c']),
);

/** A small honest graph: y = relu(x) + 1. */
const SMALL = graphBytes(
  {
    name: 'x',
    op: 'Placeholder',
    attr: {
      dtype: type(DataType.DT_FLOAT),
      shape: create(AttrValueSchema, { value: { case: 'shape', value: shape(2, 3) as never } }),
    },
  },
  op('r', 'Relu', ['x']),
  constant('one', DataType.DT_FLOAT, [], { floatVal: [1] }),
  op('y', 'AddV2', ['r', 'one']),
);

const isCode = (code: string, message?: RegExp) => (e: unknown) =>
  isVaccelError(e) && e.code === code && (!message || message.test(e.message));

/** Runs a converted model on ORT (the small graph's x → relu(x)+1). */
async function runSmall(bytes: Uint8Array): Promise<number[]> {
  const session = await ort.InferenceSession.create(bytes);
  try {
    const x = new ort.Tensor('float32', Float32Array.from([-1, 0, 1, 2, -3, 4]), [2, 3]);
    const out = await session.run({ 'x:0': x });
    return Array.from(out[session.outputNames[0]!]!.data as Float32Array);
  } finally {
    await session.release();
  }
}

describe('hostile TensorFlow graphs: the constant budget', () => {
  it('a ~100-byte GraphDef declaring a 1 GiB constant is E2BIG at conversion, saying the limit and how to raise it', () => {
    assert.ok(HOSTILE.byteLength < 134, `${HOSTILE.byteLength} bytes`);
    assert.throws(
      () => convertTfGraph(parseGraphDef(HOSTILE), { name: 'g' }),
      isCode(
        'E2BIG',
        new RegExp(
          `node c: a float32 constant of shape \\[16384,16384\\] takes 1073741824 bytes.*${DEFAULT_MAX_CONSTANT_BYTES} bytes in all.*maxConstantBytes option or ${MAX_CONSTANT_BYTES_ENV}`,
        ),
      ),
    );
    // And the converter still converts an honest graph.
    assert.ok(convertTfGraph(parseGraphDef(SMALL), { name: 'g' }).byteLength > 0);
  });

  it('a big single-valued Const within budget becomes ConstantOfShape: bytes stay small, ORT expands it', async () => {
    // 2^28 elements under a raised budget: the model is a few hundred bytes, not a GiB.
    const raised = convertTfGraph(parseGraphDef(HOSTILE), { name: 'g', maxConstantBytes: 2 ** 31 });
    assert.ok(raised.byteLength < 1024, `${raised.byteLength} bytes`);
    // A runnable one: relu(splat 2.5 over [300,300]) → 90000 values of 2.5.
    const bytes = convertTfGraph(
      parseGraphDef(
        graphBytes(constant('c', DataType.DT_FLOAT, [300, 300], { floatVal: [2.5] }), op('y', 'Relu', ['c'])),
      ),
      { name: 'g' },
    );
    assert.ok(bytes.byteLength < 1024, `${bytes.byteLength} bytes`);
    const model = fromBinary(ModelProtoSchema, bytes);
    assert.ok(model.graph!.node.some((n) => n.opType === 'ConstantOfShape'));
    const session = await ort.InferenceSession.create(bytes);
    const out = (await session.run({}))[session.outputNames[0]!]!;
    await session.release();
    assert.deepEqual(out.dims, [300, 300]);
    assert.ok((out.data as Float32Array).every((v) => v === 2.5));
  });

  it('a splat the converter must expand (a conv filter) is held, within the budget it was charged to', () => {
    const filter = constant('w', DataType.DT_FLOAT, [3, 3, 128, 64], { floatVal: [0.5] }); // 73728 values
    const image = {
      name: 'x',
      op: 'Placeholder',
      attr: { dtype: type(DataType.DT_FLOAT) },
    };
    const conv = {
      ...op('y', 'Conv2D', ['x', 'w']),
      attr: {
        T: type(DataType.DT_FLOAT),
        strides: create(AttrValueSchema, {
          value: { case: 'list', value: { i: [1n, 1n, 1n, 1n] } as never },
        }),
        padding: create(AttrValueSchema, { value: { case: 's', value: new TextEncoder().encode('VALID') } }),
      },
    };
    const bytes = convertTfGraph(parseGraphDef(graphBytes(image, filter, conv)), { name: 'g' });
    assert.ok(bytes.byteLength > 73728 * 2, 'the filter is an initializer');
    // Charged once when declared (294912 bytes) and once more when laid out for ONNX: 500000 is short.
    assert.throws(
      () =>
        convertTfGraph(parseGraphDef(graphBytes(image, filter, conv)), {
          name: 'g',
          maxConstantBytes: 500_000,
        }),
      isCode('E2BIG'),
    );
  });

  it('folding is charged before it allocates: [N,1] + [1,N] broadcasts to N² only within the budget', () => {
    const n = 512; // 262144 float32s folded: 1 MiB
    const add = graphBytes(
      constant('a', DataType.DT_FLOAT, [n, 1], { tensorContent: new Uint8Array(4 * n) }),
      constant('b', DataType.DT_FLOAT, [1, n], { tensorContent: new Uint8Array(4 * n) }),
      op('y', 'AddV2', ['a', 'b']),
    );
    assert.throws(
      () => convertTfGraph(parseGraphDef(add), { name: 'g', maxConstantBytes: 2 ** 20 }),
      isCode('E2BIG', /node y|y: a float32 constant of shape \[512,512\]/),
    );
    const folded = fromBinary(
      ModelProtoSchema,
      convertTfGraph(parseGraphDef(add), { name: 'g', maxConstantBytes: 2 ** 21 }),
    );
    assert.ok(folded.graph!.initializer.some((t) => t.dims.join() === '512,512'));
    // SparseToDense's output shape is a constant's values: charged before it is filled.
    const dense = graphBytes(
      constant('i', DataType.DT_INT32, [1, 2], { intVal: [0, 0] }),
      constant('s', DataType.DT_INT32, [2], { intVal: [1 << 14, 1 << 14] }),
      constant('v', DataType.DT_FLOAT, [], { floatVal: [1] }),
      constant('d', DataType.DT_FLOAT, [], { floatVal: [0] }),
      { ...op('y', 'SparseToDense', ['i', 's', 'v', 'd']), attr: {} },
    );
    assert.throws(
      () => convertTfGraph(parseGraphDef(dense), { name: 'g' }),
      isCode('E2BIG', /\[16384,16384\]/),
    );
  });

  it('TF.js weight shards are charged as they expand (uint8-quantized: 4 host bytes per stored byte)', () => {
    const model = {
      format: 'graph-model',
      modelTopology: { node: [{ name: 'w', op: 'Const', attr: { dtype: { type: 'DT_FLOAT' } } }] },
      weightsManifest: [
        {
          paths: ['w.bin'],
          weights: [
            {
              name: 'w',
              shape: [1 << 18],
              dtype: 'float32',
              quantization: { dtype: 'uint8', min: 0, scale: 1 },
            },
          ],
        },
      ],
    };
    const shards = new Uint8Array(1 << 18);
    assert.throws(
      () => parseTfjsGraphModel(model, shards, { maxConstantBytes: 2 ** 20 - 1 }),
      isCode('E2BIG', /weight w/),
    );
    assert.equal(
      parseTfjsGraphModel(model, shards, { maxConstantBytes: 2 ** 20 }).weights.get('w')!.values.length,
      1 << 18,
    );
    // A manifest shape the shards cannot hold is refused before anything is allocated.
    const lying = {
      ...model,
      weightsManifest: [
        {
          ...model.weightsManifest[0]!,
          weights: [{ name: 'w', shape: [1 << 30, 1 << 30], dtype: 'float32' }],
        },
      ],
    };
    assert.throws(() => parseTfjsGraphModel(lying, shards), isCode('EINVAL'));
  });

  it('bad budgets are EINVAL naming the option or the variable', async () => {
    assert.throws(
      () => convertTfGraph(parseGraphDef(SMALL), { name: 'g', maxConstantBytes: -1 }),
      isCode('EINVAL', /maxConstantBytes/),
    );
    const saved = process.env[MAX_CONSTANT_BYTES_ENV];
    process.env[MAX_CONSTANT_BYTES_ENV] = '12 MiB';
    try {
      await assert.rejects(
        onnxModelOffThread([{ name: 'g.pb', data: SMALL }], 'model 1'),
        isCode('EINVAL', new RegExp(MAX_CONSTANT_BYTES_ENV)),
      );
    } finally {
      if (saved === undefined) delete process.env[MAX_CONSTANT_BYTES_ENV];
      else process.env[MAX_CONSTANT_BYTES_ENV] = saved;
    }
  });
});

describe('hostile TensorFlow graphs: the wire form is bounded before it is parsed', () => {
  /** A GraphDef of one Const whose TensorProto carries `n` one-byte packed int_vals. */
  const packedInts = (n: number) => {
    const w = new BinaryWriter();
    w.tag(1, WireType.LengthDelimited).fork();
    w.tag(1, WireType.LengthDelimited).string('c').tag(2, WireType.LengthDelimited).string('Const');
    w.tag(5, WireType.LengthDelimited).fork().tag(1, WireType.LengthDelimited).string('value');
    w.tag(2, WireType.LengthDelimited).fork().tag(8, WireType.LengthDelimited).fork();
    w.tag(1, WireType.Varint).int32(DataType.DT_INT32);
    w.tag(7, WireType.LengthDelimited).bytes(new Uint8Array(n).fill(1));
    w.join().join().join().join();
    return w.finish();
  };

  it('too many repeated values, too long a string, too deep a nesting: E2BIG before any object is built', () => {
    assert.equal(parseGraphDef(packedInts(1000)).graph.node[0]!.name, 'c');
    assert.throws(
      () => parseGraphDef(packedInts(GRAPH_WIRE_LIMITS.maxValues + 1)),
      isCode('E2BIG', /repeated values/),
    );
    const longName = graphBytes({ name: 'n'.repeat(GRAPH_WIRE_LIMITS.maxStringBytes + 1), op: 'NoOp' });
    assert.throws(() => parseGraphDef(longName), isCode('E2BIG', /a string of/));
    // AttrValue → NameAttrList → attr → AttrValue …: nesting the parser would follow without end.
    let inner: AttrValue = type(DataType.DT_FLOAT);
    for (let i = 0; i < GRAPH_WIRE_LIMITS.maxDepth; i++)
      inner = create(AttrValueSchema, {
        value: { case: 'func', value: { name: 'f', attr: { a: inner } } as never },
      });
    assert.throws(
      () => parseGraphDef(graphBytes({ name: 'n', op: 'NoOp', attr: { deep: inner } })),
      isCode('E2BIG', /nested/),
    );
    // Bytes that are not wire format: EINVAL.
    assert.throws(() => parseGraphDef(HOSTILE.subarray(0, HOSTILE.byteLength - 3)), isCode('EINVAL'));
  });
});

describe('hostile TensorFlow graphs: on the converting worker', () => {
  it('the 1 GiB constant fails its own load with E2BIG; an honest graph converts after it', async () => {
    await assert.rejects(
      onnxModelOffThread([{ name: 'g.pb', data: HOSTILE }], 'model 1'),
      isCode('E2BIG', /^model 1: node c/),
    );
    const bytes = await onnxModelOffThread([{ name: 'g.pb', data: SMALL }], 'model 2');
    assert.deepEqual(await runSmall(bytes), [1, 1, 2, 3, 1, 5]);
  });

  it('a heap blow-up the budget does not see ends the worker with ENOMEM, not the process', async () => {
    // A million tiny nodes: no constant at all, within the wire limits, but past a 256 MiB heap.
    const one = graphBytes(op('n', 'Relu', ['x']));
    const nodes = 1_000_000;
    const many = new Uint8Array(one.byteLength * nodes);
    for (let i = 0; i < nodes; i++) many.set(one, i * one.byteLength);
    await assert.rejects(
      onnxModelOffThread([{ name: 'g.pb', data: many }], 'model 1', { maxConstantBytes: 0 }),
      isCode('ENOMEM', /ran out of the converter's 256 MiB heap/),
    );
    const bytes = await onnxModelOffThread([{ name: 'g.pb', data: SMALL }], 'model 2');
    assert.deepEqual(await runSmall(bytes), [1, 1, 2, 3, 1, 5]);
  });
});

describe('hostile TensorFlow graphs: random small graphs (property)', () => {
  const ops = [...supportedTfOps(), 'Const', 'Placeholder', 'NoSuchOp'];
  const dtypes = [
    DataType.DT_FLOAT,
    DataType.DT_INT32,
    DataType.DT_INT64,
    DataType.DT_BOOL,
    DataType.DT_HALF,
    DataType.DT_STRING,
    99 as DataType,
  ];
  const dim = fc.oneof(
    { weight: 12, arbitrary: fc.integer({ min: 0, max: 6 }) },
    { weight: 1, arbitrary: fc.constantFrom(-1, 1 << 20, 2 ** 40) },
  );
  const dims = fc.array(dim, { maxLength: 4 });
  const smallInts = fc.array(fc.integer({ min: -3, max: 70000 }), { maxLength: 8 });
  const tensor = fc.record({
    dtype: fc.constantFrom(...dtypes),
    dims,
    floatVal: fc.array(fc.float({ noNaN: false }), { maxLength: 6 }),
    intVal: smallInts,
    content: fc.option(fc.uint8Array({ maxLength: 64 }), { nil: undefined }),
  });
  const tensorValue = (t: {
    dtype: DataType;
    dims: number[];
    floatVal: number[];
    intVal: number[];
    content?: Uint8Array | undefined;
  }): AttrValue =>
    tensorAttr({
      dtype: t.dtype,
      tensorShape: create(TensorShapeProtoSchema, shape(...t.dims)),
      floatVal: t.floatVal,
      intVal: t.intVal,
      ...(t.content ? { tensorContent: t.content } : {}),
    });
  const shapeAttr = (d: number[]): AttrValue =>
    create(AttrValueSchema, { value: { case: 'shape', value: create(TensorShapeProtoSchema, shape(...d)) } });
  const attrValue: fc.Arbitrary<AttrValue> = fc.oneof(
    fc.constantFrom(...dtypes).map((t) => type(t)),
    fc
      .integer({ min: -5, max: 70000 })
      .map((i) => create(AttrValueSchema, { value: { case: 'i', value: BigInt(i) } })),
    fc.boolean().map((b) => create(AttrValueSchema, { value: { case: 'b', value: b } })),
    fc.float().map((f) => create(AttrValueSchema, { value: { case: 'f', value: f } })),
    fc
      .constantFrom('SAME', 'VALID', 'EXPLICIT', 'NHWC', 'NCHW', 'BiasAdd', 'Relu', 'x')
      .map((s) => create(AttrValueSchema, { value: { case: 's', value: new TextEncoder().encode(s) } })),
    smallInts.map((i) =>
      create(AttrValueSchema, { value: { case: 'list', value: { i: i.map(BigInt) } as never } }),
    ),
    dims.map(shapeAttr),
    tensor.map(tensorValue),
  );
  const attrKeys = [
    'T',
    'dtype',
    'value',
    'shape',
    'axis',
    'num',
    'num_split',
    'perm',
    'strides',
    'ksize',
    'padding',
    'data_format',
    'DstT',
    'keep_dims',
    'squeeze_dims',
    'fused_ops',
    'dilations',
    'begin_mask',
    'end_mask',
    'shrink_axis_mask',
    'out_type',
    'output_type',
    'Tparams',
    'batch_dims',
  ];
  /** A node: mostly an op on earlier nodes (a DAG), with constants and placeholders as leaves. */
  const node = fc.oneof(
    {
      weight: 5,
      arbitrary: fc.record({
        op: fc.constantFrom(...ops),
        // Earlier nodes mostly; now and then a later one (a cycle), a missing one, a second output.
        inputs: fc.array(fc.tuple(fc.nat(), fc.nat(59)), { maxLength: 4 }),
        attr: fc.dictionary(fc.constantFrom(...attrKeys), attrValue, { maxKeys: 6 }),
      }),
    },
    {
      weight: 3,
      arbitrary: fc.record({
        op: fc.constant('Const'),
        inputs: fc.constant([]),
        attr: fc.record({ value: tensor.map(tensorValue), dtype: fc.constantFrom(...dtypes).map(type) }),
      }),
    },
    {
      weight: 1,
      arbitrary: fc.record({
        op: fc.constant('Placeholder'),
        inputs: fc.constant([]),
        attr: fc.record({ dtype: fc.constantFrom(...dtypes).map(type), shape: dims.map(shapeAttr) }),
      }),
    },
  );
  const graph = fc.array(node, { minLength: 1, maxLength: 10 }).map((nodes) =>
    graphBytes(
      ...nodes.map((n, i) => ({
        name: `n${i}`,
        op: n.op,
        input: (i === 0 ? [] : n.inputs).map(([k, roll]) => {
          const target = roll === 0 ? k % 12 : roll === 1 ? 99 : k % i;
          return roll === 2 ? `n${target}:1` : `n${target}`;
        }),
        attr: n.attr as Record<string, AttrValue>,
      })),
    ),
  );

  it('a float constant past int64 given as reduction axes is EINVAL (found by this property)', () => {
    // n0 = Const float [9.2e18]; n1 = Prod(n0, axes = n0); n2 = Const.
    const bytes = Uint8Array.from([
      10, 47, 10, 2, 110, 48, 18, 5, 67, 111, 110, 115, 116, 42, 21, 10, 5, 118, 97, 108, 117, 101, 18, 12,
      66, 10, 8, 1, 18, 0, 42, 4, 0, 0, 0, 95, 42, 11, 10, 5, 100, 116, 121, 112, 101, 18, 2, 48, 1, 10, 18,
      10, 2, 110, 49, 18, 4, 80, 114, 111, 100, 26, 2, 110, 48, 26, 2, 110, 48, 10, 41, 10, 2, 110, 50, 18, 5,
      67, 111, 110, 115, 116, 42, 15, 10, 5, 118, 97, 108, 117, 101, 18, 6, 66, 4, 8, 1, 18, 0, 42, 11, 10, 5,
      100, 116, 121, 112, 101, 18, 2, 48, 1,
    ]);
    assert.throws(
      () => convertTfGraph(parseGraphDef(bytes), { name: 'g', maxConstantBytes: 2 ** 20 }),
      (error: unknown) =>
        error instanceof VaccelError &&
        error.code === 'EINVAL' &&
        /axes must be whole numbers/.test(error.message),
    );
  });

  it('Sqrt of a negative int64 constant folds to a saturated int64, not a crash (found by this property)', () => {
    // n0 = Const int64 [-2^31 + 1]; n1 = Sqrt(n0) (NaN when folded); n2 = Const.
    const bytes = Uint8Array.from([
      10, 47, 10, 2, 110, 48, 18, 5, 67, 111, 110, 115, 116, 42, 21, 10, 5, 118, 97, 108, 117, 101, 18, 12,
      66, 10, 8, 9, 18, 0, 42, 4, 1, 0, 0, 128, 42, 11, 10, 5, 100, 116, 121, 112, 101, 18, 2, 48, 1, 10, 14,
      10, 2, 110, 49, 18, 4, 83, 113, 114, 116, 26, 2, 110, 48, 10, 41, 10, 2, 110, 50, 18, 5, 67, 111, 110,
      115, 116, 42, 15, 10, 5, 118, 97, 108, 117, 101, 18, 6, 66, 4, 8, 1, 18, 0, 42, 11, 10, 5, 100, 116,
      121, 112, 101, 18, 2, 48, 1,
    ]);
    assert.ok(
      convertTfGraph(parseGraphDef(bytes), { name: 'g', maxConstantBytes: 2 ** 20 }) instanceof Uint8Array,
    );
  });

  it('every outcome is ONNX bytes or a VaccelError (never another throw, never a hang)', () => {
    fc.assert(
      fc.property(graph, (bytes) => {
        try {
          const onnx = convertTfGraph(parseGraphDef(bytes), { name: 'g', maxConstantBytes: 2 ** 20 });
          assert.ok(onnx instanceof Uint8Array);
        } catch (error) {
          if (!(error instanceof VaccelError)) throw error;
        }
      }),
      { numRuns: 2000 },
    );
  });
});

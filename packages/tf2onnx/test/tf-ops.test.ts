/**
 * Each TensorFlow op the converter handles, checked against TF.js (CPU backend) on random inputs:
 * same output shapes, values within 1e-4 (relative to magnitude above 1).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { create, toBinary } from '@bufbuild/protobuf';
import { VaccelError } from '@vaccel/core';
import { AttrValueSchema, DataType, GraphDefSchema } from '../src/gen/tensorflow_graph_pb.js';
import { convertTfGraph, parseGraphDef, parseTfjsGraphModel, supportedTfOps } from '../src/index.js';
import { attr, buildCase, type OpCase, random, runBoth } from './tf-graph-builder.js';

const rand = random(7);
const values = (n: number, lo = -1, hi = 1) => Array.from({ length: n }, () => rand(lo, hi));
const image = { shape: [1, 9, 8, 3] };
const filter = (kh: number, kw: number, cin: number, cout: number) => ({
  constant: values(kh * kw * cin * cout),
  shape: [kh, kw, cin, cout],
});
const ints = (v: number[]) => ({ constant: v, shape: [v.length], dtype: 'int32' as const });
const scalar = (v: number) => ({ constant: [v], shape: [], dtype: 'int32' as const });
const conv = (strides: number, padding: string) => ({
  strides: attr.ints([1, strides, strides, 1]),
  padding: attr.s(padding),
  data_format: attr.s('NHWC'),
  dilations: attr.ints([1, 1, 1, 1]),
});

const cases: Record<string, OpCase> = {
  'Conv2D SAME stride 2': { op: 'Conv2D', operands: [image, filter(3, 3, 3, 4)], attrs: conv(2, 'SAME') },
  'Conv2D VALID': { op: 'Conv2D', operands: [image, filter(3, 2, 3, 5)], attrs: conv(1, 'VALID') },
  'Conv2D dilated': {
    op: 'Conv2D',
    operands: [image, filter(3, 3, 3, 2)],
    attrs: { ...conv(1, 'SAME'), dilations: attr.ints([1, 2, 2, 1]) },
  },
  DepthwiseConv2dNative: {
    op: 'DepthwiseConv2dNative',
    operands: [image, filter(3, 3, 3, 2)],
    attrs: conv(2, 'SAME'),
  },
  '_FusedConv2D BiasAdd+Relu6': {
    op: '_FusedConv2D',
    operands: [image, filter(1, 1, 3, 4), { constant: values(4), shape: [4] }],
    attrs: { ...conv(1, 'SAME'), num_args: attr.i(1), fused_ops: attr.strs(['BiasAdd', 'Relu6']) },
  },
  '_FusedConv2D BiasAdd+LeakyRelu': {
    op: '_FusedConv2D',
    operands: [image, filter(3, 3, 3, 4), { constant: values(4), shape: [4] }],
    attrs: {
      ...conv(1, 'VALID'),
      num_args: attr.i(1),
      fused_ops: attr.strs(['BiasAdd', 'LeakyRelu']),
      leakyrelu_alpha: attr.f(0.1),
    },
  },
  'FusedDepthwiseConv2dNative BiasAdd+Relu': {
    op: 'FusedDepthwiseConv2dNative',
    operands: [image, filter(3, 3, 3, 1), { constant: values(3), shape: [3] }],
    attrs: { ...conv(1, 'SAME'), num_args: attr.i(1), fused_ops: attr.strs(['BiasAdd', 'Relu']) },
  },
  'Conv2DBackpropInput SAME': {
    op: 'Conv2DBackpropInput',
    operands: [ints([1, 9, 8, 2]), filter(3, 3, 2, 4), { shape: [1, 5, 4, 4] }],
    attrs: { ...conv(2, 'SAME'), T: attr.type('float32') },
  },
  'Conv2DBackpropInput VALID': {
    op: 'Conv2DBackpropInput',
    operands: [ints([1, 8, 8, 3]), filter(2, 2, 3, 2), { shape: [1, 4, 4, 2] }],
    attrs: { ...conv(2, 'VALID'), T: attr.type('float32') },
  },
  'MaxPool SAME': {
    op: 'MaxPool',
    operands: [image],
    attrs: { ...conv(2, 'SAME'), ksize: attr.ints([1, 3, 3, 1]) },
  },
  'AvgPool SAME (pads excluded)': {
    op: 'AvgPool',
    operands: [image],
    attrs: { ...conv(2, 'SAME'), ksize: attr.ints([1, 3, 3, 1]) },
  },
  'ResizeBilinear half-pixel': {
    op: 'ResizeBilinear',
    operands: [image, ints([17, 5])],
    attrs: { half_pixel_centers: attr.b(true), align_corners: attr.b(false) },
  },
  'ResizeBilinear align-corners': {
    op: 'ResizeBilinear',
    operands: [image, ints([4, 15])],
    attrs: { half_pixel_centers: attr.b(false), align_corners: attr.b(true) },
  },
  'ResizeBilinear legacy': { op: 'ResizeBilinear', operands: [image, ints([13, 11])] },
  'ResizeNearestNeighbor half-pixel': {
    op: 'ResizeNearestNeighbor',
    operands: [image, ints([18, 16])],
    attrs: { half_pixel_centers: attr.b(true) },
  },
  FusedBatchNormV3: {
    op: 'FusedBatchNormV3',
    operands: [
      image,
      { constant: values(3), shape: [3] },
      { constant: values(3), shape: [3] },
      { constant: values(3), shape: [3] },
      { constant: values(3, 0.5, 2), shape: [3] },
    ],
    attrs: { epsilon: attr.f(0.001), is_training: attr.b(false) },
  },
  MatMul: {
    op: 'MatMul',
    operands: [{ shape: [3, 4] }, { constant: values(20), shape: [5, 4] }],
    attrs: { transpose_b: attr.b(true) },
  },
  BiasAdd: { op: 'BiasAdd', operands: [image, { constant: values(3), shape: [3] }] },
  Add: { op: 'Add', operands: [image, { shape: [3] }] },
  AddV2: { op: 'AddV2', operands: [image, { shape: [1, 1, 8, 1] }] },
  AddN: { op: 'AddN', operands: [image, image, image], attrs: { N: attr.i(3) } },
  Sub: { op: 'Sub', operands: [image, { shape: [1] }] },
  Mul: { op: 'Mul', operands: [image, image] },
  RealDiv: { op: 'RealDiv', operands: [image, { shape: [3] }], range: [1, 2] },
  'FloorDiv float': { op: 'FloorDiv', operands: [image, { shape: [3] }], range: [1, 5] },
  'FloorDiv int': {
    op: 'FloorDiv',
    operands: [{ shape: [6], dtype: 'int32' }, ints([3, -2, 5, 7, -3, 2])],
    range: [-20, 20],
  },
  'FloorMod int': {
    op: 'FloorMod',
    operands: [{ shape: [6], dtype: 'int32' }, ints([3, -2, 5, 7, -3, 2])],
    range: [-20, 20],
  },
  Maximum: { op: 'Maximum', operands: [image, image] },
  Minimum: { op: 'Minimum', operands: [image, { shape: [1, 9, 1, 1] }] },
  SquaredDifference: { op: 'SquaredDifference', operands: [image, { shape: [3] }] },
  Relu: { op: 'Relu', operands: [image] },
  Relu6: { op: 'Relu6', operands: [image], range: [-3, 9] },
  LeakyRelu: { op: 'LeakyRelu', operands: [image], attrs: { alpha: attr.f(0.1) } },
  Elu: { op: 'Elu', operands: [image] },
  Sigmoid: { op: 'Sigmoid', operands: [image], range: [-6, 6] },
  Tanh: { op: 'Tanh', operands: [image] },
  Exp: { op: 'Exp', operands: [image] },
  Log: { op: 'Log', operands: [image], range: [0.1, 5] },
  Sqrt: { op: 'Sqrt', operands: [image], range: [0, 5] },
  Rsqrt: { op: 'Rsqrt', operands: [image], range: [0.1, 5] },
  Square: { op: 'Square', operands: [image] },
  Neg: { op: 'Neg', operands: [image] },
  Abs: { op: 'Abs', operands: [image] },
  Floor: { op: 'Floor', operands: [image], range: [-5, 5] },
  Softmax: { op: 'Softmax', operands: [{ shape: [2, 7] }], range: [-4, 4] },
  Cast: { op: 'Cast', operands: [image], attrs: { DstT: attr.type('int32') }, range: [-9, 9] },
  Reshape: { op: 'Reshape', operands: [image, ints([9, -1])] },
  Transpose: { op: 'Transpose', operands: [image, ints([0, 3, 1, 2])] },
  ExpandDims: { op: 'ExpandDims', operands: [image, scalar(-1)] },
  Squeeze: { op: 'Squeeze', operands: [{ shape: [1, 4, 1, 3] }], attrs: { squeeze_dims: attr.ints([2]) } },
  ConcatV2: { op: 'ConcatV2', operands: [image, image, scalar(-1)], attrs: { N: attr.i(2) } },
  Pack: {
    op: 'Pack',
    operands: [{ shape: [2, 3] }, { shape: [2, 3] }],
    attrs: { axis: attr.i(1), N: attr.i(2) },
  },
  Unpack: {
    op: 'Unpack',
    operands: [{ shape: [2, 3, 4] }],
    attrs: { axis: attr.i(1), num: attr.i(3) },
    outputs: 3,
  },
  SplitV: {
    op: 'SplitV',
    operands: [image, ints([2, 1]), scalar(3)],
    attrs: { num_split: attr.i(2) },
    outputs: 2,
  },
  Split: {
    op: 'Split',
    operands: [scalar(1), { shape: [2, 6, 3] }],
    attrs: { num_split: attr.i(3), T: attr.type('float32') },
    outputs: 3,
  },
  Pad: {
    op: 'Pad',
    operands: [image, { constant: [0, 0, 1, 2, 0, 1, 0, 0], shape: [4, 2], dtype: 'int32' }],
  },
  PadV2: {
    op: 'PadV2',
    operands: [
      image,
      { constant: [0, 0, 2, 0, 1, 1, 0, 0], shape: [4, 2], dtype: 'int32' },
      { constant: [-0.5], shape: [] },
    ],
  },
  Mean: { op: 'Mean', operands: [image, ints([1, 2])], attrs: { keep_dims: attr.b(true) } },
  Sum: { op: 'Sum', operands: [image, ints([3])], attrs: { keep_dims: attr.b(false) } },
  Max: { op: 'Max', operands: [image, ints([1])] },
  ArgMax: {
    op: 'ArgMax',
    operands: [{ shape: [4, 9] }, scalar(1)],
    attrs: { output_type: attr.type('int32') },
  },
  GatherV2: {
    op: 'GatherV2',
    operands: [{ shape: [5, 3] }, ints([4, 0, 2, 2]), scalar(0)],
    attrs: { Tparams: attr.type('float32'), Tindices: attr.type('int32') },
  },
  GatherNd: {
    op: 'GatherNd',
    operands: [{ shape: [4, 5, 2] }, { constant: [0, 1, 3, 4, 2, 2], shape: [3, 2], dtype: 'int32' }],
    attrs: { Tparams: attr.type('float32'), Tindices: attr.type('int32') },
  },
  Equal: { op: 'Equal', operands: [{ shape: [6], dtype: 'int32' }, ints([1, 2, 3, 1, 2, 3])], range: [0, 4] },
  Greater: { op: 'Greater', operands: [image, { shape: [3] }] },
  'StridedSlice with masks': {
    op: 'StridedSlice',
    operands: [image, ints([0, 1, 7, 0]), ints([1, 8, 0, 3]), ints([1, 2, -2, 1])],
    attrs: {
      Index: attr.type('int32'),
      begin_mask: attr.i(1),
      end_mask: attr.i(8),
      shrink_axis_mask: attr.i(0),
    },
  },
  'StridedSlice shrinking an axis': {
    op: 'StridedSlice',
    operands: [image, ints([0, -1, 2, 0]), ints([1, 0, 6, 2]), ints([1, 1, 1, 1])],
    attrs: { Index: attr.type('int32'), shrink_axis_mask: attr.i(3) },
  },
  TopKV2: {
    op: 'TopKV2',
    operands: [{ shape: [3, 10] }, scalar(4)],
    attrs: { sorted: attr.b(true) },
    outputs: 2,
  },
};

describe('TF graph → ONNX: each op matches TF.js', () => {
  for (const [title, c] of Object.entries(cases)) {
    it(title, async () => {
      for (const out of await runBoth(c)) {
        assert.deepEqual(out.oursShape, out.referenceShape, `${out.name} shape`);
        assert.equal(out.ours.length, out.reference.length);
        const worst = out.ours.reduce(
          (m, v, i) =>
            Math.max(m, Math.abs(v - out.reference[i]!) / Math.max(1, Math.abs(out.reference[i]!))),
          0,
        );
        assert.ok(worst <= 1e-4, `${out.name}: max |Δ| ${worst}`);
      }
    });
  }

  it('covers every op in the table', () => {
    const tested = new Set(Object.values(cases).map((c) => c.op));
    const untested = supportedTfOps().filter((op) => !tested.has(op));
    // Aliases and thin wrappers checked by one member of their family.
    const family = new Set([
      'StopGradient',
      'Div',
      'Selu',
      'Softplus',
      'Ceil',
      'Round',
      'Reciprocal',
      'LogSoftmax',
      'Less',
      'GreaterEqual',
      'LessEqual',
      'Min',
      'Prod',
      'ArgMin',
      'Pow',
      'FusedBatchNorm',
      'FusedBatchNormV2',
      '_FusedMatMul',
      'BatchMatMul',
      'BatchMatMulV2',
      'BatchMatMulV3',
      'Identity',
      'SparseToDense',
      'Shape',
    ]);
    assert.deepEqual(
      untested.filter((op) => !family.has(op)),
      [],
    );
  });
});

describe('TF graph → ONNX: graphs and errors', () => {
  it('converts a frozen GraphDef (binary) to the same ONNX as its TF.js JSON form', () => {
    const { model, weights } = buildCase(cases['Conv2D SAME stride 2']!);
    const parsed = parseTfjsGraphModel(model, weights);
    // Freeze: the weights move into the Const nodes, as a .pb holds them.
    const frozen = create(GraphDefSchema, parsed.graph);
    for (const node of frozen.node) {
      const w = parsed.weights.get(node.name);
      if (!w) continue;
      node.attr.value = create(AttrValueSchema, {
        value: {
          case: 'tensor',
          value: {
            dtype: DataType.DT_FLOAT,
            tensorShape: { dim: w.dims.map((d) => ({ size: BigInt(d) })) },
            floatVal: Array.from(w.values),
          },
        },
      });
    }
    const fromPb = convertTfGraph(parseGraphDef(toBinary(GraphDefSchema, frozen)), {
      name: 'g',
      outputs: ['op:0'],
    });
    const fromJson = convertTfGraph(parsed, { name: 'g', outputs: ['op:0'] });
    assert.deepEqual(fromPb, fromJson);
  });

  it('names every unsupported op with ENOTSUP', () => {
    const { model, weights } = buildCase({ op: 'Cumsum', operands: [{ shape: [3] }, scalar(0)] });
    assert.throws(
      () => convertTfGraph(parseTfjsGraphModel(model, weights), { name: 'x', outputs: ['op:0'] }),
      (e: unknown) => e instanceof VaccelError && e.code === 'ENOTSUP' && /Cumsum.*node op/.test(e.message),
    );
  });

  it('rejects dangling inputs, cycles and non-GraphDef bytes with EINVAL', () => {
    const dangling = {
      format: 'graph-model',
      modelTopology: { node: [{ name: 'a', op: 'Relu', input: ['nowhere'] }] },
      weightsManifest: [],
    };
    assert.throws(
      () => convertTfGraph(parseTfjsGraphModel(dangling, new Uint8Array()), { name: 'x' }),
      /reads nowhere:0, which no node produces/,
    );
    const cycle = {
      format: 'graph-model',
      modelTopology: {
        node: [
          { name: 'a', op: 'Relu', input: ['b'] },
          { name: 'b', op: 'Relu', input: ['a'] },
        ],
      },
      weightsManifest: [],
    };
    assert.throws(
      () => convertTfGraph(parseTfjsGraphModel(cycle, new Uint8Array()), { name: 'x', outputs: ['a'] }),
      /cycle/,
    );
    assert.throws(
      () => parseGraphDef(new Uint8Array([0xff, 0xff, 0xff])),
      (e: unknown) => e instanceof VaccelError && e.code === 'EINVAL',
    );
    assert.throws(
      () =>
        parseTfjsGraphModel(
          { format: 'layers-model', modelTopology: {}, weightsManifest: [] },
          new Uint8Array(),
        ),
      /not a graph model/,
    );
  });

  it('refuses constants too large to hold (a hostile graph cannot exhaust the agent)', () => {
    const huge = {
      format: 'graph-model',
      modelTopology: {
        node: [
          {
            name: 'c',
            op: 'Const',
            attr: {
              dtype: attr.type('float32'),
              value: {
                tensor: {
                  dtype: 'DT_FLOAT',
                  tensorShape: { dim: [{ size: '1000000' }, { size: '1000000' }] },
                  floatVal: [1],
                },
              },
            },
          },
          { name: 'op', op: 'Relu', input: ['c'], attr: { T: attr.type('float32') } },
        ],
        versions: {},
      } as never,
      weightsManifest: [],
    };
    assert.throws(
      () => convertTfGraph(parseTfjsGraphModel(huge, new Uint8Array()), { name: 'x', outputs: ['op:0'] }),
      {
        code: 'EINVAL',
        message: /1000000000000 elements, more than the \d+ the converter holds/,
      },
    );
    // Broadcasting two small constants into a huge one is caught as well.
    const { model, weights } = buildCase({
      op: 'AddV2',
      operands: [
        { constant: new Array(100_000).fill(1), shape: [100_000, 1] },
        { constant: new Array(100_000).fill(1), shape: [1, 100_000] },
      ],
    });
    assert.throws(
      () => convertTfGraph(parseTfjsGraphModel(model, weights), { name: 'x', outputs: ['op:0'] }),
      {
        code: 'EINVAL',
        message: /more than the \d+ the converter holds/,
      },
    );
  });

  it('checks the weight shards against the manifest', () => {
    const { model, weights } = buildCase(cases['Conv2D VALID']!);
    assert.throws(
      () => parseTfjsGraphModel(model, weights.subarray(4)),
      /manifest describes \d+ bytes, the shards hold/,
    );
  });
});

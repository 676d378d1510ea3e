/**
 * Each TFLite operator the converter handles, in a one-operator model built here: LiteRT.js runs
 * the model, ONNX Runtime runs its conversion, on the same random inputs; outputs agree within 1e-4
 * (relative to magnitude above 1).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isVaccelError } from '@vaccel/core';
import { convertTflite, parseTflite, supportedTfliteOps } from '../src/tflite/index.js';
import {
  buildTflite,
  f32,
  i32,
  type ModelSpec,
  maxAbsError,
  OPTIONS,
  type OperatorSpec,
  type OptionSpec,
  random,
  runBoth,
  type TensorSpec,
} from './tflite-builder.js';

const rand = random(11);
const values = (n: number, lo = -1, hi = 1) => Array.from({ length: n }, () => rand(lo, hi));
const count = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);
const constant = (shape: number[], lo = -1, hi = 1): TensorSpec => ({
  shape,
  data: f32(values(count(shape), lo, hi)),
});
const intConst = (v: number[], shape = [v.length]): TensorSpec => ({ shape, type: 2, data: i32(v) });
const f16 = (v: readonly number[]) => {
  // float32 → float16 bits by rounding through a lookup of the nearest representable value.
  const out = new Uint16Array(v.length);
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  v.forEach((x, i) => {
    f[0] = x;
    const bits = u[0]!;
    const sign = (bits >>> 16) & 0x8000;
    const exp = ((bits >>> 23) & 0xff) - 127 + 15;
    const mant = bits & 0x7fffff;
    out[i] = exp <= 0 ? sign : sign | (exp << 10) | Math.round(mant / 8192);
  });
  return new Uint8Array(out.buffer);
};

interface Case {
  /** Operand tensors: a spec without data is a graph input. */
  operands: TensorSpec[];
  op: OperatorSpec['op'];
  output: number[];
  optionsType?: number;
  options?: OptionSpec[];
  customOptions?: Uint8Array;
  /** The range of the random inputs (default −3 … 3). */
  range?: [number, number];
  /** Constants feeding a DEQUANTIZE first: operand index → float16 / int8 tensor. */
  dequantize?: Record<number, TensorSpec>;
}

/** One operator over its operands; graph inputs in operand order, output last. */
function model(c: Case): ModelSpec {
  const tensors: TensorSpec[] = [];
  const operators: ModelSpec['operators'] = [];
  const inputs: number[] = [];
  const opInputs = c.operands.map((t, k) => {
    const source = c.dequantize?.[k];
    if (source) {
      tensors.push(source, { shape: t.shape });
      operators.push({ op: 'DEQUANTIZE', inputs: [tensors.length - 2], outputs: [tensors.length - 1] });
      return tensors.length - 1;
    }
    tensors.push(t);
    if (!t.data) inputs.push(tensors.length - 1);
    return tensors.length - 1;
  });
  tensors.push({ shape: c.output });
  operators.push({
    op: c.op,
    inputs: opInputs,
    outputs: [tensors.length - 1],
    optionsType: c.optionsType,
    options: c.options,
    customOptions: c.customOptions,
  });
  return { tensors, inputs, outputs: [tensors.length - 1], operators };
}

const image = { shape: [1, 9, 8, 3] };
const SAME = 0;
const VALID = 1;
const conv = (padding: number, stride: number, act = 0, dilation = 1): OptionSpec[] => [
  [0, 'u8', padding],
  [1, 'i32', stride],
  [2, 'i32', stride],
  [3, 'u8', act],
  [4, 'i32', dilation],
  [5, 'i32', dilation],
];
const depthwise = (padding: number, stride: number, multiplier: number, act = 0): OptionSpec[] => [
  [0, 'u8', padding],
  [1, 'i32', stride],
  [2, 'i32', stride],
  [3, 'i32', multiplier],
  [4, 'u8', act],
  [5, 'i32', 1],
  [6, 'i32', 1],
];
const pool = (padding: number, stride: number, k: number): OptionSpec[] => [
  [0, 'u8', padding],
  [1, 'i32', stride],
  [2, 'i32', stride],
  [3, 'i32', k],
  [4, 'i32', k],
];
const activation = (act: number): OptionSpec[] => [[0, 'u8', act]];
const resize = (align: number, half: number): OptionSpec[] => [
  [2, 'u8', align],
  [3, 'u8', half],
];

const cases: Record<string, Case> = {
  'CONV_2D SAME stride 2 RELU6 bias': {
    op: 'CONV_2D',
    operands: [image, constant([4, 3, 3, 3]), constant([4])],
    output: [1, 5, 4, 4],
    optionsType: OPTIONS.Conv2D,
    options: conv(SAME, 2, 3),
  },
  'CONV_2D VALID 1×1 RELU': {
    op: 'CONV_2D',
    operands: [image, constant([5, 1, 1, 3]), constant([5])],
    output: [1, 9, 8, 5],
    optionsType: OPTIONS.Conv2D,
    options: conv(VALID, 1, 1),
  },
  'CONV_2D VALID dilated': {
    op: 'CONV_2D',
    operands: [image, constant([2, 3, 3, 3]), constant([2])],
    output: [1, 5, 4, 2],
    optionsType: OPTIONS.Conv2D,
    options: conv(VALID, 1, 0, 2),
  },
  'CONV_2D float16 weights through DEQUANTIZE': {
    op: 'CONV_2D',
    operands: [image, { shape: [4, 3, 3, 3] }, { shape: [4] }],
    dequantize: {
      1: { shape: [4, 3, 3, 3], type: 1, data: f16(values(108)) },
      2: { shape: [4], type: 1, data: f16(values(4)) },
    },
    output: [1, 9, 8, 4],
    optionsType: OPTIONS.Conv2D,
    options: conv(SAME, 1, 1),
  },
  'DEPTHWISE_CONV_2D 3×3 SAME stride 1 RELU': {
    op: 'DEPTHWISE_CONV_2D',
    operands: [image, constant([1, 3, 3, 3]), constant([3])],
    output: [1, 9, 8, 3],
    optionsType: OPTIONS.DepthwiseConv2D,
    options: depthwise(SAME, 1, 1, 1),
  },
  'DEPTHWISE_CONV_2D 5×5 SAME stride 2 RELU6': {
    op: 'DEPTHWISE_CONV_2D',
    operands: [image, constant([1, 5, 5, 3]), constant([3])],
    output: [1, 5, 4, 3],
    optionsType: OPTIONS.DepthwiseConv2D,
    options: depthwise(SAME, 2, 1, 3),
  },
  'DEPTHWISE_CONV_2D VALID multiplier 2': {
    op: 'DEPTHWISE_CONV_2D',
    operands: [image, constant([1, 3, 3, 6]), constant([6])],
    output: [1, 4, 3, 6],
    optionsType: OPTIONS.DepthwiseConv2D,
    options: depthwise(VALID, 2, 2),
  },
  'ADD broadcast RELU': {
    op: 'ADD',
    operands: [image, constant([3])],
    output: image.shape,
    optionsType: OPTIONS.Add,
    options: activation(1),
  },
  'ADD two inputs': { op: 'ADD', operands: [image, image], output: image.shape },
  'MUL RELU6': {
    op: 'MUL',
    operands: [image, constant([1, 1, 1, 3], -8, 8)],
    output: image.shape,
    optionsType: OPTIONS.Mul,
    options: activation(3),
  },
  SUB: { op: 'SUB', operands: [image, constant([1, 9, 8, 3])], output: image.shape },
  RELU: { op: 'RELU', operands: [image], output: image.shape },
  RELU6: { op: 'RELU6', operands: [image], output: image.shape },
  HARD_SWISH: { op: 'HARD_SWISH', operands: [image], output: image.shape },
  LOGISTIC: { op: 'LOGISTIC', operands: [image], output: image.shape },
  TANH: { op: 'TANH', operands: [image], output: image.shape },
  PRELU: { op: 'PRELU', operands: [image, constant([1, 1, 3])], output: image.shape },
  DIV: { op: 'DIV', operands: [image, constant([3], 0.5, 2)], output: image.shape },
  MAXIMUM: { op: 'MAXIMUM', operands: [image, constant([1, 9, 8, 3])], output: image.shape },
  MINIMUM: { op: 'MINIMUM', operands: [image, constant([3])], output: image.shape },
  ABS: { op: 'ABS', operands: [image], output: image.shape },
  NEG: { op: 'NEG', operands: [image], output: image.shape },
  EXP: { op: 'EXP', operands: [image], output: image.shape },
  SQRT: { op: 'SQRT', operands: [image], output: image.shape, range: [0.01, 4] },
  RSQRT: { op: 'RSQRT', operands: [image], output: image.shape, range: [0.1, 4] },
  RELU_N1_TO_1: { op: 'RELU_N1_TO_1', operands: [image], output: image.shape },
  'LEAKY_RELU alpha 0.2': {
    op: 'LEAKY_RELU',
    operands: [image],
    output: image.shape,
    optionsType: OPTIONS.LeakyRelu,
    options: [[0, 'f32', 0.2]],
  },
  'SUM keep_dims': {
    op: 'SUM',
    operands: [image, intConst([2])],
    output: [1, 9, 1, 3],
    optionsType: OPTIONS.Reducer,
    options: [[0, 'u8', 1]],
  },
  'REDUCE_MAX axes −1': {
    op: 'REDUCE_MAX',
    operands: [image, intConst([-1])],
    output: [1, 9, 8],
    optionsType: OPTIONS.Reducer,
    options: [[0, 'u8', 0]],
  },
  RESIZE_NEAREST_NEIGHBOR: {
    op: 'RESIZE_NEAREST_NEIGHBOR',
    operands: [image, intConst([20, 13])],
    output: [1, 20, 13, 3],
  },
  'RESIZE_NEAREST_NEIGHBOR half_pixel_centers': {
    op: 'RESIZE_NEAREST_NEIGHBOR',
    operands: [image, intConst([20, 13])],
    output: [1, 20, 13, 3],
    optionsType: OPTIONS.ResizeNearestNeighbor,
    options: [[1, 'u8', 1]],
  },
  'RESIZE_NEAREST_NEIGHBOR align_corners': {
    op: 'RESIZE_NEAREST_NEIGHBOR',
    operands: [image, intConst([20, 13])],
    output: [1, 20, 13, 3],
    optionsType: OPTIONS.ResizeNearestNeighbor,
    options: [[0, 'u8', 1]],
  },
  'PADV2 constant value': {
    op: 'PADV2',
    operands: [image, intConst([0, 0, 2, 1, 1, 0, 0, 0], [4, 2]), constant([])],
    output: [1, 12, 9, 3],
  },
  SQUEEZE: { op: 'SQUEEZE', operands: [{ shape: [1, 9, 1, 3] }], output: [9, 3] },
  EXPAND_DIMS: { op: 'EXPAND_DIMS', operands: [image, intConst([1], [])], output: [1, 1, 9, 8, 3] },
  'AVERAGE_POOL_2D SAME 3×3 stride 2 (padding excluded)': {
    op: 'AVERAGE_POOL_2D',
    operands: [image],
    output: [1, 5, 4, 3],
    optionsType: OPTIONS.Pool2D,
    options: pool(SAME, 2, 3),
  },
  'MAX_POOL_2D VALID 2×2': {
    op: 'MAX_POOL_2D',
    operands: [image],
    output: [1, 4, 4, 3],
    optionsType: OPTIONS.Pool2D,
    options: pool(VALID, 2, 2),
  },
  'MEAN keep_dims': {
    op: 'MEAN',
    operands: [image, intConst([1, 2])],
    output: [1, 1, 1, 3],
    optionsType: OPTIONS.Reducer,
    options: [[0, 'u8', 1]],
  },
  'RESIZE_BILINEAR half_pixel_centers': {
    op: 'RESIZE_BILINEAR',
    operands: [image, intConst([18, 16])],
    output: [1, 18, 16, 3],
    optionsType: OPTIONS.ResizeBilinear,
    options: resize(0, 1),
  },
  'RESIZE_BILINEAR align_corners': {
    op: 'RESIZE_BILINEAR',
    operands: [image, intConst([13, 11])],
    output: [1, 13, 11, 3],
    optionsType: OPTIONS.ResizeBilinear,
    options: resize(1, 0),
  },
  'RESIZE_BILINEAR asymmetric': {
    op: 'RESIZE_BILINEAR',
    operands: [image, intConst([5, 12])],
    output: [1, 5, 12, 3],
    optionsType: OPTIONS.ResizeBilinear,
    options: resize(0, 0),
  },
  PAD: { op: 'PAD', operands: [image, intConst([0, 0, 1, 2, 0, 1, 0, 3], [4, 2])], output: [1, 12, 9, 6] },
  RESHAPE: {
    op: 'RESHAPE',
    operands: [image, intConst([1, 72, 3])],
    output: [1, 72, 3],
    optionsType: OPTIONS.Reshape,
  },
  'CONCATENATION axis −1': {
    op: 'CONCATENATION',
    operands: [image, constant([1, 9, 8, 2])],
    output: [1, 9, 8, 5],
    optionsType: OPTIONS.Concatenation,
    options: [[0, 'i32', -1]],
  },
  FULLY_CONNECTED: {
    op: 'FULLY_CONNECTED',
    operands: [{ shape: [2, 12] }, constant([5, 12]), constant([5])],
    output: [2, 5],
    optionsType: OPTIONS.FullyConnected,
    options: activation(0),
  },
  'SOFTMAX beta 0.5': {
    op: 'SOFTMAX',
    operands: [{ shape: [2, 7] }],
    output: [2, 7],
    optionsType: OPTIONS.Softmax,
    options: [[0, 'f32', 0.5]],
  },
  TRANSPOSE: {
    op: 'TRANSPOSE',
    operands: [image, intConst([0, 3, 1, 2])],
    output: [1, 3, 9, 8],
    optionsType: OPTIONS.Transpose,
  },
  'Convolution2DTransposeBias (custom) SAME stride 2': {
    op: { custom: 'Convolution2DTransposeBias' },
    operands: [{ shape: [1, 5, 4, 3] }, constant([2, 2, 2, 3]), constant([2])],
    output: [1, 10, 8, 2],
    customOptions: i32([1, 2, 2]),
  },
  'Convolution2DTransposeBias (custom) 4×4 SAME stride 2': {
    op: { custom: 'Convolution2DTransposeBias' },
    operands: [{ shape: [1, 5, 4, 3] }, constant([2, 4, 4, 3]), constant([2])],
    output: [1, 10, 8, 2],
    customOptions: i32([1, 2, 2]),
  },
  'Convolution2DTransposeBias (custom) 3×3 VALID stride 2': {
    op: { custom: 'Convolution2DTransposeBias' },
    operands: [{ shape: [1, 5, 4, 3] }, constant([2, 3, 3, 3]), constant([2])],
    output: [1, 11, 9, 2],
    customOptions: i32([2, 2, 2]),
  },
  'TRANSPOSE_CONV 3×3 SAME stride 2': {
    op: 'TRANSPOSE_CONV',
    operands: [intConst([1, 10, 8, 2]), constant([2, 3, 3, 3]), { shape: [1, 5, 4, 3] }],
    output: [1, 10, 8, 2],
    optionsType: OPTIONS.TransposeConv,
    options: [
      [0, 'u8', SAME],
      [1, 'i32', 2],
      [2, 'i32', 2],
    ],
  },
  'Convolution2DTransposeBias (custom) 3×3 SAME stride 2': {
    op: { custom: 'Convolution2DTransposeBias' },
    operands: [{ shape: [1, 5, 4, 3] }, constant([2, 3, 3, 3]), constant([2])],
    output: [1, 10, 8, 2],
    customOptions: i32([1, 2, 2]),
  },
};

/**
 * A fully quantized int8 model (QUANTIZE → CONV_2D per-channel int8 → AVERAGE_POOL_2D →
 * LOGISTIC → DEQUANTIZE), as the TFLite converter writes them: the ONNX graph dequantizes around
 * float kernels and requantizes each activation, so it may differ from TFLite's integer kernels by
 * a quantization step or two.
 */
function quantizedModel(): { spec: ModelSpec; outputScale: number } {
  const inScale = 6 / 255;
  const inZero = -1;
  const wScale = [0.01, 0.02, 0.015, 0.005];
  const weights = Int8Array.from({ length: 4 * 3 * 3 * 3 }, () => Math.round(rand(-127, 127)));
  const bias = Int32Array.from({ length: 4 }, () => Math.round(rand(-300, 300)));
  const convScale = 0.05;
  const sigmoidScale = 1 / 256;
  return {
    outputScale: sigmoidScale,
    spec: {
      tensors: [
        { shape: [1, 9, 8, 3] },
        { shape: [1, 9, 8, 3], type: 9, quant: { scale: [inScale], zeroPoint: [inZero] } },
        {
          shape: [4, 3, 3, 3],
          type: 9,
          data: new Uint8Array(weights.buffer),
          quant: { scale: wScale, zeroPoint: [0, 0, 0, 0], axis: 0 },
        },
        {
          shape: [4],
          type: 2,
          data: new Uint8Array(bias.buffer),
          quant: { scale: wScale.map((s) => s * inScale), zeroPoint: [0, 0, 0, 0], axis: 0 },
        },
        { shape: [1, 9, 8, 4], type: 9, quant: { scale: [convScale], zeroPoint: [3] } },
        { shape: [1, 5, 4, 4], type: 9, quant: { scale: [convScale], zeroPoint: [3] } },
        { shape: [1, 5, 4, 4], type: 9, quant: { scale: [sigmoidScale], zeroPoint: [-128] } },
        { shape: [1, 5, 4, 4] },
      ],
      inputs: [0],
      outputs: [7],
      operators: [
        { op: 'QUANTIZE', inputs: [0], outputs: [1] },
        {
          op: 'CONV_2D',
          inputs: [1, 2, 3],
          outputs: [4],
          optionsType: OPTIONS.Conv2D,
          options: conv(SAME, 1, 0),
        },
        {
          op: 'AVERAGE_POOL_2D',
          inputs: [4],
          outputs: [5],
          optionsType: OPTIONS.Pool2D,
          options: pool(SAME, 2, 2),
        },
        { op: 'LOGISTIC', inputs: [5], outputs: [6] },
        { op: 'DEQUANTIZE', inputs: [6], outputs: [7] },
      ],
    },
  };
}

describe('TFLite operators against LiteRT.js', () => {
  it('int8 quantized QUANTIZE → CONV_2D → AVERAGE_POOL_2D → LOGISTIC → DEQUANTIZE', async () => {
    const { spec, outputScale } = quantizedModel();
    const { reference, ours } = await runBoth(buildTflite(spec), [Float32Array.from(values(216, -3, 3))]);
    const error = maxAbsError(ours[0]!, reference[0]!);
    // One step of the convolution's scale (0.05) through the sigmoid (slope ≤ 1/4), plus rounding.
    assert.ok(error <= 0.25 * 0.05 + 2 * outputScale, `max abs error ${error} (output step ${outputScale})`);
    const mean = ours[0]!.reduce((a, v, i) => a + Math.abs(v - reference[0]![i]!), 0) / ours[0]!.length;
    assert.ok(mean <= outputScale, `mean abs error ${mean}`);
    assert.ok(Math.max(...reference[0]!) - Math.min(...reference[0]!) > 10 * outputScale, 'flat output');
  });

  for (const [name, c] of Object.entries(cases)) {
    it(name, async () => {
      const bytes = buildTflite(model(c));
      const feeds = c.operands.filter((t) => !t.data && !c.dequantize?.[c.operands.indexOf(t)]);
      const { reference, ours, oursShapes } = await runBoth(
        bytes,
        feeds.map((t) => Float32Array.from(values(count(t.shape), ...(c.range ?? [-3, 3])))),
      );
      assert.deepEqual(oursShapes[0], c.output);
      const ref = reference[0]!;
      const scale = Math.max(1, ...Array.from(ref, Math.abs));
      const error = maxAbsError(ours[0]!, ref);
      assert.ok(error <= 1e-4 * scale, `max abs error ${error} (scale ${scale})`);
      // Not a degenerate comparison: the output has signal.
      assert.ok(
        ref.some((v) => v !== 0),
        'reference output all zeros',
      );
    });
  }

  it("keeps names unique when tensors share names or clash with the converter's", async () => {
    const spec = model(cases['CONV_2D SAME stride 2 RELU6 bias']!);
    const names = ['x', 'Transpose__0', 'x', 'Conv__2'];
    spec.tensors = spec.tensors.map((t, i) => ({ ...t, name: names[i] }));
    const { reference, ours } = await runBoth(buildTflite(spec), [Float32Array.from(values(216))]);
    assert.ok(maxAbsError(ours[0]!, reference[0]!) <= 1e-4);
  });

  it('lists the operators it supports', () => {
    const ops = supportedTfliteOps();
    for (const op of [
      'CONV_2D',
      'DEPTHWISE_CONV_2D',
      'HARD_SWISH',
      'RESIZE_BILINEAR',
      'Convolution2DTransposeBias',
    ])
      assert.ok(ops.includes(op), op);
  });

  it('refuses a fused activation on CONCATENATION (TFLite does not apply it)', () => {
    const bytes = buildTflite(
      model({
        op: 'CONCATENATION',
        operands: [image, image],
        output: [1, 9, 8, 6],
        optionsType: OPTIONS.Concatenation,
        options: [
          [0, 'i32', 3],
          [1, 'u8', 1],
        ],
      }),
    );
    assert.throws(() => convertTflite(bytes), { code: 'ENOTSUP' });
  });

  it('refuses unsupported operators with ENOTSUP naming each', () => {
    const bytes = buildTflite({
      tensors: [{ shape: [1, 4] }, { shape: [1, 4] }, { shape: [1, 4] }, { shape: [1, 4] }],
      inputs: [0],
      outputs: [3],
      operators: [
        { op: 'SQUARED_DIFFERENCE', inputs: [0, 0], outputs: [1] },
        { op: { custom: 'MyCustomOp' }, inputs: [1], outputs: [2] },
        { op: 'RELU', inputs: [2], outputs: [3] },
      ],
    });
    assert.equal(parseTflite(bytes).operators.length, 3);
    assert.throws(
      () => convertTflite(bytes),
      (e: unknown) =>
        isVaccelError(e) &&
        e.code === 'ENOTSUP' &&
        e.message.includes('SQUARED_DIFFERENCE') &&
        e.message.includes('MyCustomOp') &&
        !e.message.includes('RELU'),
    );
  });
});

/**
 * TFLite → ONNX: each operator of the main subgraph becomes a few ONNX nodes. Values keep the
 * TFLite (NHWC) layout; convolutions, pools and resizes transpose to NCHW around the ONNX op (ONNX
 * Runtime cancels the back-to-back transposes). Constants become initializers, float16 and
 * quantized constants passed through DEQUANTIZE are folded to float32 on the host, charged to the
 * model's {@link ConstantBudget}.
 * @module
 */
import { VaccelError } from '@vaccel/core';
import { ConstantBudget } from '../budget.js';
import { DataType, initializer, modelBytes, valueInfo } from '../onnx-graph.js';
import { Context, type Emit, optional } from './context.js';
import { binary, fullyConnected, reduce, softmax, unary } from './math-ops.js';
import { parseTflite, type TfliteModel } from './parse.js';
import { dequantize, hostFloats, quantize } from './quantize.js';
import type { TfliteDtype } from './schema.js';
import { concatenation, pad, reshape, transpose } from './shape-ops.js';
import {
  conv,
  depthwise,
  pool,
  resize,
  TRANSPOSE_CONV_BIAS,
  transposeConv,
  transposeConvBias,
} from './spatial-ops.js';

// Re-exported so the package entry keeps importing the whole converter API from here.
export { TRANSPOSE_CONV_BIAS };

/** Options of {@link convertTflite}. */
export interface TfliteConvertOptions {
  /** Bytes the model's constants may take on the host while converting (default 256 MiB). */
  maxConstantBytes?: number;
}

/** A graph input or output of the converted model. */
export interface TfliteIo {
  name: string;
  shape: number[];
  dtype: TfliteDtype;
}

/** What {@link convertTflite} returns. */
export interface TfliteConversion {
  onnx: Uint8Array;
  inputs: TfliteIo[];
  outputs: TfliteIo[];
}

const ONNX_TYPES: Partial<Record<TfliteDtype, DataType>> = {
  float32: DataType.FLOAT,
  float16: DataType.FLOAT16,
  int32: DataType.INT32,
  int64: DataType.INT64,
  uint8: DataType.UINT8,
  int8: DataType.INT8,
  int16: DataType.INT16,
  bool: DataType.BOOL,
  float64: DataType.DOUBLE,
};

const EMIT: Record<string, Emit> = {
  ADD: binary('Add'),
  SUB: binary('Sub'),
  MUL: binary('Mul'),
  DIV: binary('Div'),
  MAXIMUM: binary('Max'),
  MINIMUM: binary('Min'),
  CONV_2D: conv,
  DEPTHWISE_CONV_2D: depthwise,
  AVERAGE_POOL_2D: pool('AveragePool'),
  MAX_POOL_2D: pool('MaxPool'),
  RELU: unary('Relu'),
  RELU6: (ctx, op) => ctx.finish(op, ctx.input(op, 0), 3),
  RELU_N1_TO_1: (ctx, op) => ctx.finish(op, ctx.input(op, 0), 2),
  LOGISTIC: unary('Sigmoid'),
  TANH: unary('Tanh'),
  HARD_SWISH: unary('HardSwish'),
  EXP: unary('Exp'),
  ABS: unary('Abs'),
  NEG: unary('Neg'),
  SQRT: unary('Sqrt'),
  RSQRT: (ctx, op) => ctx.finish(op, ctx.add('Reciprocal', [ctx.add('Sqrt', [ctx.input(op, 0)])]), 0),
  LEAKY_RELU: (ctx, op) =>
    ctx.finish(op, ctx.add('LeakyRelu', [ctx.input(op, 0)], { alpha: { float: op.options.alpha! } }), 0),
  PRELU: (ctx, op) => ctx.finish(op, ctx.add('PRelu', [ctx.input(op, 0), ctx.input(op, 1)]), 0),
  SOFTMAX: softmax,
  MEAN: reduce('ReduceMean'),
  SUM: reduce('ReduceSum'),
  REDUCE_MAX: reduce('ReduceMax'),
  RESIZE_BILINEAR: resize('linear'),
  RESIZE_NEAREST_NEIGHBOR: resize('nearest'),
  PAD: pad,
  PADV2: pad,
  RESHAPE: reshape,
  SQUEEZE: reshape,
  EXPAND_DIMS: reshape,
  CONCATENATION: concatenation,
  FULLY_CONNECTED: fullyConnected,
  TRANSPOSE: transpose,
  TRANSPOSE_CONV: (ctx, op) =>
    transposeConv(ctx, op, 2, 1, optional(ctx, op, 3), op.options.padding === 0, [
      op.options.stride_h!,
      op.options.stride_w!,
    ]),
  DEQUANTIZE: dequantize,
  QUANTIZE: quantize,
  [TRANSPOSE_CONV_BIAS]: transposeConvBias,
};

/** The input each operator reads on the host (a constant), not in the graph. */
const HOST_INPUTS: Readonly<Record<string, number>> = {
  PAD: 1,
  PADV2: 1,
  RESHAPE: 1,
  SQUEEZE: 1,
  EXPAND_DIMS: 1,
  RESIZE_BILINEAR: 1,
  RESIZE_NEAREST_NEIGHBOR: 1,
  MEAN: 1,
  SUM: 1,
  REDUCE_MAX: 1,
  TRANSPOSE: 1,
  TRANSPOSE_CONV: 0,
};

/** The TFLite operators the converter handles (builtin names and the MediaPipe custom op). */
export function supportedTfliteOps(): string[] {
  return Object.keys(EMIT).sort();
}

const io = (ctx: Context, i: number): TfliteIo => {
  const t = ctx.model.tensors[i]!;
  return { name: ctx.names[i]!, shape: [...t.shape], dtype: t.dtype };
};

/**
 * Converts a TFLite model (its main subgraph) to ONNX (opset 14); inputs and outputs keep the
 * model's names, shapes (NHWC) and types.
 * @throws VaccelError `EINVAL` malformed model, `ENOTSUP` naming every unsupported operator,
 * `E2BIG` past a parse bound or the constant budget.
 */
export function convertTflite(
  bytes: Uint8Array | TfliteModel,
  options: TfliteConvertOptions = {},
): TfliteConversion {
  const model = bytes instanceof Uint8Array ? parseTflite(bytes) : bytes;
  const budget = new ConstantBudget(options.maxConstantBytes);
  const unsupported = [...new Set(model.operators.filter((op) => !EMIT[op.op]).map((op) => op.op))];
  if (unsupported.length)
    throw new VaccelError(
      'ENOTSUP',
      `TFLite model uses operators the converter does not support: ${unsupported.sort().join(', ')}`,
    );
  const ctx = new Context(model, budget);
  const produced = new Set<number>(model.inputs);
  for (const op of model.operators)
    for (const o of op.outputs) {
      if (produced.has(o) || model.tensors[o]!.data)
        throw new VaccelError(
          'EINVAL',
          `TFLite model: tensor ${model.tensors[o]!.name || o} is written twice or is a constant`,
        );
      produced.add(o);
    }
  // Constants an operator reads in the graph (DEQUANTIZE's constant inputs fold instead; shapes,
  // axes, paddings and sizes are read on the host).
  const needed = new Set<number>();
  for (const op of model.operators) {
    if (op.op === 'DEQUANTIZE' && ctx.tensor(op.inputs[0]).data) continue;
    const host = HOST_INPUTS[op.op];
    op.inputs.forEach((i, k) => {
      if (i >= 0 && !produced.has(i) && k !== host) needed.add(i);
    });
  }
  for (const o of model.outputs) if (!produced.has(o)) needed.add(o);
  for (const i of needed) {
    const t = model.tensors[i]!;
    if (!t.data)
      throw new VaccelError(
        'EINVAL',
        `TFLite model: tensor ${t.name || i} is read but neither an input, an output of an operator nor a constant`,
      );
    if (t.quantization && t.dtype !== 'float32' && t.dtype !== 'float16') {
      // Quantized weights and biases are dequantized on the host: the kernels compute in float.
      ctx.initializers.push(
        initializer(ctx.names[i]!, DataType.FLOAT, t.shape, hostFloats(ctx, t, `constant ${t.name}`)),
      );
      continue;
    }
    const type = ONNX_TYPES[t.dtype];
    if (type === undefined)
      throw new VaccelError('ENOTSUP', `TFLite constant ${t.name} of type ${t.dtype} is not supported`);
    budget.reserve(t.data.byteLength, `constant ${t.name}`);
    ctx.initializers.push(initializer(ctx.names[i]!, type, t.shape, t.data.slice()));
  }
  for (const op of model.operators) {
    EMIT[op.op]!(ctx, op);
    ctx.requantize(op);
  }
  const inputs = model.inputs.map((i) => io(ctx, i));
  const outputs = model.outputs.map((i) => io(ctx, i));
  const info = (v: TfliteIo) => {
    const type = ONNX_TYPES[v.dtype];
    if (type === undefined)
      throw new VaccelError(
        'ENOTSUP',
        `TFLite graph input or output ${v.name} of type ${v.dtype} is not supported`,
      );
    return valueInfo(v.name, type, v.shape);
  };
  const onnx = modelBytes({
    name: model.name || 'tflite',
    nodes: ctx.nodes,
    inputs: inputs.map(info),
    outputs: outputs.map(info),
    initializers: ctx.initializers,
    opset: 14,
    docString: model.description,
  });
  return { onnx, inputs, outputs };
}

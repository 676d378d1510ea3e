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
import type { NodeProto, TensorProto } from '../gen/onnx_pb.js';
import { DataType, initializer, modelBytes, node, valueInfo } from '../onnx-graph.js';
import { parseTflite, type TfliteModel, type TfliteOperator, type TfliteTensor } from './parse.js';
import type { TfliteDtype } from './schema.js';

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

/** The custom operator of MediaPipe's segmentation models (a transposed convolution plus bias). */
export const TRANSPOSE_CONV_BIAS = 'Convolution2DTransposeBias';

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

type Emit = (ctx: Context, op: TfliteOperator) => void;

const NHWC_TO_NCHW = [0, 3, 1, 2];
const NCHW_TO_NHWC = [0, 2, 3, 1];

class Context {
  readonly nodes: NodeProto[] = [];
  readonly initializers: TensorProto[] = [];
  readonly names: string[];
  /** Every ONNX value name in use: tensor names and the converter's own. */
  readonly #taken = new Set<string>();
  #next = 0;
  readonly #real = new Map<number, string>();

  constructor(
    readonly model: TfliteModel,
    readonly budget: ConstantBudget,
  ) {
    this.names = model.tensors.map((t, i) => {
      let name = t.name || `tensor_${i}`;
      while (this.#taken.has(name)) name = `${name}__${i}`;
      this.#taken.add(name);
      return name;
    });
  }

  tensor(i: number | undefined): TfliteTensor {
    const t = i === undefined || i < 0 ? undefined : this.model.tensors[i];
    if (!t) throw new VaccelError('EINVAL', 'TFLite model: an operator lacks a required input');
    return t;
  }

  /** A value name no tensor and no other converter value has. */
  fresh(hint: string): string {
    let name: string;
    do name = `${hint}__${this.#next++}`;
    while (this.#taken.has(name));
    this.#taken.add(name);
    return name;
  }

  add(opType: string, inputs: string[], attrs: Parameters<typeof node>[3] = {}, output?: string): string {
    const out = output ?? this.fresh(opType);
    this.nodes.push(node(opType, inputs, [out], attrs));
    return out;
  }

  ints64(values: readonly number[], hint = 'const'): string {
    const name = this.fresh(hint);
    this.initializers.push(
      initializer(name, DataType.INT64, [values.length], BigInt64Array.from(values.map(BigInt))),
    );
    return name;
  }

  float(value: number): string {
    const name = this.fresh('scalar');
    this.initializers.push(initializer(name, DataType.FLOAT, [], Float32Array.of(value)));
    return name;
  }

  /** Integer values of a constant input (shape, axes, paddings). */
  constInts(i: number | undefined, what: string): number[] {
    const t = this.tensor(i);
    if (!t.data || (t.dtype !== 'int32' && t.dtype !== 'int64'))
      throw new VaccelError('ENOTSUP', `TFLite ${what} must be a constant int32 tensor`);
    const view = new DataView(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    const width = t.dtype === 'int32' ? 4 : 8;
    return Array.from({ length: t.data.byteLength / width }, (_, k) =>
      width === 4 ? view.getInt32(4 * k, true) : Number(view.getBigInt64(8 * k, true)),
    );
  }

  /** Whether tensor `i` is a quantized (int8/uint8) activation, carried as integers in the graph. */
  quantized(i: number): boolean {
    const t = this.model.tensors[i];
    return !!t && !t.data && (t.dtype === 'int8' || t.dtype === 'uint8') && !!t.quantization;
  }

  readonly #dequantized = new Map<number, string>();

  /**
   * The ONNX value of input `k`: a quantized activation is dequantized first (once), so the float
   * kernels compute on real values (QUANTIZE requantizes from them); DEQUANTIZE reads it as is.
   */
  input(op: TfliteOperator, k: number): string {
    const i = op.inputs[k];
    const t = this.tensor(i);
    const name = this.names[i!]!;
    if (op.op === 'DEQUANTIZE' || !this.quantized(i!)) return name;
    let real = this.#dequantized.get(i!);
    if (!real) {
      real = this.add('DequantizeLinear', [name, ...quantParams(this, t)]);
      this.#dequantized.set(i!, real);
    }
    return real;
  }

  /** The ONNX value the op writes output `k` to (a float one, requantized after, for a quantized output). */
  output(op: TfliteOperator, k = 0): string {
    const i = op.outputs[k];
    if (i === undefined) throw new VaccelError('EINVAL', `TFLite ${op.op} has no output ${k}`);
    const name = this.names[i]!;
    if (op.op === 'QUANTIZE' || op.op === 'DEQUANTIZE' || !this.quantized(i)) return name;
    let real = this.#real.get(i);
    if (!real) {
      real = this.fresh(`${name}__real`);
      this.#real.set(i, real);
    }
    return real;
  }

  /** Requantizes the op's quantized outputs from the float values its kernel wrote. */
  requantize(op: TfliteOperator): void {
    if (op.op === 'QUANTIZE' || op.op === 'DEQUANTIZE') return;
    op.outputs.forEach((i, k) => {
      if (this.quantized(i))
        this.add(
          'QuantizeLinear',
          [this.output(op, k), ...quantParams(this, this.tensor(i))],
          {},
          this.names[i]!,
        );
    });
  }

  /** Writes `value` (NCHW or whatever) to the op's output through an optional fused activation. */
  finish(
    op: TfliteOperator,
    value: string,
    activation = op.options.fused_activation_function ?? 0,
    k = 0,
  ): void {
    const out = this.output(op, k);
    switch (activation) {
      case 0:
        this.add('Identity', [value], {}, out);
        return;
      case 1:
        this.add('Relu', [value], {}, out);
        return;
      case 2:
        this.add('Clip', [value, this.float(-1), this.float(1)], {}, out);
        return;
      case 3:
        this.add('Clip', [value, this.float(0), this.float(6)], {}, out);
        return;
      case 4:
        this.add('Tanh', [value], {}, out);
        return;
      default:
        throw new VaccelError('ENOTSUP', `TFLite ${op.op}: fused activation ${activation} is not supported`);
    }
  }

  /** Output of `op` at NHWC from an NCHW value, with the fused activation. */
  finishNchw(op: TfliteOperator, nchw: string): void {
    this.finish(op, this.add('Transpose', [nchw], { perm: { ints: NCHW_TO_NHWC } }));
  }

  nchw(op: TfliteOperator, k = 0): string {
    return this.add('Transpose', [this.input(op, k)], { perm: { ints: NHWC_TO_NCHW } });
  }
}

/** TFLite SAME (extra row at the end) or VALID padding → ONNX pads [top, left, bottom, right]. */
function pads(
  same: boolean,
  input: readonly number[],
  output: readonly number[],
  kernel: readonly [number, number],
  stride: readonly [number, number],
  dilation: readonly [number, number] = [1, 1],
): number[] {
  if (!same) return [0, 0, 0, 0];
  const begin: number[] = [];
  const end: number[] = [];
  for (let d = 0; d < 2; d++) {
    const eff = (kernel[d]! - 1) * dilation[d]! + 1;
    const total = Math.max((output[d + 1]! - 1) * stride[d]! + eff - input[d + 1]!, 0);
    begin.push(Math.floor(total / 2));
    end.push(total - Math.floor(total / 2));
  }
  return [...begin, ...end];
}

/** The shape of an operator's 4-d (NHWC) tensor. */
function nhwc(ctx: Context, i: number | undefined, op: TfliteOperator): number[] {
  const shape = ctx.tensor(i).shape;
  if (shape.length !== 4)
    throw new VaccelError('EINVAL', `TFLite ${op.op} needs 4-d tensors, got [${shape}]`);
  return shape;
}

const binary =
  (onnx: string): Emit =>
  (ctx, op) =>
    ctx.finish(op, ctx.add(onnx, [ctx.input(op, 0), ctx.input(op, 1)]));
const unary =
  (onnx: string, attrs: Parameters<typeof node>[3] = {}): Emit =>
  (ctx, op) =>
    ctx.finish(op, ctx.add(onnx, [ctx.input(op, 0)], attrs), 0);
const optional = (ctx: Context, op: TfliteOperator, k: number): string[] =>
  (op.inputs[k] ?? -1) >= 0 ? [ctx.input(op, k)] : [];

const conv: Emit = (ctx, op) => {
  const x = nhwc(ctx, op.inputs[0], op);
  const w = nhwc(ctx, op.inputs[1], op); // [O, KH, KW, I]
  const y = nhwc(ctx, op.outputs[0], op);
  if (x.length !== 4 || w.length !== 4)
    throw new VaccelError('EINVAL', 'TFLite CONV_2D needs 4-d input and filter');
  const o = op.options;
  const weights = ctx.add('Transpose', [ctx.input(op, 1)], { perm: { ints: [0, 3, 1, 2] } });
  const group = w[3]! > 0 && x[3]! % w[3]! === 0 ? x[3]! / w[3]! : 1;
  const dil: [number, number] = [o.dilation_h_factor!, o.dilation_w_factor!];
  const stride: [number, number] = [o.stride_h!, o.stride_w!];
  const out = ctx.add('Conv', [ctx.nchw(op), weights, ...optional(ctx, op, 2)], {
    kernel_shape: { ints: [w[1]!, w[2]!] },
    strides: { ints: stride },
    dilations: { ints: dil },
    pads: { ints: pads(o.padding === 0, x, y, [w[1]!, w[2]!], stride, dil) },
    group: { int: group },
  });
  ctx.finishNchw(op, out);
};

const depthwise: Emit = (ctx, op) => {
  const x = nhwc(ctx, op.inputs[0], op);
  const w = nhwc(ctx, op.inputs[1], op); // [1, KH, KW, C·M]
  const y = nhwc(ctx, op.outputs[0], op);
  if (x.length !== 4 || w.length !== 4)
    throw new VaccelError('EINVAL', 'TFLite DEPTHWISE_CONV_2D needs 4-d input and filter');
  const o = op.options;
  const weights = ctx.add('Transpose', [ctx.input(op, 1)], { perm: { ints: [3, 0, 1, 2] } });
  const dil: [number, number] = [o.dilation_h_factor!, o.dilation_w_factor!];
  const stride: [number, number] = [o.stride_h!, o.stride_w!];
  const out = ctx.add('Conv', [ctx.nchw(op), weights, ...optional(ctx, op, 2)], {
    kernel_shape: { ints: [w[1]!, w[2]!] },
    strides: { ints: stride },
    dilations: { ints: dil },
    pads: { ints: pads(o.padding === 0, x, y, [w[1]!, w[2]!], stride, dil) },
    group: { int: x[3]! },
  });
  ctx.finishNchw(op, out);
};

const pool =
  (onnx: 'AveragePool' | 'MaxPool'): Emit =>
  (ctx, op) => {
    const x = nhwc(ctx, op.inputs[0], op);
    const y = nhwc(ctx, op.outputs[0], op);
    const o = op.options;
    const kernel: [number, number] = [o.filter_height!, o.filter_width!];
    const stride: [number, number] = [o.stride_h!, o.stride_w!];
    const out = ctx.add(onnx, [ctx.nchw(op)], {
      kernel_shape: { ints: kernel },
      strides: { ints: stride },
      pads: { ints: pads(o.padding === 0, x, y, kernel, stride) },
      ...(onnx === 'AveragePool' ? { count_include_pad: { int: 0 } } : {}),
    });
    ctx.finishNchw(op, out);
  };

/** MediaPipe's `Convolution2DTransposeBias`: inputs x, weights OHWI, bias; options padding, stride w, h. */
const transposeConvBias: Emit = (ctx, op) => {
  const opts = op.customOptions;
  if (!opts || opts.byteLength < 12)
    throw new VaccelError('EINVAL', `TFLite ${TRANSPOSE_CONV_BIAS} needs 12 bytes of options`);
  const view = new DataView(opts.buffer, opts.byteOffset, 12);
  const same = view.getInt32(0, true) === 1;
  const stride: [number, number] = [view.getInt32(8, true), view.getInt32(4, true)];
  transposeConv(ctx, op, 0, 1, optional(ctx, op, 2), same, stride);
};

const transposeConv = (
  ctx: Context,
  op: TfliteOperator,
  xk: number,
  wk: number,
  bias: string[],
  same: boolean,
  stride: [number, number],
): void => {
  const x = ctx.tensor(op.inputs[xk]).shape;
  const w = ctx.tensor(op.inputs[wk]).shape; // [O, KH, KW, I]
  const y = ctx.tensor(op.outputs[0]).shape;
  if (x.length !== 4 || w.length !== 4 || y.length !== 4)
    throw new VaccelError('EINVAL', `TFLite ${op.op} needs 4-d input, filter and output`);
  if (!(stride[0] > 0 && stride[1] > 0))
    throw new VaccelError('EINVAL', `TFLite ${op.op}: stride must be positive`);
  // Explicit pads (ONNX Runtime recomputes them its own way from an output_shape): the extra row
  // of an odd total goes at the end, as TFLite's; a negative total is output padding.
  const p: number[] = [0, 0, 0, 0];
  const extra: number[] = [0, 0];
  for (let d = 0; d < 2; d++) {
    const total = (x[d + 1]! - 1) * stride[d]! + w[d + 1]! - y[d + 1]!;
    if (total < 0) extra[d] = -total;
    else {
      p[d] = Math.floor(total / 2);
      p[d + 2] = total - Math.floor(total / 2);
    }
    if (!same && total > 0)
      throw new VaccelError('EINVAL', `TFLite ${op.op}: VALID output ${y[d + 1]} is too small`);
  }
  if (!(extra[0]! < stride[0] && extra[1]! < stride[1]))
    throw new VaccelError(
      'EINVAL',
      `TFLite ${op.op}: output [${y}] does not fit input [${x}] and stride ${stride}`,
    );
  const weights = ctx.add('Transpose', [ctx.input(op, wk)], { perm: { ints: [3, 0, 1, 2] } });
  const out = ctx.add('ConvTranspose', [ctx.nchw(op, xk), weights, ...bias], {
    kernel_shape: { ints: [w[1]!, w[2]!] },
    strides: { ints: stride },
    pads: { ints: p },
    output_padding: { ints: extra },
  });
  ctx.finishNchw(op, out);
};

const resize =
  (mode: 'linear' | 'nearest'): Emit =>
  (ctx, op) => {
    const x = ctx.tensor(op.inputs[0]).shape;
    const size = ctx.constInts(op.inputs[1], `${op.op} size`);
    if (x.length !== 4 || size.length !== 2)
      throw new VaccelError('EINVAL', `TFLite ${op.op} needs a 4-d input and 2 sizes`);
    const o = op.options;
    const transform = o.align_corners
      ? 'align_corners'
      : o.half_pixel_centers
        ? mode === 'linear'
          ? 'half_pixel'
          : 'tf_half_pixel_for_nn'
        : 'asymmetric';
    const out = ctx.add(
      'Resize',
      [ctx.nchw(op), '', '', ctx.ints64([x[0]!, x[3]!, size[0]!, size[1]!], 'sizes')],
      {
        mode: { string: mode },
        coordinate_transformation_mode: { string: transform },
        ...(mode === 'nearest'
          ? { nearest_mode: { string: o.align_corners ? 'round_prefer_ceil' : 'floor' } }
          : {}),
      },
    );
    ctx.finishNchw(op, out);
  };

const rankOf = (ctx: Context, op: TfliteOperator) => ctx.tensor(op.inputs[0]).shape.length;
const axisIn = (axis: number, rank: number, what: string) => {
  const a = axis < 0 ? axis + rank : axis;
  if (!(a >= 0 && a < Math.max(rank, 1)))
    throw new VaccelError('EINVAL', `TFLite ${what}: axis ${axis} out of range for rank ${rank}`);
  return a;
};

const reduce =
  (onnx: string): Emit =>
  (ctx, op) => {
    const rank = rankOf(ctx, op);
    const axes = ctx.constInts(op.inputs[1], `${op.op} axes`).map((a) => axisIn(a, rank, op.op));
    const keepdims = { keepdims: { int: op.options.keep_dims ? 1 : 0 } };
    // ReduceSum takes its axes as an input from opset 13, the others from opset 18.
    const reduced =
      onnx === 'ReduceSum'
        ? ctx.add(onnx, [ctx.input(op, 0), ctx.ints64(axes, 'axes')], keepdims)
        : ctx.add(onnx, [ctx.input(op, 0)], { axes: { ints: axes }, ...keepdims });
    ctx.finish(op, reduced, 0);
  };

const pad: Emit = (ctx, op) => {
  const p = ctx.constInts(op.inputs[1], 'PAD paddings');
  const rank = p.length / 2;
  const begins = p.filter((_, i) => i % 2 === 0);
  const ends = p.filter((_, i) => i % 2 === 1);
  if (rank !== rankOf(ctx, op))
    throw new VaccelError('EINVAL', 'TFLite PAD: paddings do not match the input rank');
  const value = (op.inputs[2] ?? -1) >= 0 ? [ctx.input(op, 2)] : [];
  ctx.finish(op, ctx.add('Pad', [ctx.input(op, 0), ctx.ints64([...begins, ...ends], 'pads'), ...value]), 0);
};

const reshape: Emit = (ctx, op) => {
  const out = ctx.tensor(op.outputs[0]).shape;
  ctx.finish(op, ctx.add('Reshape', [ctx.input(op, 0), ctx.ints64(out, 'shape')]), 0);
};

const concatenation: Emit = (ctx, op) => {
  // TFLite's kernels refuse (or ignore) a fused activation here.
  if (op.options.fused_activation_function)
    throw new VaccelError('ENOTSUP', 'TFLite CONCATENATION with a fused activation is not supported');
  const rank = rankOf(ctx, op);
  const inputs = op.inputs.map((_, k) => ctx.input(op, k));
  ctx.finish(op, ctx.add('Concat', inputs, { axis: { int: axisIn(op.options.axis!, rank, op.op) } }));
};

const fullyConnected: Emit = (ctx, op) => {
  const w = ctx.tensor(op.inputs[1]).shape; // [O, K]
  if (w.length !== 2) throw new VaccelError('EINVAL', 'TFLite FULLY_CONNECTED needs 2-d weights');
  const flat = ctx.add('Reshape', [ctx.input(op, 0), ctx.ints64([-1, w[1]!], 'shape')]);
  const y = ctx.add('Gemm', [flat, ctx.input(op, 1), ...optional(ctx, op, 2)], { transB: { int: 1 } });
  ctx.finish(op, ctx.add('Reshape', [y, ctx.ints64(ctx.tensor(op.outputs[0]).shape, 'shape')]));
};

const softmax: Emit = (ctx, op) => {
  const beta = op.options.beta ?? 1;
  const x = beta === 1 ? ctx.input(op, 0) : ctx.add('Mul', [ctx.input(op, 0), ctx.float(beta)]);
  ctx.finish(op, ctx.add('Softmax', [x], { axis: { int: -1 } }), 0);
};

const transpose: Emit = (ctx, op) => {
  const rank = rankOf(ctx, op);
  const perm = ctx.constInts(op.inputs[1], 'TRANSPOSE perm').map((a) => axisIn(a, rank, op.op));
  ctx.finish(op, ctx.add('Transpose', [ctx.input(op, 0)], { perm: { ints: perm } }), 0);
};

const dequantize: Emit = (ctx, op) => {
  const src = ctx.tensor(op.inputs[0]);
  if (src.data) {
    const values = hostFloats(ctx, src, `DEQUANTIZE input ${src.name}`);
    ctx.initializers.push(initializer(ctx.output(op), DataType.FLOAT, src.shape, values));
    return;
  }
  if (src.dtype === 'float16') {
    ctx.add('Cast', [ctx.input(op, 0)], { to: { int: DataType.FLOAT } }, ctx.output(op));
    return;
  }
  const q = src.quantization;
  if (!q || (src.dtype !== 'int8' && src.dtype !== 'uint8'))
    throw new VaccelError('ENOTSUP', `TFLite DEQUANTIZE of ${src.dtype} ${src.name} is not supported`);
  ctx.add('DequantizeLinear', [ctx.input(op, 0), ...quantParams(ctx, src)], {}, ctx.output(op));
};

const quantize: Emit = (ctx, op) => {
  const dst = ctx.tensor(op.outputs[0]);
  if (!dst.quantization || (dst.dtype !== 'int8' && dst.dtype !== 'uint8'))
    throw new VaccelError('ENOTSUP', `TFLite QUANTIZE to ${dst.dtype} ${dst.name} is not supported`);
  ctx.add('QuantizeLinear', [ctx.input(op, 0), ...quantParams(ctx, dst)], {}, ctx.output(op));
};

function quantParams(ctx: Context, t: TfliteTensor): string[] {
  const q = t.quantization!;
  if (q.scale.length !== 1)
    throw new VaccelError('ENOTSUP', `TFLite per-axis quantized activation ${t.name} is not supported`);
  const scale = ctx.float(q.scale[0]!);
  const zero = ctx.fresh('zero_point');
  const z = q.zeroPoint[0] ?? 0;
  ctx.initializers.push(
    t.dtype === 'int8'
      ? initializer(zero, DataType.INT8, [], Int8Array.of(z))
      : initializer(zero, DataType.UINT8, [], Uint8Array.of(z)),
  );
  return [scale, zero];
}

/** A constant's values as float32 on the host (float16 widened, int8/uint8 dequantized), charged to the budget. */
function hostFloats(ctx: Context, t: TfliteTensor, what: string): Float32Array {
  const data = t.data!;
  const n = t.shape.reduce((a, b) => a * b, 1);
  ctx.budget.reserve(4 * n, what);
  const out = new Float32Array(n);
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  if (t.dtype === 'float16') {
    for (let i = 0; i < n; i++) out[i] = half(view.getUint16(2 * i, true));
    return out;
  }
  if (t.dtype === 'float32') {
    for (let i = 0; i < n; i++) out[i] = view.getFloat32(4 * i, true);
    return out;
  }
  const q = t.quantization;
  const read =
    t.dtype === 'int8'
      ? (i: number) => view.getInt8(i)
      : t.dtype === 'uint8'
        ? (i: number) => view.getUint8(i)
        : t.dtype === 'int16'
          ? (i: number) => view.getInt16(2 * i, true)
          : t.dtype === 'int32'
            ? (i: number) => view.getInt32(4 * i, true)
            : undefined;
  if (!q || !read)
    throw new VaccelError('ENOTSUP', `TFLite dequantizing constant ${t.dtype} ${t.name} is not supported`);
  const axis = q.scale.length > 1 ? axisIn(q.axis, t.shape.length, 'quantization') : -1;
  const inner = axis < 0 ? 1 : t.shape.slice(axis + 1).reduce((a, b) => a * b, 1);
  const dim = axis < 0 ? 1 : t.shape[axis]!;
  if (axis >= 0 && q.scale.length !== dim)
    throw new VaccelError('EINVAL', `TFLite ${t.name}: ${q.scale.length} scales for axis of ${dim}`);
  for (let i = 0; i < n; i++) {
    const c = axis < 0 ? 0 : Math.floor(i / inner) % dim;
    const v = read(i);
    out[i] = (q.scale[c] ?? 0) * (v - (q.zeroPoint[c] ?? q.zeroPoint[0] ?? 0));
  }
  return out;
}

/** IEEE half → number. */
function half(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

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

/**
 * The spatial operators: convolutions (regular, depthwise, transposed), pools and resizes. They
 * transpose NHWC → NCHW around the ONNX op and back (ONNX Runtime cancels back-to-back transposes).
 * @module
 */
import { VaccelError } from '@vaccel/core';
import { type Context, type Emit, optional } from './context.js';
import type { TfliteOperator } from './parse.js';

/** The custom operator of MediaPipe's segmentation models (a transposed convolution plus bias). */
export const TRANSPOSE_CONV_BIAS = 'Convolution2DTransposeBias';

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

/**
 * An ONNX Conv for a TFLite convolution: the filter transposed by `perm` to OIHW, stride, dilation
 * and SAME/VALID padding from the op's options, `group` groups.
 */
function emitConv(
  ctx: Context,
  op: TfliteOperator,
  x: number[],
  w: number[],
  perm: number[],
  group: number,
): void {
  const y = nhwc(ctx, op.outputs[0], op);
  const o = op.options;
  const weights = ctx.add('Transpose', [ctx.input(op, 1)], { perm: { ints: perm } });
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
}

/** CONV_2D: filter OHWI → OIHW, grouped when the input has a multiple of its channels. */
export const conv: Emit = (ctx, op) => {
  const x = nhwc(ctx, op.inputs[0], op);
  const w = nhwc(ctx, op.inputs[1], op); // [O, KH, KW, I]
  if (x.length !== 4 || w.length !== 4)
    throw new VaccelError('EINVAL', 'TFLite CONV_2D needs 4-d input and filter');
  const group = w[3]! > 0 && x[3]! % w[3]! === 0 ? x[3]! / w[3]! : 1;
  emitConv(ctx, op, x, w, [0, 3, 1, 2], group);
};

/** DEPTHWISE_CONV_2D: a Conv with one group per input channel. */
export const depthwise: Emit = (ctx, op) => {
  const x = nhwc(ctx, op.inputs[0], op);
  const w = nhwc(ctx, op.inputs[1], op); // [1, KH, KW, C·M]
  if (x.length !== 4 || w.length !== 4)
    throw new VaccelError('EINVAL', 'TFLite DEPTHWISE_CONV_2D needs 4-d input and filter');
  emitConv(ctx, op, x, w, [3, 0, 1, 2], x[3]!);
};

/** AVERAGE_POOL_2D / MAX_POOL_2D (padding excluded from the average). */
export const pool =
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
export const transposeConvBias: Emit = (ctx, op) => {
  const opts = op.customOptions;
  if (!opts || opts.byteLength < 12)
    throw new VaccelError('EINVAL', `TFLite ${TRANSPOSE_CONV_BIAS} needs 12 bytes of options`);
  const view = new DataView(opts.buffer, opts.byteOffset, 12);
  const same = view.getInt32(0, true) === 1;
  const stride: [number, number] = [view.getInt32(8, true), view.getInt32(4, true)];
  transposeConv(ctx, op, 0, 1, optional(ctx, op, 2), same, stride);
};

/** A transposed convolution reading input `xk`, weights `wk` (OHWI) and `bias`; shared by TRANSPOSE_CONV and the MediaPipe op. */
export const transposeConv = (
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

/** RESIZE_BILINEAR / RESIZE_NEAREST_NEIGHBOR to a constant size. */
export const resize =
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

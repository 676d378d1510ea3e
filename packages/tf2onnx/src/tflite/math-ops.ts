/**
 * Element-wise, activation, reduction, softmax and fully-connected operators: layout-agnostic,
 * computed on the NHWC values as they are.
 * @module
 */
import { VaccelError } from '@vaccel/core';
import type { node } from '../onnx-graph.js';
import { axisIn, type Emit, optional, rankOf } from './context.js';

/** A two-input element-wise op with the fused activation. */
export const binary =
  (onnx: string): Emit =>
  (ctx, op) =>
    ctx.finish(op, ctx.add(onnx, [ctx.input(op, 0), ctx.input(op, 1)]));
/** A one-input op (no fused activation). */
export const unary =
  (onnx: string, attrs: Parameters<typeof node>[3] = {}): Emit =>
  (ctx, op) =>
    ctx.finish(op, ctx.add(onnx, [ctx.input(op, 0)], attrs), 0);

/** MEAN / SUM / REDUCE_MAX over constant axes. */
export const reduce =
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

/** FULLY_CONNECTED: flatten, Gemm with transposed weights, reshape to the output. */
export const fullyConnected: Emit = (ctx, op) => {
  const w = ctx.tensor(op.inputs[1]).shape; // [O, K]
  if (w.length !== 2) throw new VaccelError('EINVAL', 'TFLite FULLY_CONNECTED needs 2-d weights');
  const flat = ctx.add('Reshape', [ctx.input(op, 0), ctx.ints64([-1, w[1]!], 'shape')]);
  const y = ctx.add('Gemm', [flat, ctx.input(op, 1), ...optional(ctx, op, 2)], { transB: { int: 1 } });
  ctx.finish(op, ctx.add('Reshape', [y, ctx.ints64(ctx.tensor(op.outputs[0]).shape, 'shape')]));
};

/** SOFTMAX over the last axis, scaled by beta. */
export const softmax: Emit = (ctx, op) => {
  const beta = op.options.beta ?? 1;
  const x = beta === 1 ? ctx.input(op, 0) : ctx.add('Mul', [ctx.input(op, 0), ctx.float(beta)]);
  ctx.finish(op, ctx.add('Softmax', [x], { axis: { int: -1 } }), 0);
};

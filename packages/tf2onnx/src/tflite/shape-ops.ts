/**
 * Shape operators: pad, reshape (also SQUEEZE and EXPAND_DIMS), concatenation and transpose. Their
 * shapes, paddings and permutations are constants read on the host.
 * @module
 */
import { VaccelError } from '@vaccel/core';
import { axisIn, type Emit, rankOf } from './context.js';

/** PAD / PADV2 with constant paddings (and optional pad value). */
export const pad: Emit = (ctx, op) => {
  const p = ctx.constInts(op.inputs[1], 'PAD paddings');
  const rank = p.length / 2;
  const begins = p.filter((_, i) => i % 2 === 0);
  const ends = p.filter((_, i) => i % 2 === 1);
  if (rank !== rankOf(ctx, op))
    throw new VaccelError('EINVAL', 'TFLite PAD: paddings do not match the input rank');
  const value = (op.inputs[2] ?? -1) >= 0 ? [ctx.input(op, 2)] : [];
  ctx.finish(op, ctx.add('Pad', [ctx.input(op, 0), ctx.ints64([...begins, ...ends], 'pads'), ...value]), 0);
};

/** RESHAPE (also SQUEEZE, EXPAND_DIMS) to the output tensor's static shape. */
export const reshape: Emit = (ctx, op) => {
  const out = ctx.tensor(op.outputs[0]).shape;
  ctx.finish(op, ctx.add('Reshape', [ctx.input(op, 0), ctx.ints64(out, 'shape')]), 0);
};

/** CONCATENATION along its axis. */
export const concatenation: Emit = (ctx, op) => {
  // TFLite's kernels refuse (or ignore) a fused activation here.
  if (op.options.fused_activation_function)
    throw new VaccelError('ENOTSUP', 'TFLite CONCATENATION with a fused activation is not supported');
  const rank = rankOf(ctx, op);
  const inputs = op.inputs.map((_, k) => ctx.input(op, k));
  ctx.finish(op, ctx.add('Concat', inputs, { axis: { int: axisIn(op.options.axis!, rank, op.op) } }));
};

/** TRANSPOSE by a constant permutation. */
export const transpose: Emit = (ctx, op) => {
  const rank = rankOf(ctx, op);
  const perm = ctx.constInts(op.inputs[1], 'TRANSPOSE perm').map((a) => axisIn(a, rank, op.op));
  ctx.finish(op, ctx.add('Transpose', [ctx.input(op, 0)], { perm: { ints: perm } }), 0);
};

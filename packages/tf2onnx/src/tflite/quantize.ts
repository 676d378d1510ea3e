/**
 * Quantization: the DEQUANTIZE and QUANTIZE operators and the host-side folding of float16 and
 * quantized constants to float32 (charged to the model's constant budget).
 * @module
 */
import { VaccelError } from '@vaccel/core';
import { DataType, initializer } from '../onnx-graph.js';
import { axisIn, type Context, type Emit, quantParams } from './context.js';
import type { TfliteTensor } from './parse.js';

/** DEQUANTIZE: a constant folds to a float32 initializer; float16 casts; int8/uint8 DequantizeLinear. */
export const dequantize: Emit = (ctx, op) => {
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

/** QUANTIZE: QuantizeLinear to a per-tensor int8/uint8 output. */
export const quantize: Emit = (ctx, op) => {
  const dst = ctx.tensor(op.outputs[0]);
  if (!dst.quantization || (dst.dtype !== 'int8' && dst.dtype !== 'uint8'))
    throw new VaccelError('ENOTSUP', `TFLite QUANTIZE to ${dst.dtype} ${dst.name} is not supported`);
  ctx.add('QuantizeLinear', [ctx.input(op, 0), ...quantParams(ctx, dst)], {}, ctx.output(op));
};

/** A constant's values as float32 on the host (float16 widened, int8/uint8 dequantized), charged to the budget. */
export function hostFloats(ctx: Context, t: TfliteTensor, what: string): Float32Array {
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

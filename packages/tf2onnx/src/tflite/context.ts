/**
 * The conversion context of the TFLite → ONNX converter: unique value names, node and initializer
 * building, quantized activations (dequantized on read, requantized on write), fused activations
 * and the NHWC ↔ NCHW transposes, plus the small helpers every op family shares.
 * @module
 */
import { VaccelError } from '@vaccel/core';
import type { ConstantBudget } from '../budget.js';
import type { NodeProto, TensorProto } from '../gen/onnx_pb.js';
import { DataType, initializer, node } from '../onnx-graph.js';
import type { TfliteModel, TfliteOperator, TfliteTensor } from './parse.js';

/** Emits the ONNX nodes of one TFLite operator into the context. */
export type Emit = (ctx: Context, op: TfliteOperator) => void;

const NHWC_TO_NCHW = [0, 3, 1, 2];
const NCHW_TO_NHWC = [0, 2, 3, 1];

/**
 * The state of one conversion: the ONNX nodes and initializers built so far and the value names
 * of the model's tensors. Holds the quantized-activation bookkeeping so every op family gets it.
 */
export class Context {
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

/** The ONNX value of optional input `k` of `op`, or none when the model omits it (index -1). */
export const optional = (ctx: Context, op: TfliteOperator, k: number): string[] =>
  (op.inputs[k] ?? -1) >= 0 ? [ctx.input(op, k)] : [];

/** The rank of the op's first input. */
export const rankOf = (ctx: Context, op: TfliteOperator) => ctx.tensor(op.inputs[0]).shape.length;
/** A TFLite axis (possibly negative) normalised into `[0, rank)`; throws `EINVAL` out of range. */
export const axisIn = (axis: number, rank: number, what: string) => {
  const a = axis < 0 ? axis + rank : axis;
  if (!(a >= 0 && a < Math.max(rank, 1)))
    throw new VaccelError('EINVAL', `TFLite ${what}: axis ${axis} out of range for rank ${rank}`);
  return a;
};

/**
 * The scale and zero-point initializers of a per-tensor quantized activation (lives here because
 * {@link Context} dequantizes and requantizes through it).
 */
export function quantParams(ctx: Context, t: TfliteTensor): string[] {
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

/**
 * A small TFLite flatbuffer writer for tests (schema.fbs field slots), and a runner comparing a
 * model through LiteRT.js with its conversion through ONNX Runtime.
 */
import { Builder } from 'flatbuffers';
import * as ort from 'onnxruntime-node';
import { convertTflite } from '../src/tflite/index.js';
import { BUILTIN_OPERATORS } from '../src/tflite/schema.js';
import { runLiteRt } from './litert.js';

/** A tensor: float32 unless `type` (schema TensorType) says otherwise; `data` makes it a constant. */
export interface TensorSpec {
  shape: number[];
  type?: number;
  data?: Uint8Array;
  name?: string;
  /** Affine quantization (QuantizationParameters scale, zero_point, quantized_dimension). */
  quant?: { scale: number[]; zeroPoint: number[]; axis?: number };
  /** A buffer index to write instead of the tensor's own (for malformed models). */
  buffer?: number;
}

/** A scalar field of an options table: slot, kind, value. */
export type OptionSpec = readonly [slot: number, kind: 'u8' | 'i32' | 'f32', value: number];

/** An operator: a builtin name or `{ custom }`, with its options table and union type. */
export interface OperatorSpec {
  op: string | { custom: string };
  inputs: number[];
  outputs: number[];
  optionsType?: number;
  options?: readonly OptionSpec[];
  /** RESHAPE's new_shape (ReshapeOptions slot 0). */
  newShape?: number[];
  customOptions?: Uint8Array;
}

/** A model of one subgraph. */
export interface ModelSpec {
  tensors: TensorSpec[];
  inputs: number[];
  outputs: number[];
  operators: OperatorSpec[];
}

/** BuiltinOptions union values the tests use. */
export const OPTIONS = {
  Conv2D: 1,
  DepthwiseConv2D: 2,
  Pool2D: 5,
  FullyConnected: 8,
  Softmax: 9,
  Concatenation: 10,
  Add: 11,
  ResizeBilinear: 15,
  Reshape: 17,
  Mul: 21,
  Pad: 22,
  Transpose: 26,
  Reducer: 27,
  Sub: 28,
  TransposeConv: 49,
  ResizeNearestNeighbor: 74,
  LeakyRelu: 75,
} as const;

function ints(b: Builder, values: readonly number[]): number {
  b.startVector(4, values.length, 4);
  for (let i = values.length - 1; i >= 0; i--) b.addInt32(values[i]!);
  return b.endVector();
}

function offsets(b: Builder, values: readonly number[]): number {
  b.startVector(4, values.length, 4);
  for (let i = values.length - 1; i >= 0; i--) b.addOffset(values[i]!);
  return b.endVector();
}

/** Serialises a model (identifier TFL3, schema version 3). */
export function buildTflite(spec: ModelSpec): Uint8Array {
  const b = new Builder(1024);
  // Buffers: 0 is the empty sentinel; each constant tensor gets its own.
  const bufferTables: number[] = [];
  b.startObject(3);
  bufferTables.push(b.endObject());
  const tensorBuffer = spec.tensors.map((t) => {
    if (!t.data) return 0;
    b.startVector(1, t.data.byteLength, 16);
    for (let i = t.data.byteLength - 1; i >= 0; i--) b.addInt8(t.data[i]!);
    const data = b.endVector();
    b.startObject(3);
    b.addFieldOffset(0, data, 0);
    bufferTables.push(b.endObject());
    return bufferTables.length - 1;
  });
  const tensors = spec.tensors.map((t, k) => {
    const name = b.createString(t.name ?? `t${k}`);
    const shape = ints(b, t.shape);
    let quant = 0;
    if (t.quant) {
      b.startVector(4, t.quant.scale.length, 4);
      for (let i = t.quant.scale.length - 1; i >= 0; i--) b.addFloat32(t.quant.scale[i]!);
      const scale = b.endVector();
      b.startVector(8, t.quant.zeroPoint.length, 8);
      for (let i = t.quant.zeroPoint.length - 1; i >= 0; i--) b.addInt64(BigInt(t.quant.zeroPoint[i]!));
      const zero = b.endVector();
      b.startObject(7);
      b.addFieldOffset(2, scale, 0);
      b.addFieldOffset(3, zero, 0);
      b.addFieldInt32(6, t.quant.axis ?? 0, 0);
      quant = b.endObject();
    }
    b.startObject(7);
    if (quant) b.addFieldOffset(4, quant, 0);
    b.addFieldOffset(0, shape, 0);
    b.addFieldInt8(1, t.type ?? 0, 0);
    b.addFieldInt32(2, t.buffer ?? tensorBuffer[k]!, 0);
    b.addFieldOffset(3, name, 0);
    return b.endObject();
  });
  const codes: string[] = [];
  const codeOf = (op: OperatorSpec['op']) => {
    const key = typeof op === 'string' ? op : `custom:${op.custom}`;
    if (!codes.includes(key)) codes.push(key);
    return codes.indexOf(key);
  };
  const operators = spec.operators.map((o) => {
    const inputs = ints(b, o.inputs);
    const outputs = ints(b, o.outputs);
    let options = 0;
    if (o.options || o.newShape) {
      const newShape = o.newShape ? ints(b, o.newShape) : 0;
      b.startObject(8);
      if (newShape) b.addFieldOffset(0, newShape, 0);
      for (const [slot, kind, value] of o.options ?? []) {
        if (kind === 'u8') b.addFieldInt8(slot, value, null);
        else if (kind === 'i32') b.addFieldInt32(slot, value, null);
        else b.addFieldFloat32(slot, value, null);
      }
      options = b.endObject();
    }
    const custom = o.customOptions ? b.createByteVector(o.customOptions) : 0;
    const index = codeOf(o.op);
    b.startObject(6);
    b.addFieldInt32(0, index, null);
    b.addFieldOffset(1, inputs, 0);
    b.addFieldOffset(2, outputs, 0);
    if (options) {
      b.addFieldInt8(3, o.optionsType ?? 0, 0);
      b.addFieldOffset(4, options, 0);
    }
    if (custom) b.addFieldOffset(5, custom, 0);
    return b.endObject();
  });
  const codeTables = codes.map((key) => {
    const custom = key.startsWith('custom:') ? b.createString(key.slice(7)) : 0;
    const code = custom ? 32 : BUILTIN_OPERATORS.indexOf(key);
    if (code < 0) throw new Error(`unknown builtin ${key}`);
    b.startObject(4);
    b.addFieldInt8(0, Math.min(code, 127), null);
    if (custom) b.addFieldOffset(1, custom, 0);
    b.addFieldInt32(2, 1, null);
    b.addFieldInt32(3, code, null);
    return b.endObject();
  });
  const tensorVec = offsets(b, tensors);
  const inputVec = ints(b, spec.inputs);
  const outputVec = ints(b, spec.outputs);
  const opVec = offsets(b, operators);
  const sgName = b.createString('main');
  b.startObject(5);
  b.addFieldOffset(0, tensorVec, 0);
  b.addFieldOffset(1, inputVec, 0);
  b.addFieldOffset(2, outputVec, 0);
  b.addFieldOffset(3, opVec, 0);
  b.addFieldOffset(4, sgName, 0);
  const subgraph = b.endObject();
  const codeVec = offsets(b, codeTables);
  const subgraphVec = offsets(b, [subgraph]);
  const description = b.createString('vaccel-ts test');
  const bufferVec = offsets(b, bufferTables);
  b.startObject(5);
  b.addFieldInt32(0, 3, null);
  b.addFieldOffset(1, codeVec, 0);
  b.addFieldOffset(2, subgraphVec, 0);
  b.addFieldOffset(3, description, 0);
  b.addFieldOffset(4, bufferVec, 0);
  b.finish(b.endObject(), 'TFL3');
  return b.asUint8Array().slice();
}

/** A seeded uniform generator in [lo, hi). */
export function random(seed: number): (lo?: number, hi?: number) => number {
  let s = seed >>> 0 || 1;
  return (lo = -1, hi = 1) => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return lo + ((s >>> 0) / 2 ** 32) * (hi - lo);
  };
}

/** Little-endian bytes of float32 values. */
export const f32 = (values: readonly number[]) => new Uint8Array(Float32Array.from(values).buffer);
/** Little-endian bytes of int32 values. */
export const i32 = (values: readonly number[]) => new Uint8Array(Int32Array.from(values).buffer);

/** Max abs difference, throwing on a length mismatch. */
export function maxAbsError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`lengths differ: ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    if (!(d <= m)) m = Number.isNaN(d) ? Number.POSITIVE_INFINITY : d;
  }
  return m;
}

/** Runs `model` through LiteRT.js and through the converter + ONNX Runtime on the same inputs. */
export async function runBoth(
  model: Uint8Array,
  feeds: readonly Float32Array[],
): Promise<{ reference: Float32Array[]; ours: Float32Array[]; oursShapes: number[][]; shapes: number[][] }> {
  const conversion = convertTflite(model);
  const session = await ort.InferenceSession.create(conversion.onnx);
  try {
    const results = await session.run(
      Object.fromEntries(
        conversion.inputs.map((io, k) => [io.name, new ort.Tensor('float32', feeds[k]!, io.shape)]),
      ),
    );
    const reference = await runLiteRt(
      model,
      conversion.inputs.map((io, k) => ({ data: feeds[k]!, shape: io.shape })),
    );
    return {
      reference,
      ours: conversion.outputs.map((io) => results[io.name]!.data as Float32Array),
      oursShapes: conversion.outputs.map((io) => results[io.name]!.dims.map(Number)),
      shapes: conversion.outputs.map((io) => io.shape),
    };
  } finally {
    await session.release();
  }
}

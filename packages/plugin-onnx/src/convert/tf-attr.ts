/**
 * Reading TensorFlow node attributes, and the shared shapes of op converters.
 * @module
 */
import { VaccelError } from '@vaccel/core';
import type { Conversion, TfNode } from './tf-graph.js';
import { type HostTensor, TfType } from './tf-tensor.js';

/** How one TensorFlow op becomes ONNX. */
export interface OpConverter {
  /** Emits the ONNX nodes computing the op's outputs (`node:0`, `node:1`…). */
  emit(n: TfNode, c: Conversion): void;
  /** Computes the outputs on the host when every input is constant; undefined leaves it to `emit`. */
  fold?(n: TfNode, inputs: readonly HostTensor[]): HostTensor[] | undefined;
}

const decoder = new TextDecoder();

export function attrInt(n: TfNode, key: string, fallback?: number): number {
  const v = n.attr[key]?.value;
  if (v?.case === 'i') return Number(v.value);
  if (fallback !== undefined) return fallback;
  throw new VaccelError('EINVAL', `node ${n.name} (${n.op}) has no int attribute ${key}`);
}

export function attrFloat(n: TfNode, key: string, fallback: number): number {
  const v = n.attr[key]?.value;
  return v?.case === 'f' ? v.value : fallback;
}

export function attrBool(n: TfNode, key: string, fallback = false): boolean {
  const v = n.attr[key]?.value;
  return v?.case === 'b' ? v.value : fallback;
}

export function attrString(n: TfNode, key: string, fallback: string): string {
  const v = n.attr[key]?.value;
  return v?.case === 's' ? decoder.decode(v.value) : fallback;
}

export function attrInts(n: TfNode, key: string, fallback: readonly number[] = []): number[] {
  const v = n.attr[key]?.value;
  return v?.case === 'list' && v.value.i.length > 0 ? v.value.i.map(Number) : [...fallback];
}

export function attrStrings(n: TfNode, key: string): string[] {
  const v = n.attr[key]?.value;
  return v?.case === 'list' ? v.value.s.map((s) => decoder.decode(s)) : [];
}

export function attrType(n: TfNode, key: string): TfType | undefined {
  const v = n.attr[key]?.value;
  return v?.case === 'type' ? v.value : undefined;
}

/** The op's element type: attr `T`, else its first input's. */
export const typeOf = (n: TfNode, c: Conversion): TfType => attrType(n, 'T') ?? c.type(n.inputs[0]!);

/** Output `k` of `n`, typed: the ONNX value name to write. */
export function out(n: TfNode, c: Conversion, type: TfType, k = 0): string {
  const name = `${n.name}:${k}`;
  c.setType(name, type);
  return name;
}

/** Input `i` of `n`; fails with a clear message when the graph gives fewer. */
export function input(n: TfNode, i: number): string {
  const t = n.inputs[i];
  if (t === undefined) throw new VaccelError('EINVAL', `node ${n.name} (${n.op}) needs input ${i}`);
  return t;
}

/** A constant input's values, for attributes ONNX wants static (axes, perms, sizes). */
export function constInput(n: TfNode, c: Conversion, i: number, what: string): HostTensor {
  const t = c.constant(input(n, i));
  if (!t)
    throw new VaccelError(
      'ENOTSUP',
      `node ${n.name} (${n.op}): its ${what} must be a constant for the ONNX converter`,
    );
  return t;
}

/** The value of input `i` as int64 (what ONNX shape inputs take), casting a run-time int32. */
export function int64Input(n: TfNode, c: Conversion, i: number): string {
  const t = input(n, i);
  const k = c.constant(t);
  if (k) return c.literal(`${n.name}/${i}`, Array.from(k.values), TfType.DT_INT64, [...k.dims]);
  if (c.type(t) === TfType.DT_INT64) return c.value(t);
  return c.apply('Cast', [c.value(t)], `${n.name}/${i}`, { to: { int: 7 } });
}

/** `data_format` is NHWC (TensorFlow's default), else NCHW. */
export function channelsLast(n: TfNode): boolean {
  const format = attrString(n, 'data_format', 'NHWC');
  if (format !== 'NHWC' && format !== 'NCHW')
    throw new VaccelError('ENOTSUP', `node ${n.name} (${n.op}): data_format ${format}`);
  return format === 'NHWC';
}

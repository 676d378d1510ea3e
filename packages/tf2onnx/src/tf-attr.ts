/**
 * Reading TensorFlow node attributes, and the shared shapes of op converters.
 * @module
 */
import { VaccelError } from '@vaccel/core';
import type { ConstantBudget } from './budget.js';
import type { Conversion, TfNode } from './conversion.js';
import { type HostTensor, TfType } from './tf-tensor.js';

/** How one TensorFlow op becomes ONNX. */
export interface OpConverter {
  /** Emits the ONNX nodes computing the op's outputs (`node:0`, `node:1`…). */
  emit(n: TfNode, c: Conversion): void;
  /**
   * Computes the outputs on the host when every input is constant; undefined leaves it to `emit`.
   * Every new array is charged to `budget` before it exists (see `allocHost`).
   */
  fold?(n: TfNode, inputs: readonly HostTensor[], budget: ConstantBudget): HostTensor[] | undefined;
}

const decoder = new TextDecoder();

/** Most outputs a node may declare (`num`, `num_split`): each is a value the converter names. */
export const MAX_OUTPUTS = 4096;

/** An int attribute counting a node's outputs. @throws VaccelError `EINVAL` outside 1…{@link MAX_OUTPUTS}. */
export function attrCount(n: TfNode, key: string): number {
  const v = attrInt(n, key);
  if (!(v >= 1 && v <= MAX_OUTPUTS))
    throw new VaccelError('EINVAL', `node ${n.name} (${n.op}): ${key} is ${v}, not 1…${MAX_OUTPUTS}`);
  return v;
}

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

/**
 * Most values a constant input may give that becomes an attribute or a shape (axes, perms,
 * paddings, sizes, split sizes): these are per-axis lists, and a list as long as a big constant
 * would become a JS array and an attribute of that length.
 */
export const MAX_LIST_INPUT = 4096;

/** A constant input's values as a list, for an attribute or a shape. @throws VaccelError `EINVAL` when longer than {@link MAX_LIST_INPUT}. */
export function constList(n: TfNode, c: Conversion, i: number, what: string): number[] {
  return listOf(n, constInput(n, c, i, what), what);
}

/** A folded input's values as a list (see {@link constList}). */
export function listOf(n: TfNode, t: HostTensor, what: string): number[] {
  if (t.values.length > MAX_LIST_INPUT)
    throw new VaccelError(
      'EINVAL',
      `node ${n.name} (${n.op}): its ${what} has ${t.values.length} values, more than the ${MAX_LIST_INPUT} a ${what} may have`,
    );
  const list = Array.from(t.values, Number);
  // Axes, sizes and permutations are whole numbers: a float constant (or an int64 past 2^53) in
  // their place is a malformed graph, not a value to round or to overflow an int64 attribute.
  const bad = list.find((v) => !Number.isSafeInteger(v));
  if (bad !== undefined)
    throw new VaccelError(
      'EINVAL',
      `node ${n.name} (${n.op}): its ${what} must be whole numbers, got ${bad}`,
    );
  return list;
}

/** The value of input `i` as int64 (what ONNX shape inputs take), casting a run-time int32. */
export function int64Input(n: TfNode, c: Conversion, i: number): string {
  const t = input(n, i);
  const k = c.constant(t);
  if (k) return c.literal(`${n.name}/${i}`, k.values, TfType.DT_INT64, [...k.dims]);
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

/**
 * The state of one TensorFlow → ONNX conversion, handed to each op's converter: the nodes and
 * initializers made so far, the constants known on the host, value names and types. A leaf
 * module: the graph walker (tf-graph.ts) and the op tables (tf-ops, tf-nn, tf-attr, tf-shape)
 * all use it, and it uses none of them.
 * @module
 */
import { VaccelError } from '@vaccel/core';
import { ConstantBudget } from './budget.js';
import type { NodeProto, TensorProto as OnnxTensor } from './gen/onnx_pb.js';
import type { AttrValue } from './gen/tensorflow_graph_pb.js';
import { type AttributeValue, node } from './onnx-graph.js';
import {
  checkedCount,
  floatToHalf,
  type HostTensor,
  halfToFloat,
  hostBytes,
  hostTensor,
  onnxType,
  type SplatTensor,
  TfType,
  toInitializer,
  typeName,
} from './tf-tensor.js';

/** A node with its inputs resolved to tensor names (`node:index`), control inputs dropped. */
export interface TfNode {
  readonly name: string;
  readonly op: string;
  readonly inputs: readonly string[];
  readonly attr: Readonly<Record<string, AttrValue>>;
}

/** `node` → `node:0`; `node:1` stays; TF.js also writes `node:output:1` inside functions. */
export const tensorName = (ref: string): string => {
  const parts = ref.split(':');
  return parts.length === 1 ? `${ref}:0` : `${parts[0]}:${parts[parts.length - 1]}`;
};

/** The state of one conversion, handed to each op's converter. */
export class Conversion {
  readonly nodes: NodeProto[] = [];
  readonly initializers: OnnxTensor[] = [];
  /** What the model's constants may take on the host; every constant array is charged to it first. */
  readonly budget: ConstantBudget;
  readonly #consts = new Map<string, HostTensor>();
  readonly #splats = new Map<string, SplatTensor>();
  readonly #types = new Map<string, TfType>();
  readonly #materialized = new Set<string>();
  #fresh = 0;

  constructor(budget: ConstantBudget = new ConstantBudget()) {
    this.budget = budget;
  }

  /**
   * A constant's value, or undefined when `tensor` is computed at run time. A splat is expanded
   * here, for the ops that need a constant's values (its bytes were charged when it was declared).
   */
  constant(tensor: string): HostTensor | undefined {
    const held = this.#consts.get(tensor);
    if (held) return held;
    const splat = this.#splats.get(tensor);
    if (!splat) return undefined;
    const values = new (hostBytes(splat.type) === 4 ? Float32Array : Float64Array)(checkedCount(splat.dims));
    values.fill(splat.value);
    const expanded = { type: splat.type, dims: splat.dims, values };
    this.#consts.set(tensor, expanded);
    this.#splats.delete(tensor);
    return expanded;
  }
  /** A constant already held element by element: what folding takes (a splat is not expanded to fold). */
  dense(tensor: string): HostTensor | undefined {
    return this.#consts.get(tensor);
  }
  /** True when `tensor` is a constant, held or splat. */
  isConstant(tensor: string): boolean {
    return this.#consts.has(tensor) || this.#splats.has(tensor);
  }
  setConstant(tensor: string, value: HostTensor): void {
    this.#consts.set(tensor, value);
    this.#types.set(tensor, value.type);
  }
  /**
   * Declares a splat constant: charged to the budget at its full size (ONNX Runtime holds it
   * expanded once it folds the ConstantOfShape), but never expanded by the converter unless an op
   * needs its values.
   */
  setSplat(tensor: string, splat: SplatTensor, where = tensor): void {
    this.budget.reserve(
      checkedCount(splat.dims) * hostBytes(splat.type),
      `${where}: a ${typeName(splat.type)} constant of shape [${splat.dims}]`,
    );
    onnxType(splat.type, tensor);
    this.#splats.set(tensor, splat);
    this.#types.set(tensor, splat.type);
  }
  /** The TensorFlow type of a tensor. */
  type(tensor: string): TfType {
    const t = this.#types.get(tensor);
    if (t === undefined) throw new VaccelError('EINVAL', `tensor ${tensor} is used before it is defined`);
    return t;
  }
  setType(tensor: string, type: TfType): void {
    this.#types.set(tensor, type);
  }
  /** The ONNX value name of a tensor, writing a constant out (an initializer, or a ConstantOfShape) on first use. */
  value(tensor: string): string {
    const splat = this.#splats.get(tensor);
    if (splat && !this.#materialized.has(tensor)) {
      this.#materialized.add(tensor);
      // One value and a shape: ONNX Runtime expands it, the converter never holds it expanded.
      const shape = this.literal(`${tensor}/shape`, splat.dims, TfType.DT_INT64, [splat.dims.length]);
      const one = { type: splat.type, dims: [1], values: Float64Array.of(splat.value) };
      const value = toInitializer(`${tensor}/value`, one, tensor);
      this.nodes.push(node('ConstantOfShape', [shape], [tensor], { value: { tensor: value } }, tensor));
    }
    const c = this.#consts.get(tensor);
    if (c && !this.#materialized.has(tensor)) {
      this.#materialized.add(tensor);
      if (halfExact(c)) {
        // Weights shipped as float16 (TF.js quantization) stay float16 in the file, half the bytes;
        // ONNX Runtime folds the Cast when it loads the model, so inference is unchanged.
        const half = `${tensor}/f16`;
        this.initializers.push(toInitializer(half, { ...c, type: TfType.DT_HALF }, tensor));
        this.nodes.push(node('Cast', [half], [tensor], { to: { int: 1 } }, half));
      } else this.initializers.push(toInitializer(tensor, c, tensor));
    }
    this.type(tensor);
    return tensor;
  }
  /** A new, unused value name derived from `base`. */
  fresh(base: string): string {
    return `${base}/_${this.#fresh++}`;
  }
  /** An initializer holding `values` of `type` (int64 unless told), returning its name. */
  literal(
    base: string,
    values: ArrayLike<number>,
    type = TfType.DT_INT64,
    dims: readonly number[] = [values.length],
  ): string {
    const name = this.fresh(base);
    this.setConstant(name, hostTensor(this.budget, type, dims, values, name));
    return this.value(name);
  }
  /** Adds a node; `outputs` are ONNX value names. */
  emit(
    opType: string,
    inputs: readonly string[],
    outputs: readonly string[],
    attributes: Readonly<Record<string, AttributeValue>> = {},
  ): void {
    this.nodes.push(node(opType, inputs, outputs, attributes, this.fresh(outputs[0] ?? opType)));
  }
  /** Emits `opType` on `input` into a fresh value and returns it. */
  apply(
    opType: string,
    inputs: readonly string[],
    base: string,
    attributes: Readonly<Record<string, AttributeValue>> = {},
  ) {
    const out = this.fresh(base);
    this.emit(opType, inputs, [out], attributes);
    return out;
  }
}

/** True for a large float32 constant whose every value is exactly a float16. */
function halfExact(t: HostTensor): boolean {
  if (t.type !== TfType.DT_FLOAT || t.values.length < 256) return false;
  for (const v of t.values) if (halfToFloat(floatToHalf(v)) !== v) return false;
  return true;
}

/**
 * The TF → ONNX op table: element-wise math, shapes, reductions and gathers here; image ops in
 * `tf-nn.ts`. Ops whose inputs are all constant are folded on the host where a `fold` exists
 * (shape arithmetic, which ONNX would otherwise see as int ops on tiny tensors).
 * @module
 */
import { VaccelError } from '@vaccel/core';
import {
  attrBool,
  attrFloat,
  attrInt,
  attrInts,
  attrType,
  channelsLast,
  constInput,
  input,
  int64Input,
  type OpConverter,
  out,
  typeOf,
} from './tf-attr.js';
import type { TfNode } from './tf-graph.js';
import { nnOps, relu6 } from './tf-nn.js';
import {
  count,
  elementwise,
  type HostTensor,
  hostTensor,
  isFloat,
  onnxType,
  permute,
  stridesOf,
  TfType,
} from './tf-tensor.js';

/** One ONNX op on all inputs, output type `T`; folded with `f` when given. */
function simple(onnx: string, f?: (...xs: number[]) => number): OpConverter {
  return {
    emit(n, c) {
      c.emit(
        onnx,
        n.inputs.map((i) => c.value(i)),
        [out(n, c, typeOf(n, c))],
      );
    },
    ...(f
      ? { fold: (n: TfNode, xs: readonly HostTensor[]) => [elementwise(xs[0]!.type, xs, f, n.name)] }
      : {}),
  };
}

/** A comparison: bool output. */
function compare(onnx: string, f: (a: number, b: number) => boolean): OpConverter {
  return {
    emit(n, c) {
      c.emit(
        onnx,
        n.inputs.map((i) => c.value(i)),
        [out(n, c, TfType.DT_BOOL)],
      );
    },
    fold: (n, xs) => [elementwise(TfType.DT_BOOL, xs, (a, b) => Number(f(a!, b!)), n.name)],
  };
}

const floorDiv: OpConverter = {
  emit(n, c) {
    const type = typeOf(n, c);
    const [a, b] = [0, 1].map((i) => c.value(input(n, i)));
    if (isFloat(type)) {
      const q = c.apply('Div', [a!, b!], `${n.name}/q`);
      c.emit('Floor', [q], [out(n, c, type)]);
      return;
    }
    // ONNX integer Div truncates; TensorFlow floors. Divide in float64 (exact below 2^53), floor, cast back.
    const [x, y] = [a!, b!].map((v, i) => c.apply('Cast', [v], `${n.name}/f${i}`, { to: { int: 11 } }));
    const q = c.apply('Floor', [c.apply('Div', [x!, y!], `${n.name}/q`)], `${n.name}/floor`);
    c.emit('Cast', [q], [out(n, c, type)], { to: { int: onnxType(type, n.name) } });
  },
  fold: (n, xs) => [elementwise(xs[0]!.type, xs, (a, b) => Math.floor(a! / b!), n.name)],
};

const floorMod: OpConverter = {
  emit(n, c) {
    const type = typeOf(n, c);
    const [a, b] = [0, 1].map((i) => c.value(input(n, i)));
    if (!isFloat(type)) {
      c.emit('Mod', [a!, b!], [out(n, c, type)], { fmod: { int: 0 } });
      return;
    }
    const q = c.apply('Floor', [c.apply('Div', [a!, b!], `${n.name}/q`)], `${n.name}/floor`);
    c.emit('Sub', [a!, c.apply('Mul', [q, b!], `${n.name}/m`)], [out(n, c, type)]);
  },
  fold: (n, xs) => [elementwise(xs[0]!.type, xs, (a, b) => a! - Math.floor(a! / b!) * b!, n.name)],
};

const squaredDifference: OpConverter = {
  emit(n, c) {
    const d = c.apply('Sub', [c.value(input(n, 0)), c.value(input(n, 1))], `${n.name}/d`);
    c.emit('Mul', [d, d], [out(n, c, typeOf(n, c))]);
  },
  fold: (n, xs) => [elementwise(xs[0]!.type, xs, (a, b) => (a! - b!) ** 2, n.name)],
};

const unary = (onnx: string, f?: (x: number) => number) => simple(onnx, f && ((x) => f(x!)));

const cast: OpConverter = {
  emit(n, c) {
    const to = attrType(n, 'DstT') ?? TfType.DT_FLOAT;
    c.emit('Cast', [c.value(input(n, 0))], [out(n, c, to)], { to: { int: onnxType(to, n.name) } });
  },
  fold: (n, [x]) => {
    const to = attrType(n, 'DstT') ?? TfType.DT_FLOAT;
    const f = isFloat(to)
      ? (v: number) => v
      : to === TfType.DT_BOOL
        ? (v: number) => Number(v !== 0)
        : Math.trunc;
    return [hostTensor(to, x!.dims, Array.from(x!.values, f))];
  },
};

/** Normalises a possibly negative axis for rank r. */
const axisOf = (axis: number, rank: number) => (axis < 0 ? axis + rank : axis);

const reshape: OpConverter = {
  emit(n, c) {
    c.emit('Reshape', [c.value(input(n, 0)), int64Input(n, c, 1)], [out(n, c, typeOf(n, c))]);
  },
  fold: (_n, [x, shape]) => {
    const dims = Array.from(shape!.values);
    const known = count(dims.filter((d) => d !== -1));
    return [
      hostTensor(
        x!.type,
        dims.map((d) => (d === -1 ? x!.values.length / known : d)),
        x!.values,
      ),
    ];
  },
};

const transpose: OpConverter = {
  emit(n, c) {
    const perm = Array.from(constInput(n, c, 1, 'perm').values);
    c.emit('Transpose', [c.value(input(n, 0))], [out(n, c, typeOf(n, c))], { perm: { ints: perm } });
  },
  fold: (_n, [x, perm]) => {
    const p = Array.from(perm!.values);
    return [
      hostTensor(
        x!.type,
        p.map((i) => x!.dims[i]!),
        permute(x!.values, x!.dims, p),
      ),
    ];
  },
};

const expandDims: OpConverter = {
  emit(n, c) {
    c.emit('Unsqueeze', [c.value(input(n, 0)), int64Input(n, c, 1)], [out(n, c, typeOf(n, c))]);
  },
  fold: (_n, [x, axis]) => {
    const dims = [...x!.dims];
    dims.splice(axisOf(axis!.values[0]!, dims.length + 1), 0, 1);
    return [hostTensor(x!.type, dims, x!.values)];
  },
};

const squeeze: OpConverter = {
  emit(n, c) {
    const axes = attrInts(n, 'squeeze_dims');
    const inputs = [c.value(input(n, 0))];
    if (axes.length > 0) inputs.push(c.literal(`${n.name}/axes`, axes));
    c.emit('Squeeze', inputs, [out(n, c, typeOf(n, c))]);
  },
  fold: (n, [x]) => {
    const axes = attrInts(n, 'squeeze_dims').map((a) => axisOf(a, x!.dims.length));
    const dims = x!.dims.filter((d, i) => (axes.length > 0 ? !axes.includes(i) : d !== 1));
    return [hostTensor(x!.type, dims, x!.values)];
  },
};

/** Concatenates host tensors along `axis`. */
function concatHost(parts: readonly HostTensor[], axis: number): HostTensor {
  const rank = parts[0]!.dims.length;
  const a = axisOf(axis, rank);
  const dims = [...parts[0]!.dims];
  dims[a] = parts.reduce((s, p) => s + (p.dims[a] ?? 1), 0);
  const outer = count(dims.slice(0, a));
  const values: number[] = [];
  for (let o = 0; o < outer; o++) {
    for (const p of parts) {
      const inner = count(p.dims.slice(a));
      for (let i = 0; i < inner; i++) values.push(p.values[o * inner + i]!);
    }
  }
  return hostTensor(parts[0]!.type, dims, values);
}

const concat: OpConverter = {
  emit(n, c) {
    const axis = constInput(n, c, n.inputs.length - 1, 'axis').values[0]!;
    const parts = n.inputs.slice(0, -1).map((i) => c.value(i));
    c.emit('Concat', parts, [out(n, c, typeOf(n, c))], { axis: { int: axis } });
  },
  fold: (_n, xs) => [concatHost(xs.slice(0, -1), xs[xs.length - 1]!.values[0]!)],
};

const pack: OpConverter = {
  emit(n, c) {
    const axis = attrInt(n, 'axis', 0);
    const axes = c.literal(`${n.name}/axis`, [axis]);
    const parts = n.inputs.map((i) => c.apply('Unsqueeze', [c.value(i), axes], `${n.name}/u`));
    c.emit('Concat', parts, [out(n, c, typeOf(n, c))], { axis: { int: axis } });
  },
  fold: (n, xs) => {
    const axis = attrInt(n, 'axis', 0);
    const rank = xs[0]!.dims.length + 1;
    return [
      concatHost(
        xs.map((x) => {
          const dims = [...x.dims];
          dims.splice(axisOf(axis, rank), 0, 1);
          return hostTensor(x.type, dims, x.values);
        }),
        axis,
      ),
    ];
  },
};

const unpack: OpConverter = {
  emit(n, c) {
    const num = attrInt(n, 'num');
    const axis = attrInt(n, 'axis', 0);
    const type = typeOf(n, c);
    const parts = Array.from({ length: num }, (_, k) => c.fresh(`${n.name}/${k}`));
    c.emit('Split', [c.value(input(n, 0))], parts, { axis: { int: axis } });
    const axes = c.literal(`${n.name}/axis`, [axis]);
    for (const [k, p] of parts.entries()) c.emit('Squeeze', [p, axes], [out(n, c, type, k)]);
  },
};

/** Split(axis, x) into num_split equal parts; SplitV(x, sizes, axis). */
function split(sizesGiven: boolean): OpConverter {
  return {
    emit(n, c) {
      const [xi, ai] = sizesGiven ? [0, 2] : [1, 0];
      const axis = constInput(n, c, ai, 'axis').values[0]!;
      const num = attrInt(n, 'num_split');
      const inputs = [c.value(input(n, xi))];
      if (sizesGiven) {
        const sizes = Array.from(constInput(n, c, 1, 'size_splits').values);
        if (sizes.includes(-1)) throw new VaccelError('ENOTSUP', `node ${n.name} (SplitV): a size of -1`);
        inputs.push(c.literal(`${n.name}/split`, sizes));
      }
      const type = typeOf(n, c);
      const outs = Array.from({ length: num }, (_, k) => out(n, c, type, k));
      c.emit('Split', inputs, outs, { axis: { int: axis } });
    },
  };
}

function reduce(onnx: string): OpConverter {
  return {
    emit(n, c) {
      const axes = Array.from(constInput(n, c, 1, 'axes').values);
      const keep = { keepdims: { int: Number(attrBool(n, 'keep_dims')) } };
      const x = c.value(input(n, 0));
      const target = out(n, c, typeOf(n, c));
      // Opset 13 takes ReduceSum's axes as an input and the others' as an attribute.
      if (onnx === 'ReduceSum') c.emit(onnx, [x, c.literal(`${n.name}/axes`, axes)], [target], keep);
      else c.emit(onnx, [x], [target], { axes: { ints: axes }, ...keep });
    },
  };
}

function argReduce(onnx: 'ArgMax' | 'ArgMin'): OpConverter {
  return {
    emit(n, c) {
      const axis = constInput(n, c, 1, 'axis').values[0]!;
      const to = attrType(n, 'output_type') ?? TfType.DT_INT64;
      const y = c.apply(onnx, [c.value(input(n, 0))], `${n.name}/arg`, {
        axis: { int: axis },
        keepdims: { int: 0 },
      });
      c.emit('Cast', [y], [out(n, c, to)], { to: { int: onnxType(to, n.name) } });
    },
  };
}

const gatherV2: OpConverter = {
  emit(n, c) {
    if (attrInt(n, 'batch_dims', 0) !== 0)
      throw new VaccelError('ENOTSUP', `node ${n.name} (GatherV2): batch_dims`);
    const axis = n.inputs.length > 2 ? constInput(n, c, 2, 'axis').values[0]! : 0;
    c.emit(
      'Gather',
      [c.value(input(n, 0)), int64Input(n, c, 1)],
      [out(n, c, attrType(n, 'Tparams') ?? c.type(input(n, 0)))],
      {
        axis: { int: axis },
      },
    );
  },
};

const gatherNd: OpConverter = {
  emit(n, c) {
    const type = attrType(n, 'Tparams') ?? c.type(input(n, 0));
    c.emit('GatherND', [c.value(input(n, 0)), int64Input(n, c, 1)], [out(n, c, type)]);
  },
};

function pad(withValue: boolean): OpConverter {
  return {
    emit(n, c) {
      const p = Array.from(constInput(n, c, 1, 'paddings').values);
      const pads = [...p.filter((_, i) => i % 2 === 0), ...p.filter((_, i) => i % 2 === 1)];
      const inputs = [c.value(input(n, 0)), c.literal(`${n.name}/pads`, pads)];
      if (withValue) inputs.push(c.value(input(n, 2)));
      c.emit('Pad', inputs, [out(n, c, typeOf(n, c))], { mode: { string: 'constant' } });
    },
  };
}

/** SparseToDense(indices, output_shape, values, default): host only (it has no ONNX counterpart). */
const sparseToDense: OpConverter = {
  emit(n) {
    throw new VaccelError('ENOTSUP', `node ${n.name} (SparseToDense): only constant inputs are supported`);
  },
  fold: (_n, [indices, shape, values, fill]) => {
    const dims = Array.from(shape!.values);
    const result = new Float64Array(count(dims)).fill(fill!.values[0]!);
    const strides = stridesOf(dims);
    const rows = indices!.dims.length === 0 ? 1 : indices!.dims[0]!;
    const width = indices!.dims.length > 1 ? indices!.dims[1]! : 1;
    for (let r = 0; r < rows; r++) {
      let at = 0;
      for (let k = 0; k < width; k++) at += indices!.values[r * width + k]! * strides[k]!;
      result[at] = values!.values.length === 1 ? values!.values[0]! : values!.values[r]!;
    }
    return [hostTensor(values!.type, dims, result)];
  },
};

const identity: OpConverter = {
  emit(n, c) {
    c.emit('Identity', [c.value(input(n, 0))], [out(n, c, typeOf(n, c))]);
  },
  fold: (_n, [x]) => [x!],
};

const rsqrt: OpConverter = {
  emit(n, c) {
    c.emit(
      'Reciprocal',
      [c.apply('Sqrt', [c.value(input(n, 0))], `${n.name}/sqrt`)],
      [out(n, c, typeOf(n, c))],
    );
  },
};

const square: OpConverter = {
  emit(n, c) {
    const x = c.value(input(n, 0));
    c.emit('Mul', [x, x], [out(n, c, typeOf(n, c))]);
  },
};

const shape: OpConverter = {
  emit(n, c) {
    const to = attrType(n, 'out_type') ?? TfType.DT_INT32;
    const s = c.apply('Shape', [c.value(input(n, 0))], `${n.name}/shape`);
    c.emit('Cast', [s], [out(n, c, to)], { to: { int: onnxType(to, n.name) } });
  },
};

const topK: OpConverter = {
  emit(n, c) {
    const type = typeOf(n, c);
    const idx = c.fresh(`${n.name}/idx`);
    const k = c.apply('Reshape', [int64Input(n, c, 1), c.literal(`${n.name}/one`, [1])], `${n.name}/k`);
    c.emit('TopK', [c.value(input(n, 0)), k], [out(n, c, type, 0), idx], {
      sorted: { int: Number(attrBool(n, 'sorted', true)) },
    });
    c.emit('Cast', [idx], [out(n, c, TfType.DT_INT32, 1)], { to: { int: 6 } });
  },
};

const leakyRelu: OpConverter = {
  emit(n, c) {
    c.emit('LeakyRelu', [c.value(input(n, 0))], [out(n, c, typeOf(n, c))], {
      alpha: { float: attrFloat(n, 'alpha', 0.2) },
    });
  },
};

const relu6Op: OpConverter = {
  emit(n, c) {
    c.emit('Identity', [relu6(n, c, c.value(input(n, 0)))], [out(n, c, typeOf(n, c))]);
  },
};

const softmax = (onnx: string): OpConverter => ({
  emit(n, c) {
    c.emit(onnx, [c.value(input(n, 0))], [out(n, c, typeOf(n, c))], { axis: { int: -1 } });
  },
});

const biasAdd: OpConverter = {
  emit(n, c) {
    let bias = c.value(input(n, 1));
    // NCHW adds the bias per channel: [C] → [C,1,1].
    if (!channelsLast(n))
      bias = c.apply('Unsqueeze', [bias, c.literal(`${n.name}/hw`, [1, 2])], `${n.name}/b`);
    c.emit('Add', [c.value(input(n, 0)), bias], [out(n, c, typeOf(n, c))]);
  },
};

/** Every op the converter handles, by TensorFlow op name. */
export const tfOps: Record<string, OpConverter> = {
  ...nnOps,
  Identity: identity,
  StopGradient: identity,
  Add: simple('Add', (a, b) => a! + b!),
  AddV2: simple('Add', (a, b) => a! + b!),
  AddN: simple('Sum', (...xs) => xs.reduce((s, x) => s + x, 0)),
  BiasAdd: biasAdd,
  Sub: simple('Sub', (a, b) => a! - b!),
  Mul: simple('Mul', (a, b) => a! * b!),
  RealDiv: simple('Div', (a, b) => a! / b!),
  Div: simple('Div'),
  FloorDiv: floorDiv,
  FloorMod: floorMod,
  Maximum: simple('Max', (a, b) => Math.max(a!, b!)),
  Minimum: simple('Min', (a, b) => Math.min(a!, b!)),
  Pow: simple('Pow', (a, b) => a! ** b!),
  SquaredDifference: squaredDifference,
  Equal: compare('Equal', (a, b) => a === b),
  Greater: compare('Greater', (a, b) => a > b),
  Less: compare('Less', (a, b) => a < b),
  GreaterEqual: compare('GreaterOrEqual', (a, b) => a >= b),
  LessEqual: compare('LessOrEqual', (a, b) => a <= b),
  Relu: unary('Relu', (x) => Math.max(x, 0)),
  Relu6: relu6Op,
  LeakyRelu: leakyRelu,
  Elu: unary('Elu'),
  Selu: unary('Selu'),
  Sigmoid: unary('Sigmoid', (x) => 1 / (1 + Math.exp(-x))),
  Tanh: unary('Tanh', Math.tanh),
  Softplus: unary('Softplus'),
  Exp: unary('Exp', Math.exp),
  Log: unary('Log', Math.log),
  Sqrt: unary('Sqrt', Math.sqrt),
  Rsqrt: rsqrt,
  Square: square,
  Neg: unary('Neg', (x) => -x),
  Abs: unary('Abs', Math.abs),
  Floor: unary('Floor', Math.floor),
  Ceil: unary('Ceil', Math.ceil),
  Round: unary('Round'),
  Reciprocal: unary('Reciprocal', (x) => 1 / x),
  Softmax: softmax('Softmax'),
  LogSoftmax: softmax('LogSoftmax'),
  Cast: cast,
  Reshape: reshape,
  Transpose: transpose,
  ExpandDims: expandDims,
  Squeeze: squeeze,
  ConcatV2: concat,
  Pack: pack,
  Unpack: unpack,
  Split: split(false),
  SplitV: split(true),
  Pad: pad(false),
  PadV2: pad(true),
  Mean: reduce('ReduceMean'),
  Sum: reduce('ReduceSum'),
  Max: reduce('ReduceMax'),
  Min: reduce('ReduceMin'),
  Prod: reduce('ReduceProd'),
  ArgMax: argReduce('ArgMax'),
  ArgMin: argReduce('ArgMin'),
  GatherV2: gatherV2,
  GatherNd: gatherNd,
  SparseToDense: sparseToDense,
  Shape: shape,
  TopKV2: topK,
};

/** The TensorFlow ops the converter handles (besides Const and Placeholder), sorted. */
export const supportedTfOps = (): string[] => Object.keys(tfOps).sort();

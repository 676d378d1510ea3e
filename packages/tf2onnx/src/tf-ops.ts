/**
 * The TF → ONNX op table: element-wise math and reductions here; image ops in `tf-nn.ts`, shape
 * ops in `tf-shape.ts`. Ops whose inputs are all constant are folded on the host where a `fold`
 * exists (shape arithmetic, which ONNX would otherwise see as int ops on tiny tensors).
 * @module
 */

import type { ConstantBudget } from './budget.js';
import type { TfNode } from './conversion.js';
import {
  attrBool,
  attrFloat,
  attrType,
  channelsLast,
  constInput,
  constList,
  input,
  int64Input,
  type OpConverter,
  out,
  typeOf,
} from './tf-attr.js';
import { nnOps, relu6 } from './tf-nn.js';
import { shapeOps } from './tf-shape.js';
import { allocHost, elementwise, type HostTensor, isFloat, onnxType, TfType } from './tf-tensor.js';

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
      ? {
          fold: (n: TfNode, xs: readonly HostTensor[], budget: ConstantBudget) => [
            elementwise(budget, xs[0]!.type, xs, f, n.name),
          ],
        }
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
    fold: (n, xs, budget) => [elementwise(budget, TfType.DT_BOOL, xs, (a, b) => Number(f(a!, b!)), n.name)],
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
  fold: (n, xs, budget) => [elementwise(budget, xs[0]!.type, xs, (a, b) => Math.floor(a! / b!), n.name)],
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
  fold: (n, xs, budget) => [
    elementwise(budget, xs[0]!.type, xs, (a, b) => a! - Math.floor(a! / b!) * b!, n.name),
  ],
};

const squaredDifference: OpConverter = {
  emit(n, c) {
    const d = c.apply('Sub', [c.value(input(n, 0)), c.value(input(n, 1))], `${n.name}/d`);
    c.emit('Mul', [d, d], [out(n, c, typeOf(n, c))]);
  },
  fold: (n, xs, budget) => [elementwise(budget, xs[0]!.type, xs, (a, b) => (a! - b!) ** 2, n.name)],
};

const unary = (onnx: string, f?: (x: number) => number) => simple(onnx, f && ((x) => f(x!)));

const cast: OpConverter = {
  emit(n, c) {
    const to = attrType(n, 'DstT') ?? TfType.DT_FLOAT;
    c.emit('Cast', [c.value(input(n, 0))], [out(n, c, to)], { to: { int: onnxType(to, n.name) } });
  },
  fold: (n, [x], budget) => {
    const to = attrType(n, 'DstT') ?? TfType.DT_FLOAT;
    const f = isFloat(to)
      ? (v: number) => v
      : to === TfType.DT_BOOL
        ? (v: number) => Number(v !== 0)
        : Math.trunc;
    const values = allocHost(budget, to, x!.dims, n.name);
    for (let i = 0; i < values.length; i++) values[i] = f(x!.values[i]!);
    return [{ type: to, dims: x!.dims, values }];
  },
};

function reduce(onnx: string): OpConverter {
  return {
    emit(n, c) {
      const axes = constList(n, c, 1, 'axes');
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
  ...shapeOps,
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
  Mean: reduce('ReduceMean'),
  Sum: reduce('ReduceSum'),
  Max: reduce('ReduceMax'),
  Min: reduce('ReduceMin'),
  Prod: reduce('ReduceProd'),
  ArgMax: argReduce('ArgMax'),
  ArgMin: argReduce('ArgMin'),
  TopKV2: topK,
};

/** The TensorFlow ops the converter handles (besides Const and Placeholder), sorted. */
export const supportedTfOps = (): string[] => Object.keys(tfOps).sort();

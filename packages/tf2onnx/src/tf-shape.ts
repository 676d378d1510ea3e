/**
 * Shape ops of the TF → ONNX converter: reshape, transpose, expand/squeeze, concat/pack/unpack,
 * split, pad, gathers, shape, SparseToDense. Each folds on the host when its inputs are constant.
 * @module
 */
import { VaccelError } from '@vaccel/core';
import type { ConstantBudget } from './budget.js';
import {
  attrCount,
  attrInt,
  attrInts,
  attrType,
  constInput,
  constList,
  input,
  int64Input,
  listOf,
  type OpConverter,
  out,
  typeOf,
} from './tf-attr.js';
import {
  allocHost,
  count,
  type HostTensor,
  onnxType,
  reshaped,
  stridesOf,
  TfType,
  transposed,
} from './tf-tensor.js';

/** Normalises a possibly negative axis for rank r. */
const axisOf = (axis: number, rank: number) => (axis < 0 ? axis + rank : axis);

const reshape: OpConverter = {
  emit(n, c) {
    c.emit('Reshape', [c.value(input(n, 0)), int64Input(n, c, 1)], [out(n, c, typeOf(n, c))]);
  },
  fold: (n, [x, shape]) => {
    const dims = listOf(n, shape!, 'shape');
    const known = count(dims.filter((d) => d !== -1));
    return [
      reshaped(
        x!,
        dims.map((d) => (d === -1 ? x!.values.length / known : d)),
        n.name,
      ),
    ];
  },
};

const transpose: OpConverter = {
  emit(n, c) {
    const perm = constList(n, c, 1, 'perm');
    c.emit('Transpose', [c.value(input(n, 0))], [out(n, c, typeOf(n, c))], { perm: { ints: perm } });
  },
  fold: (n, [x, perm], budget) => [transposed(budget, x!, listOf(n, perm!, 'perm'), n.name)],
};

const expandDims: OpConverter = {
  emit(n, c) {
    c.emit('Unsqueeze', [c.value(input(n, 0)), int64Input(n, c, 1)], [out(n, c, typeOf(n, c))]);
  },
  fold: (n, [x, axis]) => {
    const dims = [...x!.dims];
    dims.splice(axisOf(axis!.values[0]!, dims.length + 1), 0, 1);
    return [reshaped(x!, dims, n.name)];
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
    return [reshaped(x!, dims, n.name)];
  },
};

/** Concatenates host tensors along `axis`. @throws VaccelError `EINVAL` when their shapes differ off the axis. */
function concatHost(
  budget: ConstantBudget,
  parts: readonly HostTensor[],
  axis: number,
  where: string,
): HostTensor {
  if (parts.length === 0) throw new VaccelError('EINVAL', `${where}: nothing to concatenate`);
  const rank = parts[0]!.dims.length;
  const a = axisOf(axis, rank);
  if (!(a >= 0 && a < rank))
    throw new VaccelError('EINVAL', `${where}: axis ${axis} is outside rank ${rank}`);
  for (const p of parts)
    if (p.dims.length !== rank || p.dims.some((d, i) => i !== a && d !== parts[0]!.dims[i]))
      throw new VaccelError(
        'EINVAL',
        `${where}: shapes [${parts[0]!.dims}] and [${p.dims}] do not concatenate on axis ${a}`,
      );
  const dims = [...parts[0]!.dims];
  dims[a] = parts.reduce((s, p) => s + p.dims[a]!, 0);
  const values = allocHost(budget, parts[0]!.type, dims, where);
  const outer = count(dims.slice(0, a));
  let at = 0;
  for (let o = 0; o < outer; o++) {
    for (const p of parts) {
      const inner = count(p.dims.slice(a));
      values.set(p.values.subarray(o * inner, (o + 1) * inner), at);
      at += inner;
    }
  }
  return { type: parts[0]!.type, dims, values };
}

const concat: OpConverter = {
  emit(n, c) {
    const axis = constInput(n, c, n.inputs.length - 1, 'axis').values[0]!;
    const parts = n.inputs.slice(0, -1).map((i) => c.value(i));
    c.emit('Concat', parts, [out(n, c, typeOf(n, c))], { axis: { int: axis } });
  },
  fold: (n, xs, budget) => [concatHost(budget, xs.slice(0, -1), xs[xs.length - 1]!.values[0]!, n.name)],
};

const pack: OpConverter = {
  emit(n, c) {
    const axis = attrInt(n, 'axis', 0);
    const axes = c.literal(`${n.name}/axis`, [axis]);
    const parts = n.inputs.map((i) => c.apply('Unsqueeze', [c.value(i), axes], `${n.name}/u`));
    c.emit('Concat', parts, [out(n, c, typeOf(n, c))], { axis: { int: axis } });
  },
  fold: (n, xs, budget) => {
    const axis = attrInt(n, 'axis', 0);
    const rank = (xs[0]?.dims.length ?? 0) + 1;
    return [
      concatHost(
        budget,
        xs.map((x) => {
          const dims = [...x.dims];
          dims.splice(axisOf(axis, rank), 0, 1);
          return reshaped(x, dims, n.name);
        }),
        axis,
        n.name,
      ),
    ];
  },
};

const unpack: OpConverter = {
  emit(n, c) {
    const num = attrCount(n, 'num');
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
      const num = attrCount(n, 'num_split');
      const inputs = [c.value(input(n, xi))];
      if (sizesGiven) {
        const sizes = constList(n, c, 1, 'size_splits');
        if (sizes.includes(-1)) throw new VaccelError('ENOTSUP', `node ${n.name} (SplitV): a size of -1`);
        inputs.push(c.literal(`${n.name}/split`, sizes));
      }
      const type = typeOf(n, c);
      const outs = Array.from({ length: num }, (_, k) => out(n, c, type, k));
      c.emit('Split', inputs, outs, { axis: { int: axis } });
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
      const p = constList(n, c, 1, 'paddings');
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
  fold: (n, [indices, shape, values, fill], budget) => {
    const dims = listOf(n, shape!, 'output_shape');
    const result = allocHost(budget, values!.type, dims, n.name).fill(fill!.values[0]!);
    const strides = stridesOf(dims);
    const rows = indices!.dims.length === 0 ? 1 : indices!.dims[0]!;
    const width = indices!.dims.length > 1 ? indices!.dims[1]! : 1;
    for (let r = 0; r < rows; r++) {
      let at = 0;
      for (let k = 0; k < width; k++) {
        const index = indices!.values[r * width + k]!;
        if (!(index >= 0 && index < dims[k]!))
          throw new VaccelError(
            'EINVAL',
            `SparseToDense: index ${index} is outside dimension ${k} of [${dims}]`,
          );
        at += index * strides[k]!;
      }
      result[at] = values!.values.length === 1 ? values!.values[0]! : values!.values[r]!;
    }
    return [{ type: values!.type, dims, values: result }];
  },
};

const shape: OpConverter = {
  emit(n, c) {
    const to = attrType(n, 'out_type') ?? TfType.DT_INT32;
    const s = c.apply('Shape', [c.value(input(n, 0))], `${n.name}/shape`);
    c.emit('Cast', [s], [out(n, c, to)], { to: { int: onnxType(to, n.name) } });
  },
};

const INT64_MAX = 2 ** 62; // "to the end" for ONNX Slice (clamped to the dim)

/**
 * StridedSlice(x, begin, end, strides) with begin/end/shrink-axis masks (constant begin, end,
 * strides); ellipsis and new-axis masks are refused.
 */
const stridedSlice: OpConverter = {
  emit(n, c) {
    for (const mask of ['ellipsis_mask', 'new_axis_mask'])
      if (attrInt(n, mask, 0) !== 0)
        throw new VaccelError('ENOTSUP', `node ${n.name} (StridedSlice): ${mask} is not supported`);
    const [begin, end, strides] = [1, 2, 3].map((i) =>
      constList(n, c, i, ['begin', 'end', 'strides'][i - 1]!),
    );
    const [beginMask, endMask, shrink] = ['begin_mask', 'end_mask', 'shrink_axis_mask'].map((m) =>
      attrInt(n, m, 0),
    );
    const starts: number[] = [];
    const ends: number[] = [];
    for (let i = 0; i < begin!.length; i++) {
      const step = strides![i]!;
      const bit = 1 << i;
      starts.push(beginMask! & bit ? (step > 0 ? 0 : INT64_MAX) : begin![i]!);
      // A shrunk axis takes exactly one element (begin, or the last one for -1).
      if (shrink! & bit) ends.push(begin![i]! === -1 ? INT64_MAX : begin![i]! + 1);
      else ends.push(endMask! & bit ? (step > 0 ? INT64_MAX : -INT64_MAX) : end![i]!);
    }
    const axes = begin!.map((_, i) => i);
    const sliced = c.apply(
      'Slice',
      [
        c.value(input(n, 0)),
        c.literal(`${n.name}/starts`, starts),
        c.literal(`${n.name}/ends`, ends),
        c.literal(`${n.name}/axes`, axes),
        c.literal(`${n.name}/steps`, strides!),
      ],
      `${n.name}/slice`,
    );
    const shrunk = axes.filter((i) => shrink! & (1 << i));
    const target = out(n, c, typeOf(n, c));
    if (shrunk.length === 0) c.emit('Identity', [sliced], [target]);
    else c.emit('Squeeze', [sliced, c.literal(`${n.name}/shrink`, shrunk)], [target]);
  },
};

/** The shape ops, by TensorFlow op name. */
export const shapeOps: Record<string, OpConverter> = {
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
  GatherV2: gatherV2,
  GatherNd: gatherNd,
  SparseToDense: sparseToDense,
  Shape: shape,
  StridedSlice: stridedSlice,
};

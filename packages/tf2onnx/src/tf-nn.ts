/**
 * Image ops of the TF → ONNX converter: convolutions (plain, depthwise, fused, transposed),
 * pooling, resizing, batch norm, matmul. TensorFlow computes them NHWC; ONNX NCHW: each is
 * wrapped in Transposes (the filters are re-laid out on the host).
 * @module
 */
import { VaccelError } from '@vaccel/core';
import type { Conversion, TfNode } from './conversion.js';
import type { AttributeValue } from './onnx-graph.js';
import {
  attrBool,
  attrFloat,
  attrInts,
  attrString,
  attrStrings,
  channelsLast,
  constInput,
  constList,
  input,
  type OpConverter,
  out,
  typeOf,
} from './tf-attr.js';
import { reshaped, transposed } from './tf-tensor.js';

const TO_NCHW = { perm: { ints: [0, 3, 1, 2] } };
const TO_NHWC = { perm: { ints: [0, 2, 3, 1] } };

/** The op's image input in NCHW. */
const nchw = (n: TfNode, c: Conversion, tensor: string): string =>
  channelsLast(n) ? c.apply('Transpose', [c.value(tensor)], `${n.name}/nchw`, TO_NCHW) : c.value(tensor);

/** Writes an NCHW result to the op's output in the op's layout. */
function finish(n: TfNode, c: Conversion, y: string, k = 0): void {
  const target = out(n, c, typeOf(n, c), k);
  if (channelsLast(n)) c.emit('Transpose', [y], [target], TO_NHWC);
  else c.emit('Identity', [y], [target]);
}

/** [h, w] of a 4-element NHWC/NCHW attribute list. */
function spatial(n: TfNode, key: string, fallback: number): [number, number] {
  const v = attrInts(n, key, [1, fallback, fallback, 1]);
  if (v.length !== 4) throw new VaccelError('EINVAL', `node ${n.name}: ${key} must have 4 values`);
  return channelsLast(n) ? [v[1]!, v[2]!] : [v[2]!, v[3]!];
}

/**
 * ONNX padding attributes for TensorFlow's padding. SAME puts the odd pixel at the end, as
 * SAME_UPPER; at stride 1 its pads are known from the kernel alone, and written out (ONNX Runtime
 * refuses SAME_UPPER with dilations, which TensorFlow only allows at stride 1).
 */
function padding(n: TfNode, kernel?: [number, number]): Record<string, AttributeValue> {
  const kind = attrString(n, 'padding', 'VALID');
  const [sh, sw] = spatial(n, 'strides', 1);
  if (kind === 'SAME' && kernel && sh === 1 && sw === 1) {
    const [dh, dw] = spatial(n, 'dilations', 1);
    const [th, tw] = [(kernel[0] - 1) * dh, (kernel[1] - 1) * dw];
    return { pads: { ints: [th >> 1, tw >> 1, th - (th >> 1), tw - (tw >> 1)] } };
  }
  if (kind === 'SAME') return { auto_pad: { string: 'SAME_UPPER' } };
  if (kind === 'VALID') return { auto_pad: { string: 'VALID' } };
  if (kind === 'EXPLICIT') {
    const p = attrInts(n, 'explicit_paddings');
    const [t, b, l, r] = channelsLast(n) ? [p[2], p[3], p[4], p[5]] : [p[4], p[5], p[6], p[7]];
    return { pads: { ints: [t ?? 0, l ?? 0, b ?? 0, r ?? 0] } };
  }
  throw new VaccelError('ENOTSUP', `node ${n.name} (${n.op}): padding ${kind}`);
}

/** The filter in ONNX layout: [kh,kw,in,out] → [out,in,kh,kw]; depthwise [kh,kw,in,m] → [in·m,1,kh,kw]. */
function filter(
  n: TfNode,
  c: Conversion,
  depthwise: boolean,
): { name: string; group: number; kernel: [number, number] } {
  const f = constInput(n, c, 1, 'filter');
  if (f.dims.length !== 4) throw new VaccelError('EINVAL', `node ${n.name}: the filter must be rank 4`);
  const [kh, kw, cin, cout] = f.dims as [number, number, number, number];
  const name = c.fresh(`${n.name}/W`);
  const laidOut = transposed(c.budget, f, depthwise ? [2, 3, 0, 1] : [3, 2, 0, 1], name);
  c.setConstant(name, depthwise ? reshaped(laidOut, [cin * cout, 1, kh, kw], name) : laidOut);
  return { name: c.value(name), group: depthwise ? cin : 1, kernel: [kh, kw] };
}

/** Applies a fused activation by TensorFlow name. */
function activation(n: TfNode, c: Conversion, x: string, op: string | undefined): string {
  switch (op) {
    case undefined:
      return x;
    case 'Relu':
    case 'Sigmoid':
    case 'Tanh':
    case 'Elu':
      return c.apply(op, [x], `${n.name}/${op}`);
    case 'Relu6':
      return relu6(n, c, x);
    case 'LeakyRelu':
      return c.apply('LeakyRelu', [x], `${n.name}/leaky`, {
        alpha: { float: attrFloat(n, 'leakyrelu_alpha', 0.2) },
      });
    default:
      throw new VaccelError('ENOTSUP', `node ${n.name} (${n.op}): fused activation ${op}`);
  }
}

/** min(max(x, 0), 6) as Clip, with bounds of x's type. */
export function relu6(n: TfNode, c: Conversion, x: string): string {
  const type = typeOf(n, c);
  const lo = c.literal(`${n.name}/lo`, [0], type, []);
  const hi = c.literal(`${n.name}/hi`, [6], type, []);
  return c.apply('Clip', [x, lo, hi], `${n.name}/relu6`);
}

function conv(depthwise: boolean, fused: boolean): OpConverter {
  return {
    emit(n, c) {
      const x = nchw(n, c, input(n, 0));
      const w = filter(n, c, depthwise);
      const inputs = [x, w.name];
      const ops = fused ? attrStrings(n, 'fused_ops') : [];
      let post: string | undefined;
      if (ops[0] === 'BiasAdd') {
        inputs.push(c.value(input(n, 2)));
        post = ops[1];
      } else if (ops[0] === 'FusedBatchNorm') post = 'FusedBatchNorm';
      else if (ops.length > 0)
        throw new VaccelError('ENOTSUP', `node ${n.name} (${n.op}): fused ops ${ops.join('+')}`);
      const [dh, dw] = spatial(n, 'dilations', 1);
      let y = c.apply('Conv', inputs, `${n.name}/conv`, {
        strides: { ints: spatial(n, 'strides', 1) },
        dilations: { ints: [dh, dw] },
        group: { int: w.group },
        ...padding(n, w.kernel),
      });
      if (post === 'FusedBatchNorm') {
        const [scale, offset, mean, variance] = [2, 3, 4, 5].map((i) => c.value(input(n, i)));
        y = c.apply('BatchNormalization', [y, scale!, offset!, mean!, variance!], `${n.name}/bn`, {
          epsilon: { float: attrFloat(n, 'epsilon', 1e-3) },
        });
        post = ops[2];
      }
      finish(n, c, activation(n, c, y, post));
    },
  };
}

/** Conv2DBackpropInput(input_sizes, filter, out_backprop) = ConvTranspose with TensorFlow's crop. */
const convTranspose: OpConverter = {
  emit(n, c) {
    const sizes = constList(n, c, 0, 'input_sizes');
    const f = constInput(n, c, 1, 'filter');
    const [kh, kw] = f.dims as [number, number];
    const w = c.fresh(`${n.name}/W`);
    c.setConstant(w, transposed(c.budget, f, [3, 2, 0, 1], w));
    const [sh, sw] = spatial(n, 'strides', 1);
    const [dh, dw] = spatial(n, 'dilations', 1);
    const outHw = channelsLast(n) ? [sizes[1]!, sizes[2]!] : [sizes[2]!, sizes[3]!];
    const same = attrString(n, 'padding', 'VALID') === 'SAME';
    if (!same && attrString(n, 'padding', 'VALID') !== 'VALID')
      throw new VaccelError('ENOTSUP', `node ${n.name} (${n.op}): padding ${attrString(n, 'padding', '')}`);
    const begin: number[] = [];
    const end: number[] = [];
    const extra: number[] = [];
    [0, 1].forEach((a) => {
      const [o, s, k] = [outHw[a]!, [sh, sw][a]!, ([kh, kw][a]! - 1) * [dh, dw][a]! + 1];
      // The forward conv's input size o maps to this op's input size i; the transposed conv of i
      // is (i-1)·s + k long, cropped by the forward padding and padded up to o if short.
      const i = same ? Math.ceil(o / s) : Math.ceil((o - k + 1) / s);
      const total = (i - 1) * s + k - o;
      const pad = Math.max(total, 0);
      const head = same ? Math.floor(pad / 2) : 0;
      begin.push(head);
      end.push(pad - head);
      extra.push(Math.max(-total, 0));
    });
    const x = nchw(n, c, input(n, 2));
    const y = c.apply('ConvTranspose', [x, c.value(w)], `${n.name}/convT`, {
      strides: { ints: [sh, sw] },
      dilations: { ints: [dh, dw] },
      pads: { ints: [...begin, ...end] },
      output_padding: { ints: extra },
    });
    finish(n, c, y);
  },
};

function pool(kind: 'MaxPool' | 'AveragePool'): OpConverter {
  return {
    emit(n, c) {
      const y = c.apply(kind, [nchw(n, c, input(n, 0))], `${n.name}/pool`, {
        kernel_shape: { ints: spatial(n, 'ksize', 1) },
        strides: { ints: spatial(n, 'strides', 1) },
        ...padding(n),
      });
      finish(n, c, y);
    },
  };
}

/** ResizeBilinear / ResizeNearestNeighbor(images, size): TensorFlow's three coordinate rules. */
function resize(mode: 'linear' | 'nearest'): OpConverter {
  return {
    emit(n, c) {
      const align = attrBool(n, 'align_corners');
      const half = attrBool(n, 'half_pixel_centers');
      const attrs: Record<string, AttributeValue> = {
        mode: { string: mode },
        coordinate_transformation_mode: {
          string: align
            ? 'align_corners'
            : half
              ? mode === 'linear'
                ? 'half_pixel'
                : 'tf_half_pixel_for_nn'
              : 'asymmetric',
        },
      };
      if (mode === 'nearest') attrs.nearest_mode = { string: align ? 'round_prefer_ceil' : 'floor' };
      const x = c.apply('Transpose', [c.value(input(n, 0))], `${n.name}/nchw`, TO_NCHW);
      const shape = c.apply('Shape', [x], `${n.name}/shape`);
      const nc = c.apply(
        'Slice',
        [shape, c.literal(`${n.name}/0`, [0]), c.literal(`${n.name}/2`, [2])],
        `${n.name}/nc`,
      );
      const hw = c.constant(input(n, 1))
        ? c.literal(`${n.name}/hw`, c.constant(input(n, 1))!.values)
        : c.apply('Cast', [c.value(input(n, 1))], `${n.name}/hw`, { to: { int: 7 } });
      const sizes = c.apply('Concat', [nc, hw], `${n.name}/sizes`, { axis: { int: 0 } });
      const y = c.apply('Resize', [x, '', '', sizes], `${n.name}/resize`, attrs);
      c.emit('Transpose', [y], [out(n, c, typeOf(n, c))], TO_NHWC);
    },
  };
}

/** FusedBatchNorm(V2/V3)(x, scale, offset, mean, variance), inference only. */
const batchNorm: OpConverter = {
  emit(n, c) {
    if (attrBool(n, 'is_training'))
      throw new VaccelError('ENOTSUP', `node ${n.name} (${n.op}): batch norm in training mode`);
    const [scale, offset, mean, variance] = [1, 2, 3, 4].map((i) => c.value(input(n, i)));
    const y = c.apply(
      'BatchNormalization',
      [nchw(n, c, input(n, 0)), scale!, offset!, mean!, variance!],
      `${n.name}/bn`,
      {
        epsilon: { float: attrFloat(n, 'epsilon', 1e-4) },
      },
    );
    finish(n, c, y);
  },
};

/** MatMul / _FusedMatMul (transpose_a/b, then BiasAdd and an activation). */
function matmul(fused: boolean): OpConverter {
  return {
    emit(n, c) {
      const side = (i: number, key: string) => {
        const v = c.value(input(n, i));
        return attrBool(n, key)
          ? c.apply('Transpose', [v], `${n.name}/t${i}`, { perm: { ints: [1, 0] } })
          : v;
      };
      let y = c.apply('MatMul', [side(0, 'transpose_a'), side(1, 'transpose_b')], `${n.name}/mm`);
      const ops = fused ? attrStrings(n, 'fused_ops') : [];
      if (ops[0] === 'BiasAdd') y = c.apply('Add', [y, c.value(input(n, 2))], `${n.name}/bias`);
      else if (ops.length > 0)
        throw new VaccelError('ENOTSUP', `node ${n.name} (${n.op}): fused ops ${ops.join('+')}`);
      c.emit('Identity', [activation(n, c, y, ops[1])], [out(n, c, typeOf(n, c))]);
    },
  };
}

/** BatchMatMul(V2/V3) with adj_x/adj_y (the last two dims swapped; rank from attr-free inputs is unknown, so only without adj). */
const batchMatmul: OpConverter = {
  emit(n, c) {
    if (attrBool(n, 'adj_x') || attrBool(n, 'adj_y'))
      throw new VaccelError('ENOTSUP', `node ${n.name} (${n.op}): adj_x/adj_y`);
    c.emit('MatMul', [c.value(input(n, 0)), c.value(input(n, 1))], [out(n, c, typeOf(n, c))]);
  },
};

/** The image and dense ops, by TensorFlow op name. */
export const nnOps: Record<string, OpConverter> = {
  Conv2D: conv(false, false),
  _FusedConv2D: conv(false, true),
  DepthwiseConv2dNative: conv(true, false),
  FusedDepthwiseConv2dNative: conv(true, true),
  Conv2DBackpropInput: convTranspose,
  MaxPool: pool('MaxPool'),
  AvgPool: pool('AveragePool'),
  ResizeBilinear: resize('linear'),
  ResizeNearestNeighbor: resize('nearest'),
  FusedBatchNorm: batchNorm,
  FusedBatchNormV2: batchNorm,
  FusedBatchNormV3: batchNorm,
  MatMul: matmul(false),
  _FusedMatMul: matmul(true),
  BatchMatMul: batchMatmul,
  BatchMatMulV2: batchMatmul,
  BatchMatMulV3: batchMatmul,
};

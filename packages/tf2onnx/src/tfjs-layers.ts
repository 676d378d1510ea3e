/**
 * TF.js layers model (Keras functional, channels_last) → ONNX (opset 13), layer by layer.
 *
 * The input stays NHWC as in TF.js, with one Transpose to NCHW inside; convolution kernels are
 * re-laid out for ONNX; `same` padding becomes SAME_UPPER (TF's rule: extra padding at the end).
 * Covers the layers of MobileNet-style classifiers; anything else fails with the layer's name.
 * @module
 */
import { VaccelError } from '@vaccel/core';
import type { NodeProto, TensorProto } from './gen/onnx_pb.js';
import { DataType, initializer, modelBytes, node, valueInfo } from './onnx-graph.js';
import { checkedCount, permute } from './tf-tensor.js';

/** A layer of `modelTopology.model_config.config.layers`. */
interface KerasLayer {
  name: string;
  class_name: string;
  config: Record<string, unknown>;
  inbound_nodes: [string, number, number, unknown][][];
}

/** One weight of a TF.js weights manifest. */
interface WeightSpec {
  name: string;
  shape: number[];
  dtype: string;
  quantization?: { dtype: string; min?: number; scale?: number };
}

/** What TF.js's `model.json` holds (topology + manifest), plus the concatenated shard bytes. */
export interface TfjsLayersModel {
  modelTopology: { model_config: { class_name: string; config: { layers: KerasLayer[] } } };
  weightsManifest: { paths: string[]; weights: WeightSpec[] }[];
}

/** Decodes the weights (float32, or uint8-quantized as value = q·scale + min) by name. */
export function decodeWeights(
  model: TfjsLayersModel,
  data: Uint8Array,
): Map<string, { shape: number[]; values: Float32Array }> {
  const weights = new Map<string, { shape: number[]; values: Float32Array }>();
  let at = 0;
  for (const spec of model.weightsManifest.flatMap((group) => group.weights)) {
    const count = checkedCount(spec.shape);
    const q = spec.quantization;
    // The shards must hold the weight before its array is made (a manifest's shape is any number).
    if (at + count * (q ? 1 : 4) > data.byteLength)
      throw new VaccelError('EINVAL', `weight ${spec.name}: the shards end before its ${count} values`);
    const values = new Float32Array(count);
    if (q) {
      if (q.dtype !== 'uint8' || q.min === undefined || q.scale === undefined)
        throw new VaccelError('ENOTSUP', `weight ${spec.name}: quantization ${q.dtype} is not supported`);
      for (let i = 0; i < count; i++) values[i] = data[at + i]! * q.scale + q.min;
      at += count;
    } else {
      if (spec.dtype !== 'float32')
        throw new VaccelError('ENOTSUP', `weight ${spec.name}: dtype ${spec.dtype}`);
      values.set(new Float32Array(data.slice(at, at + 4 * count).buffer));
      at += 4 * count;
    }
    weights.set(spec.name, { shape: spec.shape, values });
  }
  if (at !== data.byteLength)
    throw new VaccelError(
      'EINVAL',
      `weights: the manifest describes ${at} bytes, the shards hold ${data.byteLength}`,
    );
  return weights;
}

/** Permutes a dense row-major tensor: out dim i = in dim perm[i]. */
export const transpose = (
  values: Float32Array,
  shape: readonly number[],
  perm: readonly number[],
): Float32Array => permute(values, shape, perm);

/** Options of {@link convertLayersModel}. */
export interface ConvertOptions {
  /** Graph name and doc string. */
  name: string;
  docString?: string;
}

/**
 * Converts a TF.js layers model to ONNX bytes. The ONNX input keeps the TF.js input's name and
 * NHWC shape (batch dimension symbolic); the output keeps the output layer's name.
 */
export function convertLayersModel(
  model: TfjsLayersModel,
  weightData: Uint8Array,
  options: ConvertOptions,
): Uint8Array {
  const weights = decodeWeights(model, weightData);
  const nodes: NodeProto[] = [];
  const inits: TensorProto[] = [];
  const output = new Map<string, string>(); // layer → tensor name carrying its output (NCHW inside)
  const layout = new Map<string, 'NHWC' | 'NCHW' | 'flat'>();
  let graphInput: ReturnType<typeof valueInfo> | undefined;
  let last = '';

  const weight = (layer: string, suffix: string) => {
    const w = weights.get(`${layer}/${suffix}`);
    if (!w) throw new VaccelError('EINVAL', `layer ${layer}: weight ${suffix} is missing`);
    return w;
  };
  const constant = (name: string, values: Float32Array, dims: readonly number[]): string => {
    inits.push(initializer(name, DataType.FLOAT, dims, values));
    return name;
  };
  const int64s = (name: string, values: readonly number[]): string => {
    inits.push(initializer(name, DataType.INT64, [values.length], BigInt64Array.from(values.map(BigInt))));
    return name;
  };
  const pair = (v: unknown) => (Array.isArray(v) ? (v as number[]) : [v as number, v as number]);
  const autoPad = (layer: KerasLayer) => {
    const padding = layer.config.padding;
    if (padding === 'same') return { auto_pad: { string: 'SAME_UPPER' } };
    if (padding === 'valid') return { auto_pad: { string: 'VALID' } };
    throw new VaccelError('ENOTSUP', `layer ${layer.name}: padding ${String(padding)}`);
  };
  const activation = (layer: KerasLayer, tensor: string): string => {
    const kind = (layer.config.activation ?? 'linear') as string;
    if (kind === 'linear') return tensor;
    const out = `${layer.name}/${kind}`;
    if (kind === 'relu') nodes.push(node('Relu', [tensor], [out]));
    else if (kind === 'softmax') nodes.push(node('Softmax', [tensor], [out], { axis: { int: -1 } }));
    else throw new VaccelError('ENOTSUP', `layer ${layer.name}: activation ${kind}`);
    return out;
  };

  for (const layer of model.modelTopology.model_config.config.layers) {
    const inbound = layer.inbound_nodes[0] ?? [];
    if (layer.inbound_nodes.length > 1) throw new VaccelError('ENOTSUP', `layer ${layer.name} is shared`);
    const inputs = inbound.map(([name]) => {
      const tensor = output.get(name);
      if (tensor === undefined)
        throw new VaccelError('EINVAL', `layer ${layer.name}: input ${name} comes later`);
      return tensor;
    });
    const inLayout = inbound[0] ? layout.get(inbound[0][0])! : 'NHWC';
    const x = inputs[0]!;
    const name = layer.name;
    let result = name;
    let outLayout: 'NHWC' | 'NCHW' | 'flat' = 'NCHW';
    const c = layer.config;
    const needNchw = () => {
      if (inLayout !== 'NCHW') throw new VaccelError('ENOTSUP', `layer ${name} expects an image tensor`);
    };
    switch (layer.class_name) {
      case 'InputLayer': {
        const shape = c.batch_input_shape as (number | null)[];
        if (shape.length !== 4) throw new VaccelError('ENOTSUP', `input ${name}: rank ${shape.length}`);
        graphInput = valueInfo(
          name,
          DataType.FLOAT,
          shape.map((d) => d ?? 'batch'),
        );
        nodes.push(node('Transpose', [name], [`${name}/nchw`], { perm: { ints: [0, 3, 1, 2] } }));
        result = `${name}/nchw`;
        break;
      }
      case 'ZeroPadding2D': {
        needNchw();
        const [[top, bottom], [left, right]] = c.padding as [[number, number], [number, number]];
        const pads = int64s(`${name}/pads`, [0, 0, top, left, 0, 0, bottom, right]);
        nodes.push(node('Pad', [x, pads], [name], { mode: { string: 'constant' } }));
        break;
      }
      case 'Conv2D':
      case 'DepthwiseConv2D': {
        needNchw();
        if (pair(c.dilation_rate).some((d) => d !== 1))
          throw new VaccelError('ENOTSUP', `layer ${name}: dilation`);
        const depthwise = layer.class_name === 'DepthwiseConv2D';
        const k = weight(name, depthwise ? 'depthwise_kernel' : 'kernel');
        const [kh, kw, cin, cout] = k.shape as [number, number, number, number];
        // Conv2D [kh,kw,in,out] → [out,in,kh,kw]; depthwise [kh,kw,in,mult] → [in·mult,1,kh,kw].
        const kernel = depthwise
          ? constant(`${name}/W`, transpose(k.values, k.shape, [2, 3, 0, 1]), [cin * cout, 1, kh, kw])
          : constant(`${name}/W`, transpose(k.values, k.shape, [3, 2, 0, 1]), [cout, cin, kh, kw]);
        const conv = [x, kernel];
        if (c.use_bias) {
          const b = weight(name, depthwise ? 'depthwise_bias' : 'bias');
          conv.push(constant(`${name}/B`, b.values, b.shape));
        }
        const raw = c.activation && c.activation !== 'linear' ? `${name}/conv` : name;
        nodes.push(
          node('Conv', conv, [raw], {
            kernel_shape: { ints: [kh, kw] },
            strides: { ints: pair(c.strides) },
            group: { int: depthwise ? cin : 1 },
            ...autoPad(layer),
          }),
        );
        result = activation(layer, raw);
        break;
      }
      case 'BatchNormalization': {
        needNchw();
        if (c.axis !== -1 && c.axis !== 3)
          throw new VaccelError('ENOTSUP', `layer ${name}: axis ${String(c.axis)}`);
        const part = (suffix: string, present: unknown, fill: number) => {
          if (present === false) {
            const size = weight(name, 'moving_mean').values.length;
            return constant(`${name}/${suffix}`, new Float32Array(size).fill(fill), [size]);
          }
          const w = weight(name, suffix);
          return constant(`${name}/${suffix}`, w.values, w.shape);
        };
        nodes.push(
          node(
            'BatchNormalization',
            [
              x,
              part('gamma', c.scale, 1),
              part('beta', c.center, 0),
              part('moving_mean', true, 0),
              part('moving_variance', true, 1),
            ],
            [name],
            { epsilon: { float: c.epsilon as number } },
          ),
        );
        break;
      }
      case 'ReLU': {
        if ((c.negative_slope ?? 0) !== 0 || (c.threshold ?? 0) !== 0)
          throw new VaccelError('ENOTSUP', `layer ${name}: leaky or thresholded ReLU`);
        outLayout = inLayout;
        if (c.max_value === null || c.max_value === undefined) nodes.push(node('Relu', [x], [name]));
        else {
          const lo = constant(`${name}/min`, new Float32Array([0]), []);
          const hi = constant(`${name}/max`, new Float32Array([c.max_value as number]), []);
          nodes.push(node('Clip', [x, lo, hi], [name]));
        }
        break;
      }
      case 'Add':
        outLayout = inLayout;
        if (inputs.length < 2) throw new VaccelError('EINVAL', `layer ${name}: Add needs 2 inputs`);
        inputs.slice(1).reduce((sum, next, i) => {
          const out = i === inputs.length - 2 ? name : `${name}/${i}`;
          nodes.push(node('Add', [sum, next], [out]));
          return out;
        }, x);
        break;
      case 'AveragePooling2D':
      case 'MaxPooling2D':
        needNchw();
        nodes.push(
          node(layer.class_name === 'MaxPooling2D' ? 'MaxPool' : 'AveragePool', [x], [name], {
            kernel_shape: { ints: pair(c.pool_size) },
            strides: { ints: pair(c.strides ?? c.pool_size) },
            ...autoPad(layer),
          }),
        );
        break;
      case 'GlobalAveragePooling2D':
        needNchw();
        nodes.push(
          node('GlobalAveragePool', [x], [`${name}/pool`]),
          node('Flatten', [`${name}/pool`], [name]),
        );
        outLayout = 'flat';
        break;
      case 'Flatten': {
        // Keras flattens channels_last: go back to NHWC first so the element order matches.
        const source = inLayout === 'NCHW' ? `${name}/nhwc` : x;
        if (inLayout === 'NCHW')
          nodes.push(node('Transpose', [x], [source], { perm: { ints: [0, 2, 3, 1] } }));
        nodes.push(node('Flatten', [source], [name], { axis: { int: 1 } }));
        outLayout = 'flat';
        break;
      }
      case 'Dense': {
        if (inLayout !== 'flat') throw new VaccelError('ENOTSUP', `layer ${name}: Dense on a rank-4 tensor`);
        const k = weight(name, 'kernel');
        const product = c.use_bias ? `${name}/matmul` : `${name}/linear`;
        nodes.push(node('MatMul', [x, constant(`${name}/W`, k.values, k.shape)], [product]));
        let linear = product;
        if (c.use_bias) {
          const b = weight(name, 'bias');
          linear = `${name}/linear`;
          nodes.push(node('Add', [product, constant(`${name}/B`, b.values, b.shape)], [linear]));
        }
        result = activation(layer, linear);
        outLayout = 'flat';
        break;
      }
      case 'Dropout':
        result = x; // identity at inference
        outLayout = inLayout;
        break;
      default:
        throw new VaccelError(
          'ENOTSUP',
          `layer ${name}: ${layer.class_name} is not supported by the converter`,
        );
    }
    output.set(name, result);
    layout.set(name, outLayout);
    last = name;
  }
  if (!graphInput) throw new VaccelError('EINVAL', 'the model has no InputLayer');
  const outputName = last;
  const final = output.get(outputName)!;
  nodes.push(node('Identity', [final], ['output'], {}, 'output'));
  const classes =
    weights.get(`${outputName}/bias`)?.values.length ?? weights.get(`${outputName}/kernel`)?.shape[1];
  return modelBytes({
    name: options.name,
    ...(options.docString ? { docString: options.docString } : {}),
    nodes,
    inputs: [graphInput],
    outputs: [valueInfo('output', DataType.FLOAT, ['batch', classes ?? 'classes'])],
    initializers: inits,
  });
}

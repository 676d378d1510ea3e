/**
 * `@vaccel/tf2onnx/tflite`: TensorFlow Lite flatbuffers → ONNX, in TypeScript.
 *
 * - {@link parseTflite}: reads and validates a `.tflite` model (bounded against hostile bytes).
 * - {@link convertTflite}: converts its main subgraph to ONNX, NHWC inputs and outputs as declared.
 * - {@link supportedTfliteOps}: the operators it handles.
 * @module
 */
export {
  convertTflite,
  supportedTfliteOps,
  type TfliteConversion,
  type TfliteConvertOptions,
  type TfliteIo,
  TRANSPOSE_CONV_BIAS,
} from './convert.js';
export {
  hasTfliteIdentifier,
  parseTflite,
  TFLITE_LIMITS,
  type TfliteModel,
  type TfliteOperator,
  type TfliteQuantization,
  type TfliteTensor,
} from './parse.js';
export { BUILTIN_OPERATORS, type TfliteDtype } from './schema.js';

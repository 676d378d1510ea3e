/**
 * `@vaccel/tf2onnx/onnx`: the ONNX schema (generated from onnx.proto by buf) and a small builder
 * for ONNX models in memory — what the converter writes with, and what plugin-onnx uses to build
 * its SGEMM graphs and to inspect a model before ONNX Runtime sees it.
 * @module
 */
export * from './gen/onnx_pb.js';
export {
  type AttributeValue,
  DataType,
  type GraphSpec,
  initializer,
  modelBytes,
  node,
  valueInfo,
} from './onnx-graph.js';

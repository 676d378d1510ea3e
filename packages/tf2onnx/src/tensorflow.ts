/**
 * `@vaccel/tf2onnx/tensorflow`: the TensorFlow GraphDef schema the converter reads (generated from
 * TensorFlow's graph protos by buf), for tools and tests that build or inspect graphs.
 * @module
 */
export * from './gen/tensorflow_graph_pb.js';

/**
 * `@vaccel/core`: the vAccel guest library and runtime.
 *
 * ```ts
 * import { Vaccel } from '@vaccel/core';
 * await using vaccel = await Vaccel.open();
 * await using session = await vaccel.createSession();
 * const { data } = await session.encrypt({ algorithm: 'aes-128-cbc', key, iv, data: plaintext });
 * ```
 * @module
 */
export {
  type Arg,
  Args,
  ArgType,
  alignedFloat32,
  argTypeName,
  copyBytes,
  isArgType,
  ReadArg,
  validateArg,
} from './api/arg.js';
export {
  type ErrorCode,
  ErrorCodes,
  errorCodeFromErrno,
  invalidArgument,
  isVaccelError,
  isVaccelErrorCode,
  VaccelError,
  type VaccelErrorOptions,
} from './api/error.js';
export {
  allOps,
  EXTENSION_OP_MIN,
  isOpType,
  OP_ALTERNATIVES,
  type OpCost,
  type OpInfo,
  OpType,
  opByName,
  opInfo,
  opName,
  UPSTREAM_OP_MAX,
} from './api/op.js';
export {
  DType,
  decodeTensors,
  elementCount,
  encodeTensors,
  TENSOR_ARRAYS,
  type Tensor,
  type TensorDataTypes,
  tensor,
} from './api/tensor.js';
export {
  checkSgemmArgs,
  normalizeSgemm,
  packSgemm,
  packTorchSgemm,
  type SgemmArgs,
  type SgemmParams,
  sgemmFlops,
  sgemmHandler,
  torchSgemmHandler,
  unpackSgemm,
} from './ops/blas.js';
export {
  AES_BLOCK,
  CIPHER_ALGORITHMS,
  type CipherAlgorithm,
  type CipherArgs,
  type CipherMode,
  type CipherParams,
  checkCipher,
  cipherHandler,
  cipherOutputLength,
  type DecryptParams,
  type EncryptParams,
  type EncryptResult,
  packCipher,
  unpackCipher,
} from './ops/cipher.js';
export { type CipherStreamOptions, decryptStream, encryptStream } from './ops/cipher-stream.js';
export { computeHandlers, mmultHandler, packMinmax } from './ops/compute.js';
export {
  type ExecArgs,
  type ExecWithResourceArgs,
  packExec,
  packExecWithResource,
  unpackExec,
  unpackExecWithResource,
} from './ops/exec.js';
export {
  type Classification,
  type ClassifyArgs,
  classifyHandlers,
  encodeUpstreamClassification,
  MAX_TOP_K,
  packClassify,
  parseClassification,
  UPSTREAM_TAG_BYTES,
  unpackClassify,
} from './ops/image.js';
export {
  type ModelBackend,
  type ModelInfo,
  type ModelRunArgs,
  modelHandlers,
  packModelLoad,
  packModelRun,
  packModelUnload,
  parseModelInfo,
  type TensorInfo,
} from './ops/model.js';
export {
  type Box,
  type Detection,
  encodeUpstreamVision,
  type Keypoint,
  type Pose,
  packVision,
  parseVision,
  type Segmentation,
  summarize,
  type UpstreamImageAnswer,
  unpackVision,
  VISION_OPS,
  type VisionArgs,
  type VisionOptions,
  type VisionResult,
  type VisionTask,
  visionHandlers,
} from './ops/vision.js';
export { BUILTIN_PLUGIN_NAMES } from './plugins/builtin.js';
export { definePluginModule, type ResolvedConfig, splitList, type VaccelOptions } from './runtime/config.js';
export { createStderrLogger, type Logger, LogLevel, logLevelName, parseLogLevel } from './runtime/log.js';
export {
  type OpArgs,
  type OpContext,
  type OpHandler,
  type Plugin,
  type PluginHooks,
  type PluginInitContext,
  PluginType,
  type SessionInfo,
} from './runtime/plugin.js';
export {
  MAX_SAMPLES_PER_REGION,
  nowNs,
  type ProfileRegion,
  Profiler,
  type ProfileSample,
  profilingEnabled,
  summarizeProfile,
} from './runtime/profiling.js';
export {
  type Resource,
  type ResourceBlob,
  type ResourceData,
  type ResourceSpec,
  ResourceType,
} from './runtime/resource.js';
export type {
  CallOptions,
  ClassifyOptions,
  ModelLoadOptions,
  ModelRunOptions,
  Session,
  SessionOptions,
  VisionCallOptions,
} from './runtime/session.js';
export {
  LOCAL_MEMORY,
  localMemory,
  type PluginMemory,
  RangeAllocator,
  SharedMemory,
} from './runtime/shared-memory.js';
export { type OperationInfo, Vaccel } from './runtime/vaccel.js';
export { startModuleWorker } from './runtime/worker.js';

/** The vAccel API version this package implements (upstream 0.8 wire compatibility). */
export const VACCEL_VERSION = '0.8.0';

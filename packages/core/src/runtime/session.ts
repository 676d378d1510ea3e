/**
 * Sessions: the unit of work and isolation. A session carries a plugin hint and the resources
 * registered with it; every op runs in a session.
 * @module
 */
import type { Arg } from '../api/arg.js';
import type { OpType } from '../api/op.js';
import type { Tensor } from '../api/tensor.js';
import type { SgemmParams } from '../ops/blas.js';
import type { DecryptParams, EncryptParams, EncryptResult } from '../ops/cipher.js';
import type { Classification } from '../ops/image.js';
import type { ModelInfo } from '../ops/model.js';
import type { Detection, Pose, Segmentation, VisionOptions, VisionResult } from '../ops/vision.js';
import type { ProfileRegion } from './profiling.js';
import type { Resource, ResourceData } from './resource.js';

/** Options every async call takes last. */
export interface CallOptions {
  /** Abort the call; an already-aborted signal rejects at once with its reason. */
  signal?: AbortSignal;
  /**
   * For hosts that schedule ops (the agent): what the op's long work calls between chunks
   * ({@link OpContext.checkpoint}), where the host may give the CPU to other callers first.
   */
  checkpoint?: () => Promise<void>;
  /**
   * For hosts that schedule ops: called once, before the op runs, with a promise that settles
   * when its handler has really finished. An aborted call rejects at once, while a handler that
   * cannot stop (an ONNX Runtime run) goes on; a scheduler holds its slot until then.
   */
  settled?: (work: Promise<void>) => void;
}

/** Options of {@link Session.imageClassify}. */
export interface ClassifyOptions extends CallOptions {
  /** How many classes to return, best first (default 5). */
  topK?: number;
  /** A model resource registered with the session; default: the plugin's default model. */
  model?: Resource;
}

/** Options of {@link Session.imageDetect}, {@link Session.imagePose} and {@link Session.imageSegment}. */
export interface VisionCallOptions extends CallOptions, VisionOptions {
  /** A model resource (ONNX + model.json) registered with the session; default: the plugin's. */
  model?: Resource;
}

/** Options of {@link Session.modelLoad} and {@link Session.modelUnload}. */
export interface ModelLoadOptions extends CallOptions {
  /**
   * Use upstream's TensorFlow ops (tf_model_load/run/unload, 8–10) instead of ours (67–69): the
   * same work on a vaccel-ts host, the ops an upstream-style TensorFlow backend provides.
   */
  tensorflow?: boolean;
  /**
   * Use upstream's TensorFlow Lite ops (tflite_model_load/run/unload, 11–13) instead of ours: the
   * same work on a vaccel-ts host (a `.tflite` resource converts to ONNX at load either way).
   */
  tflite?: boolean;
}

/** Options of {@link Session.modelRun}. */
export interface ModelRunOptions extends ModelLoadOptions {
  /** Which outputs to return (default: all). */
  outputs?: readonly string[];
}

/** Options for creating a session. */
export interface SessionOptions {
  /** {@link PluginType} bits preferring plugins of those types (default 0: by priority only). */
  hint?: number;
}

/**
 * A vAccel session. Release it when done (or use `await using`); releasing twice is a no-op, and
 * any call after release rejects with `EBADF`.
 */
export interface Session extends AsyncDisposable {
  /** Runtime-wide id (> 0). */
  readonly id: number;
  /** Current plugin hint bits. */
  readonly hint: number;
  /** True once released. */
  readonly released: boolean;

  /** Changes the plugin hint for later ops. */
  update(hint: number): void;
  /** Releases the session and unregisters its resources. Idempotent. */
  release(): Promise<void>;

  /** Makes `resource` usable by ops of this session (by its id). Registering twice is a no-op. */
  registerResource(resource: Resource): void;
  /** Undoes {@link registerResource}. @throws VaccelError `ENOENT` when it was not registered. */
  unregisterResource(resource: Resource): void;
  /** Resources registered with this session. */
  resources(): ResourceData[];
  /**
   * The session's profiling regions (`vaccel_<op>_op`, one sample per op run) when profiling is on
   * (`VACCEL_PROFILING_ENABLED`), plus those its plugins kept elsewhere (the agent's, through the
   * RPC plugin, prefixed `agent:`). Empty when profiling is off.
   */
  profile(): Promise<ProfileRegion[]>;

  /**
   * Runs any op with raw args (upstream's genop): read args are inputs, write args are outputs
   * filled in place (or, where an op says so, replaced by buffers the plugin sized).
   */
  doOperation(op: OpType, read: readonly Arg[], write: Arg[], options?: CallOptions): Promise<void>;

  /** Does nothing, through the dispatch path (for health checks and latency measurements). */
  noop(options?: CallOptions): Promise<void>;
  /** C = alpha·A·B + beta·C (row-major). Returns C, updated in place when given. */
  sgemm(params: SgemmParams, options?: CallOptions): Promise<Float32Array>;
  /** AES encryption (CBC with PKCS#7 or no padding, CTR, GCM with tag). */
  encrypt(params: EncryptParams, options?: CallOptions): Promise<EncryptResult>;
  /** AES decryption. Bad padding or a bad GCM tag reject with `EBADMSG`. */
  decrypt(params: DecryptParams, options?: CallOptions): Promise<Uint8Array>;
  /** Classifies an encoded image (JPEG, PNG, WebP …): top-k classes, best first. */
  imageClassify(image: Uint8Array, options?: ClassifyOptions): Promise<Classification[]>;
  /** Detects objects: boxes with labels and scores after non-maximum suppression, best first. */
  imageDetect(image: Uint8Array, options?: VisionCallOptions): Promise<VisionResult<Detection[]>>;
  /** Estimates a person's pose: named keypoints with scores, and the skeleton's edges. */
  imagePose(image: Uint8Array, options?: VisionCallOptions): Promise<VisionResult<Pose>>;
  /** Segments the image: a mask of the model's class (a person, for the default model). */
  imageSegment(image: Uint8Array, options?: VisionCallOptions): Promise<VisionResult<Segmentation>>;
  /**
   * Loads a model resource (registered with this session) and returns its declared inputs/outputs.
   * The resource holds an ONNX model, a TensorFlow frozen GraphDef (`.pb`) or a TF.js graph model
   * (`model.json` + shards); TensorFlow graphs are converted to ONNX on the host when loaded, their
   * tensors named as TensorFlow names them (`input_1:0`).
   */
  modelLoad(model: Resource, options?: ModelLoadOptions): Promise<ModelInfo>;
  /** Runs a loaded model on named input tensors. */
  modelRun(
    model: Resource,
    inputs: Readonly<Record<string, Tensor>>,
    options?: ModelRunOptions,
  ): Promise<Record<string, Tensor>>;
  /** Unloads a model loaded by {@link modelLoad}. */
  modelUnload(model: Resource, options?: ModelLoadOptions): Promise<void>;
  /**
   * Runs function `symbol` of a JavaScript module uploaded as a LIB resource (registered with this
   * session); the host runs it only if the module's sha256 is on its allowlist (`EPERM` otherwise).
   */
  execWithResource(
    library: Resource,
    symbol: string,
    read: readonly Arg[],
    write: Arg[],
    options?: CallOptions,
  ): Promise<void>;
  /** Runs an allowlisted host function `symbol` of module `library` with raw args. */
  exec(
    library: string,
    symbol: string,
    read: readonly Arg[],
    write: Arg[],
    options?: CallOptions,
  ): Promise<void>;
}

/**
 * The session implementation: dispatch of generic and typed ops.
 * @internal
 */
import { type Arg, validateArg } from '../api/arg.js';
import { isVaccelError, VaccelError } from '../api/error.js';
import { isOpType, OpType, opName } from '../api/op.js';
import { decodeTensors, type Tensor } from '../api/tensor.js';
import { normalizeSgemm, packSgemm, type SgemmParams } from '../ops/blas.js';
import {
  checkCipher,
  type DecryptParams,
  type EncryptParams,
  type EncryptResult,
  packCipher,
} from '../ops/cipher.js';
import { packExec, packExecWithResource } from '../ops/exec.js';
import { type Classification, packClassify, parseClassification } from '../ops/image.js';
import {
  type ModelInfo,
  packModelLoad,
  packModelRun,
  packModelUnload,
  parseModelInfo,
} from '../ops/model.js';
import {
  type Detection,
  type Pose,
  packVision,
  parseVision,
  type Segmentation,
  VISION_OPS,
  type VisionResult,
  type VisionTask,
} from '../ops/vision.js';
import { sgemmKernel } from '../plugins/sgemm-js/kernel.js';
import { raceAbort } from './abort.js';
import { opChannels } from './diagnostics.js';
import type { Logger } from './log.js';
import type { OpContext, Plugin } from './plugin.js';
import { nowNs, type ProfileRegion, Profiler } from './profiling.js';
import type { Resolved } from './registry.js';
import type { Resource, ResourceData } from './resource.js';
import type {
  CallOptions,
  ClassifyOptions,
  ModelLoadOptions,
  ModelRunOptions,
  Session,
  VisionCallOptions,
} from './session.js';

/** What a session needs from its runtime. @internal */
export interface SessionHost {
  readonly logger: Logger;
  resolve(op: OpType, hint: number): Promise<Resolved>;
  /** True when ops are timed into profiling regions. */
  readonly profiling: boolean;
  /** The plugin an earlier resolve chose, if any (no await on the hot path). */
  cached?(op: OpType, hint: number): Resolved | undefined;
  /** Resolves a handle to its live resource data, checking it belongs to this runtime. */
  attach(resource: Resource, sessionId: number): ResourceData;
  detach(resourceId: number, sessionId: number): Promise<void>;
  /** `profile`: the session's regions at release, when profiling is on. */
  sessionReleased(session: SessionImpl, profile?: ProfileRegion[]): Promise<void>;
  /** Regions the session's plugins kept elsewhere (e.g. on an agent). */
  profiles?(session: SessionImpl): Promise<ProfileRegion[]>;
}

/** The model ops a call's options pick: ours, upstream's TensorFlow ones or its TensorFlow Lite ones. */
function modelOpsOf(options: ModelLoadOptions): { load: OpType; run: OpType; unload: OpType } {
  if (options.tensorflow && options.tflite)
    throw new VaccelError('EINVAL', 'model options: tensorflow and tflite pick different ops; give one');
  if (options.tflite)
    return { load: OpType.TfliteModelLoad, run: OpType.TfliteModelRun, unload: OpType.TfliteModelUnload };
  if (options.tensorflow)
    return { load: OpType.TfModelLoad, run: OpType.TfModelRun, unload: OpType.TfModelUnload };
  return { load: OpType.ModelLoad, run: OpType.ModelRun, unload: OpType.ModelUnload };
}

export class SessionImpl implements Session {
  #hint: number;
  #released = false;
  readonly #resources = new Map<number, ResourceData>();
  readonly #loggers = new Map<Plugin, Logger>();
  readonly #profiler: Profiler | undefined;

  constructor(
    readonly id: number,
    hint: number,
    private readonly host: SessionHost,
  ) {
    this.#hint = hint;
    this.#profiler = host.profiling ? new Profiler() : undefined;
  }

  async profile(): Promise<ProfileRegion[]> {
    const own = this.#profiler?.regions() ?? [];
    // Plugins that run ops elsewhere (the RPC plugin) add the regions their backend kept.
    const plugins = await this.host.profiles?.(this);
    return [...own, ...(plugins ?? [])];
  }

  get hint(): number {
    return this.#hint;
  }

  get released(): boolean {
    return this.#released;
  }

  update(hint: number): void {
    this.#assertOpen();
    this.#hint = checkHint(hint);
  }

  async release(): Promise<void> {
    if (this.#released) return;
    // Collect the regions first: a plugin's backend forgets them with the session.
    const profile = this.#profiler ? await this.profile().catch(() => this.#profiler!.regions()) : undefined;
    this.#released = true;
    const ids = [...this.#resources.keys()];
    this.#resources.clear();
    for (const id of ids) await this.host.detach(id, this.id);
    await this.host.sessionReleased(this, profile);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.release();
  }

  registerResource(resource: Resource): void {
    this.#assertOpen();
    if (this.#resources.has(resource.id)) return;
    this.#resources.set(resource.id, this.host.attach(resource, this.id));
  }

  unregisterResource(resource: Resource): void {
    this.#assertOpen();
    if (!this.#resources.delete(resource.id)) {
      throw new VaccelError('ENOENT', `resource ${resource.id} is not registered with session ${this.id}`);
    }
    void this.host.detach(resource.id, this.id);
  }

  resources(): ResourceData[] {
    return [...this.#resources.values()];
  }

  async doOperation(
    op: OpType,
    read: readonly Arg[],
    write: Arg[],
    options: CallOptions = {},
  ): Promise<void> {
    const { signal } = options;
    signal?.throwIfAborted();
    this.#assertOpen();
    if (!isOpType(op)) throw new VaccelError('EINVAL', `unknown op ${String(op)}`);
    const name = opName(op);
    if (!Array.isArray(read) || !Array.isArray(write))
      throw new VaccelError('EINVAL', `${name}: read and write args must be arrays`);
    for (let i = 0; i < read.length; i++) validateArg(read[i]!, `${name} read arg`, i);
    for (let i = 0; i < write.length; i++) validateArg(write[i]!, `${name} write arg`, i);
    const { plugin, handler } =
      this.host.cached?.(op, this.#hint) ?? (await this.host.resolve(op, this.#hint));
    const ctx: OpContext = {
      session: this,
      signal,
      checkpoint: options.checkpoint,
      logger: this.#logger(plugin),
      resource: (id) => this.#resource(id),
    };
    const traced =
      opChannels.start.hasSubscribers || opChannels.end.hasSubscribers || opChannels.error.hasSubscribers;
    const event = traced ? { op, name, plugin: plugin.name, session: this.id } : undefined;
    if (event && opChannels.start.hasSubscribers) opChannels.start.publish(event);
    const started = event ? performance.now() : 0;
    const profileStart = this.#profiler ? nowNs() : 0n;
    const work = (async () => handler({ read, write }, ctx))();
    options.settled?.(
      work.then(
        () => undefined,
        () => undefined,
      ),
    );
    try {
      await raceAbort(() => work, signal);
    } catch (error) {
      const wrapped =
        isVaccelError(error) || (signal?.aborted && error === signal.reason)
          ? error
          : new VaccelError(
              'EPROTO',
              `${plugin.name}: ${name} failed: ${(error as Error)?.message ?? error}`,
              { cause: error },
            );
      if (event && opChannels.error.hasSubscribers) opChannels.error.publish({ ...event, error: wrapped });
      throw wrapped;
    } finally {
      this.#profiler?.record(`vaccel_${name}_op`, profileStart, nowNs() - profileStart);
    }
    if (event && opChannels.end.hasSubscribers)
      opChannels.end.publish({ ...event, durationMs: performance.now() - started });
  }

  noop(options?: CallOptions): Promise<void> {
    return this.doOperation(OpType.Noop, [], [], options);
  }

  async sgemm(params: SgemmParams, options?: CallOptions): Promise<Float32Array> {
    const args = normalizeSgemm(params);
    if (args.m === 0 || args.n === 0 || args.k === 0) {
      // BLAS quick return: nothing to multiply (and upstream rejects empty array args).
      sgemmKernel(args);
      return args.c;
    }
    const { read, write } = packSgemm(args);
    await this.doOperation(OpType.BlasSgemm, read, write, options);
    return args.c;
  }

  async encrypt(params: EncryptParams, options?: CallOptions): Promise<EncryptResult> {
    checkCipher('encrypt', params); // precise messages before the generic arg checks
    const { read, write } = packCipher('encrypt', params);
    await this.doOperation(OpType.AesEncrypt, read, write, options);
    const tag = write[1]!.buf;
    return tag.byteLength > 0 ? { data: write[0]!.buf, tag } : { data: write[0]!.buf };
  }

  async decrypt(params: DecryptParams, options?: CallOptions): Promise<Uint8Array> {
    checkCipher('decrypt', params);
    const { read, write } = packCipher('decrypt', params);
    await this.doOperation(OpType.AesDecrypt, read, write, options);
    return write[0]!.buf;
  }

  async imageClassify(image: Uint8Array, options: ClassifyOptions = {}): Promise<Classification[]> {
    if (!(image instanceof Uint8Array))
      throw new VaccelError('EINVAL', 'imageClassify: image must be a Uint8Array');
    const modelId = options.model ? this.#registered(options.model) : 0;
    const { read, write } = packClassify(image, options.topK ?? 5, modelId);
    await this.doOperation(OpType.ImageClassifyTopK, read, write, options);
    return parseClassification(write[0]!.buf);
  }

  imageDetect(image: Uint8Array, options: VisionCallOptions = {}): Promise<VisionResult<Detection[]>> {
    return this.#vision('detect', image, options);
  }

  imagePose(image: Uint8Array, options: VisionCallOptions = {}): Promise<VisionResult<Pose>> {
    return this.#vision('pose', image, options);
  }

  imageSegment(image: Uint8Array, options: VisionCallOptions = {}): Promise<VisionResult<Segmentation>> {
    return this.#vision('segment', image, options);
  }

  async #vision<T>(
    task: VisionTask,
    image: Uint8Array,
    options: VisionCallOptions,
  ): Promise<VisionResult<T>> {
    if (!(image instanceof Uint8Array))
      throw new VaccelError('EINVAL', `image ${task}: image must be a Uint8Array`);
    const modelId = options.model ? this.#registered(options.model) : 0;
    const { minScore, iouThreshold, maxResults, annotate } = options;
    const { read, write } = packVision(task, image, modelId, {
      minScore,
      iouThreshold,
      maxResults,
      annotate,
    });
    await this.doOperation(VISION_OPS[task].ours, read, write, options);
    return parseVision<T>(task, write);
  }

  async modelLoad(model: Resource, options: ModelLoadOptions = {}): Promise<ModelInfo> {
    const { read, write } = packModelLoad(this.#registered(model));
    await this.doOperation(modelOpsOf(options).load, read, write, options);
    return parseModelInfo(write[0]!.buf);
  }

  async modelRun(
    model: Resource,
    inputs: Readonly<Record<string, Tensor>>,
    options: ModelRunOptions = {},
  ): Promise<Record<string, Tensor>> {
    const { read, write } = packModelRun(this.#registered(model), inputs, options.outputs);
    await this.doOperation(modelOpsOf(options).run, read, write, options);
    return decodeTensors(write[0]!.buf);
  }

  async modelUnload(model: Resource, options: ModelLoadOptions = {}): Promise<void> {
    const { read, write } = packModelUnload(this.#registered(model));
    await this.doOperation(modelOpsOf(options).unload, read, write, options);
  }

  exec(
    library: string,
    symbol: string,
    read: readonly Arg[],
    write: Arg[],
    options?: CallOptions,
  ): Promise<void> {
    const packed = packExec(library, symbol, read, write);
    return this.doOperation(OpType.Exec, packed.read, packed.write, options);
  }

  execWithResource(
    library: Resource,
    symbol: string,
    read: readonly Arg[],
    write: Arg[],
    options?: CallOptions,
  ): Promise<void> {
    const packed = packExecWithResource(this.#registered(library), symbol, read, write);
    return this.doOperation(OpType.ExecWithResource, packed.read, packed.write, options);
  }

  #assertOpen(): void {
    if (this.#released) throw new VaccelError('EBADF', `session ${this.id} was released`);
  }

  #registered(resource: Resource): number {
    this.#assertOpen();
    if (!this.#resources.has(resource?.id)) {
      throw new VaccelError('ENOENT', `resource ${resource?.id} is not registered with session ${this.id}`);
    }
    return resource.id;
  }

  #resource(id: number): ResourceData {
    const resource = this.#resources.get(id);
    if (!resource)
      throw new VaccelError('ENOENT', `resource ${id} is not registered with session ${this.id}`);
    return resource;
  }

  #logger(plugin: Plugin): Logger {
    let logger = this.#loggers.get(plugin);
    if (!logger) {
      logger = this.host.logger.child({ plugin: plugin.name });
      this.#loggers.set(plugin, logger);
    }
    return logger;
  }
}

/** Checks hint bits. @internal */
export function checkHint(hint: number): number {
  if (!Number.isInteger(hint) || hint < 0 || hint > 0xffff) {
    throw new VaccelError('EINVAL', `session hint must be PluginType bits (0–0xffff), got ${hint}`);
  }
  return hint;
}

/**
 * `@vaccel/plugin-onnx`: the host plugin on ONNX Runtime (CPU execution provider now; the provider
 * list is an option, so a GPU provider drops in) and sharp.
 *
 * - `image_classify` / top-k classification with any ImageNet-style ONNX model described by a
 *   `model.json` ({@link parseDescriptor}); a default model ships with the package. A model a
 *   guest gives (a resource) runs contained, like model_load's (see below); shipped ones in process.
 * - `image_detect` / `image_pose` / `image_segment` (upstream layouts and typed results) with
 *   described models; COCO NanoDet, MoveNet Lightning and MediaPipe's selfie segmenter ship.
 * - `model_load` / `model_run` / `model_unload` on any ONNX model registered as a resource, and
 *   TensorFlow graphs (frozen GraphDef or TF.js graph model, converted at load) — also as
 *   `tf_model_load` / `tf_model_run` / `tf_model_unload`. These models are a guest's: they pass
 *   model intake (no external data, a budget on constants) and run in runner processes under a
 *   memory cap, so a model that crashes or takes too much fails its own call only.
 * - `blas_sgemm` through cached in-memory Gemm graphs (MLAS), ahead of sgemm-js by priority.
 * @module
 */
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import {
  BUILTIN_PLUGIN_NAMES,
  type ClassifyArgs,
  classifyHandlers,
  type ModelInfo,
  modelHandlers,
  type OpContext,
  OpType,
  type Plugin,
  PluginType,
  type SgemmArgs,
  sgemmFlops,
  sgemmHandler,
  torchSgemmHandler,
  VaccelError,
  type VisionTask,
  visionHandlers,
} from '@vaccel/core';
import { sgemmKernel } from '@vaccel/core/plugins';
import * as ort from 'onnxruntime-node';
import { Classifier, readModelBlobs } from './classifier.js';
import { intakeOptions, modelHost } from './contained/options.js';
import type { ModelTask } from './descriptor.js';
import { onnxModelOffThread } from './model-formats.js';
import { hostedSession } from './model-session.js';
import type { SessionSettings } from './session.js';
import { OrtSgemm } from './sgemm.js';
import { ComputeThreads } from './threads/pool.js';
import { VisionModel } from './vision.js';

/** Problems of at most this many flops (2·16³) skip ONNX Runtime for the inline kernel (measured crossover: ORT wins from N ≈ 24). */
const INLINE_SGEMM_FLOPS = 2 * 16 ** 3;
/**
 * With compute threads, SGEMMs of at most this many flops (≈ 203³, well under a millisecond) still
 * run on the calling thread: the hop to a thread and the copies there and back cost about as much.
 */
const CALLER_THREAD_SGEMM_FLOPS = 2 ** 24;

export { DataType, type GraphSpec, initializer, modelBytes, node, valueInfo } from '@vaccel/tf2onnx/onnx';
export { Classifier, type ClassifyResult, type ClassifyTimings, readModelBlobs } from './classifier.js';
export { runnerChannel } from './contained/pool.js';
export {
  type DecoderSpec,
  type InputSpec,
  type ModelDescriptor,
  type ModelTask,
  parseDescriptor,
  parseLabels,
} from './descriptor.js';
export { admitModel, DEFAULT_INTAKE, type IntakeLimits } from './intake.js';
export { onnxModelOf, onnxModelOffThread } from './model-formats.js';
export {
  checkImagePixels,
  DEFAULT_MAX_IMAGE_PIXELS,
  type ImageHeader,
  imageHeader,
  MAX_INPUT_PIXELS,
  maxImagePixels,
  preprocess,
} from './preprocess.js';
export { BLOCK_FLOPS, gemmModel, OrtSgemm, type SgemmRunContext, sgemmChannel } from './sgemm.js';
export { VISION_DEFAULTS, VisionModel, type VisionTimings } from './vision.js';

/** The model classification uses when none is given: the one shipped in `models/`. */
export const DEFAULT_MODEL_DIR = fileURLToPath(
  new URL('../models/mobilenet-v2-moderation/', import.meta.url),
);

/** The shipped detection, pose and segmentation models (COCO NanoDet, MoveNet Lightning, MediaPipe selfie). */
export const DEFAULT_VISION_MODELS: Readonly<Record<VisionTask, string>> = {
  detect: fileURLToPath(new URL('../models/nanodet-coco/', import.meta.url)),
  pose: fileURLToPath(new URL('../models/movenet-lightning/', import.meta.url)),
  segment: fileURLToPath(new URL('../models/selfie-segmentation/', import.meta.url)),
};

const VISION_TASKS: Record<VisionTask, ModelTask> = {
  detect: 'detection',
  pose: 'pose',
  segment: 'segmentation',
};

/** Options of {@link onnxPlugin}. Unset ones come from the environment. */
export interface OnnxPluginOptions {
  /** Default classification model: a folder, its model.json, or an .onnx (default `VACCEL_ONNX_MODEL`, else the shipped one). */
  defaultModel?: string;
  /**
   * Default detection, pose and segmentation models (folders with a model.json; default
   * `VACCEL_ONNX_DETECT_MODEL`, `VACCEL_ONNX_POSE_MODEL`, `VACCEL_ONNX_SEGMENT_MODEL`, else the shipped ones).
   */
  visionModels?: Partial<Record<VisionTask, string>>;
  /** Execution providers, best first (default `VACCEL_ONNX_PROVIDERS` `:`-list, else `cpu`). */
  executionProviders?: readonly string[];
  /** Threads per op (default `VACCEL_ONNX_THREADS`, else all cores); model runners share them. */
  threads?: number;
  /**
   * Worker threads that run the host's own models (the shipped ones) and SGEMMs past ~200³, so
   * that a run never holds the calling thread's event loop (default `VACCEL_ONNX_COMPUTE_THREADS`,
   * else 0: on the calling thread, the fastest for one caller). The agent turns them on, one per
   * compute slot: there the event loop answers every guest.
   */
  computeThreads?: number;
  /**
   * Nice value (0–19, Linux) of the compute threads: higher lets the calling thread preempt
   * their runs sooner (default `VACCEL_ONNX_COMPUTE_NICE`, else 0).
   */
  computeNice?: number;
  /**
   * Runner processes for guests' models (model_load, tf_model_load, and a model resource given
   * to an image op), started on first use
   * (default `VACCEL_MODEL_RUNNERS`, else 2, or 1 on one core). 0 runs them in this process,
   * where a model that crashes ONNX Runtime or exhausts memory takes the process with it: for
   * trusted callers only.
   */
  modelRunners?: number;
  /**
   * Bytes of address space each model runner may add to its baseline (RLIMIT_AS, set with
   * util-linux `prlimit`); Infinity for no cap (default `VACCEL_MODEL_MEMORY_LIMIT`, e.g. `2GiB`
   * or `unlimited`, else the smaller of 2 GiB and total memory / (2 × runners)).
   */
  modelMemoryLimit?: number;
  /**
   * Most bytes the constants of one model may declare, checked at intake for every model a
   * resource supplies and charged while a TensorFlow graph converts (default
   * `VACCEL_MODEL_MAX_CONSTANT_BYTES`, else 256 MiB).
   */
  maxConstantBytes?: number;
  /** Most bytes one model run's outputs may take, else `E2BIG` (default `VACCEL_MODEL_OUTPUT_LIMIT`, else 256 MiB). */
  maxModelOutputBytes?: number;
  env?: Readonly<Record<string, string | undefined>>;
}

/** Execution providers this build of onnxruntime-node offers. */
export const availableProviders = (): string[] => ort.listSupportedBackends().map((b) => b.name);

/** A whole number ≥ 0 from the environment (0 when unset). @throws VaccelError `EINVAL` naming it. */
function wholeNumber(value: string | undefined, name: string): number {
  if (value === undefined || value.trim() === '') return 0;
  if (!/^\d+$/.test(value.trim()))
    throw new VaccelError('EINVAL', `onnx: ${name} must be a whole number, got ${JSON.stringify(value)}`);
  return Number(value);
}

interface LoadedModel {
  info: Promise<ModelInfo>;
  refs: number;
}

/** Creates the ONNX plugin. */
export function onnxPlugin(options: OnnxPluginOptions = {}): Plugin {
  const env = options.env ?? process.env;
  const threads = options.threads ?? (Number(env.VACCEL_ONNX_THREADS) || availableParallelism());
  if (!Number.isSafeInteger(threads) || threads < 1)
    throw new VaccelError('EINVAL', `onnx: threads must be a positive integer, got ${threads}`);
  const providers =
    options.executionProviders ?? (env.VACCEL_ONNX_PROVIDERS?.split(':').filter(Boolean) || ['cpu']);
  const available = availableProviders();
  const missing = providers.filter((p) => !available.includes(p));
  if (missing.length > 0 || providers.length === 0)
    throw new VaccelError(
      'ENOTSUP',
      `onnx: execution providers ${missing.join(', ') || '(none)'} unavailable; this build has ${available.join(', ')}`,
    );
  const intake = intakeOptions(options, env);
  const settings: SessionSettings = { executionProviders: providers, intraOpThreads: threads, intake };
  const host = modelHost(options, env, settings, availableParallelism());
  const defaultModel = options.defaultModel ?? env.VACCEL_ONNX_MODEL ?? DEFAULT_MODEL_DIR;
  const computeThreads =
    options.computeThreads ?? wholeNumber(env.VACCEL_ONNX_COMPUTE_THREADS, 'VACCEL_ONNX_COMPUTE_THREADS');
  if (!Number.isSafeInteger(computeThreads) || computeThreads < 0)
    throw new VaccelError('EINVAL', `onnx: computeThreads must be an integer ≥ 0, got ${computeThreads}`);
  const computeNice =
    options.computeNice ?? wholeNumber(env.VACCEL_ONNX_COMPUTE_NICE, 'VACCEL_ONNX_COMPUTE_NICE');
  if (!Number.isSafeInteger(computeNice) || computeNice < 0 || computeNice > 19)
    throw new VaccelError('EINVAL', `onnx: computeNice must be an integer from 0 to 19, got ${computeNice}`);
  const threadPool =
    computeThreads > 0 ? new ComputeThreads(computeThreads, settings, computeNice || undefined) : undefined;
  /** Where a shipped model's session runs: on the compute threads, else in this thread. */
  const trusted = (key: string) => (threadPool ? hostedSession(threadPool, key, {}) : settings);
  const runSgemm = (args: SgemmArgs, ctx: OpContext) => {
    const flops = sgemmFlops(args.m, args.n, args.k);
    if (flops <= INLINE_SGEMM_FLOPS) return sgemmKernel(args);
    if (threadPool && flops > CALLER_THREAD_SGEMM_FLOPS) return threadPool.sgemm(args, ctx);
    return sgemm.run(args, ctx);
  };
  const visionDefaults: Record<VisionTask, string> = {
    detect: options.visionModels?.detect ?? env.VACCEL_ONNX_DETECT_MODEL ?? DEFAULT_VISION_MODELS.detect,
    pose: options.visionModels?.pose ?? env.VACCEL_ONNX_POSE_MODEL ?? DEFAULT_VISION_MODELS.pose,
    segment: options.visionModels?.segment ?? env.VACCEL_ONNX_SEGMENT_MODEL ?? DEFAULT_VISION_MODELS.segment,
  };
  const visionModels = new Map<string, Promise<VisionModel>>();
  const sgemm = new OrtSgemm(settings);
  const classifiers = new Map<string, Promise<Classifier>>();
  const models = new Map<string, LoadedModel>(); // by resource digest
  const loaded = new Map<string, string>(); // `${session}:${resource}` → digest

  const callOf = (ctx: OpContext) => ({ signal: ctx.signal, logger: ctx.logger });
  const cached = <T>(map: Map<string, Promise<T>>, key: string, make: () => Promise<T>): Promise<T> => {
    let value = map.get(key);
    if (!value) {
      value = make();
      value.catch(() => map.delete(key)); // a failed load may be retried
      map.set(key, value);
    }
    return value;
  };

  const classifierFor = (modelId: number, ctx: OpContext): Promise<Classifier> => {
    if (modelId === 0) {
      return cached(classifiers, `default:${defaultModel}`, async () => {
        if (!existsSync(defaultModel))
          throw new VaccelError(
            'ENOENT',
            `onnx: no default classification model at ${defaultModel}; pass a model or set VACCEL_ONNX_MODEL`,
          );
        return Classifier.load(
          await readModelBlobs(defaultModel),
          trusted(`default:classify:${defaultModel}`),
          defaultModel,
        );
      });
    }
    // A guest's model: its session on the model host (a runner, under the memory cap), under a
    // key of its own, apart from the same bytes loaded with model_load.
    const resource = ctx.resource(modelId);
    const key = `classify:${resource.digest}`;
    return cached(classifiers, resource.digest, () =>
      Classifier.load(resource.blobs, hostedSession(host, key, callOf(ctx)), `model ${modelId}`),
    );
  };

  const classify = async ({ image, topK, modelId }: ClassifyArgs, ctx: OpContext) => {
    const classifier = await classifierFor(modelId, ctx);
    const { classes, timings } = await classifier.classify(image, topK, callOf(ctx));
    ctx.logger.debug({ model: classifier.descriptor.name, ...timings }, 'classified');
    return classes;
  };
  const classifyOps = classifyHandlers(classify);

  const visionModelFor = (task: VisionTask, modelId: number, ctx: OpContext): Promise<VisionModel> => {
    if (modelId === 0) {
      const dir = visionDefaults[task];
      return cached(visionModels, `default:${task}:${dir}`, async () =>
        VisionModel.load(
          await readModelBlobs(dir),
          trusted(`default:${task}:${dir}`),
          VISION_TASKS[task],
          dir,
        ),
      );
    }
    const resource = ctx.resource(modelId);
    const key = `${task}:${resource.digest}`;
    return cached(visionModels, key, () =>
      VisionModel.load(
        resource.blobs,
        hostedSession(host, key, callOf(ctx)),
        VISION_TASKS[task],
        `model ${modelId}`,
      ),
    );
  };
  const vision = (task: VisionTask) =>
    visionHandlers(task, async ({ image, modelId, options }, ctx) => {
      const model = await visionModelFor(task, modelId, ctx);
      const { timings, ...result } = await model.run(image, options, callOf(ctx));
      ctx.logger.debug({ model: model.descriptor.name, ...timings }, task);
      return result;
    });
  const [detect, pose, segment] = [vision('detect'), vision('pose'), vision('segment')];

  const unloadKey = async (key: string): Promise<void> => {
    const digest = loaded.get(key);
    if (digest === undefined) return;
    loaded.delete(key);
    const model = models.get(digest);
    if (model && --model.refs === 0) {
      models.delete(digest);
      await model.info.catch(() => undefined);
      await host.release(digest);
    }
  };

  const model = modelHandlers({
    async load(modelId, ctx) {
      const resource = ctx.resource(modelId);
      const key = `${ctx.session.id}:${modelId}`;
      const what = `model ${modelId}`;
      let entry = models.get(resource.digest);
      if (!entry) {
        const call = { signal: ctx.signal, logger: ctx.logger };
        // The plugin's budget, not the process environment's: a TensorFlow graph's constants are
        // held to the same maxConstantBytes while it converts as its ONNX at intake.
        const info = onnxModelOffThread(resource.blobs, what, {
          signal: ctx.signal,
          maxConstantBytes: intake.maxConstantBytes,
        }).then((bytes) => host.load(resource.digest, bytes, what, call));
        entry = { info, refs: 0 };
        models.set(resource.digest, entry);
        info.catch(() => {
          if (models.get(resource.digest) === entry) models.delete(resource.digest);
        });
      }
      const info = await entry.info;
      if (!loaded.has(key)) {
        loaded.set(key, resource.digest);
        entry.refs++;
      }
      return info;
    },
    async run({ modelId, inputs, outputs }, ctx) {
      const digest = loaded.get(`${ctx.session.id}:${modelId}`);
      const entry = digest === undefined ? undefined : models.get(digest);
      if (!entry)
        throw new VaccelError(
          'EINVAL',
          `model_run: model ${modelId} is not loaded in this session; load it first`,
        );
      await entry.info;
      return host.run(digest!, inputs, outputs, `model ${modelId}`, {
        signal: ctx.signal,
        logger: ctx.logger,
      });
    },
    async unload(modelId, ctx) {
      const key = `${ctx.session.id}:${modelId}`;
      if (!loaded.has(key))
        throw new VaccelError('EINVAL', `model_unload: model ${modelId} is not loaded in this session`);
      await unloadKey(key);
    },
  });

  return {
    name: 'onnx',
    version: '0.1.0',
    vaccelVersion: '0.8.0',
    types: PluginType.Cpu | PluginType.Generic,
    priority: 10,
    ops: {
      [OpType.ImageClassify]: classifyOps.upstream,
      [OpType.ImageClassifyTopK]: classifyOps.topK,
      [OpType.ImageDetect]: detect.upstream,
      [OpType.ImageDetectBoxes]: detect.ours,
      [OpType.ImagePose]: pose.upstream,
      [OpType.ImagePoseKeypoints]: pose.ours,
      [OpType.ImageSegment]: segment.upstream,
      [OpType.ImageSegmentMask]: segment.ours,
      [OpType.ModelLoad]: model.load,
      [OpType.ModelRun]: model.run,
      [OpType.ModelUnload]: model.unload,
      // TensorFlow graphs are converted to ONNX at load: the same handlers serve them.
      [OpType.TfModelLoad]: model.load,
      [OpType.TfModelRun]: model.run,
      [OpType.TfModelUnload]: model.unload,
      // Below ~16³ ONNX Runtime's fixed cost per run (tens of µs) outweighs the arithmetic: the
      // TypeScript kernel runs those inline.
      [OpType.BlasSgemm]: sgemmHandler(runSgemm),
      [OpType.TorchSgemm]: torchSgemmHandler(runSgemm),
    },
    hooks: {
      async sessionRelease(session) {
        const prefix = `${session.id}:`;
        await Promise.all([...loaded.keys()].filter((k) => k.startsWith(prefix)).map(unloadKey));
      },
      async resourceRelease(resource) {
        const classifier = classifiers.get(resource.digest);
        classifiers.delete(resource.digest);
        await (await classifier?.catch(() => undefined))?.release();
        for (const task of Object.keys(VISION_TASKS)) {
          const model = visionModels.get(`${task}:${resource.digest}`);
          visionModels.delete(`${task}:${resource.digest}`);
          await (await model?.catch(() => undefined))?.release();
        }
      },
    },
    async fini() {
      await sgemm.close();
      const all = [...classifiers.values()];
      classifiers.clear();
      await Promise.allSettled(all.map(async (c) => (await c).release()));
      const visions = [...visionModels.values()];
      visionModels.clear();
      await Promise.allSettled(visions.map(async (m) => (await m).release()));
      for (const key of [...loaded.keys()]) await unloadKey(key);
      await host.close();
      await threadPool?.close();
    },
  };
}

/**
 * The host's default plugin set (embedded `vaccel` and `vaccel-agent`): the builtin plugins plus
 * this one, which wins for sgemm by priority.
 */
export const hostPlugins = (
  env: Readonly<Record<string, string | undefined>> = process.env,
): (Plugin | string)[] => [...BUILTIN_PLUGIN_NAMES, onnxPlugin({ env })];

/** The plugin factory the runtime calls for `VACCEL_PLUGINS=@vaccel/plugin-onnx`. */
export default (config: { env?: Readonly<Record<string, string | undefined>> } = {}): Plugin =>
  onnxPlugin({ env: config.env });

/**
 * `@vaccel/plugin-onnx`: the host plugin on ONNX Runtime (CPU execution provider now; the provider
 * list is an option, so a GPU provider drops in) and sharp.
 *
 * - `image_classify` / top-k classification with any ImageNet-style ONNX model described by a
 *   `model.json` ({@link parseDescriptor}); a default model ships with the package. A model a
 *   guest gives (a resource) runs contained, like model_load's (see below); shipped ones in process.
 * - `image_detect` / `image_pose` / `image_segment` (upstream layouts and typed results) with
 *   described models; COCO CenterNet (the default detector) and NanoDet, MoveNet Lightning and
 *   MediaPipe's selfie segmenter ship.
 * - `model_load` / `model_run` / `model_unload` on any ONNX model registered as a resource, and
 *   TensorFlow graphs (frozen GraphDef or TF.js graph model, converted at load) — also as
 *   `tf_model_load` / `tf_model_run` / `tf_model_unload`. These models are a guest's: they pass
 *   model intake (no external data, a budget on constants) and run in runner processes under a
 *   memory cap, so a model that crashes or takes too much fails its own call only.
 * - `blas_sgemm` through cached in-memory Gemm graphs (MLAS), ahead of sgemm-js by priority.
 * @module
 */
import {
  BUILTIN_PLUGIN_NAMES,
  OpType,
  type Plugin,
  PluginType,
  sgemmHandler,
  torchSgemmHandler,
} from '@vaccel/core';
import { imageOps } from './image-ops.js';
import { modelOps } from './model-ops.js';
import { hostedSession } from './model-session.js';
import { type OnnxPluginOptions, pluginConfig } from './plugin-options.js';
import { OrtSgemm } from './sgemm.js';
import { sgemmRunner } from './sgemm-dispatch.js';
import { ComputeThreads } from './threads/pool.js';

export { DataType, type GraphSpec, initializer, modelBytes, node, valueInfo } from '@vaccel/tf2onnx/onnx';
export { Classifier, type ClassifyResult, type ClassifyTimings, readModelBlobs } from './classifier.js';
export { runnerChannel } from './contained/pool.js';
export { type SsdAnchor, ssdAnchors } from './decoders.js';
export {
  type DecoderSpec,
  type InputSpec,
  type ModelDescriptor,
  type ModelTask,
  parseDescriptor,
  parseLabels,
  type SsdAnchorOptions,
  type SsdDecoderSpec,
} from './descriptor.js';
export { admitModel, DEFAULT_INTAKE, type IntakeLimits } from './intake.js';
export { onnxModelOf, onnxModelOffThread } from './model-formats.js';
export {
  availableProviders,
  DEFAULT_MODEL_DIR,
  DEFAULT_VISION_MODELS,
  type OnnxPluginOptions,
} from './plugin-options.js';
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

/** Creates the ONNX plugin. */
export function onnxPlugin(options: OnnxPluginOptions = {}): Plugin {
  const { intake, settings, host, defaultModel, computeThreads, wideThreads, computeNice, visionDefaults } =
    pluginConfig(options);
  const threadPool =
    computeThreads > 0
      ? new ComputeThreads(computeThreads, settings, computeNice || undefined, undefined, wideThreads)
      : undefined;
  /** Where a shipped model's session runs: on the compute threads, else in this thread. */
  const trusted = (key: string) => (threadPool ? hostedSession(threadPool, key, {}) : settings);
  const images = imageOps({ host, trusted, defaultModel, visionDefaults, intake });
  const sgemm = new OrtSgemm(settings);
  const runSgemm = sgemmRunner(sgemm, threadPool);
  const models = modelOps(host, intake);
  const model = models.handlers;

  return {
    name: 'onnx',
    version: '0.1.0',
    vaccelVersion: '0.8.0',
    types: PluginType.Cpu | PluginType.Generic,
    priority: 10,
    ops: {
      [OpType.ImageClassify]: images.classify.upstream,
      [OpType.ImageClassifyTopK]: images.classify.topK,
      [OpType.ImageDetect]: images.detect.upstream,
      [OpType.ImageDetectBoxes]: images.detect.ours,
      [OpType.ImagePose]: images.pose.upstream,
      [OpType.ImagePoseKeypoints]: images.pose.ours,
      [OpType.ImageSegment]: images.segment.upstream,
      [OpType.ImageSegmentMask]: images.segment.ours,
      [OpType.ModelLoad]: model.load,
      [OpType.ModelRun]: model.run,
      [OpType.ModelUnload]: model.unload,
      // TensorFlow graphs are converted to ONNX at load: the same handlers serve them.
      [OpType.TfModelLoad]: model.load,
      [OpType.TfModelRun]: model.run,
      [OpType.TfModelUnload]: model.unload,
      [OpType.TfliteModelLoad]: model.load,
      [OpType.TfliteModelRun]: model.run,
      [OpType.TfliteModelUnload]: model.unload,
      // Below ~16³ ONNX Runtime's fixed cost per run (tens of µs) outweighs the arithmetic: the
      // TypeScript kernel runs those inline.
      [OpType.BlasSgemm]: sgemmHandler(runSgemm),
      [OpType.TorchSgemm]: torchSgemmHandler(runSgemm),
    },
    hooks: {
      async sessionRelease(session) {
        await models.releaseSession(session.id);
      },
      async resourceRelease(resource) {
        await images.release(resource.digest);
      },
    },
    async fini() {
      await sgemm.close();
      await images.close();
      await models.close();
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

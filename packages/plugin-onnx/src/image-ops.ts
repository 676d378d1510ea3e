/**
 * The image ops: classification and detection, pose and segmentation, with the shipped models
 * (run as the plugin's own) or a model a guest gives as a resource (run on the model host, under
 * its memory cap). Models load once and are cached until their resource is released.
 * @module
 */
import { existsSync } from 'node:fs';
import {
  type ClassifyArgs,
  classifyHandlers,
  type OpContext,
  VaccelError,
  type VisionTask,
  visionHandlers,
} from '@vaccel/core';
import { Classifier, readModelBlobs, type SessionSource } from './classifier.js';
import type { ModelTask } from './descriptor.js';
import type { IntakeLimits } from './intake.js';
import type { ModelHost } from './model-host.js';
import { hostedSession } from './model-session.js';
import { VisionModel } from './vision.js';

const VISION_TASKS: Record<VisionTask, ModelTask> = {
  detect: 'detection',
  pose: 'pose',
  segment: 'segmentation',
};

/** What the image ops need from the plugin. */
export interface ImageOpsHost {
  /** Where guests' models run. */
  host: ModelHost;
  /** Where a shipped model's session runs, under `key`. */
  trusted: (key: string) => SessionSource;
  /** The default classification model's path. */
  defaultModel: string;
  /** The default detection, pose and segmentation models' folders. */
  visionDefaults: Record<VisionTask, string>;
  /** The budget a guest's model is converted under (a `.tflite` its descriptor names). */
  intake?: IntakeLimits;
}

/** The image op handlers, and what releases the models they loaded. */
export function imageOps({ host, trusted, defaultModel, visionDefaults, intake }: ImageOpsHost) {
  const visionModels = new Map<string, Promise<VisionModel>>();
  const classifiers = new Map<string, Promise<Classifier>>();

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
      Classifier.load(resource.blobs, hostedSession(host, key, callOf(ctx)), `model ${modelId}`, intake),
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
        intake,
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

  return {
    classify: classifyOps,
    detect,
    pose,
    segment,
    /** Releases the models loaded from the resource with `digest`. */
    async release(digest: string): Promise<void> {
      const classifier = classifiers.get(digest);
      classifiers.delete(digest);
      await (await classifier?.catch(() => undefined))?.release();
      for (const task of Object.keys(VISION_TASKS)) {
        const model = visionModels.get(`${task}:${digest}`);
        visionModels.delete(`${task}:${digest}`);
        await (await model?.catch(() => undefined))?.release();
      }
    },
    /** Releases every model loaded. */
    async close(): Promise<void> {
      const all = [...classifiers.values()];
      classifiers.clear();
      await Promise.allSettled(all.map(async (c) => (await c).release()));
      const visions = [...visionModels.values()];
      visionModels.clear();
      await Promise.allSettled(visions.map(async (m) => (await m).release()));
    },
  };
}

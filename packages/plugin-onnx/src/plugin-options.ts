/**
 * The plugin's options ({@link OnnxPluginOptions}) read from the options or the environment and
 * validated up front, and the defaults they fall back on: the shipped models, the providers this
 * build offers.
 * @module
 */
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { VaccelError, type VisionTask } from '@vaccel/core';
import * as ort from 'onnxruntime-node';
import { intakeOptions, modelHost } from './contained/options.js';
import type { IntakeLimits } from './intake.js';
import type { ModelHost } from './model-host.js';
import type { SessionSettings } from './session.js';

/** The model classification uses when none is given: the one shipped in `models/`. */
export const DEFAULT_MODEL_DIR = fileURLToPath(
  new URL('../models/mobilenet-v2-moderation/', import.meta.url),
);

/**
 * The shipped detection, pose and segmentation models used by default (COCO CenterNet, MoveNet
 * Lightning, MediaPipe selfie). CenterNet detects: the most accurate shipped detector within 60 ms
 * per 640×480 photo in-process (docs/results/accuracy.md). The shipped NanoDet (`models/nanodet-coco`)
 * stays selectable with `visionModels.detect` or `VACCEL_ONNX_DETECT_MODEL`.
 */
export const DEFAULT_VISION_MODELS: Readonly<Record<VisionTask, string>> = {
  detect: fileURLToPath(new URL('../models/centernet-coco/', import.meta.url)),
  pose: fileURLToPath(new URL('../models/movenet-lightning/', import.meta.url)),
  segment: fileURLToPath(new URL('../models/selfie-segmentation/', import.meta.url)),
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
   * ONNX Runtime threads for a shipped model's run that starts alone on the compute threads
   * (nothing else running or waiting): a lone caller gets every core, not its share of them; runs
   * that overlap keep `threads` each (default `VACCEL_ONNX_WIDE_THREADS`, else all cores; at most
   * the cores; not above `threads`, e.g. 0: off). Each compute thread then keeps a second session per model.
   */
  wideThreads?: number;
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

/** The plugin's settings, every option resolved and checked. */
export interface PluginConfig {
  intake: IntakeLimits;
  /** How the plugin's own sessions run: providers, threads per op, intake limits. */
  settings: SessionSettings;
  /** Where guests' models run (runner processes, or in process). */
  host: ModelHost;
  /** The default classification model's path. */
  defaultModel: string;
  computeThreads: number;
  /** ONNX Runtime threads of a run alone on the compute threads (see `wideThreads`). */
  wideThreads: number;
  computeNice: number;
  /** The default detection, pose and segmentation models' folders. */
  visionDefaults: Record<VisionTask, string>;
}

/**
 * Resolves `options` (unset ones from `options.env`, else the process environment) in the order
 * the plugin has always checked them, so the first bad one is the one reported.
 * @throws VaccelError `EINVAL` for a bad value, `ENOTSUP` for an execution provider this build lacks.
 */
export function pluginConfig(options: OnnxPluginOptions): PluginConfig {
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
  const wideThreads =
    options.wideThreads ??
    (env.VACCEL_ONNX_WIDE_THREADS === undefined || env.VACCEL_ONNX_WIDE_THREADS.trim() === ''
      ? availableParallelism()
      : wholeNumber(env.VACCEL_ONNX_WIDE_THREADS, 'VACCEL_ONNX_WIDE_THREADS'));
  if (!Number.isSafeInteger(wideThreads) || wideThreads < 0)
    throw new VaccelError('EINVAL', `onnx: wideThreads must be an integer ≥ 0, got ${wideThreads}`);
  // More threads than cores would only make a lone run slower.
  const wideRunThreads = Math.min(wideThreads, availableParallelism());
  const computeNice =
    options.computeNice ?? wholeNumber(env.VACCEL_ONNX_COMPUTE_NICE, 'VACCEL_ONNX_COMPUTE_NICE');
  if (!Number.isSafeInteger(computeNice) || computeNice < 0 || computeNice > 19)
    throw new VaccelError('EINVAL', `onnx: computeNice must be an integer from 0 to 19, got ${computeNice}`);
  const visionDefaults: Record<VisionTask, string> = {
    detect: options.visionModels?.detect ?? env.VACCEL_ONNX_DETECT_MODEL ?? DEFAULT_VISION_MODELS.detect,
    pose: options.visionModels?.pose ?? env.VACCEL_ONNX_POSE_MODEL ?? DEFAULT_VISION_MODELS.pose,
    segment: options.visionModels?.segment ?? env.VACCEL_ONNX_SEGMENT_MODEL ?? DEFAULT_VISION_MODELS.segment,
  };
  return {
    intake,
    settings,
    host,
    defaultModel,
    computeThreads,
    wideThreads: wideRunThreads,
    computeNice,
    visionDefaults,
  };
}

/**
 * Detection, pose and segmentation models: a described ONNX model (model.json with a `task` and an
 * output decoder), run on one image and read into typed results, optionally drawn on the image.
 * @module
 */
import type { Detection, Pose, ResourceBlob, Segmentation, VisionOptions, VisionResult } from '@vaccel/core';
import { VaccelError } from '@vaccel/core';
import { drawDetections, drawMask, drawPose, resizeMask } from './annotate.js';
import { type DescribedModel, imageTensor, openDescribedModel, type SessionSource } from './classifier.js';
import {
  decodeBoxes,
  decodeKeypoints,
  decodeMask,
  decodeNanodet,
  decodeSsd,
  type Frame,
  nonMaxSuppression,
  type OutputTensor,
  type SsdAnchor,
  ssdAnchorsFor,
  ssdOutputs,
} from './decoders.js';
import type { ModelTask } from './descriptor.js';
import type { OffThreadOptions } from './model-formats.js';
import type { ModelCallOptions } from './model-host.js';
import { preprocess } from './preprocess.js';

/** Defaults of {@link VisionOptions}. */
export const VISION_DEFAULTS = {
  minScore: 0.3,
  iouThreshold: 0.5,
  maxResults: 100,
  poseMinScore: 0.3,
} as const;

/** Timings of one run, in ms. */
export interface VisionTimings {
  decode: number;
  inference: number;
  total: number;
}

/** A loaded detection, pose or segmentation model. */
export class VisionModel {
  /** An SSD decoder's anchors, made on the first run. */
  private anchors?: SsdAnchor[];

  private constructor(private readonly model: DescribedModel) {}

  get descriptor() {
    return this.model.descriptor;
  }

  /**
   * Opens a model for `task` from its blobs; `source` says where its session runs (see
   * {@link SessionSource}). @throws VaccelError `EINVAL` if it does not fit.
   */
  static async load(
    blobs: readonly ResourceBlob[],
    source: SessionSource,
    task: ModelTask,
    what: string,
    limits: Pick<OffThreadOptions, 'maxConstantBytes'> = {},
  ) {
    return new VisionModel(await openDescribedModel(blobs, source, what, task, limits));
  }

  /**
   * Runs the model on encoded image bytes. `call.signal` stops the work (a contained run at
   * once); `call.logger` hears what a model runner said before it died.
   */
  async run(
    image: Uint8Array,
    options: VisionOptions,
    call: ModelCallOptions = {},
  ): Promise<VisionResult<Detection[] | Pose | Segmentation> & { timings: VisionTimings }> {
    const { signal } = call;
    const started = performance.now();
    const { descriptor, session, inputName, labels } = this.model;
    const input = await preprocess(image, descriptor.input, signal);
    const inferStart = performance.now();
    const results = await session.run({ [inputName]: imageTensor(input.tensor, input.dims) }, [], call);
    signal?.throwIfAborted();
    const inference = performance.now() - inferStart;
    const outputs: OutputTensor[] = session.outputNames.map((name) => {
      const t = results[name];
      if (t?.dtype !== 'float32' || !(t.data instanceof Float32Array))
        throw new VaccelError(
          'EINVAL',
          `${descriptor.name}: output ${name} is ${t?.dtype ?? 'missing'}, not float32`,
        );
      return { name, dims: t.dims, data: t.data };
    });
    const frame: Frame = {
      inputWidth: descriptor.input.width,
      inputHeight: descriptor.input.height,
      ...input.source,
      content: input.content,
    };
    // The output the descriptor names (CenterNet has three), else the first.
    const main = descriptor.outputName
      ? outputs[session.outputNames.indexOf(descriptor.outputName)]
      : outputs[0];
    if (!main)
      throw new VaccelError(
        'EINVAL',
        `${descriptor.name}: no output ${descriptor.outputName} (outputs ${session.outputNames.join(', ')})`,
      );
    const decoder = descriptor.decoder!;
    // Resizing a mask to the image and drawing on it decode the image again at full size: not
    // for a caller that has given up.
    signal?.throwIfAborted();
    let result: Detection[] | Pose | Segmentation;
    let annotated: Uint8Array | undefined;
    if (decoder.kind === 'nanodet' || decoder.kind === 'boxes' || decoder.kind === 'ssd') {
      const minScore = options.minScore ?? VISION_DEFAULTS.minScore;
      let candidates: Detection[];
      if (decoder.kind === 'nanodet')
        candidates = decodeNanodet(outputs, decoder.strides, decoder.regMax, frame, minScore, labels);
      else if (decoder.kind === 'boxes')
        candidates = decodeBoxes(main, frame, minScore, labels, decoder.coordinates);
      else {
        const { boxes, scores } = ssdOutputs(outputs, decoder);
        this.anchors ??= ssdAnchorsFor(decoder, boxes.dims.at(-2) ?? 0);
        candidates = decodeSsd(boxes, scores, this.anchors, decoder, frame, minScore, labels);
      }
      const found = nonMaxSuppression(
        candidates,
        options.iouThreshold ?? VISION_DEFAULTS.iouThreshold,
        options.maxResults ?? VISION_DEFAULTS.maxResults,
      );
      result = found;
      if (options.annotate) annotated = await drawDetections(image, input.source, found);
    } else if (decoder.kind === 'keypoints') {
      const keypoints = decodeKeypoints(main, frame, labels);
      const pose: Pose = {
        score: keypoints.reduce((s, k) => s + k.score, 0) / Math.max(1, keypoints.length),
        keypoints,
        skeleton: decoder.skeleton,
      };
      result = pose;
      if (options.annotate)
        annotated = await drawPose(
          image,
          input.source,
          pose,
          options.minScore ?? VISION_DEFAULTS.poseMinScore,
        );
    } else {
      const small = decodeMask(main, decoder.channel);
      const mask = await resizeMask(small.mask, small, input.source.width, input.source.height);
      let inside = 0;
      for (const v of mask) if (v >= 128) inside++;
      const segmentation: Segmentation = {
        label: labels[0] ?? 'foreground',
        width: input.source.width,
        height: input.source.height,
        coverage: inside / Math.max(1, mask.length),
        mask,
      };
      result = segmentation;
      if (options.annotate) annotated = await drawMask(image, segmentation);
    }
    const timings = {
      decode: input.decodeMs + input.normalizeMs,
      inference,
      total: performance.now() - started,
    };
    return annotated ? { result, annotated, timings } : { result, timings };
  }

  /** Frees the ONNX Runtime session. */
  async release(): Promise<void> {
    await this.model.session.release();
  }
}

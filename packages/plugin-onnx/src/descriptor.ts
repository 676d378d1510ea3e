/**
 * Model descriptors: a small `model.json` beside an ONNX file that says how to feed an image to
 * it (size, layout, colour, scale, mean/std) and how to read its output (labels, logits or
 * probabilities), so any ImageNet-style classifier works without code.
 * @module
 */
import { VaccelError } from '@vaccel/core';

/** How to turn an image into the model's input tensor. */
export interface InputSpec {
  /** Input tensor name (default: the model's first input). */
  name?: string;
  layout: 'NHWC' | 'NCHW';
  width: number;
  height: number;
  /** Channel order fed to the model (default RGB). */
  color: 'RGB' | 'BGR';
  /** Multiplier applied to 0–255 pixel values first (e.g. 1/255). */
  scale: number;
  /** Per-channel mean subtracted after scaling. */
  mean: [number, number, number];
  /** Per-channel std divided by last. */
  std: [number, number, number];
  /** Element type of the input tensor (default float32; int32 takes whole pixel values). */
  dtype: 'float32' | 'int32';
  /** sharp resize kernel (default `linear`, i.e. bilinear). */
  kernel: 'nearest' | 'linear' | 'cubic' | 'mitchell' | 'lanczos2' | 'lanczos3';
  /**
   * `stretch` (default) resizes the image to the input, whatever its aspect ratio; `letterbox`
   * scales it to fit, keeping its aspect ratio, centred on black (pixel value 0), as detectors and
   * pose models trained that way expect (`resize: "bilinear, letterbox"`; detection and pose only).
   */
  fit: 'stretch' | 'letterbox';
}

/** What a model does: which op serves it. */
export type ModelTask = 'classification' | 'detection' | 'pose' | 'segmentation';

/** How a detection, pose or segmentation model's outputs are read. */
export type DecoderSpec =
  /** NanoDet's GFL head: per stride, class scores `[1,N,C]` and box distributions `[1,N,4·(regMax+1)]`. */
  | { kind: 'nanodet'; strides: number[]; regMax: number }
  /**
   * One output `[1,N,6]` (or `[N,6]`): x1, y1, x2, y2, score, class; corners normalised to 0–1, or
   * in model-input pixels with `coordinates: 'pixels'` (CenterNet's in-graph `detections`).
   */
  | { kind: 'boxes'; coordinates: 'normalized' | 'pixels' }
  /** One output `[1,1,K,3]`: y, x normalised to 0–1, score per keypoint (MoveNet). */
  | { kind: 'keypoints'; skeleton: [number, number][] }
  /** One output `[1,H,W,C]` of probabilities; channel `channel` is the class. */
  | { kind: 'mask'; channel: number }
  /** SSD's raw outputs (TF Object Detection API, MediaPipe): see {@link SsdDecoderSpec}. */
  | SsdDecoderSpec;

/**
 * How SSD anchors are laid out, as MediaPipe's SsdAnchorsCalculator (and the TF Object Detection
 * API's multiple_grid_anchor_generator) makes them: per layer (one stride each) a grid of
 * ⌈input / stride⌉ cells, each with one anchor per aspect ratio at the layer's scale (scales
 * spread evenly from `minScale` on the first layer to `maxScale` on the last) plus, unless
 * `interpolatedScaleAspectRatio` is 0, one at the geometric mean of this layer's scale and the
 * next's (1 after the last). `reduceBoxesInLowestLayer`: the first layer has 3 anchors only,
 * (scale 0.1, ratio 1), (minScale, 2), (minScale, 0.5). Centres at (cell + offset) / cells;
 * sizes scale / √ratio high, scale · √ratio wide, relative to the input (1 × 1 with
 * `fixedAnchorSize`).
 */
export interface SsdAnchorOptions {
  /** The input size the anchors are laid on (the model's input). */
  inputWidth: number;
  inputHeight: number;
  minScale: number;
  maxScale: number;
  /** One per layer, in the order the model emits its boxes. */
  strides: number[];
  aspectRatios: number[];
  reduceBoxesInLowestLayer: boolean;
  interpolatedScaleAspectRatio: number;
  /** Anchor centre within its cell, 0–1 (default 0.5). */
  offsetX: number;
  offsetY: number;
  fixedAnchorSize: boolean;
}

/**
 * SSD's raw outputs: box encodings `[1,N,4]` relative to N anchors and class scores `[1,N,C]`. A
 * box encodes (ty, tx, th, tw) (`boxOrder: yxhw`, TF's; `xywh` swaps the pairs): centre =
 * anchor centre + t / scale × anchor size, size = exp(t / scale) × anchor size. Each anchor's
 * best class (background excluded) is its detection, as MediaPipe's TensorsToDetections does.
 */
export interface SsdDecoderSpec {
  kind: 'ssd';
  anchors: SsdAnchorOptions;
  /** Divisors of the encodings: y, x, h, w (default 10, 10, 5, 5, TF's box coder). */
  boxScale: [number, number, number, number];
  boxOrder: 'yxhw' | 'xywh';
  /** What turns raw class scores into probabilities (default sigmoid). */
  activation: 'sigmoid' | 'softmax' | 'none';
  /** The background class, never reported (default 0; null when the model has none). */
  background: number | null;
  /** Output names (default: the `[1,N,4]` output is the boxes, the other `[1,N,C]` the scores). */
  boxesOutput?: string;
  scoresOutput?: string;
}

/** A model descriptor, normalised. */
export interface ModelDescriptor {
  name: string;
  task: ModelTask;
  /** Outputs of detection, pose and segmentation models. */
  decoder?: DecoderSpec;
  /**
   * Model file name, relative to the descriptor: ONNX, or a TensorFlow Lite `.tflite`, converted
   * to ONNX at load.
   */
  file: string;
  /** Label file name (one label per line), relative to the descriptor. */
  labels?: string;
  input: InputSpec;
  /** Output tensor name (default: the model's first output). */
  outputName?: string;
  /** `logits` get a softmax; `probabilities` are used as they are. */
  outputKind: 'logits' | 'probabilities';
}

const bad = (what: string): never => {
  throw new VaccelError('EINVAL', `model descriptor: ${what}`);
};

const triple = (value: unknown, fallback: number, what: string): [number, number, number] => {
  if (value === undefined) return [fallback, fallback, fallback];
  if (typeof value === 'number') return [value, value, value];
  if (
    Array.isArray(value) &&
    value.length === 3 &&
    value.every((v) => typeof v === 'number' && Number.isFinite(v))
  )
    return value as [number, number, number];
  return bad(`${what} must be a number or 3 numbers`);
};

function kernelOf(resize: unknown): InputSpec['kernel'] {
  const text = typeof resize === 'string' ? resize.toLowerCase() : '';
  if (text.includes('nearest')) return 'nearest';
  if (text.includes('bicubic') || text.includes('cubic')) return 'cubic';
  if (text.includes('lanczos')) return 'lanczos3';
  return 'linear';
}

/** `letterbox` when the resize text says so (e.g. `bilinear, letterbox`), else `stretch`. */
function fitOf(resize: unknown): InputSpec['fit'] {
  return typeof resize === 'string' && /\bletterbox\b/i.test(resize) ? 'letterbox' : 'stretch';
}

/**
 * Parses a descriptor (`model.json`). Accepts `input.shape` (`[1,224,224,3]` for NHWC or
 * `[1,3,224,224]` for NCHW) or `input.width`/`input.height`.
 * @throws VaccelError `EINVAL` naming the bad field.
 */
export function parseDescriptor(json: string | Uint8Array): ModelDescriptor {
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(typeof json === 'string' ? json : new TextDecoder().decode(json));
  } catch (cause) {
    throw new VaccelError('EINVAL', `model descriptor is not JSON: ${(cause as Error).message}`, { cause });
  }
  if (typeof raw !== 'object' || raw === null) return bad('must be a JSON object');
  const input = (raw.input ?? {}) as Record<string, unknown>;
  const output = (raw.output ?? {}) as Record<string, unknown>;
  const layout = (input.layout ?? 'NHWC') as string;
  if (layout !== 'NHWC' && layout !== 'NCHW') bad(`input.layout must be NHWC or NCHW, got ${layout}`);
  const shape = input.shape as number[] | undefined;
  let [height, width] = [input.height, input.width] as [unknown, unknown];
  if (Array.isArray(shape)) {
    if (shape.length !== 4) bad(`input.shape must have 4 dims, got [${shape.join(', ')}]`);
    [height, width] = layout === 'NHWC' ? [shape[1], shape[2]] : [shape[2], shape[3]];
    const channels = layout === 'NHWC' ? shape[3] : shape[1];
    if (channels !== 3) bad(`input.shape must have 3 channels, got ${channels}`);
  }
  for (const [what, v] of [
    ['input height', height],
    ['input width', width],
  ] as const) {
    if (!Number.isSafeInteger(v) || (v as number) < 1 || (v as number) > 8192)
      bad(`${what} must be an integer in 1–8192, got ${String(v)}`);
  }
  const color = (input.color ?? 'RGB') as string;
  if (color !== 'RGB' && color !== 'BGR') bad(`input.color must be RGB or BGR, got ${color}`);
  const scale = input.scale ?? 1;
  if (typeof scale !== 'number' || !Number.isFinite(scale)) bad('input.scale must be a number');
  const std = triple(input.std, 1, 'input.std');
  if (std.some((s) => s === 0)) bad('input.std must not be 0');
  const kindText = String(output.kind ?? (output.postprocess === 'softmax' ? 'logits' : 'probabilities'));
  if (kindText !== 'logits' && kindText !== 'probabilities')
    bad(`output.kind must be logits or probabilities, got ${kindText}`);
  const inputType = (input.dtype ?? 'float32') as string;
  if (inputType !== 'float32' && inputType !== 'int32')
    bad(`input.dtype must be float32 or int32, got ${inputType}`);
  const task = taskOf(raw.task);
  const fit = fitOf(input.resize);
  if (fit === 'letterbox' && task !== 'detection' && task !== 'pose')
    bad(`input.resize letterbox is for detection and pose models, not ${task}`);
  const file = raw.file ?? 'model.onnx';
  if (typeof file !== 'string' || file.length === 0) bad('file must be a file name');
  if (raw.labels !== undefined && typeof raw.labels !== 'string') bad('labels must be a file name');
  return {
    name: typeof raw.name === 'string' ? raw.name : (file as string),
    task,
    ...(task === 'classification'
      ? {}
      : { decoder: decoderOf(task, output, { width: width as number, height: height as number }) }),
    file: file as string,
    ...(raw.labels !== undefined ? { labels: raw.labels as string } : {}),
    input: {
      ...(typeof input.name === 'string' ? { name: input.name } : {}),
      layout: layout as InputSpec['layout'],
      width: width as number,
      height: height as number,
      color: color as InputSpec['color'],
      scale: scale as number,
      mean: triple(input.mean, 0, 'input.mean'),
      std,
      dtype: inputType as InputSpec['dtype'],
      kernel: kernelOf(input.resize),
      fit,
    },
    ...(typeof output.name === 'string' ? { outputName: output.name } : {}),
    outputKind: kindText as ModelDescriptor['outputKind'],
  };
}

const TASKS: Record<string, ModelTask> = {
  'image-classification': 'classification',
  classification: 'classification',
  'object-detection': 'detection',
  detection: 'detection',
  'pose-estimation': 'pose',
  pose: 'pose',
  'image-segmentation': 'segmentation',
  segmentation: 'segmentation',
};

function taskOf(value: unknown): ModelTask {
  if (value === undefined) return 'classification';
  const task = TASKS[String(value)];
  if (!task) bad(`task must be one of ${Object.keys(TASKS).join(', ')}, got ${String(value)}`);
  return task!;
}

const positiveInts = (v: unknown) =>
  Array.isArray(v) && v.length > 0 && v.every((x) => Number.isSafeInteger(x) && x > 0);

function decoderOf(
  task: ModelTask,
  output: Record<string, unknown>,
  input: { width: number; height: number },
): DecoderSpec {
  const kind = String(
    output.decoder ?? { detection: 'nanodet', pose: 'keypoints', segmentation: 'mask' }[task as string],
  );
  switch (kind) {
    case 'nanodet': {
      const strides = output.strides ?? [8, 16, 32];
      if (!positiveInts(strides)) bad('output.strides must be positive integers');
      const regMax = output.regMax ?? 7;
      if (!Number.isSafeInteger(regMax) || (regMax as number) < 1)
        bad('output.regMax must be a positive integer');
      return { kind, strides: strides as number[], regMax: regMax as number };
    }
    case 'boxes': {
      const coordinates = output.coordinates ?? 'normalized';
      if (coordinates !== 'normalized' && coordinates !== 'pixels')
        bad(`output.coordinates must be normalized or pixels, got ${String(coordinates)}`);
      return { kind, coordinates: coordinates as 'normalized' | 'pixels' };
    }
    case 'keypoints': {
      const skeleton = output.skeleton ?? [];
      if (
        !Array.isArray(skeleton) ||
        !skeleton.every(
          (p) => Array.isArray(p) && p.length === 2 && p.every((i) => Number.isSafeInteger(i) && i >= 0),
        )
      )
        bad('output.skeleton must be pairs of keypoint indices');
      return { kind, skeleton: skeleton as [number, number][] };
    }
    case 'mask': {
      const channel = output.channel ?? 0;
      if (!Number.isSafeInteger(channel) || (channel as number) < 0) bad('output.channel must be an index');
      return { kind, channel: channel as number };
    }
    case 'ssd':
      if (task !== 'detection') bad(`output.decoder ssd is for object-detection models, not ${task}`);
      return ssdDecoderOf(output, input);
    default:
      return bad(
        `output.decoder ${String(kind)} does not fit task ${task} (nanodet, boxes, ssd, keypoints, mask)`,
      );
  }
}

/** Most SSD layers and aspect ratios a descriptor may ask for (real ones: 4–6 and 1–6). */
export const MAX_SSD_LAYERS = 16;
/** Most anchors an ssd decoder may make (real ones: 896 BlazeFace, 1917 SSD-300, 24564 SSD-512). */
export const MAX_SSD_ANCHORS = 100_000;
/** Largest anchor scale (a fraction of the input's side; real ones stay under 1). */
export const MAX_SSD_SCALE = 10;

/**
 * How many anchors `o` makes, by arithmetic alone: per layer, its grid (⌈input ÷ stride⌉ a side)
 * times its shapes (3 in a reduced lowest layer, else the aspect ratios plus the interpolated one).
 */
export function ssdAnchorCount(o: SsdAnchorOptions): number {
  let count = 0;
  o.strides.forEach((stride, layer) => {
    const shapes =
      layer === 0 && o.reduceBoxesInLowestLayer
        ? 3
        : o.aspectRatios.length + (o.interpolatedScaleAspectRatio > 0 ? 1 : 0);
    count += Math.ceil(o.inputWidth / stride) * Math.ceil(o.inputHeight / stride) * shapes;
  });
  return count;
}

const isNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const positiveNumbers = (v: unknown) =>
  Array.isArray(v) && v.length > 0 && v.every((x) => isNumber(x) && x > 0);

/** The `ssd` decoder's options: `output.anchors`, `output.boxScale`, … (see {@link SsdDecoderSpec}). */
function ssdDecoderOf(
  output: Record<string, unknown>,
  input: { width: number; height: number },
): SsdDecoderSpec {
  const a = output.anchors;
  if (typeof a !== 'object' || a === null || Array.isArray(a))
    return bad(
      'output.anchors must be an object (minScale, maxScale, strides, aspectRatios, …) for the ssd decoder',
    );
  const anchors = a as Record<string, unknown>;
  const { minScale, maxScale } = anchors;
  if (
    !isNumber(minScale) ||
    !isNumber(maxScale) ||
    minScale <= 0 ||
    maxScale < minScale ||
    maxScale > MAX_SSD_SCALE
  )
    bad(
      `output.anchors.minScale and maxScale must be numbers with 0 < minScale ≤ maxScale ≤ ${MAX_SSD_SCALE}, got ${String(minScale)} and ${String(maxScale)}`,
    );
  const strides = anchors.strides;
  if (!positiveInts(strides)) bad('output.anchors.strides must be positive integers, one per layer');
  if ((strides as number[]).length > MAX_SSD_LAYERS)
    bad(`output.anchors.strides has ${(strides as number[]).length} layers, more than ${MAX_SSD_LAYERS}`);
  const layers = (strides as number[]).length;
  if (anchors.numLayers !== undefined && anchors.numLayers !== layers)
    bad(`output.anchors.numLayers is ${String(anchors.numLayers)} but strides has ${layers} layers`);
  const aspectRatios = anchors.aspectRatios ?? [1];
  if (!positiveNumbers(aspectRatios)) bad('output.anchors.aspectRatios must be positive numbers');
  if ((aspectRatios as number[]).length > MAX_SSD_LAYERS)
    bad(
      `output.anchors.aspectRatios has ${(aspectRatios as number[]).length} ratios, more than ${MAX_SSD_LAYERS}`,
    );
  const interpolated = anchors.interpolatedScaleAspectRatio ?? 1;
  if (!isNumber(interpolated) || interpolated < 0)
    bad('output.anchors.interpolatedScaleAspectRatio must be a number ≥ 0 (0: no interpolated anchor)');
  const flag = (name: string): boolean => {
    const v = anchors[name] ?? false;
    if (typeof v !== 'boolean') bad(`output.anchors.${name} must be true or false`);
    return v as boolean;
  };
  const offset = (name: string): number => {
    const v = anchors[name] ?? 0.5;
    if (!isNumber(v) || v < 0 || v > 1) bad(`output.anchors.${name} must be a number in 0–1`);
    return v as number;
  };
  const size = (name: string, fallback: number): number => {
    const v = anchors[name] ?? fallback;
    if (!Number.isSafeInteger(v) || (v as number) < 1 || (v as number) > 8192)
      bad(`output.anchors.${name} must be an integer in 1–8192, got ${String(v)}`);
    return v as number;
  };
  const boxScale = output.boxScale ?? [10, 10, 5, 5];
  if (!Array.isArray(boxScale) || boxScale.length !== 4 || !positiveNumbers(boxScale))
    bad('output.boxScale must be 4 positive numbers: y, x, h, w (TF: 10, 10, 5, 5)');
  const boxOrder = output.boxOrder ?? 'yxhw';
  if (boxOrder !== 'yxhw' && boxOrder !== 'xywh')
    bad(`output.boxOrder must be yxhw or xywh, got ${String(boxOrder)}`);
  const activation = output.activation ?? 'sigmoid';
  if (activation !== 'sigmoid' && activation !== 'softmax' && activation !== 'none')
    bad(`output.activation must be sigmoid, softmax or none, got ${String(activation)}`);
  const background = output.background === undefined ? 0 : output.background;
  if (background !== null && (!Number.isSafeInteger(background) || (background as number) < 0))
    bad('output.background must be a class index, or null when the model has no background class');
  for (const name of ['boxesOutput', 'scoresOutput'])
    if (output[name] !== undefined && typeof output[name] !== 'string')
      bad(`output.${name} must be an output name`);
  const anchorOptions: SsdAnchorOptions = {
    inputWidth: size('inputWidth', input.width),
    inputHeight: size('inputHeight', input.height),
    minScale: minScale as number,
    maxScale: maxScale as number,
    strides: strides as number[],
    aspectRatios: aspectRatios as number[],
    reduceBoxesInLowestLayer: flag('reduceBoxesInLowestLayer'),
    interpolatedScaleAspectRatio: interpolated as number,
    offsetX: offset('offsetX'),
    offsetY: offset('offsetY'),
    fixedAnchorSize: flag('fixedAnchorSize'),
  };
  // Counted before any anchor is made: a descriptor (a guest's, too) cannot ask for millions.
  const count = ssdAnchorCount(anchorOptions);
  if (count > MAX_SSD_ANCHORS)
    bad(`output.anchors makes ${count} anchors, more than the ${MAX_SSD_ANCHORS} an ssd decoder may have`);
  return {
    kind: 'ssd',
    anchors: anchorOptions,
    boxScale: boxScale as SsdDecoderSpec['boxScale'],
    boxOrder: boxOrder as SsdDecoderSpec['boxOrder'],
    activation: activation as SsdDecoderSpec['activation'],
    background: background as number | null,
    ...(typeof output.boxesOutput === 'string' ? { boxesOutput: output.boxesOutput } : {}),
    ...(typeof output.scoresOutput === 'string' ? { scoresOutput: output.scoresOutput } : {}),
  };
}

/** Splits a label file: one label per line, blank trailing lines dropped. */
export function parseLabels(text: string | Uint8Array): string[] {
  const lines = (typeof text === 'string' ? text : new TextDecoder().decode(text)).split(/\r?\n/);
  while (lines.length > 0 && lines[lines.length - 1]!.trim() === '') lines.pop();
  return lines.map((l) => l.trim());
}

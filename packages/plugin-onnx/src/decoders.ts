/**
 * Reading detection, pose and segmentation outputs: NanoDet's distribution boxes, generic box
 * lists, non-maximum suppression, MoveNet keypoints and probability masks. Pure functions on
 * output arrays; sizes come from the descriptor and the source image.
 * @module
 */
import type { Box, Detection, Keypoint } from '@vaccel/core';
import { VaccelError } from '@vaccel/core';
import { type SsdAnchorOptions, type SsdDecoderSpec, ssdAnchorCount } from './descriptor.js';

export { ssdAnchorCount };

/** An output tensor as ONNX Runtime returns it. */
export interface OutputTensor {
  /** The output's name, when known. */
  name?: string;
  dims: readonly number[];
  data: Float32Array;
}

/** Where model-input coordinates land on the source image. */
export interface Frame {
  /** Model input size. */
  inputWidth: number;
  inputHeight: number;
  /** Source image size. */
  width: number;
  height: number;
  /** Where the image lies in the model input, in input pixels (default: all of it; less when letterboxed). */
  content?: { x: number; y: number; width: number; height: number };
}

const clamp = (v: number, lo: number, hi: number) => Math.min(Math.max(v, lo), hi);

/**
 * A point given normalised to the model input (0–1) as source pixels, clamped to the image: the
 * letterbox's padding taken off first, then scaled to the source.
 */
function toSource(nx: number, ny: number, frame: Frame): [number, number] {
  const c = frame.content ?? { x: 0, y: 0, width: frame.inputWidth, height: frame.inputHeight };
  return [
    clamp((nx * frame.inputWidth - c.x) / c.width, 0, 1) * frame.width,
    clamp((ny * frame.inputHeight - c.y) / c.height, 0, 1) * frame.height,
  ];
}

/** A box from corners normalised to the model input (0–1), clamped to the image, in source pixels. */
function boxOf(x1: number, y1: number, x2: number, y2: number, frame: Frame): Box {
  const [l, t] = toSource(x1, y1, frame);
  const [r, b] = toSource(x2, y2, frame);
  return { x: l, y: t, width: Math.max(0, r - l), height: Math.max(0, b - t) };
}

/**
 * NanoDet (GFL head): for each stride, a grid of cells with class scores (sigmoid applied in the
 * graph) and four distance distributions of regMax+1 bins (softmax, then the expected bin times
 * the stride is the distance from the cell's centre to each side).
 */
export function decodeNanodet(
  outputs: readonly OutputTensor[],
  strides: readonly number[],
  regMax: number,
  frame: Frame,
  minScore: number,
  labels: readonly string[],
): Detection[] {
  const bins = regMax + 1;
  const found: Detection[] = [];
  for (const stride of strides) {
    const cols = Math.ceil(frame.inputWidth / stride);
    const cells = cols * Math.ceil(frame.inputHeight / stride);
    const scores = outputs.find((o) => o.dims.at(-2) === cells && o.dims.at(-1) !== 4 * bins);
    const dists = outputs.find((o) => o.dims.at(-2) === cells && o.dims.at(-1) === 4 * bins);
    if (!scores || !dists)
      throw new VaccelError(
        'EINVAL',
        `nanodet decoder: no [1,${cells},classes] and [1,${cells},${4 * bins}] outputs for stride ${stride} (outputs ${outputs.map((o) => `[${o.dims}]`).join(' ')})`,
      );
    const classes = scores.dims.at(-1)!;
    for (let cell = 0; cell < cells; cell++) {
      let best = 0;
      for (let k = 1; k < classes; k++)
        if (scores.data[cell * classes + k]! > scores.data[cell * classes + best]!) best = k;
      const score = scores.data[cell * classes + best]!;
      if (score < minScore) continue;
      const side = [0, 0, 0, 0].map((_, s) => {
        const at = cell * 4 * bins + s * bins;
        let max = Number.NEGATIVE_INFINITY;
        for (let b = 0; b < bins; b++) max = Math.max(max, dists.data[at + b]!);
        let sum = 0;
        let mean = 0;
        for (let b = 0; b < bins; b++) {
          const e = Math.exp(dists.data[at + b]! - max);
          sum += e;
          mean += b * e;
        }
        return (mean / sum) * stride;
      });
      const cx = ((cell % cols) + 0.5) * stride;
      const cy = (Math.floor(cell / cols) + 0.5) * stride;
      found.push({
        label: labels[best] ?? `class ${best}`,
        index: best,
        score,
        box: boxOf(
          (cx - side[0]!) / frame.inputWidth,
          (cy - side[1]!) / frame.inputHeight,
          (cx + side[2]!) / frame.inputWidth,
          (cy + side[3]!) / frame.inputHeight,
          frame,
        ),
      });
    }
  }
  return found;
}

/**
 * A `[1,N,6]` box list: x1, y1, x2, y2, score, class; corners normalised to 0–1, or in model-input
 * pixels when `coordinates` is `pixels`. Rows whose class is not a whole number (CenterNet pads
 * with NaN) are skipped.
 */
export function decodeBoxes(
  output: OutputTensor,
  frame: Frame,
  minScore: number,
  labels: readonly string[],
  coordinates: 'normalized' | 'pixels' = 'normalized',
): Detection[] {
  const [sx, sy] = coordinates === 'pixels' ? [1 / frame.inputWidth, 1 / frame.inputHeight] : [1, 1];
  if (output.dims.at(-1) !== 6)
    throw new VaccelError('EINVAL', `boxes decoder: the output must be [N,6], got [${output.dims}]`);
  const found: Detection[] = [];
  for (let i = 0; i + 6 <= output.data.length; i += 6) {
    const [x1, y1, x2, y2, score, index] = output.data.subarray(i, i + 6) as unknown as number[];
    if (!(score! >= minScore) || !Number.isSafeInteger(index) || index! < 0) continue;
    found.push({
      label: labels[index!] ?? `class ${index}`,
      index: index!,
      score: score!,
      box: boxOf(x1! * sx, y1! * sy, x2! * sx, y2! * sy, frame),
    });
  }
  return found;
}

/** An SSD anchor: centre and size, normalised to the model input (0–1). */
export interface SsdAnchor {
  cx: number;
  cy: number;
  w: number;
  h: number;
}

/** A layer's scale: `minScale` on the first, `maxScale` on the last, evenly between. */
const layerScale = (o: SsdAnchorOptions, layer: number): number =>
  o.strides.length === 1
    ? (o.minScale + o.maxScale) / 2
    : o.minScale + ((o.maxScale - o.minScale) * layer) / (o.strides.length - 1);

/**
 * Per grid: its size and the (scale, aspect ratio) of each anchor of a cell. Consecutive layers of
 * one stride share a grid, their shapes one after the other in each cell (as BlazeFace's 8, 16,
 * 16, 16 give 2 grids); distinct strides, as SSD detectors have, give a grid per layer.
 */
function ssdLayers(o: SsdAnchorOptions) {
  const grids: { cols: number; rows: number; shapes: [number, number][] }[] = [];
  o.strides.forEach((stride, layer) => {
    const scale = layerScale(o, layer);
    const shapes: [number, number][] = [];
    if (layer === 0 && o.reduceBoxesInLowestLayer) shapes.push([0.1, 1], [scale, 2], [scale, 0.5]);
    else {
      for (const ratio of o.aspectRatios) shapes.push([scale, ratio]);
      if (o.interpolatedScaleAspectRatio > 0) {
        const next = layer === o.strides.length - 1 ? 1 : layerScale(o, layer + 1);
        shapes.push([Math.sqrt(scale * next), o.interpolatedScaleAspectRatio]);
      }
    }
    if (layer > 0 && o.strides[layer - 1] === stride) grids.at(-1)!.shapes.push(...shapes);
    else
      grids.push({ cols: Math.ceil(o.inputWidth / stride), rows: Math.ceil(o.inputHeight / stride), shapes });
  });
  return grids;
}

/**
 * SSD anchors as MediaPipe's SsdAnchorsCalculator makes them (see {@link SsdAnchorOptions}), in
 * the order the model emits its boxes: grid by grid, row by row, cell by cell, shape by shape.
 */
export function ssdAnchors(o: SsdAnchorOptions): SsdAnchor[] {
  const anchors: SsdAnchor[] = [];
  for (const { cols, rows, shapes } of ssdLayers(o))
    for (let y = 0; y < rows; y++)
      for (let x = 0; x < cols; x++)
        for (const [scale, ratio] of shapes)
          anchors.push({
            cx: (x + o.offsetX) / cols,
            cy: (y + o.offsetY) / rows,
            w: o.fixedAnchorSize ? 1 : scale * Math.sqrt(ratio),
            h: o.fixedAnchorSize ? 1 : scale / Math.sqrt(ratio),
          });
  return anchors;
}

/**
 * The anchors of `spec` for a model that gives `n` boxes, counted before any is made.
 * @throws VaccelError `EINVAL` when they are not `n`.
 */
export function ssdAnchorsFor(spec: SsdDecoderSpec, n: number): SsdAnchor[] {
  const count = ssdAnchorCount(spec.anchors);
  if (count !== n) throw anchorMismatch(n, count, spec);
  return ssdAnchors(spec.anchors);
}

const anchorMismatch = (n: number, count: number, spec: SsdDecoderSpec) =>
  new VaccelError(
    'EINVAL',
    `ssd decoder: the model gives ${n} boxes but output.anchors makes ${count} anchors (strides ${spec.anchors.strides.join(', ')} on ${spec.anchors.inputWidth}×${spec.anchors.inputHeight}, ${spec.anchors.aspectRatios.length} aspect ratios${spec.anchors.interpolatedScaleAspectRatio > 0 ? ' + 1 interpolated' : ''}${spec.anchors.reduceBoxesInLowestLayer ? ', 3 in the lowest layer' : ''})`,
  );

/**
 * The box encodings `[1,N,4]` and class scores `[1,N,C]` of an SSD model's outputs: the named
 * ones, else the output with 4 values per box and another with as many boxes.
 */
export function ssdOutputs(
  outputs: readonly OutputTensor[],
  spec: Pick<SsdDecoderSpec, 'boxesOutput' | 'scoresOutput'>,
): { boxes: OutputTensor; scores: OutputTensor } {
  const list = () => outputs.map((o) => `${o.name ?? '?'} [${o.dims}]`).join(', ');
  const named = (name: string | undefined, what: string) => {
    if (name === undefined) return undefined;
    const found = outputs.find((o) => o.name === name);
    if (!found) throw new VaccelError('EINVAL', `ssd decoder: no ${what} output ${name} (outputs ${list()})`);
    return found;
  };
  const rows = outputs.filter((o) => o.dims.length >= 2);
  const boxes =
    named(spec.boxesOutput, 'boxes') ??
    rows.find((o) => o.dims.at(-1) === 4 && o !== named(spec.scoresOutput, 'scores'));
  const scores =
    named(spec.scoresOutput, 'scores') ??
    rows.find((o) => o !== boxes && o.dims.at(-2) === boxes?.dims.at(-2));
  if (!boxes || !scores)
    throw new VaccelError(
      'EINVAL',
      `ssd decoder: the model needs box encodings [1,N,4] and class scores [1,N,C] outputs, it has ${list()} (name them with output.boxesOutput and output.scoresOutput)`,
    );
  return { boxes, scores };
}

/**
 * SSD's raw outputs decoded against `anchors` (MediaPipe's TensorsToDetections): per anchor, its
 * best class but the background, scored by `spec.activation`, if at least `minScore`; the box from
 * the anchor and the encodings (see {@link SsdDecoderSpec}). Not suppressed yet.
 * @throws VaccelError `EINVAL` when the outputs' shapes do not fit each other or the anchors.
 */
export function decodeSsd(
  boxes: OutputTensor,
  scores: OutputTensor,
  anchors: readonly SsdAnchor[],
  spec: SsdDecoderSpec,
  frame: Frame,
  minScore: number,
  labels: readonly string[],
): Detection[] {
  const n = boxes.dims.at(-2) ?? 0;
  const classes = scores.dims.at(-1) ?? 0;
  if (boxes.dims.at(-1) !== 4 || boxes.data.length !== n * 4)
    throw new VaccelError('EINVAL', `ssd decoder: the box encodings must be [1,N,4], got [${boxes.dims}]`);
  if (scores.dims.at(-2) !== n || scores.data.length !== n * classes)
    throw new VaccelError(
      'EINVAL',
      `ssd decoder: the class scores must be [1,${n},C] as the boxes [${boxes.dims}], got [${scores.dims}]`,
    );
  if (n !== anchors.length) throw anchorMismatch(n, anchors.length, spec);
  const [sy, sx, sh, sw] = spec.boxScale;
  const yFirst = spec.boxOrder === 'yxhw';
  const background = spec.background ?? -1;
  const found: Detection[] = [];
  for (let i = 0; i < n; i++) {
    const row = i * classes;
    let best = -1;
    let max = Number.NEGATIVE_INFINITY;
    for (let k = 0; k < classes; k++)
      if (k !== background && scores.data[row + k]! > max) [best, max] = [k, scores.data[row + k]!];
    if (best < 0) continue;
    let score = max;
    if (spec.activation === 'sigmoid') score = 1 / (1 + Math.exp(-max));
    else if (spec.activation === 'softmax') {
      let sum = 0;
      for (let k = 0; k < classes; k++) sum += Math.exp(scores.data[row + k]! - max);
      score = 1 / sum;
    }
    if (!(score >= minScore)) continue;
    const a = anchors[i]!;
    const e = boxes.data.subarray(i * 4, i * 4 + 4);
    const [ty, tx, th, tw] = yFirst ? [e[0]!, e[1]!, e[2]!, e[3]!] : [e[1]!, e[0]!, e[3]!, e[2]!];
    const cy = (ty / sy) * a.h + a.cy;
    const cx = (tx / sx) * a.w + a.cx;
    const h = Math.exp(th / sh) * a.h;
    const w = Math.exp(tw / sw) * a.w;
    // A box the model's numbers make NaN or infinite is no box (it would match nothing in NMS).
    if (!Number.isFinite(cx + cy + w + h)) continue;
    found.push({
      label: labels[best] ?? `class ${best}`,
      index: best,
      score,
      box: boxOf(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2, frame),
    });
  }
  return found;
}

const iou = (a: Box, b: Box): number => {
  const w = Math.min(a.x + a.width, b.x + b.width) - Math.max(a.x, b.x);
  const h = Math.min(a.y + a.height, b.y + b.height) - Math.max(a.y, b.y);
  if (w <= 0 || h <= 0) return 0;
  const inter = w * h;
  return inter / (a.width * a.height + b.width * b.height - inter);
};

/**
 * Greedy per-class non-maximum suppression, best first, at most `max` results. A class is a label:
 * a label file may give two model classes one name (the Open Images detector's Mug and Coffee cup
 * are both COCO's cup), and two boxes of one name on one object are one object.
 */
export function nonMaxSuppression(
  found: readonly Detection[],
  iouThreshold: number,
  max: number,
): Detection[] {
  const kept: Detection[] = [];
  for (const d of [...found].sort((a, b) => b.score - a.score)) {
    if (kept.length >= max) break;
    if (kept.every((k) => k.label !== d.label || iou(k.box, d.box) <= iouThreshold)) kept.push(d);
  }
  return kept;
}

/** MoveNet's `[1,1,K,3]`: y, x (0–1 of the model input), score; letterboxing undone. */
export function decodeKeypoints(output: OutputTensor, frame: Frame, names: readonly string[]): Keypoint[] {
  const k = output.dims.at(-2) ?? 0;
  if (output.dims.at(-1) !== 3 || output.data.length !== k * 3)
    throw new VaccelError('EINVAL', `keypoints decoder: the output must be [1,1,K,3], got [${output.dims}]`);
  return Array.from({ length: k }, (_, i) => {
    const [x, y] = toSource(output.data[i * 3 + 1]!, output.data[i * 3]!, frame);
    return { name: names[i] ?? `keypoint ${i}`, x, y, score: output.data[i * 3 + 2]! };
  });
}

/** Channel `channel` of a `[1,H,W,C]` probability map, as 0–255 bytes (model input size). */
export function decodeMask(
  output: OutputTensor,
  channel: number,
): { width: number; height: number; mask: Uint8Array } {
  const [height, width, channels] = [
    output.dims.at(-3) ?? 0,
    output.dims.at(-2) ?? 0,
    output.dims.at(-1) ?? 0,
  ];
  if (output.dims.length !== 4 || channel >= channels)
    throw new VaccelError(
      'EINVAL',
      `mask decoder: the output must be [1,H,W,C] with channel ${channel}, got [${output.dims}]`,
    );
  const mask = new Uint8Array(width * height);
  for (let p = 0; p < mask.length; p++)
    mask[p] = Math.round(clamp(output.data[p * channels + channel]!, 0, 1) * 255);
  return { width, height, mask };
}

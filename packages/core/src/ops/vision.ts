/**
 * Detection, pose and segmentation.
 *
 * - Upstream IMAGE_DETECT (4), IMAGE_SEGMENT (5), IMAGE_POSE (6) — read: image (BUFFER); write:
 *   out_imgname (UCHAR_ARRAY, fixed-size, NUL-padded). Upstream's Jetson plugin answers with the
 *   name of an annotated image it saved on the host, which a guest cannot open; we answer with a
 *   one-line summary of the result instead (`bicycle 0.55 [x,y,w,h]; car …`).
 * - Ours, IMAGE_DETECT_BOXES (71), IMAGE_POSE_KEYPOINTS (72), IMAGE_SEGMENT_MASK (73) — read:
 *   image (BUFFER), model resource id (INT64, 0 = the plugin's default), options (RAW: UTF-8 JSON
 *   {@link VisionOptions}); write: result (RAW, sized by the plugin: UTF-8 JSON), annotated image
 *   (RAW: JPEG, empty unless asked for), and for segmentation the mask (RAW: one byte per pixel).
 * @module
 */
import { type Arg, Args, ReadArg } from '../api/arg.js';
import { VaccelError } from '../api/error.js';
import { OpType } from '../api/op.js';
import type { OpContext, OpHandler } from '../runtime/plugin.js';

/** A box in pixels of the original image. */
export interface Box {
  x: number;
  y: number;
  width: number;
  height: number;
}

/** One detected object. */
export interface Detection {
  label: string;
  /** Class index in the model's output. */
  index: number;
  score: number;
  box: Box;
}

/** One keypoint of a pose, in pixels of the original image. */
export interface Keypoint {
  name: string;
  x: number;
  y: number;
  score: number;
}

/** A pose: named keypoints and the pairs that make its skeleton. */
export interface Pose {
  score: number;
  keypoints: Keypoint[];
  /** Index pairs into `keypoints`. */
  skeleton: [number, number][];
}

/** A segmentation: the mask of one class over the original image. */
export interface Segmentation {
  label: string;
  width: number;
  height: number;
  /** Fraction of pixels in the class. */
  coverage: number;
  /** 0–255 per pixel, row-major, `width × height`. */
  mask: Uint8Array;
}

/** Options of the vision ops. */
export interface VisionOptions {
  /** Minimum score to report (detection: default 0.3; pose keypoints are all reported). */
  minScore?: number;
  /** Detection: IoU above which the weaker of two same-class boxes is dropped (default 0.5). */
  iouThreshold?: number;
  /** Detection: at most this many objects (default 100). */
  maxResults?: number;
  /** Also return a JPEG of the image with the result drawn on it. */
  annotate?: boolean;
}

/** What an upstream agent answered to an image op: its text (`out_imgname`). */
export interface UpstreamImageAnswer {
  /** The upstream op that answered: `image_detect`, `image_pose` or `image_segment`. */
  op: string;
  /** Its text, up to the first NUL (upstream's Jetson plugin: the name of an image on its host). */
  text: string;
}

/** What a vision op returns: the typed result and, when asked, the annotated image. */
export interface VisionResult<T> {
  result: T;
  /** JPEG bytes, when `annotate` was set (never with {@link upstream}). */
  annotated?: Uint8Array;
  /**
   * Set when an upstream vAccel agent answered: it has no typed vision ops, so the RPC plugin fell
   * back to upstream's IMAGE_DETECT/POSE/SEGMENT (4–6). `result` is then empty (no boxes, no
   * keypoints, a 0×0 mask): upstream answers with text only.
   */
  upstream?: UpstreamImageAnswer;
}

/** The empty typed result that goes with an upstream answer. */
function emptyResult(task: VisionTask): Detection[] | Pose | Segmentation {
  if (task === 'detect') return [];
  if (task === 'pose') return { score: 0, keypoints: [], skeleton: [] };
  return { label: '', width: 0, height: 0, coverage: 0, mask: new Uint8Array(0) };
}

/**
 * The typed vision op's result arg that stands for upstream's answer (the RPC plugin's fallback on
 * upstream agents); {@link parseVision} reads it back as {@link VisionResult.upstream}.
 */
export function encodeUpstreamVision(answer: UpstreamImageAnswer): Uint8Array {
  return utf8.encode(JSON.stringify({ upstream: { op: answer.op, text: answer.text } }));
}

/** The three tasks, by extension op. */
export type VisionTask = 'detect' | 'pose' | 'segment';

export const VISION_OPS: Readonly<Record<VisionTask, { ours: OpType; upstream: OpType }>> = {
  detect: { ours: OpType.ImageDetectBoxes, upstream: OpType.ImageDetect },
  pose: { ours: OpType.ImagePoseKeypoints, upstream: OpType.ImagePose },
  segment: { ours: OpType.ImageSegmentMask, upstream: OpType.ImageSegment },
};

const utf8 = new TextEncoder();
const EMPTY = new Uint8Array(0);

/** Args of a typed vision op. */
export function packVision(
  task: VisionTask,
  image: Uint8Array,
  modelId: number,
  options: VisionOptions,
): { read: Arg[]; write: Arg[] } {
  return {
    read: [Args.buffer(image), Args.int64(modelId), Args.raw(utf8.encode(JSON.stringify(options)))],
    write: task === 'segment' ? [Args.raw(), Args.raw(), Args.raw()] : [Args.raw(), Args.raw()],
  };
}

/** What a plugin receives. */
export interface VisionArgs {
  image: Uint8Array;
  modelId: number;
  options: VisionOptions;
}

function checkOptions(raw: unknown): VisionOptions {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    throw new VaccelError('EINVAL', 'vision options must be a JSON object');
  const o = raw as Record<string, unknown>;
  const number = (key: string, lo: number, hi: number) => {
    const v = o[key];
    if (v === undefined) return;
    if (typeof v !== 'number' || !(v >= lo && v <= hi))
      throw new VaccelError(
        'EINVAL',
        `vision option ${key} must be a number in ${lo}–${hi}, got ${String(v)}`,
      );
  };
  number('minScore', 0, 1);
  number('iouThreshold', 0, 1);
  number('maxResults', 1, 10000);
  if (o.maxResults !== undefined && !Number.isInteger(o.maxResults))
    throw new VaccelError('EINVAL', 'vision option maxResults must be an integer');
  if (o.annotate !== undefined && typeof o.annotate !== 'boolean')
    throw new VaccelError('EINVAL', 'vision option annotate must be true or false');
  return o as VisionOptions;
}

/** Unpacks a typed vision op's args. @throws VaccelError `EINVAL` naming what is wrong. */
export function unpackVision(task: VisionTask, read: readonly Arg[], write: readonly Arg[]): VisionArgs {
  const writes = task === 'segment' ? 3 : 2;
  if (read.length !== 3 || write.length !== writes)
    throw new VaccelError(
      'EINVAL',
      `image ${task} takes 3 read args and ${writes} write args, got ${read.length} and ${write.length}`,
    );
  const modelId = ReadArg.int64(read[1], `${task} model id`);
  if (modelId < 0) throw new VaccelError('EINVAL', `${task} model id must be ≥ 0, got ${modelId}`);
  const text = ReadArg.bytes(read[2], `${task} options`);
  let options: unknown = {};
  if (text.byteLength > 0) {
    try {
      options = JSON.parse(new TextDecoder().decode(text));
    } catch (cause) {
      throw new VaccelError('EINVAL', `${task} options are not JSON`, { cause });
    }
  }
  return { image: ReadArg.bytes(read[0], `${task} image`), modelId, options: checkOptions(options) };
}

/** The one-line text upstream's `out_imgname` gets. */
export function summarize(task: VisionTask, result: Detection[] | Pose | Segmentation): string {
  const n = (v: number) => Math.round(v);
  if (task === 'detect')
    return (result as Detection[])
      .map(
        (d) =>
          `${d.label} ${d.score.toFixed(2)} [${n(d.box.x)},${n(d.box.y)},${n(d.box.width)},${n(d.box.height)}]`,
      )
      .join('; ');
  if (task === 'pose')
    return `pose ${(result as Pose).score.toFixed(2)}: ${(result as Pose).keypoints
      .map((k) => `${k.name} ${n(k.x)},${n(k.y)}`)
      .join('; ')}`;
  const s = result as Segmentation;
  return `${s.label} ${(100 * s.coverage).toFixed(1)}% of ${s.width}x${s.height}`;
}

type Run = (args: VisionArgs, ctx: OpContext) => Promise<VisionResult<Detection[] | Pose | Segmentation>>;

/** Makes the typed and the upstream handler of a vision task from one function. */
export function visionHandlers(task: VisionTask, run: Run): { ours: OpHandler; upstream: OpHandler } {
  return {
    ours: async ({ read, write }, ctx) => {
      const { result, annotated } = await run(unpackVision(task, read, write), ctx);
      if (task === 'segment') {
        const { mask, ...rest } = result as Segmentation;
        write[0]!.buf = utf8.encode(JSON.stringify(rest));
        write[2]!.buf = mask;
      } else write[0]!.buf = utf8.encode(JSON.stringify(result));
      write[1]!.buf = annotated ?? EMPTY;
    },
    upstream: async ({ read, write }, ctx) => {
      if (read.length !== 1 || write.length !== 1)
        throw new VaccelError(
          'EINVAL',
          `image_${task === 'detect' ? 'detect' : task} takes 1 read arg and 1 write arg, got ${read.length} and ${write.length}`,
        );
      const image = ReadArg.bytes(read[0], `image ${task} image`);
      const { result } = await run({ image, modelId: 0, options: {} }, ctx);
      const out = ReadArg.bytes(write[0], `image ${task} out_imgname`);
      out.fill(0);
      utf8.encodeInto(summarize(task, result), out.subarray(0, Math.max(0, out.byteLength - 1)));
    },
  };
}

/** Parses a typed vision op's write args. @throws VaccelError `EPROTO` if malformed. */
export function parseVision<T>(task: VisionTask, write: readonly Arg[]): VisionResult<T> {
  let result: T;
  try {
    result = JSON.parse(new TextDecoder().decode(write[0]!.buf)) as T;
  } catch (cause) {
    throw new VaccelError('EPROTO', `malformed ${task} result`, { cause });
  }
  const upstream = (result as { upstream?: Partial<UpstreamImageAnswer> } | null)?.upstream;
  if (!Array.isArray(result) && upstream !== undefined) {
    if (typeof upstream?.op !== 'string' || typeof upstream.text !== 'string')
      throw new VaccelError('EPROTO', `malformed upstream ${task} answer`);
    return { result: emptyResult(task) as T, upstream: { op: upstream.op, text: upstream.text } };
  }
  if (task === 'segment') (result as Segmentation).mask = write[2]!.buf;
  const annotated = write[1]!.buf;
  return annotated.byteLength > 0 ? { result, annotated } : { result };
}

/**
 * The op table: the single source of truth for operation numbers and names.
 *
 * Numbers 0–23 are upstream vAccel 0.8's `vaccel_op_type_t` (docs/protocol.md §4), so a genop
 * sent by an upstream client means the same op here. Our extensions start at 64 (§8); upstream
 * agents reject them with EINVAL.
 * @module
 */

/** Operation numbers. */
export const OpType = Object.freeze({
  Noop: 0,
  Exec: 1,
  ExecWithResource: 2,
  ImageClassify: 3,
  ImageDetect: 4,
  ImageSegment: 5,
  ImagePose: 6,
  ImageDepth: 7,
  TfModelLoad: 8,
  TfModelUnload: 9,
  TfModelRun: 10,
  TfliteModelLoad: 11,
  TfliteModelUnload: 12,
  TfliteModelRun: 13,
  TorchModelLoad: 14,
  TorchModelRun: 15,
  TorchSgemm: 16,
  BlasSgemm: 17,
  FpgaArrayCopy: 18,
  FpgaMmult: 19,
  FpgaParallel: 20,
  FpgaVectorAdd: 21,
  MinMax: 22,
  OpenCv: 23,
  // vaccel-ts extensions (docs/protocol.md §8).
  AesEncrypt: 64,
  AesDecrypt: 65,
  ImageClassifyTopK: 66,
  ModelLoad: 67,
  ModelRun: 68,
  ModelUnload: 69,
  ListOperations: 70,
  ImageDetectBoxes: 71,
  ImagePoseKeypoints: 72,
  ImageSegmentMask: 73,
} as const);

/** An operation number from {@link OpType}. */
export type OpType = (typeof OpType)[keyof typeof OpType];

/** One past the last upstream op number (`VACCEL_OP_MAX`). */
export const UPSTREAM_OP_MAX = 24;
/** First op number of the vaccel-ts extension range. */
export const EXTENSION_OP_MIN = 64;

/** Static facts about one operation. */
export interface OpInfo {
  /** Its number. */
  readonly op: OpType;
  /** Its name, as upstream prints it (`blas_sgemm`), or ours for extensions. */
  readonly name: string;
  /** True for vaccel-ts extension ops that upstream peers do not know. */
  readonly extension: boolean;
  /** How much work one call is, for schedulers (see {@link OpCost}). */
  readonly cost: OpCost;
}

/**
 * How much work one call of an op is, for a scheduler that keeps heavy work in a bounded pool:
 * - `cheap`: bookkeeping (noop, listing, unloading), answered at once;
 * - `data`: work in proportion to its args (SGEMM, AES, min/max, vector ops): cheap when they are
 *   small, compute when big;
 * - `compute`: a model, a decoder or a program runs, whatever the size of the args.
 */
export type OpCost = 'cheap' | 'data' | 'compute';

const COSTS: Partial<Record<OpType, OpCost>> = {
  [OpType.Exec]: 'compute',
  [OpType.ExecWithResource]: 'compute',
  [OpType.ImageClassify]: 'compute',
  [OpType.ImageDetect]: 'compute',
  [OpType.ImageSegment]: 'compute',
  [OpType.ImagePose]: 'compute',
  [OpType.ImageDepth]: 'compute',
  [OpType.TfModelLoad]: 'compute',
  [OpType.TfModelRun]: 'compute',
  [OpType.TfliteModelLoad]: 'compute',
  [OpType.TfliteModelRun]: 'compute',
  [OpType.TorchModelLoad]: 'compute',
  [OpType.TorchModelRun]: 'compute',
  [OpType.TorchSgemm]: 'data',
  [OpType.BlasSgemm]: 'data',
  [OpType.FpgaArrayCopy]: 'data',
  [OpType.FpgaMmult]: 'data',
  [OpType.FpgaParallel]: 'data',
  [OpType.FpgaVectorAdd]: 'data',
  [OpType.MinMax]: 'data',
  [OpType.OpenCv]: 'compute',
  [OpType.AesEncrypt]: 'data',
  [OpType.AesDecrypt]: 'data',
  [OpType.ImageClassifyTopK]: 'compute',
  [OpType.ModelLoad]: 'compute',
  [OpType.ModelRun]: 'compute',
  [OpType.ImageDetectBoxes]: 'compute',
  [OpType.ImagePoseKeypoints]: 'compute',
  [OpType.ImageSegmentMask]: 'compute',
  // Noop, the unloads and ListOperations are cheap (the default).
};

const snakeCase = (key: string): string =>
  key
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .replace(/Cv$/, 'cv')
    .toLowerCase();

// Upstream spells a few names differently from a plain snake_case of our keys.
const nameOverrides: Partial<Record<OpType, string>> = {
  [OpType.FpgaArrayCopy]: 'fpga_arraycopy',
  [OpType.FpgaVectorAdd]: 'fpga_vectoradd',
  [OpType.MinMax]: 'minmax',
  [OpType.OpenCv]: 'opencv',
  [OpType.ImageClassifyTopK]: 'image_classify_topk',
};

const table: ReadonlyMap<number, OpInfo> = new Map(
  Object.entries(OpType).map(([key, op]) => [
    op,
    Object.freeze({
      op,
      name: nameOverrides[op] ?? snakeCase(key),
      extension: op >= EXTENSION_OP_MIN,
      cost: COSTS[op] ?? 'cheap',
    }),
  ]),
);
const byName: ReadonlyMap<string, OpInfo> = new Map([...table.values()].map((info) => [info.name, info]));

/** Facts about `op`, or undefined when the number is not an op. */
export function opInfo(op: number): OpInfo | undefined {
  return table.get(op);
}

/** Every known op, in number order. */
export function allOps(): readonly OpInfo[] {
  return [...table.values()];
}

/** The name of `op` (`blas_sgemm`), or `op#<n>` for a number that is not an op. */
export function opName(op: number): string {
  return table.get(op)?.name ?? `op#${op}`;
}

/** Looks an op up by its name (`blas_sgemm`); undefined when there is none. */
export function opByName(name: string): OpType | undefined {
  return byName.get(name)?.op;
}

/** True when `op` is a known op number. */
export function isOpType(op: number): op is OpType {
  return table.has(op);
}

const ONNX_INSTEAD = 'export the model to ONNX and run it with model_load/model_run';

/**
 * What to use instead of upstream ops no vaccel-ts plugin runs (there is no TensorFlow Lite or
 * Torch runtime for Node, no shipped depth model, no OpenCV), for the ENOTSUP message.
 */
export const OP_ALTERNATIVES: Readonly<Partial<Record<OpType, string>>> = {
  [OpType.TfliteModelLoad]: `TensorFlow Lite models do not run here: ${ONNX_INSTEAD}`,
  [OpType.TfliteModelUnload]: `TensorFlow Lite models do not run here: ${ONNX_INSTEAD}`,
  [OpType.TfliteModelRun]: `TensorFlow Lite models do not run here: ${ONNX_INSTEAD}`,
  [OpType.TorchModelLoad]: `TorchScript models do not run here: ${ONNX_INSTEAD} (torch.onnx.export)`,
  [OpType.TorchModelRun]: `TorchScript models do not run here: ${ONNX_INSTEAD} (torch.onnx.export)`,
  [OpType.ImageDepth]: `no depth model ships with vaccel-ts: run an ONNX depth model with model_load/model_run`,
  [OpType.OpenCv]: 'there is no OpenCV backend: use exec with an allowlisted module instead',
};

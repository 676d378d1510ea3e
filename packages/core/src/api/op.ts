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
  /**
   * Read-arg index (after the op number) of the INT64 resource id the op references: the agent
   * translates it into its own ids, the RPC plugin uploads the resource first.
   */
  readonly resourceArg?: number;
  /** The op loads a model from its resource (the RPC plugin replays it after a reconnect). */
  readonly loads?: boolean;
  /** The load op whose model this op unloads. */
  readonly unloads?: OpType;
  /** Read arg 0 is an encoded image a plugin decodes (the agent admits it by its pixels). */
  readonly image?: boolean;
  /** Upstream's RPC plugin registers the op: an upstream agent that lists nothing serves it. */
  readonly upstreamServed?: boolean;
  /**
   * On an upstream agent the op goes through upstream's dedicated RPCs (TensorFlow's or TensorFlow
   * Lite's), not Genop; here it has our model ops' layout, its outputs sized by the backend.
   */
  readonly upstreamRpc?: 'tensorflow' | 'tflite';
  /** The upstream op an extension falls back to on an agent that lacks it (same read args, text reply). */
  readonly fallback?: OpType;
  /** What to use instead, for an op no plugin here runs (said in the ENOTSUP message). */
  readonly alternative?: string;
}

/**
 * How much work one call of an op is, for a scheduler that keeps heavy work in a bounded pool:
 * - `cheap`: bookkeeping (noop, listing, unloading), answered at once;
 * - `data`: work in proportion to its args (SGEMM, AES, min/max, vector ops): cheap when they are
 *   small, compute when big;
 * - `compute`: a model, a decoder or a program runs, whatever the size of the args.
 */
export type OpCost = 'cheap' | 'data' | 'compute';

const ONNX_INSTEAD = 'export the model to ONNX and run it with model_load/model_run';
const TORCH = `TorchScript models do not run here: ${ONNX_INSTEAD} (torch.onnx.export)`;

type OpFacts = Omit<OpInfo, 'op' | 'name' | 'extension' | 'cost'> & { cost?: OpCost };

/**
 * Every per-op fact besides number and name: the one place to describe an op (see
 * docs/adding-an-op.md). Unlisted facts default to: cheap, no resource, not served upstream.
 */
const FACTS: Partial<Record<OpType, OpFacts>> = {
  [OpType.Noop]: {},
  [OpType.Exec]: { cost: 'compute', upstreamServed: true },
  [OpType.ExecWithResource]: { cost: 'compute', resourceArg: 0, upstreamServed: true },
  [OpType.ImageClassify]: { cost: 'compute', image: true, upstreamServed: true },
  [OpType.ImageDetect]: { cost: 'compute', image: true, upstreamServed: true },
  [OpType.ImageSegment]: { cost: 'compute', image: true, upstreamServed: true },
  [OpType.ImagePose]: { cost: 'compute', image: true, upstreamServed: true },
  [OpType.ImageDepth]: {
    cost: 'compute',
    image: true,
    upstreamServed: true,
    alternative: 'no depth model ships with vaccel-ts: run an ONNX depth model with model_load/model_run',
  },
  [OpType.TfModelLoad]: {
    cost: 'compute',
    resourceArg: 0,
    loads: true,
    upstreamServed: true,
    upstreamRpc: 'tensorflow',
  },
  [OpType.TfModelUnload]: {
    resourceArg: 0,
    unloads: OpType.TfModelLoad,
    upstreamServed: true,
    upstreamRpc: 'tensorflow',
  },
  [OpType.TfModelRun]: { cost: 'compute', resourceArg: 0, upstreamServed: true, upstreamRpc: 'tensorflow' },
  [OpType.TfliteModelLoad]: {
    cost: 'compute',
    resourceArg: 0,
    loads: true,
    upstreamServed: true,
    upstreamRpc: 'tflite',
  },
  [OpType.TfliteModelUnload]: {
    resourceArg: 0,
    unloads: OpType.TfliteModelLoad,
    upstreamServed: true,
    upstreamRpc: 'tflite',
  },
  [OpType.TfliteModelRun]: { cost: 'compute', resourceArg: 0, upstreamServed: true, upstreamRpc: 'tflite' },
  [OpType.TorchModelLoad]: { cost: 'compute', upstreamServed: true, alternative: TORCH },
  [OpType.TorchModelRun]: { cost: 'compute', upstreamServed: true, alternative: TORCH },
  [OpType.TorchSgemm]: { cost: 'data' },
  [OpType.BlasSgemm]: { cost: 'data', upstreamServed: true },
  [OpType.FpgaArrayCopy]: { cost: 'data', upstreamServed: true },
  [OpType.FpgaMmult]: { cost: 'data', upstreamServed: true },
  [OpType.FpgaParallel]: { cost: 'data', upstreamServed: true },
  [OpType.FpgaVectorAdd]: { cost: 'data', upstreamServed: true },
  [OpType.MinMax]: { cost: 'data', upstreamServed: true },
  [OpType.OpenCv]: {
    cost: 'compute',
    upstreamServed: true,
    alternative: 'there is no OpenCV backend: use exec with an allowlisted module instead',
  },
  [OpType.AesEncrypt]: { cost: 'data' },
  [OpType.AesDecrypt]: { cost: 'data' },
  [OpType.ImageClassifyTopK]: {
    cost: 'compute',
    resourceArg: 2,
    image: true,
    fallback: OpType.ImageClassify,
  },
  [OpType.ModelLoad]: { cost: 'compute', resourceArg: 0, loads: true },
  [OpType.ModelRun]: { cost: 'compute', resourceArg: 0 },
  [OpType.ModelUnload]: { resourceArg: 0, unloads: OpType.ModelLoad },
  [OpType.ListOperations]: {},
  [OpType.ImageDetectBoxes]: { cost: 'compute', resourceArg: 1, image: true, fallback: OpType.ImageDetect },
  [OpType.ImagePoseKeypoints]: { cost: 'compute', resourceArg: 1, image: true, fallback: OpType.ImagePose },
  [OpType.ImageSegmentMask]: { cost: 'compute', resourceArg: 1, image: true, fallback: OpType.ImageSegment },
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
      ...FACTS[op],
      op,
      name: nameOverrides[op] ?? snakeCase(key),
      extension: op >= EXTENSION_OP_MIN,
      cost: FACTS[op]?.cost ?? 'cheap',
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

/**
 * What to use instead of upstream ops no vaccel-ts plugin runs (there is no TensorFlow Lite or
 * Torch runtime for Node, no shipped depth model, no OpenCV), for the ENOTSUP message: each op's
 * {@link OpInfo.alternative}.
 */
export const OP_ALTERNATIVES: Readonly<Partial<Record<OpType, string>>> = Object.freeze(
  Object.fromEntries(
    [...table.values()].filter((info) => info.alternative).map((info) => [info.op, info.alternative]),
  ),
);

/**
 * Image classification.
 *
 * - Upstream IMAGE_CLASSIFY (3) — read: image (BUFFER); write: out_imgname (UCHAR_ARRAY), out_text
 *   (UCHAR_ARRAY), both fixed-size and NUL-padded. Kept for upstream peers.
 * - IMAGE_CLASSIFY_TOPK (66, ours) — read: image (BUFFER), topK (UINT32), model resource id (INT64,
 *   0 = the plugin's default model); write: result (RAW, sized by the plugin): UTF-8 JSON
 *   `[{label, index, score}]`, best first.
 * @module
 */
import { type Arg, Args, ReadArg } from '../api/arg.js';
import { VaccelError } from '../api/error.js';
import type { OpContext, OpHandler } from '../runtime/plugin.js';

/** One class of a classification. */
export interface Classification {
  /** Human-readable label. */
  label: string;
  /** Class index in the model's output. */
  index: number;
  /** Probability in [0, 1]. */
  score: number;
  /**
   * Set when an upstream vAccel agent answered: it has no IMAGE_CLASSIFY_TOPK, so the RPC plugin
   * fell back to its IMAGE_CLASSIFY (3). This is then the only entry; `label` is the text the agent
   * answered (`out_text`), `index` is -1 and `score` NaN (upstream gives neither).
   */
  upstream?: true;
}

/** Arguments of a top-k classification, as a plugin receives them. */
export interface ClassifyArgs {
  image: Uint8Array;
  topK: number;
  /** Resource id of the model, or 0 for the plugin's default. */
  modelId: number;
}

/** Size of upstream's fixed text outputs (docs/protocol.md §3: tags are 1024 bytes). */
export const UPSTREAM_TAG_BYTES = 1024;
/** Upper bound on topK. */
export const MAX_TOP_K = 1000;

export function packClassify(
  image: Uint8Array,
  topK: number,
  modelId: number,
): { read: Arg[]; write: Arg[] } {
  return { read: [Args.buffer(image), Args.uint32(topK), Args.int64(modelId)], write: [Args.raw()] };
}

export function unpackClassify(read: readonly Arg[], write: readonly Arg[]): ClassifyArgs {
  if (read.length !== 3 || write.length !== 1) {
    throw new VaccelError(
      'EINVAL',
      `image classification takes 3 read args and 1 write arg, got ${read.length} and ${write.length}`,
    );
  }
  const topK = ReadArg.uint32(read[1], 'classify topK');
  if (topK < 1 || topK > MAX_TOP_K)
    throw new VaccelError('EINVAL', `classify topK must be 1–${MAX_TOP_K}, got ${topK}`);
  const modelId = ReadArg.int64(read[2], 'classify model id');
  if (modelId < 0) throw new VaccelError('EINVAL', `classify model id must be ≥ 0, got ${modelId}`);
  return { image: ReadArg.bytes(read[0], 'classify image'), topK, modelId };
}

const encoder = new TextEncoder();

/** Writes `text` NUL-padded (and truncated) into a fixed-size write arg. */
function writeFixedText(arg: Arg | undefined, text: string, where: string): void {
  const out = ReadArg.bytes(arg, where);
  out.fill(0);
  encoder.encodeInto(text, out.subarray(0, Math.max(0, out.byteLength - 1)));
}

/**
 * Makes handlers for both classification ops from one function returning the top-k classes. The
 * upstream op answers with the best class as `"<label> (<score>)"` text and an empty image name.
 */
export function classifyHandlers(
  classify: (args: ClassifyArgs, ctx: OpContext) => Promise<Classification[]>,
): { topK: OpHandler; upstream: OpHandler } {
  return {
    topK: async ({ read, write }, ctx) => {
      const result = await classify(unpackClassify(read, write), ctx);
      write[0]!.buf = encoder.encode(JSON.stringify(result));
    },
    upstream: async ({ read, write }, ctx) => {
      if (read.length !== 1 || write.length !== 2) {
        throw new VaccelError(
          'EINVAL',
          `image_classify takes 1 read arg and 2 write args, got ${read.length} and ${write.length}`,
        );
      }
      const image = ReadArg.bytes(read[0], 'image_classify image');
      const [best] = await classify({ image, topK: 1, modelId: 0 }, ctx);
      writeFixedText(write[0], '', 'image_classify out_imgname');
      writeFixedText(
        write[1],
        best ? `${best.label} (${best.score.toFixed(4)})` : '',
        'image_classify out_text',
      );
    },
  };
}

/**
 * The IMAGE_CLASSIFY_TOPK result that stands for upstream's IMAGE_CLASSIFY answer `text` (the RPC
 * plugin's fallback on upstream agents); {@link parseClassification} reads it back as one entry
 * marked `upstream`.
 */
export function encodeUpstreamClassification(text: string): Uint8Array {
  return encoder.encode(JSON.stringify([{ label: text, index: -1, score: null, upstream: true }]));
}

/** Parses a top-k result written by {@link classifyHandlers}. @throws VaccelError `EPROTO` if malformed. */
export function parseClassification(bytes: Uint8Array): Classification[] {
  try {
    const parsed: unknown = JSON.parse(new TextDecoder().decode(bytes));
    if (
      Array.isArray(parsed) &&
      parsed.length === 1 &&
      parsed[0]?.upstream === true &&
      typeof parsed[0].label === 'string'
    )
      return [{ label: parsed[0].label, index: -1, score: Number.NaN, upstream: true }];
    if (
      Array.isArray(parsed) &&
      parsed.every(
        (c) => typeof c?.label === 'string' && Number.isInteger(c.index) && typeof c.score === 'number',
      )
    ) {
      return parsed as Classification[];
    }
  } catch (cause) {
    throw new VaccelError('EPROTO', 'malformed classification result', { cause });
  }
  throw new VaccelError('EPROTO', 'malformed classification result');
}

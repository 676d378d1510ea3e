/**
 * Admission of a call's work before it runs: an image's header is read (libvips reads no pixel)
 * and checked against the pixel limit, then its decoded size, an SGEMM's output and the outputs a
 * plugin sized are admitted against the agent's memory budget for the call's duration.
 * @module
 */
import type { Arg, OpType } from '@vaccel/core';
import type { CallContext } from '@vaccel/ttrpc';
import type { MemoryBudget } from './budget.js';
import type { AgentMetrics } from './metrics.js';
import { IMAGE_OPS, sgemmOutput } from './op-args.js';

type ImageTools = Pick<
  typeof import('@vaccel/plugin-onnx'),
  'imageHeader' | 'checkImagePixels' | 'maxImagePixels'
>;

let tools: Promise<ImageTools | undefined> | undefined;
/** The ONNX plugin's image helpers (sharp), loaded on the first image call; undefined without it. */
const imageTools = (): Promise<ImageTools | undefined> =>
  (tools ??= import('@vaccel/plugin-onnx').then(
    (onnx) => onnx,
    () => undefined,
  ));

export class Admission {
  constructor(
    readonly budget: MemoryBudget,
    private readonly metrics: AgentMetrics,
    /** Largest image decoded, in pixels (default: the ONNX plugin's, VACCEL_MAX_IMAGE_PIXELS or 40 MP). */
    private readonly maxImagePixels?: number,
  ) {}

  /**
   * An image a plugin will decode: refused past the pixel limit (`E2BIG`), its decoded size
   * (width × height × channels) admitted for the call. Bytes that are no image pass: the plugin
   * that cannot decode them says so.
   */
  async image(ctx: CallContext, image: Uint8Array): Promise<void> {
    const helpers = await imageTools();
    const header = helpers && (await helpers.imageHeader(image));
    if (!helpers || !header) return;
    try {
      helpers.checkImagePixels(header, this.maxImagePixels ?? helpers.maxImagePixels());
    } catch (error) {
      this.metrics.refusals.labels({ reason: 'image_pixels' }).inc();
      throw error;
    }
    const { width, height, channels } = header;
    this.budget.admit(
      ctx,
      width * height * Math.max(3, channels),
      'memory_image',
      `decoding a ${width}×${height} image`,
    );
  }

  /** What an op will allocate that its request does not carry: a decoded image, an SGEMM's C. */
  async op(ctx: CallContext, op: OpType, read: readonly Arg[]): Promise<void> {
    if (IMAGE_OPS.has(op)) {
      const image = read[0]?.buf;
      if (image && image.byteLength > 0) await this.image(ctx, image);
      return;
    }
    const c = sgemmOutput(op, read);
    if (c && c.m > 0 && c.n > 0)
      this.budget.admit(ctx, c.m * c.n * 4, 'memory_sgemm', `an SGEMM output of ${c.m}×${c.n}`);
  }

  /**
   * Outputs a plugin sized (it allocated them while it ran): checked before the reply is staged,
   * so a reply that does not fit the budget now is refused rather than queued for writing; they
   * count until the call ends.
   */
  outputs(ctx: CallContext, bytes: number): void {
    this.budget.admit(ctx, bytes, 'memory_output', 'the op outputs');
  }
}

/**
 * Image decoding and preprocessing with sharp (libvips, off the event loop): any JPEG, PNG, WebP,
 * GIF, TIFF or AVIF, EXIF orientation applied, resized to the model's input and normalised.
 * @module
 */
import { VaccelError } from '@vaccel/core';
import sharp from 'sharp';
import type { InputSpec } from './descriptor.js';

/** Largest image sharp may ever open here, in pixels (16k × 16k): the ceiling of {@link maxImagePixels}. */
export const MAX_INPUT_PIXELS = 16384 * 16384;

/**
 * Default largest image decoded, in pixels: 40 MP (e.g. 7300 × 5470, 120 MiB as RGB). A PNG of
 * one colour declaring 16000 × 16000 pixels is a few hundred KiB on the wire and 730 MiB decoded,
 * several times that while annotating: the limit is checked on the header, before any decoding.
 */
export const DEFAULT_MAX_IMAGE_PIXELS = 40_000_000;

/**
 * The largest image decoded now, in pixels: `VACCEL_MAX_IMAGE_PIXELS` (the agent's
 * `--max-image-pixels` sets it), else {@link DEFAULT_MAX_IMAGE_PIXELS}; at most {@link MAX_INPUT_PIXELS}.
 */
export function maxImagePixels(env: Readonly<Record<string, string | undefined>> = process.env): number {
  const given = Number(env.VACCEL_MAX_IMAGE_PIXELS);
  const limit = Number.isSafeInteger(given) && given > 0 ? given : DEFAULT_MAX_IMAGE_PIXELS;
  return Math.min(limit, MAX_INPUT_PIXELS);
}

/** What an image's header says (nothing decoded). */
export interface ImageHeader {
  width: number;
  height: number;
  /** Channels the decoded image has (3 for RGB, 4 with alpha, 1 for grey). */
  channels: number;
  /** e.g. 'png', 'jpeg'. */
  format: string;
}

/**
 * Reads an image's header with libvips (no pixel is decoded, whatever the size it declares).
 * @returns undefined when the bytes are no image format sharp reads (decoding them fails too).
 */
export async function imageHeader(image: Uint8Array): Promise<ImageHeader | undefined> {
  try {
    const meta = await sharp(image, { limitInputPixels: false }).metadata();
    if (!meta.width || !meta.height) return undefined;
    return {
      width: meta.width,
      height: meta.height,
      channels: meta.channels ?? 3,
      format: meta.format ?? '',
    };
  } catch {
    return undefined;
  }
}

/**
 * Checks a header against a pixel limit.
 * @throws VaccelError `E2BIG` naming the size and the limit.
 */
export function checkImagePixels(header: { width: number; height: number }, limit: number): void {
  const pixels = header.width * header.height;
  if (pixels > limit)
    throw new VaccelError(
      'E2BIG',
      `image of ${header.width}×${header.height} pixels (${(pixels / 1e6).toFixed(1)} MP) is over the limit of ${(limit / 1e6).toFixed(1)} MP (--max-image-pixels, VACCEL_MAX_IMAGE_PIXELS); send a smaller image`,
    );
}

/** A rectangle in pixels. */
export interface Rect {
  x: number;
  y: number;
  width: number;
  height: number;
}

/**
 * Where an image of `source` size lands in a `width` × `height` input letterboxed: scaled to fit
 * with its aspect ratio kept, centred (the reference pipelines of NanoDet, CenterNet and MoveNet
 * all centre it; an odd leftover pixel goes after).
 */
export function letterbox(source: { width: number; height: number }, width: number, height: number): Rect {
  const scale = Math.min(width / source.width, height / source.height);
  const w = Math.min(width, Math.max(1, Math.round(source.width * scale)));
  const h = Math.min(height, Math.max(1, Math.round(source.height * scale)));
  return { x: Math.floor((width - w) / 2), y: Math.floor((height - h) / 2), width: w, height: h };
}

/** A preprocessed image and what it cost. */
export interface Preprocessed {
  /** Float32 normally; int32 for models that take raw pixels as integers (`input.dtype`). */
  tensor: Float32Array | Int32Array;
  /** The source image's size, upright (after EXIF orientation). */
  source: { width: number; height: number };
  dims: [number, number, number, number];
  /** Where the image lies in the model input, in input pixels: all of it, unless letterboxed. */
  content: Rect;
  /** ms spent decoding and resizing (libvips), then normalising into the tensor. */
  decodeMs: number;
  normalizeMs: number;
}

/**
 * Decodes `image` and produces the model's input tensor (batch 1).
 * @throws VaccelError `EINVAL` when the bytes are not a decodable image, `E2BIG` when its header
 * declares more pixels than {@link maxImagePixels} (nothing is decoded then).
 */
export async function preprocess(
  image: Uint8Array,
  spec: InputSpec,
  signal?: AbortSignal,
): Promise<Preprocessed> {
  if (image.byteLength === 0) throw new VaccelError('EINVAL', 'image is empty');
  const started = performance.now();
  let pixels: Buffer;
  let source: Preprocessed['source'];
  let content: Rect = { x: 0, y: 0, width: spec.width, height: spec.height };
  const limit = maxImagePixels();
  try {
    // The header first, read without a limit so that the check below can say clearly what is
    // wrong; libvips then refuses to decode past the limit too.
    const meta = await sharp(image, { limitInputPixels: false, failOn: 'error' }).metadata();
    checkImagePixels({ width: meta.width ?? 0, height: meta.height ?? 0 }, limit);
    const decoder = sharp(image, { limitInputPixels: limit, failOn: 'error' });
    const swapped = (meta.orientation ?? 1) >= 5; // EXIF orientations 5–8 turn the image by 90°
    source = {
      width: (swapped ? meta.height : meta.width) ?? 0,
      height: (swapped ? meta.width : meta.height) ?? 0,
    };
    let pipeline = decoder
      .rotate() // apply EXIF orientation, as viewers do
      .removeAlpha()
      .toColourspace('srgb');
    if (spec.fit === 'letterbox' && source.width > 0 && source.height > 0) {
      // Resized to the computed size, then padded with black: the geometry the decoders map
      // back through is exactly this one (sharp's own `contain` rounds on its own terms).
      content = letterbox(source, spec.width, spec.height);
      pipeline = pipeline.resize(content.width, content.height, { fit: 'fill', kernel: spec.kernel }).extend({
        top: content.y,
        bottom: spec.height - content.height - content.y,
        left: content.x,
        right: spec.width - content.width - content.x,
        background: { r: 0, g: 0, b: 0 },
      });
    } else pipeline = pipeline.resize(spec.width, spec.height, { fit: 'fill', kernel: spec.kernel });
    pixels = await pipeline.raw().toBuffer();
  } catch (cause) {
    if (cause instanceof VaccelError) throw cause;
    throw new VaccelError(
      'EINVAL',
      `cannot decode image (${image.byteLength} bytes): ${(cause as Error).message.split('\n')[0]}`,
      {
        cause,
      },
    );
  }
  signal?.throwIfAborted();
  const decoded = performance.now();
  const { width, height, scale, mean, std } = spec;
  const plane = width * height;
  if (pixels.byteLength !== plane * 3)
    throw new VaccelError('EINVAL', `decoded image has ${pixels.byteLength} bytes, expected ${plane * 3}`);
  const tensor = spec.dtype === 'int32' ? new Int32Array(plane * 3) : new Float32Array(plane * 3);
  const order = spec.color === 'RGB' ? [0, 1, 2] : [2, 1, 0];
  // mean and std are given in the model's channel order.
  const mul = std.map((s) => scale / s);
  const add = mean.map((m, c) => -m / std[c]!);
  if (spec.layout === 'NHWC') {
    for (let p = 0, i = 0; p < plane; p++, i += 3) {
      for (let c = 0; c < 3; c++) tensor[i + c] = pixels[i + order[c]!]! * mul[c]! + add[c]!;
    }
  } else {
    for (let c = 0; c < 3; c++) {
      const src = order[c]!;
      const out = c * plane;
      for (let p = 0; p < plane; p++) tensor[out + p] = pixels[p * 3 + src]! * mul[c]! + add[c]!;
    }
  }
  const dims: Preprocessed['dims'] = spec.layout === 'NHWC' ? [1, height, width, 3] : [1, 3, height, width];
  return {
    tensor,
    dims,
    source,
    content,
    decodeMs: decoded - started,
    normalizeMs: performance.now() - decoded,
  };
}

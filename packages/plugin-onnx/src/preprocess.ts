/**
 * Image decoding and preprocessing with sharp (libvips, off the event loop): any JPEG, PNG, WebP,
 * GIF, TIFF or AVIF, EXIF orientation applied, resized to the model's input and normalised.
 * @module
 */
import { VaccelError } from '@vaccel/core';
import sharp from 'sharp';
import type { InputSpec } from './descriptor.js';

/** Largest image accepted, in pixels (a decompression-bomb guard: 16k × 16k). */
export const MAX_INPUT_PIXELS = 16384 * 16384;

/** A preprocessed image and what it cost. */
export interface Preprocessed {
  /** Float32 normally; int32 for models that take raw pixels as integers (`input.dtype`). */
  tensor: Float32Array | Int32Array;
  /** The source image's size, upright (after EXIF orientation). */
  source: { width: number; height: number };
  dims: [number, number, number, number];
  /** ms spent decoding and resizing (libvips), then normalising into the tensor. */
  decodeMs: number;
  normalizeMs: number;
}

/**
 * Decodes `image` and produces the model's input tensor (batch 1).
 * @throws VaccelError `EINVAL` when the bytes are not a decodable image.
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
  try {
    const decoder = sharp(image, { limitInputPixels: MAX_INPUT_PIXELS, failOn: 'error' });
    const meta = await decoder.metadata();
    const swapped = (meta.orientation ?? 1) >= 5; // EXIF orientations 5–8 turn the image by 90°
    source = {
      width: (swapped ? meta.height : meta.width) ?? 0,
      height: (swapped ? meta.width : meta.height) ?? 0,
    };
    pixels = await decoder
      .rotate() // apply EXIF orientation, as viewers do
      .removeAlpha()
      .toColourspace('srgb')
      .resize(spec.width, spec.height, { fit: 'fill', kernel: spec.kernel })
      .raw()
      .toBuffer();
  } catch (cause) {
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
  return { tensor, dims, source, decodeMs: decoded - started, normalizeMs: performance.now() - decoded };
}

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
  tensor: Float32Array;
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
  try {
    pixels = await sharp(image, { limitInputPixels: MAX_INPUT_PIXELS, failOn: 'error' })
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
  const tensor = new Float32Array(plane * 3);
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
  return { tensor, dims, decodeMs: decoded - started, normalizeMs: performance.now() - decoded };
}

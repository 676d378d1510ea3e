/**
 * Draws a result on the image (boxes and labels, a skeleton, a tinted mask) with sharp: an SVG or
 * RGBA layer composited over the upright source, encoded as JPEG.
 * @module
 */
import type { Detection, Pose, Segmentation } from '@vaccel/core';
import sharp, { type OverlayOptions } from 'sharp';
import { MAX_INPUT_PIXELS } from './preprocess.js';

const PALETTE = ['#e6194b', '#3cb44b', '#4363d8', '#f58231', '#911eb4', '#42d4f4', '#f032e6', '#9a6324'];
const escapeXml = (s: string) => s.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);
const upright = (image: Uint8Array) => sharp(image, { limitInputPixels: MAX_INPUT_PIXELS }).rotate();

async function withLayer(image: Uint8Array, layer: OverlayOptions): Promise<Uint8Array> {
  return new Uint8Array(await upright(image).composite([layer]).jpeg({ quality: 88 }).toBuffer());
}

const svgLayer = (width: number, height: number, body: string): OverlayOptions => ({
  input: Buffer.from(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">${body}</svg>`,
  ),
});

/** Boxes with "label score" tags, one colour per class. */
export function drawDetections(
  image: Uint8Array,
  size: { width: number; height: number },
  found: readonly Detection[],
) {
  const stroke = Math.max(2, Math.round(Math.min(size.width, size.height) / 200));
  const font = Math.max(12, Math.round(Math.min(size.width, size.height) / 30));
  const body = found
    .map((d) => {
      const color = PALETTE[d.index % PALETTE.length];
      const { x, y, width, height } = d.box;
      const text = `${escapeXml(d.label)} ${(d.score * 100).toFixed(0)}%`;
      const ty = y > font + 4 ? y - 4 : y + font + 2;
      return (
        `<rect x="${x}" y="${y}" width="${width}" height="${height}" fill="none" stroke="${color}" stroke-width="${stroke}"/>` +
        `<text x="${x + 2}" y="${ty}" font-family="sans-serif" font-size="${font}" fill="${color}" stroke="black" stroke-width="0.6">${text}</text>`
      );
    })
    .join('');
  return withLayer(image, svgLayer(size.width, size.height, body));
}

/** Keypoints above `minScore` as dots, the skeleton's edges between them as lines. */
export function drawPose(
  image: Uint8Array,
  size: { width: number; height: number },
  pose: Pose,
  minScore: number,
) {
  const r = Math.max(3, Math.round(Math.min(size.width, size.height) / 120));
  const seen = (i: number) => (pose.keypoints[i]?.score ?? 0) >= minScore;
  const lines = pose.skeleton
    .filter(([a, b]) => seen(a) && seen(b))
    .map(([a, b]) => {
      const [p, q] = [pose.keypoints[a]!, pose.keypoints[b]!];
      return `<line x1="${p.x}" y1="${p.y}" x2="${q.x}" y2="${q.y}" stroke="#42d4f4" stroke-width="${Math.ceil(r / 1.5)}"/>`;
    });
  const dots = pose.keypoints
    .filter((_, i) => seen(i))
    .map((k) => `<circle cx="${k.x}" cy="${k.y}" r="${r}" fill="#f58231" stroke="black"/>`);
  return withLayer(image, svgLayer(size.width, size.height, [...lines, ...dots].join('')));
}

/** The mask as a translucent green layer. */
export async function drawMask(image: Uint8Array, segmentation: Segmentation) {
  const { width, height, mask } = segmentation;
  const rgba = Buffer.alloc(width * height * 4);
  for (let p = 0; p < mask.length; p++) {
    rgba[p * 4 + 1] = 255;
    rgba[p * 4 + 3] = mask[p]! >> 1;
  }
  return withLayer(image, { input: rgba, raw: { width, height, channels: 4 } });
}

/** Resizes a single-channel mask to `width × height` (bilinear). */
export async function resizeMask(
  mask: Uint8Array,
  from: { width: number; height: number },
  width: number,
  height: number,
) {
  const out = await sharp(mask, { raw: { width: from.width, height: from.height, channels: 1 } })
    .resize(width, height, { fit: 'fill', kernel: 'linear' })
    .extractChannel(0)
    .raw()
    .toBuffer();
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

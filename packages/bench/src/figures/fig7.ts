/**
 * fig7 — image classification time vs input image size, host vs guest: JPEGs of 128² … 4096²
 * made from a shipped photo, classified with the default model.
 * @module
 */
import { readFileSync } from 'node:fs';
import sharp from 'sharp';
import type { FigureOptions } from '../figure.js';
import { describeMachine } from '../machine.js';
import { HOST, openPaths, sweep, type Tick } from '../paths.js';
import { Progress } from '../progress.js';
import { compare, type FigureResult } from '../result.js';
import { CAT } from './onnx.js';

/** Runs fig7. */
export async function fig7(options: FigureOptions): Promise<FigureResult> {
  const { reps, quick } = options;
  const sides = quick ? [128, 512] : [128, 256, 512, 1024, 2048, 4096];
  const ticks: Tick[] = sides.map((x) => ({ x, label: `${x}×${x}` }));
  const cat = readFileSync(CAT);
  const images = new Map<number, Uint8Array>();
  for (const side of sides) {
    images.set(
      side,
      new Uint8Array(await sharp(cat).resize(side, side, { fit: 'fill' }).jpeg({ quality: 90 }).toBuffer()),
    );
  }
  await using paths = await openPaths(options);
  const progress = new Progress('fig7', ticks.length);
  let points: FigureResult['points'];
  try {
    points = await sweep(
      paths.all,
      ticks,
      Math.max(reps, 5),
      async (path, side) => {
        const started = performance.now();
        await path.session.imageClassify(images.get(side)!, { topK: 5 });
        return performance.now() - started;
      },
      { metric: 'classify', unit: 'ms', higherIsBetter: false },
      progress,
    );
  } finally {
    progress.stop();
  }
  return {
    name: 'fig7',
    title: 'Image classification time vs image size (host vs guest)',
    xTitle: 'image size (px)',
    machine: describeMachine(paths.versions),
    options: { reps: Math.max(reps, 5), quick },
    points,
    comparisons: compare(points, HOST),
    notes: [
      'examples/images/cat.jpg resized to each size and re-encoded as JPEG (quality 90); default model (MobileNetV2 moderation), top-5',
      'time = decode + resize + inference (+ transfer of the JPEG for the guest), end to end per call',
    ],
  };
}

/**
 * fig7 — image classification time vs input image size, host vs guest: JPEGs of 128² … 4096²
 * made from a shipped photo, classified with the default model.
 * @module
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FigureOptions } from '../figure.js';
import { describeMachine } from '../machine.js';
import { budgetFor, CAT, HOST, openPaths, placed, sweep, type Tick } from '../paths.js';
import { Progress } from '../progress.js';
import { type Baseline, compareWith, type FigureResult } from '../result.js';

/** Every guest path against the same op in-process (same data, interleaved: pair by pair). */
const BASELINES: Baseline[] = [{ series: HOST }];

/** Where a VM guest (which has no sharp) finds the test images, made on the host by vaccel-vm. */
export const FIG7_IMAGE_DIR = '/examples/fig7';
/** All sizes fig7 uses. */
export const FIG7_SIDES = [128, 256, 512, 1024, 2048, 4096];
export const fig7ImageName = (side: number) => `cat-${side}.jpg`;

/** cat.jpg as a `side`² JPEG (quality 90): made with sharp, or read from {@link FIG7_IMAGE_DIR}. */
export async function testImage(side: number): Promise<Uint8Array> {
  const premade = join(FIG7_IMAGE_DIR, fig7ImageName(side));
  if (existsSync(premade)) return new Uint8Array(readFileSync(premade));
  const { default: sharp } = await import('sharp');
  return new Uint8Array(
    await sharp(readFileSync(CAT)).resize(side, side, { fit: 'fill' }).jpeg({ quality: 90 }).toBuffer(),
  );
}

/** Runs fig7. */
export async function fig7(options: FigureOptions): Promise<FigureResult> {
  const { reps, quick } = options;
  const sides = quick ? [128, 512] : FIG7_SIDES;
  const ticks: Tick[] = sides.map((x) => ({ x, label: `${x}×${x}` }));
  const images = new Map<number, Uint8Array>();
  for (const side of sides) images.set(side, await testImage(side));
  await using paths = await openPaths(
    options,
    [...images.values()].reduce((sum, image) => sum + image.byteLength + 64, 0),
  );
  const progress = new Progress('fig7', ticks.length);
  let points: FigureResult['points'];
  try {
    // Inside a VM the in-process path has no classifier: measure the paths that can classify.
    const able = [];
    for (const path of paths.all) {
      if ((await path.vaccel.listOperations()).some((o) => o.name === 'image_classify_topk')) able.push(path);
    }
    points = await sweep(
      able,
      ticks,
      budgetFor(options),
      async (path, side) => {
        const started = performance.now();
        await path.session.imageClassify(
          placed(path, `${side}`, () => images.get(side)!),
          { topK: 5 },
        );
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
    options: { reps, quick },
    points,
    comparisons: compareWith(points, BASELINES),
    baselines: BASELINES,
    notes: [
      'guest (agent, shared memory): the JPEG sits in a memfd region the agent maps; only its reference crosses the socket',
      'examples/images/cat.jpg resized to each size and re-encoded as JPEG (quality 90); default model (MobileNetV2 moderation), top-5',
      'time = decode + resize + inference (+ transfer of the JPEG for the guest), end to end per call; one call per sample, host and guest interleaved call by call, ≥ 50 samples and ≥ 1 s per point (quick: fewer); overhead = median of the pairwise guest/host ratios, with its 95 % bootstrap interval',
    ],
  };
}

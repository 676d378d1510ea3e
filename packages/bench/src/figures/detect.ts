/**
 * detect — object detection time per 640×480 photo, host vs guest: the darknet photos shipped in
 * examples/images, resized to 640×480, run through the default detector (CenterNet, COCO).
 * @module
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { FigureOptions } from '../figure.js';
import { describeMachine } from '../machine.js';
import { budgetFor, HOST, openPaths, placed, sweep, type Tick } from '../paths.js';
import { Progress } from '../progress.js';
import { type Baseline, compareWith, type FigureResult } from '../result.js';

/** Every guest path against the same op in-process (same data, interleaved: pair by pair). */
const BASELINES: Baseline[] = [{ series: HOST }];

/** Photos measured (examples/images), each as a 640×480 JPEG. */
export const DETECT_PHOTOS = ['dog', 'person', 'horses'];

const photoPath = (name: string) =>
  fileURLToPath(new URL(`../../../../examples/images/${name}.jpg`, import.meta.url));

/** `name`.jpg resized to 640×480 (stretched), JPEG quality 90. */
export async function photo640(name: string): Promise<Uint8Array> {
  const { default: sharp } = await import('sharp');
  return new Uint8Array(
    await sharp(readFileSync(photoPath(name)))
      .resize(640, 480, { fit: 'fill' })
      .jpeg({ quality: 90 })
      .toBuffer(),
  );
}

/** Runs the detection figure. */
export async function detectFigure(options: FigureOptions): Promise<FigureResult> {
  const { reps, quick } = options;
  const names = quick ? DETECT_PHOTOS.slice(0, 1) : DETECT_PHOTOS;
  const ticks: Tick[] = names.map((label, x) => ({ x, label }));
  const images = await Promise.all(names.map(photo640));
  await using paths = await openPaths(
    options,
    images.reduce((sum, image) => sum + image.byteLength + 64, 0),
  );
  const progress = new Progress('detect', ticks.length);
  let points: FigureResult['points'];
  try {
    points = await sweep(
      paths.all,
      ticks,
      budgetFor(options),
      async (path, x) => {
        const started = performance.now();
        await path.session.imageDetect(placed(path, `${x}`, () => images[x]!));
        return performance.now() - started;
      },
      { metric: 'detect', unit: 'ms', higherIsBetter: false },
      progress,
    );
  } finally {
    progress.stop();
  }
  return {
    name: 'detect',
    title: 'Object detection time per 640×480 photo (host vs guest)',
    xTitle: 'photo',
    machine: describeMachine(paths.versions),
    options: { reps, quick },
    points,
    comparisons: compareWith(points, BASELINES),
    baselines: BASELINES,
    notes: [
      `examples/images/{${names.join(',')}}.jpg resized to 640×480 (JPEG quality 90); default detector (CenterNet, COCO, 512×512 input), default options (minScore 0.3, NMS IoU 0.5)`,
      'time = JPEG decode + resize + inference + box decoding and NMS (+ transfer for the guest), end to end per call; target ≤ 60 ms in-process',
      'one call per sample, host and guest interleaved call by call; overhead = median of the pairwise guest/host ratios, with its 95 % bootstrap interval',
    ],
  };
}

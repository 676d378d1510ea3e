/**
 * accuracy — how often the shipped detectors are right: every object-detection model in
 * `@vaccel/plugin-onnx`'s models folder run in-process on the labelled photos of examples/eval
 * (labels.json: boxes of the main objects, the main object of each photo), scored at IoU ≥ 0.5:
 * precision, recall, mAP@0.5, and whether the top detection is the photo's main object.
 * Time per photo is measured too: on each photo as committed, and on each photo resized to exactly
 * 640×480 (the size the default detector's ≤ 60 ms budget is stated for).
 * @module
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Detection } from '@vaccel/core';
import type { FigureOptions } from '../figure.js';
import { describeMachine } from '../machine.js';
import { Progress } from '../progress.js';
import type { FigureResult, Point, Table } from '../result.js';
import { summarize } from '../stats.js';
import { type Detector, packagedDetectors, shippedDetectors } from './detectors.js';

/** A box as [x, y, width, height], in pixels of the photo. */
export type Box = readonly [number, number, number, number];

/** A labelled object, or a detection, reduced to what scoring needs. */
export interface Labelled {
  class: string;
  box: Box;
  /**
   * A labelled object too small or hidden to require (PASCAL VOC's "difficult"): not a false
   * negative when missed, and a detection matching it is neither a true nor a false positive.
   */
  difficult?: boolean;
}

/** A detection to score: a class, a box and a score. */
export interface Scored extends Labelled {
  score: number;
}

/** One photo of the evaluation set. */
export interface EvalPhoto {
  /** Path relative to the set's folder. */
  file: string;
  /** The photo's main object: the class its package names it after. */
  main: string;
  objects: Labelled[];
}

/** The minimum IoU for a detection to match a labelled object (PASCAL VOC's, COCO's AP50). */
export const IOU_THRESHOLD = 0.5;

/** The evaluation set's folder (examples/eval). */
export const EVAL_DIR = fileURLToPath(new URL('../../../../examples/eval/', import.meta.url));

/** The frame the timing budget is stated for: width, height. */
export const BUDGET_FRAME = [640, 480] as const;

/**
 * `image` resized to exactly 640×480, JPEG quality 90, in memory. Stretched (sharp `fit: 'fill'`),
 * as the detect figure's photos: the whole photo stays in the frame (cover would crop objects
 * away, contain would add bars the photo does not have), and the pixel count, which is what decode
 * and resize cost, is exactly 640×480 for every photo. The detectors letterbox to their own
 * square input anyway.
 */
export async function resizeToBudgetFrame(image: Uint8Array): Promise<Uint8Array> {
  const { default: sharp } = await import('sharp');
  const [width, height] = BUDGET_FRAME;
  return new Uint8Array(
    await sharp(image).resize(width, height, { fit: 'fill' }).jpeg({ quality: 90 }).toBuffer(),
  );
}

/** The metric of the time per photo resized to {@link BUDGET_FRAME}. */
export const MS_PER_FRAME = 'ms per 640×480 photo';

/** Intersection over union of two boxes (0 when either is empty). */
export function iou(a: Box, b: Box): number {
  const w = Math.min(a[0] + a[2], b[0] + b[2]) - Math.max(a[0], b[0]);
  const h = Math.min(a[1] + a[3], b[1] + b[3]) - Math.max(a[1], b[1]);
  if (w <= 0 || h <= 0) return 0;
  const inter = w * h;
  const union = a[2] * a[3] + b[2] * b[3] - inter;
  return union > 0 ? inter / union : 0;
}

/** The outcome of matching one photo's detections with its labels. */
export interface PhotoMatch {
  /**
   * Per detection, in the order given: the index of the labelled object it matched (a true
   * positive, or ignored if that object is difficult), or -1 (a false positive).
   */
  matched: number[];
  tp: number;
  fp: number;
  fn: number;
}

/**
 * Greedy matching, as PASCAL VOC and COCO score: detections in descending score, each to the
 * not-yet-matched labelled object of its class with the highest IoU, if that IoU ≥ `threshold`
 * (a true positive); otherwise, or once its object is taken, a false positive. Labelled objects
 * left unmatched are false negatives. Difficult objects take part in the matching, so that a
 * detection of one is ignored, but count neither way.
 */
export function matchPhoto(
  labels: readonly Labelled[],
  detections: readonly Scored[],
  threshold = IOU_THRESHOLD,
): PhotoMatch {
  const taken = new Array<boolean>(labels.length).fill(false);
  const matched = new Array<number>(detections.length).fill(-1);
  const order = detections.map((_, i) => i).sort((i, j) => detections[j]!.score - detections[i]!.score);
  for (const d of order) {
    let best = -1;
    let bestIou = threshold;
    labels.forEach((label, l) => {
      if (taken[l] || label.class !== detections[d]!.class) return;
      const overlap = iou(label.box, detections[d]!.box);
      if (overlap >= bestIou) [best, bestIou] = [l, overlap];
    });
    if (best >= 0) {
      taken[best] = true;
      matched[d] = best;
    }
  }
  const tp = matched.filter((m) => m >= 0 && !labels[m]!.difficult).length;
  const ignored = matched.filter((m) => m >= 0 && labels[m]!.difficult).length;
  const required = labels.filter((l) => !l.difficult).length;
  return { matched, tp, fp: detections.length - tp - ignored, fn: required - tp };
}

/**
 * Average precision of one class over a set of photos: its detections ranked by score across all
 * photos, each true or false positive as {@link matchPhoto} found, the area under the precision–
 * recall curve with precision made monotone (VOC 2010+'s all-point interpolation). NaN for a class
 * with no labelled object.
 */
export function averagePrecision(
  ranked: readonly { score: number; tp: boolean }[],
  labelled: number,
): number {
  if (labelled === 0) return Number.NaN;
  const sorted = [...ranked].sort((a, b) => b.score - a.score);
  const recall: number[] = [];
  const precision: number[] = [];
  let tp = 0;
  sorted.forEach((d, i) => {
    if (d.tp) tp++;
    recall.push(tp / labelled);
    precision.push(tp / (i + 1));
  });
  // Monotone envelope from the right, then the area of the step curve over recall.
  for (let i = precision.length - 2; i >= 0; i--) precision[i] = Math.max(precision[i]!, precision[i + 1]!);
  let area = 0;
  let previous = 0;
  recall.forEach((r, i) => {
    area += (r - previous) * precision[i]!;
    previous = r;
  });
  return area;
}

/** The scores of one detector over a set of photos. */
export interface SetScore {
  tp: number;
  fp: number;
  fn: number;
  precision: number;
  recall: number;
  /** Mean over the labelled classes of their {@link averagePrecision}. */
  mAP: number;
  /** Photos whose highest-scoring detection is of the main object's class. */
  top1Right: number;
  photos: number;
  matches: PhotoMatch[];
}

/** Scores `detections[i]` (one list per photo) against `photos[i]`. */
export function scoreSet(photos: readonly EvalPhoto[], detections: readonly (readonly Scored[])[]): SetScore {
  const matches = photos.map((photo, i) => matchPhoto(photo.objects, detections[i]!));
  const sum = (key: 'tp' | 'fp' | 'fn') => matches.reduce((total, m) => total + m[key], 0);
  const [tp, fp, fn] = [sum('tp'), sum('fp'), sum('fn')];
  const classes = new Set(photos.flatMap((p) => p.objects.flatMap((o) => (o.difficult ? [] : [o.class]))));
  const aps = [...classes].map((c) =>
    averagePrecision(
      detections.flatMap((list, i) =>
        list.flatMap((d, j) => {
          const m = matches[i]!.matched[j]!;
          if (d.class !== c || (m >= 0 && photos[i]!.objects[m]!.difficult)) return [];
          return [{ score: d.score, tp: m >= 0 }];
        }),
      ),
      photos.reduce((n, p) => n + p.objects.filter((o) => o.class === c && !o.difficult).length, 0),
    ),
  );
  const top1Right = photos.filter((photo, i) => topOf(detections[i]!)?.class === photo.main).length;
  return {
    tp,
    fp,
    fn,
    precision: tp + fp === 0 ? 0 : tp / (tp + fp),
    recall: tp + fn === 0 ? 0 : tp / (tp + fn),
    mAP: aps.reduce((a, b) => a + b, 0) / aps.length,
    top1Right,
    photos: photos.length,
    matches,
  };
}

/** The highest-scoring detection, if any. */
const topOf = (detections: readonly Scored[]): Scored | undefined =>
  detections.reduce<Scored | undefined>((best, d) => (!best || d.score > best.score ? d : best), undefined);

/** Reads the evaluation set (labels.json in `dir`). */
export function readEvalSet(dir = EVAL_DIR): EvalPhoto[] {
  const { photos } = JSON.parse(readFileSync(join(dir, 'labels.json'), 'utf8')) as { photos: EvalPhoto[] };
  return photos;
}

const asScored = (d: Detection): Scored => ({
  class: d.label,
  score: d.score,
  box: [d.box.x, d.box.y, d.box.width, d.box.height],
});

const percent = (v: number) => `${(100 * v).toFixed(1)}%`;
const photoName = (p: EvalPhoto) => p.file.replace(/^.*\//, '');
/** Classes with their counts, in order of first appearance: `horse ×5, person`. */
const objectList = (objects: readonly Labelled[]): string => {
  const counts = new Map<string, number>();
  for (const o of objects) if (!o.difficult) counts.set(o.class, (counts.get(o.class) ?? 0) + 1);
  const difficult = objects.filter((o) => o.difficult).length;
  const list = [...counts].map(([c, n]) => (n > 1 ? `${c} ×${n}` : c)).join(', ');
  return difficult > 0 ? `${list} (+${difficult} difficult)` : list;
};
/** A point measured once (a count over the set): no interval. */
const once = (value: number) => ({
  ...summarize([value]),
  ci95: [Number.NaN, Number.NaN] as [number, number],
});

/** Runs the accuracy figure. */
export async function accuracyFigure(options: FigureOptions): Promise<FigureResult> {
  const { reps, quick } = options;
  const timedRuns = quick ? 1 : reps;
  const photos = readEvalSet();
  const images = photos.map((p) => new Uint8Array(readFileSync(join(EVAL_DIR, p.file))));
  const framed = await Promise.all(images.map(resizeToBudgetFrame));
  const shipped = await shippedDetectors();
  // Candidates that npm packages ship but the plugin does not: written to a temporary folder.
  const packagedDir = mkdtempSync(join(tmpdir(), 'vaccel-accuracy-'));
  const detectors = [...shipped, ...(await packagedDetectors(packagedDir))];
  const [{ Vaccel }, { onnxPlugin }] = await Promise.all([
    import('@vaccel/core'),
    import('@vaccel/plugin-onnx'),
  ]);
  const points: Point[] = [];
  const perPhoto: string[][] = [];
  const summaryRows: string[][] = [];
  const notes: string[] = [];
  const versions: Record<string, string> = {};
  const progress = new Progress('accuracy', detectors.length * photos.length);
  try {
    for (const detector of detectors) {
      try {
        await measure(detector);
      } catch (error) {
        // One detector that cannot run (a model being rebuilt, a decoder the plugin lacks) is
        // reported in its row and the notes; the others are still measured.
        const message = (error as Error).message ?? String(error);
        summaryRows.push([detector.name, String(photos.length), ...new Array<string>(11).fill('—')]);
        notes.push(`${detector.name} could not run: ${message}`);
        for (let i = 0; i < photos.length; i++) progress.tick();
      }
    }
  } finally {
    progress.stop();
    rmSync(packagedDir, { recursive: true, force: true });
  }

  async function measure(detector: Detector): Promise<void> {
    await using vaccel = await Vaccel.open({
      plugins: [onnxPlugin({ visionModels: { detect: detector.dir } })],
    });
    for (const p of vaccel.plugins()) versions[p.name] = p.version;
    await using session = await vaccel.createSession();
    await session.imageDetect(images[0]!); // warm-up: loads the model
    /** `timedRuns` detections of `image`: the median time, and the last call's detections. */
    const timed = async (image: Uint8Array): Promise<{ median: number; found: Detection[] }> => {
      const samples: number[] = [];
      let found: Detection[] = [];
      for (let run = 0; run < timedRuns; run++) {
        const started = performance.now();
        found = (await session.imageDetect(image)).result;
        samples.push(performance.now() - started);
      }
      return { median: summarize(samples).median, found };
    };
    const detections: Scored[][] = [];
    const times: number[] = [];
    const framedTimes: number[] = [];
    for (const [i, image] of images.entries()) {
      const { median, found } = await timed(image);
      detections.push(found.map(asScored));
      times.push(median);
      // The same photo at 640×480, timed the same way, right after it (so both see the same load).
      framedTimes.push((await timed(framed[i]!)).median);
      progress.tick();
    }
    const score = scoreSet(photos, detections);
    const unknown = [...new Set(photos.flatMap((p) => p.objects.map((o) => o.class)))].filter(
      (c) => !detector.labels.has(c),
    );
    if (unknown.length > 0)
      notes.push(`${detector.name} has no class ${unknown.join(', ')}: those objects count as missed`);
    const series = detector.name;
    const xLabel = `${photos.length} photos`;
    const metric = (name: string, value: number, unit = '%', higherIsBetter = true): Point => ({
      series,
      x: 0,
      xLabel,
      metric: name,
      unit,
      higherIsBetter,
      summary: once(unit === '%' ? 100 * value : value),
    });
    points.push(
      metric('precision', score.precision),
      metric('recall', score.recall),
      metric('mAP@0.5', score.mAP),
      metric('top-1 right', score.top1Right / score.photos),
      {
        series,
        x: 0,
        xLabel,
        metric: 'ms per photo',
        unit: 'ms',
        higherIsBetter: false,
        summary: summarize(times),
        samples: times,
      },
      {
        series,
        x: 0,
        xLabel,
        metric: MS_PER_FRAME,
        unit: 'ms',
        higherIsBetter: false,
        summary: summarize(framedTimes),
        samples: framedTimes,
      },
    );
    summaryRows.push([
      detector.name,
      String(photos.length),
      String(score.tp + score.fn),
      String(score.tp + score.fp),
      String(score.tp),
      String(score.fp),
      String(score.fn),
      percent(score.precision),
      percent(score.recall),
      percent(score.mAP),
      `${score.top1Right}/${score.photos}`,
      summarize(times).median.toFixed(1),
      summarize(framedTimes).median.toFixed(1),
    ]);
    photos.forEach((photo, i) => {
      const m = score.matches[i]!;
      const top = topOf(detections[i]!);
      const listed = detections[i]!.map((d, j) => ({ d, at: m.matched[j]! })).sort(
        (a, b) => b.d.score - a.d.score,
      );
      perPhoto.push([
        photoName(photo),
        objectList(photo.objects),
        photo.main,
        detector.name,
        top ? `${top.class} ${top.score.toFixed(2)}` : '—',
        top?.class === photo.main ? 'yes' : 'no',
        String(m.tp),
        String(m.fp),
        String(m.fn),
        listed
          .map(({ d, at }) => {
            const mark = at < 0 ? '' : photo.objects[at]!.difficult ? ' (difficult)' : ' ✓';
            return `${d.class} ${d.score.toFixed(2)}${mark}`;
          })
          .join(', ') || '—',
      ]);
    });
  }
  const tables: Table[] = [
    {
      title: 'Per detector',
      columns: [
        'detector',
        'photos',
        'objects',
        'detections',
        'TP',
        'FP',
        'FN',
        'precision',
        'recall',
        'mAP@0.5',
        'top-1 right',
        'ms per photo',
        MS_PER_FRAME,
      ],
      align: ['l', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r'],
      rows: summaryRows,
    },
    {
      title: 'Per photo',
      columns: [
        'photo',
        'labelled objects',
        'main object',
        'detector',
        'top detection',
        'top-1 right',
        'TP',
        'FP',
        'FN',
        'detections (✓: matched a labelled object)',
      ],
      align: ['l', 'l', 'l', 'l', 'l', 'l', 'r', 'r', 'r', 'l'],
      rows: perPhoto,
    },
  ];
  return {
    name: 'accuracy',
    title:
      'Object detection accuracy of the shipped and packaged detectors on the labelled photos of examples/eval',
    xTitle: 'photos',
    machine: describeMachine(versions),
    options: { reps: timedRuns, quick },
    points,
    comparisons: [],
    baselines: [],
    tables,
    notes: [
      `${photos.length} photos of examples/eval (labels.json; sources and licences in its NOTICE.md), ${photos.reduce((n, p) => n + p.objects.filter((o) => !o.difficult).length, 0)} labelled objects of COCO classes (+${photos.reduce((n, p) => n + p.objects.filter((o) => o.difficult).length, 0)} difficult: neither required nor counted against a detection); every model with \`task: object-detection\` in @vaccel/plugin-onnx's models folder, and every detector an npm package ships (${
        detectors
          .slice(shipped.length)
          .map((d) => d.name)
          .join(', ') || 'none'
      }: packages/bench/src/figures/detectors.ts; candidates, not shipped), in-process, default options (minScore 0.3, NMS IoU 0.5, the model's own input size)`,
      'TP/FP/FN: detections in descending score, each matched to the unmatched labelled object of its class with the highest IoU, if ≥ 0.5; precision = TP / (TP + FP), recall = TP / (TP + FN), over all photos',
      'mAP@0.5: per labelled class, the area under the all-point interpolated precision–recall curve of its detections ranked over all photos, averaged over classes; only detections above minScore count, so it is a lower bound of the full-curve AP',
      "top-1 right: the photo's highest-scoring detection is of its main object's class (the object its package names the photo after); no detection counts as wrong",
      `ms per photo: the median over photos of each photo's median of ${timedRuns} call${timedRuns === 1 ? '' : 's'} (the photo as committed, decode + resize + inference + NMS), after one warm-up call; for information`,
      `${MS_PER_FRAME}: the same, on each photo first resized in memory to exactly 640×480 (sharp, fit: 'fill', i.e. stretched, so that nothing is cropped; JPEG quality 90), timed right after the photo as committed; the default detector is the most accurate one within 60 ms per 640×480 photo in-process`,
      `default detector: ${detectors[0]?.name ?? '—'} (listed first)`,
      ...notes,
    ],
  };
}

/**
 * What a detector must find on the example photos, from their labels (examples/eval/labels.json,
 * the accuracy figure's ground truth): a labelled object counts as found when a detection of an
 * accepted class overlaps its box with IoU ≥ 0.5 (PASCAL VOC's, COCO's AP50). Tests of every
 * path that detects (plugin, CLI, example functions, container) check this instead of exact
 * labels or scores, so that they hold for any working detector and fail for a broken one.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** A box as [x, y, width, height], in pixels of the photo. */
export type Box = readonly [number, number, number, number];

/** A detection as the API, the CLI's output and the HTTP function give it. */
export interface FoundObject {
  label: string;
  box: { x: number; y: number; width: number; height: number };
}

const LABELS = fileURLToPath(new URL('../eval/labels.json', import.meta.url));

/** The labelled objects of `photo` (a file name in examples/images or examples/eval). */
export function labelledObjects(photo: string): { class: string; box: Box; difficult?: boolean }[] {
  const { photos } = JSON.parse(readFileSync(LABELS, 'utf8')) as {
    photos: { file: string; objects: { class: string; box: Box; difficult?: boolean }[] }[];
  };
  const entry = photos.find((p) => p.file.replace(/^.*\//, '') === photo);
  if (!entry) throw new Error(`${photo} is not labelled in examples/eval/labels.json`);
  return entry.objects;
}

/** Intersection over union of two boxes (0 when either is empty). */
export function iou(a: Box, b: Box): number {
  const w = Math.min(a[0] + a[2], b[0] + b[2]) - Math.max(a[0], b[0]);
  const h = Math.min(a[1] + a[3], b[1] + b[3]) - Math.max(a[1], b[1]);
  if (w <= 0 || h <= 0) return 0;
  const inter = w * h;
  return inter / (a[2] * a[3] + b[2] * b[3] - inter);
}

/**
 * The photo's labelled objects a detector must find, each with the classes accepted for it. Both
 * shipped detectors call dog.jpg's pickup truck a car (docs/results/accuracy.md), and COCO
 * labellers disagree on pickups too, so a car there is accepted, at the truck's place only.
 */
export const MUST_FIND: Readonly<Record<string, readonly (readonly [string, readonly string[]])[]>> = {
  'dog.jpg': [
    ['dog', ['dog']],
    ['bicycle', ['bicycle']],
    ['truck', ['truck', 'car']],
  ],
  'person.jpg': [
    ['person', ['person']],
    ['dog', ['dog']],
  ],
};

/**
 * The labelled objects of {@link MUST_FIND}`[photo]` that no detection of an accepted class
 * overlaps with IoU ≥ 0.5, described for an assertion message (empty when all are found).
 */
export function missedObjects(photo: string, found: readonly FoundObject[]): string[] {
  const objects = labelledObjects(photo);
  return (MUST_FIND[photo] ?? []).flatMap(([name, accepted]) => {
    const object = objects.find((o) => o.class === name && !o.difficult);
    if (!object) throw new Error(`${photo} has no labelled ${name}`);
    const hit = found.some(
      (d) =>
        accepted.includes(d.label) && iou(object.box, [d.box.x, d.box.y, d.box.width, d.box.height]) >= 0.5,
    );
    return hit
      ? []
      : [
          `${photo}: no ${accepted.join(' or ')} at the labelled ${name} [${object.box.join(', ')}] (IoU ≥ 0.5); found ${
            found
              .map(
                (d) =>
                  `${d.label} [${[d.box.x, d.box.y, d.box.width, d.box.height].map(Math.round).join(', ')}]`,
              )
              .join(', ') || 'nothing'
          }`,
        ];
  });
}

/** Detections from the CLI's `vaccel detect` lines (`54.8%  bicycle        x=117 y=135 w=445 h=339`). */
export function parseDetectLines(text: string): FoundObject[] {
  return [...text.matchAll(/^\s*[\d.]+%\s+(\S(?:.*\S)?)\s+x=(-?\d+) y=(-?\d+) w=(\d+) h=(\d+)$/gm)].map(
    (m) => ({
      label: m[1]!,
      box: { x: Number(m[2]), y: Number(m[3]), width: Number(m[4]), height: Number(m[5]) },
    }),
  );
}

import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite, test } from 'node:test';
import { main } from '@vaccel/bench';
import {
  averagePrecision,
  EVAL_DIR,
  type EvalPhoto,
  iou,
  type Labelled,
  MS_PER_FRAME,
  matchPhoto,
  readEvalSet,
  resizeToBudgetFrame,
  type Scored,
  scoreSet,
} from '../src/figures/accuracy.js';
import { shippedDetectors } from '../src/figures/detectors.js';
import type { FigureResult } from '../src/result.js';

const close = (actual: number, expected: number) =>
  assert.ok(Math.abs(actual - expected) < 1e-9, `${actual} ≠ ${expected}`);

suite('accuracy: scoring', () => {
  test('IoU of boxes [x, y, w, h]', () => {
    close(iou([0, 0, 10, 10], [0, 0, 10, 10]), 1);
    close(iou([0, 0, 10, 10], [5, 0, 10, 10]), 50 / 150);
    close(iou([0, 0, 10, 10], [5, 5, 10, 10]), 25 / 175);
    close(iou([0, 0, 10, 10], [10, 0, 10, 10]), 0); // touching edges
    close(iou([0, 0, 10, 10], [20, 20, 5, 5]), 0);
  });

  test('greedy matching at IoU 0.5: by score, by class, one detection per object, difficult objects ignored', () => {
    const labels: Labelled[] = [
      { class: 'dog', box: [0, 0, 100, 100] }, // 0
      { class: 'dog', box: [200, 0, 100, 100] }, // 1: only a poor detection (IoU 0.25)
      { class: 'cat', box: [0, 200, 100, 100] }, // 2
      { class: 'person', box: [400, 400, 10, 10], difficult: true }, // 3
    ];
    const detections: Scored[] = [
      // Listed before the better-scored one: it must not take object 0 (IoU 1, but scored lower).
      { class: 'dog', score: 0.8, box: [0, 0, 100, 100] },
      { class: 'dog', score: 0.9, box: [10, 10, 100, 100] }, // IoU 8100/11900 = 0.68 with 0
      { class: 'dog', score: 0.7, box: [200, 60, 100, 100] }, // IoU 0.25 with 1: too low
      { class: 'dog', score: 0.5, box: [0, 200, 100, 100] }, // on the cat: wrong class
      { class: 'person', score: 0.4, box: [400, 400, 10, 10] }, // the difficult object: ignored
      { class: 'cat', score: 0.3, box: [0, 220, 100, 100] }, // IoU 8000/12000 = 0.67 with 2
    ];
    const m = matchPhoto(labels, detections);
    assert.deepEqual(m.matched, [-1, 0, -1, -1, 3, 2]);
    assert.deepEqual([m.tp, m.fp, m.fn], [2, 3, 1]);
    // Nothing detected: every required object is missed, the difficult one is not.
    assert.deepEqual(matchPhoto(labels, []), { matched: [], tp: 0, fp: 0, fn: 3 });
    // Between two objects of its class, a detection takes the one it overlaps most.
    const pair: Labelled[] = [
      { class: 'horse', box: [0, 0, 100, 100] },
      { class: 'horse', box: [20, 0, 100, 100] },
    ];
    assert.deepEqual(matchPhoto(pair, [{ class: 'horse', score: 0.9, box: [18, 0, 100, 100] }]).matched, [1]);
    // IoU exactly at the threshold counts; below it does not.
    const half: Scored = { class: 'dog', score: 1, box: [0, 0, 100, 150] }; // IoU 10000/15000 = 0.667
    assert.equal(matchPhoto([labels[0]!], [half], 0.7).tp, 0);
    assert.equal(matchPhoto([labels[0]!], [half], 2 / 3).tp, 1);
  });

  test('average precision: all-point interpolated area under the precision–recall curve', () => {
    // Ranked T, F, T of 4 objects: precision 1, 1/2, 2/3 at recall 1/4, 1/4, 1/2;
    // made monotone 1, 2/3, 2/3: area = 1/4 · 1 + 1/4 · 2/3.
    const ranked = [
      { score: 0.7, tp: true },
      { score: 0.9, tp: true },
      { score: 0.8, tp: false },
    ];
    close(averagePrecision(ranked, 4), 0.25 + 0.25 * (2 / 3));
    close(averagePrecision([{ score: 1, tp: true }], 1), 1);
    close(averagePrecision([], 3), 0);
    assert.ok(Number.isNaN(averagePrecision([], 0)));
  });

  test('a set: precision, recall, mAP over photos, top-1 = the best detection is the main object', () => {
    const photos: EvalPhoto[] = [
      { file: 'a.jpg', main: 'cat', objects: [{ class: 'cat', box: [0, 0, 10, 10] }] },
      {
        file: 'b.jpg',
        main: 'dog',
        objects: [
          { class: 'dog', box: [0, 0, 10, 10] },
          { class: 'cat', box: [50, 50, 10, 10] },
        ],
      },
      { file: 'c.jpg', main: 'cup', objects: [{ class: 'cup', box: [0, 0, 10, 10] }] },
    ];
    const s = scoreSet(photos, [
      [{ class: 'cat', score: 0.9, box: [0, 0, 10, 10] }],
      [
        { class: 'cat', score: 0.8, box: [50, 50, 10, 10] }, // right, but not the main object
        { class: 'dog', score: 0.6, box: [0, 0, 10, 10] },
        { class: 'toilet', score: 0.5, box: [0, 0, 10, 10] },
      ],
      [], // nothing: top-1 wrong, the cup missed
    ]);
    assert.deepEqual([s.tp, s.fp, s.fn, s.top1Right, s.photos], [3, 1, 1, 1, 3]);
    close(s.precision, 3 / 4);
    close(s.recall, 3 / 4);
    // cat AP 1, dog AP 1, cup AP 0 (toilet is no labelled class: not averaged).
    close(s.mAP, 2 / 3);
  });
});

suite('accuracy: the figure', () => {
  test('the evaluation set: every photo present, boxes inside it, a main object among its labels', async () => {
    const { default: sharp } = await import('sharp');
    const photos = readEvalSet();
    assert.ok(photos.length >= 12);
    for (const photo of photos) {
      const { width, height } = await sharp(join(EVAL_DIR, photo.file)).metadata();
      assert.ok(
        photo.objects.some((o) => o.class === photo.main && !o.difficult),
        `${photo.file}: main ${photo.main}`,
      );
      for (const { box } of photo.objects) {
        assert.ok(box[2] > 0 && box[3] > 0, `${photo.file}: ${box}`);
        assert.ok(box[0] >= 0 && box[1] >= 0 && box[0] + box[2] <= width! && box[1] + box[3] <= height!);
      }
    }
  });

  test('the timing series is on photos resized to exactly 640×480 (stretched, nothing cropped)', async () => {
    const { default: sharp } = await import('sharp');
    for (const photo of readEvalSet().slice(0, 3)) {
      const framed = await resizeToBudgetFrame(new Uint8Array(readFileSync(join(EVAL_DIR, photo.file))));
      const meta = await sharp(framed).metadata();
      assert.deepEqual([meta.format, meta.width, meta.height], ['jpeg', 640, 480], photo.file);
    }
  });

  test('accuracy --quick scores every shipped and packaged detector, per photo, and writes its page (no timing checks)', async () => {
    const out = mkdtempSync(join(tmpdir(), 'vaccel-accuracy-'));
    assert.equal(await main(['accuracy', '--quick', '--out', out]), 0);
    const result = JSON.parse(readFileSync(join(out, 'accuracy.json'), 'utf8')) as FigureResult;
    assert.equal(result.name, 'accuracy');
    const photos = readEvalSet();
    // The default detector first (CenterNet), NanoDet still shipped and measured, then the
    // candidates npm packages ship (the objectron SSD).
    const detectors = [...(await shippedDetectors()), { name: 'objectron-ssd-oidv4' }];
    assert.deepEqual(detectors.map((d) => d.name).slice(0, 1), ['centernet-coco']);
    assert.ok(detectors.some((d) => d.name === 'nanodet-coco'));
    const [summary, perPhoto] = result.tables!;
    assert.deepEqual(
      summary!.rows.map((r) => r[0]),
      detectors.map((d) => d.name),
    );
    assert.equal(
      perPhoto!.rows.length,
      photos.length * result.points.filter((p) => p.metric === 'recall').length,
    );
    for (const detector of detectors) {
      const points = result.points.filter((p) => p.series === detector.name);
      if (points.length === 0) {
        // A detector that cannot run is named in the notes, never left out silently.
        assert.ok(result.notes.some((n) => n.startsWith(`${detector.name} could not run`)));
        continue;
      }
      assert.deepEqual(points.map((p) => p.metric).sort(), [
        'mAP@0.5',
        MS_PER_FRAME,
        'ms per photo',
        'precision',
        'recall',
        'top-1 right',
      ]);
      for (const p of points.filter((p) => p.unit === '%'))
        assert.ok(p.summary.median >= 0 && p.summary.median <= 100, `${p.metric} ${p.summary.median}`);
      assert.equal(points.find((p) => p.metric === 'ms per photo')!.samples!.length, photos.length);
      assert.equal(points.find((p) => p.metric === MS_PER_FRAME)!.samples!.length, photos.length);
    }
    assert.ok(
      result.points.some((p) => p.series === 'centernet-coco'),
      'the default detector runs',
    );
    const page = readFileSync(join(out, 'accuracy.md'), 'utf8');
    assert.match(page, /### Per photo/);
    assert.ok(existsSync(join(out, 'accuracy.csv')));
  });
});

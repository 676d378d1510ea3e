import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { main } from '@vaccel/bench';
import { formatCost, markdown, renderResult } from '../src/report.js';
import { compare, compareWith, type FigureResult, type Point } from '../src/result.js';
import { bootstrapMedian, percentile, ratio, summarize } from '../src/stats.js';

suite('stats', () => {
  test('median, quartiles and p99 interpolate between samples', () => {
    const s = summarize([5, 1, 3, 2, 4]);
    assert.deepEqual([s.min, s.q1, s.median, s.q3, s.max], [1, 2, 3, 4, 5]);
    assert.equal(percentile([0, 10], 99), 9.9);
    assert.ok(Number.isNaN(summarize([]).median));
  });

  test('bootstrap intervals hold the median and narrow with more samples; pairwise ratios cancel drift', () => {
    const noisy = (n: number) => Array.from({ length: n }, (_, i) => 100 + ((i * 37) % 11) - 5);
    const [lo, hi] = bootstrapMedian(noisy(50));
    const median = summarize(noisy(50)).median;
    assert.ok(lo <= median && median <= hi);
    const [lo2, hi2] = bootstrapMedian(noisy(2000));
    assert.ok(hi2 - lo2 <= hi - lo);
    // Host and guest drift together (the machine slows down over the run): pairs keep the ratio at 1.1.
    const host = Array.from({ length: 60 }, (_, i) => 100 * (1 + i / 20));
    const guest = host.map((h) => h * 1.1);
    const r = ratio(guest, host);
    assert.ok(Math.abs(r.ratio - 1.1) < 1e-9);
    assert.ok(r.ci95[0] <= 1.1 && r.ci95[1] >= 1.1 && r.ci95[1] - r.ci95[0] < 1e-9);
  });

  test('comparisons: time overhead and throughput loss, per x and metric', () => {
    const point = (series: string, median: number, higherIsBetter: boolean): Point => ({
      series,
      x: 1,
      xLabel: 'x',
      metric: higherIsBetter ? 'rate' : 'time',
      unit: '',
      higherIsBetter,
      summary: summarize([median]),
    });
    const [time, rate] = [
      compare([point('host', 100, false), point('guest', 103, false)], 'host'),
      compare([point('host', 100, true), point('guest', 80, true)], 'host'),
    ];
    assert.equal(time[0]!.ratio, 1.03);
    assert.ok(Math.abs(time[0]!.overheadPercent - 3) < 1e-9);
    assert.equal(rate[0]!.ratio, 0.8);
    assert.ok(Math.abs(rate[0]!.overheadPercent - 25) < 1e-9);
  });
});

suite('report', () => {
  const point = (series: string, x: number, samples: number[], higherIsBetter = true): Point => ({
    series,
    x,
    xLabel: `${x}`,
    metric: 'rate',
    unit: 'MB/s',
    higherIsBetter,
    summary: summarize(samples),
    samples,
  });
  const result = (points: Point[], baselines: FigureResult['baselines']): FigureResult => ({
    name: 'page',
    title: 't',
    xTitle: 'x',
    machine: { cpu: 'c', cores: 1, memoryGiB: 1, os: 'o', node: 'v', plugins: {} } as never,
    options: { reps: 1, quick: false },
    points,
    comparisons: compareWith(points, baselines!),
    baselines,
    notes: [],
  });

  test('baselines: each path against its own baseline only; unpaired runs are ratios of medians', () => {
    const points = [
      point('floor', 1, [10, 10, 10]),
      point('path', 1, [1, 9, 2]),
      point('other', 1, [5, 5, 5]),
      point('alone', 1, [4, 1, 100]),
    ];
    const comparisons = compareWith(points, [
      { series: 'floor', paths: ['path'] },
      { series: 'other', paths: ['alone'], paired: false },
    ]);
    assert.deepEqual(
      comparisons.map((c) => [c.host, c.guest]),
      [
        ['floor', 'path'],
        ['other', 'alone'],
      ],
    );
    assert.equal(comparisons[0]!.ratio, 0.2); // pair by pair: median of 0.1, 0.9, 0.2
    assert.equal(comparisons[1]!.ratio, 4 / 5); // medians: 4 ÷ 5, not a median of positional pairs
  });

  test('a page names every baseline it divides by, one table each, and prints no percentages past 2×', () => {
    const md = markdown(
      result(
        [
          point('host (in-process)', 1, [1000]),
          point('guest', 1, [1]),
          point('in-band', 1, [2]),
          point('ivshmem', 1, [90]),
        ],
        [{ series: 'host (in-process)' }, { series: 'in-band', paths: ['ivshmem'] }],
      ),
    );
    assert.match(md, /\| guest path \| guest \/ host \(in-process\) \[95 % CI\] \| overhead \|/);
    assert.match(md, /\| path \| path \/ in-band \[95 % CI\] \| cost over it \|/);
    assert.doesNotMatch(md, /guest \/ host \[/, 'the baseline is named in full');
    assert.match(md, /\| guest \| 0\.001000 \[0\.001000, 0\.001000\] \| ×1,000 \|/);
    assert.match(md, /\| ivshmem \| 45\.00 \[45\.00, 45\.00\] \| ÷45\.0 \|/);
    assert.doesNotMatch(md, /\d{3,}\.\d%/);
    assert.equal(formatCost({ overheadPercent: 3.14 }), '+3.1%');
    assert.equal(formatCost({ overheadPercent: -40 }), '-40.0%');
    assert.equal(formatCost({ overheadPercent: 821.1 }), '×9.21');
    assert.equal(formatCost({ overheadPercent: -97.8 }), '÷45.5');
  });

  test('render: a page rewritten from its JSON, comparisons from its baselines, no measurement', () => {
    const dir = mkdtempSync(join(tmpdir(), 'vaccel-bench-render-'));
    const stale = result(
      [point('host (in-process)', 1, [10, 20]), point('guest', 1, [5, 5])],
      [{ series: 'host (in-process)' }],
    );
    // What an older run wrote: a comparison with another baseline, and NaN intervals (null in JSON).
    const written = {
      ...stale,
      comparisons: [{ ...stale.comparisons[0]!, host: 'old', ratioCi95: [null, null] }],
    };
    writeFileSync(join(dir, 'page.json'), JSON.stringify(written));
    writeFileSync(join(dir, 'page.csv'), 'kept');
    assert.deepEqual(renderResult(join(dir, 'page.json')), [join(dir, 'page.json'), join(dir, 'page.md')]);
    const rendered = JSON.parse(readFileSync(join(dir, 'page.json'), 'utf8')) as FigureResult;
    assert.deepEqual(rendered.points, JSON.parse(JSON.stringify(stale.points)));
    assert.deepEqual(rendered.comparisons, JSON.parse(JSON.stringify(stale.comparisons)));
    assert.equal(readFileSync(join(dir, 'page.md'), 'utf8'), `${markdown(rendered)}\n`);
    assert.equal(readFileSync(join(dir, 'page.csv'), 'utf8'), 'kept');
    // A result without baselines (older than them) keeps its comparisons, null intervals and all.
    const old = { ...written, baselines: undefined };
    writeFileSync(join(dir, 'page.json'), JSON.stringify(old));
    renderResult(join(dir, 'page.json'));
    assert.match(readFileSync(join(dir, 'page.md'), 'utf8'), /\| path \/ old \[95 % CI\] \|/);
  });

  test('docs/results: every page is its JSON rendered, and divides only by what it declares', () => {
    const results = fileURLToPath(new URL('../../../docs/results/', import.meta.url));
    const out = mkdtempSync(join(tmpdir(), 'vaccel-bench-pages-'));
    for (const file of readdirSync(results).filter((f) => f.endsWith('.json'))) {
      const result = JSON.parse(readFileSync(join(results, file), 'utf8')) as FigureResult;
      const md = readFileSync(join(results, `${result.name}.md`), 'utf8');
      copyFileSync(join(results, file), join(out, file));
      if (existsSync(join(results, `${result.name}.svg`))) writeFileSync(join(out, `${result.name}.svg`), '');
      renderResult(join(out, file));
      assert.equal(
        readFileSync(join(out, `${result.name}.md`), 'utf8'),
        md,
        `${file}: run vaccel-bench render`,
      );
      for (const c of result.comparisons) {
        const declared = result.baselines?.find((b) => b.series === c.host);
        assert.ok(declared, `${file}: ${c.guest} ÷ undeclared ${c.host}`);
        assert.notEqual(c.host, 'host openssl', `${file}: nothing is divided by a native loop`);
      }
    }
  });
});

suite('vaccel-bench', () => {
  test('rejects unknown figures and bad options with usage', async () => {
    assert.equal(await main(['nope']), 2);
    assert.equal(await main(['rpc', '--reps', '0']), 2);
    assert.equal(await main([]), 2);
  });

  test('rpc --quick measures every path and its floors, prints the targets, writes JSON, CSV and Markdown (smoke run, no timing checks)', async () => {
    const out = mkdtempSync(join(tmpdir(), 'vaccel-bench-out-'));
    assert.equal(await main(['rpc', '--quick', '--reps', '2', '--out', out]), 0);
    const result = JSON.parse(readFileSync(join(out, 'rpc.json'), 'utf8'));
    const series = new Set(result.points.map((p: Point) => p.series));
    for (const name of [
      'host (in-process)',
      'guest (agent, unix)',
      'guest (agent, tcp)',
      'bare ttRPC (ours, unix)',
      'Node net.Socket floor',
    ])
      assert.ok(series.has(name), name);
    // The floors are there unless their toolchain is missing, which the notes then say.
    const notes = result.notes.join('\n');
    assert.ok(series.has('C AF_UNIX floor') || /C AF_UNIX floor skipped/.test(notes));
    assert.ok(series.has('Go reference (Go client → Go server)') || /Go reference skipped/.test(notes));
    for (const p of result.points as Point[]) {
      assert.ok(p.summary.median > 0, `${p.series} ${p.xLabel}`);
      assert.ok(p.summary.ci95[0] <= p.summary.median && p.summary.median <= p.summary.ci95[1]);
    }
    assert.ok(
      result.targets.some((t: { figure: string }) => /÷ C AF_UNIX round trip/.test(t.figure)) ||
        !series.has('C AF_UNIX floor'),
    );
    assert.match(
      readFileSync(join(out, 'rpc.csv'), 'utf8'),
      /^figure,series,x,x_label,metric,unit,median,ci95_low/,
    );
    const md = readFileSync(join(out, 'rpc.md'), 'utf8');
    assert.match(md, /\| noop p50 \| noop p50 \| guest \(agent, unix\)/);
    assert.match(md, /\| target \| measured \[95 % CI\]/);
    // Wire paths are compared with their floor, never with in-process calls that move no bytes.
    for (const c of result.comparisons as { host: string }[]) assert.equal(c.host, 'C AF_UNIX floor');
    assert.ok(
      !(result.points as Point[]).some(
        (p) => p.series === 'host (in-process)' && p.metric === '4 MiB payload',
      ),
      'no in-process payload throughput',
    );
  });
});

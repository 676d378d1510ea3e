import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite, test } from 'node:test';
import { main } from '@vaccel/bench';
import { compare, type Point } from '../src/result.js';
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

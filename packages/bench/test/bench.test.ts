import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite, test } from 'node:test';
import { main } from '@vaccel/bench';
import { compare, type Point } from '../src/result.js';
import { percentile, summarize } from '../src/stats.js';

suite('stats', () => {
  test('median, quartiles and p99 interpolate between samples', () => {
    const s = summarize([5, 1, 3, 2, 4]);
    assert.deepEqual([s.min, s.q1, s.median, s.q3, s.max], [1, 2, 3, 4, 5]);
    assert.equal(percentile([0, 10], 99), 9.9);
    assert.ok(Number.isNaN(summarize([]).median));
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

  test('rpc --quick measures every path and writes JSON, CSV and Markdown (smoke run, no timing checks)', async () => {
    const out = mkdtempSync(join(tmpdir(), 'vaccel-bench-out-'));
    assert.equal(await main(['rpc', '--quick', '--reps', '1', '--out', out]), 0);
    const result = JSON.parse(readFileSync(join(out, 'rpc.json'), 'utf8'));
    const series = new Set(result.points.map((p: Point) => p.series));
    assert.deepEqual([...series].sort(), [
      'bare ttRPC (unix)',
      'guest (agent, tcp)',
      'guest (agent, unix)',
      'host (in-process)',
    ]);
    for (const p of result.points as Point[]) assert.ok(p.summary.median > 0, `${p.series} ${p.xLabel}`);
    assert.equal(result.comparisons.length, 12);
    assert.match(readFileSync(join(out, 'rpc.csv'), 'utf8'), /^figure,series,x/);
    assert.match(
      readFileSync(join(out, 'rpc.md'), 'utf8'),
      /\| noop p50 \| noop p50 \| guest \(agent, unix\)/,
    );
  });
});

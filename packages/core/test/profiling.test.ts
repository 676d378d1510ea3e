import assert from 'node:assert/strict';
import { test } from 'node:test';
import { nowNs, Profiler, profilingEnabled, summarizeProfile, Vaccel } from '@vaccel/core';

test('profiling: off by default; on, every op is a sample of vaccel_<op>_op, kept after release', async () => {
  await using off = await Vaccel.open({ plugins: ['noop'], env: {} });
  await using quiet = await off.createSession();
  await quiet.noop();
  assert.deepEqual(await quiet.profile(), []);

  await using vaccel = await Vaccel.open({
    plugins: ['noop', 'sgemm-js'],
    env: { VACCEL_PROFILING_ENABLED: '1' },
  });
  const session = await vaccel.createSession();
  const before = nowNs();
  await session.noop();
  await session.noop();
  await session.sgemm({ m: 2, n: 2, k: 2, a: new Float32Array(4), b: new Float32Array(4) });
  await assert.rejects(session.sgemm({ m: 2, n: 2, k: 2, a: new Float32Array(3), b: new Float32Array(4) }));
  const regions = await session.profile();
  assert.deepEqual(
    regions.map((r) => [r.name, r.samples.length]),
    [
      ['vaccel_noop_op', 2],
      ['vaccel_blas_sgemm_op', 1],
    ],
  );
  const after = nowNs();
  // On the profiler's own clock: every sample lies within the calls, one after the other.
  const [first, second] = regions[0]!.samples;
  const [sgemm] = regions[1]!.samples;
  for (const sample of [first!, second!, sgemm!]) {
    assert.ok(sample.time > 0n);
    assert.ok(sample.start >= before && sample.start + sample.time <= after, 'within the calls');
  }
  assert.ok(first!.start + first!.time <= second!.start && second!.start + second!.time <= sgemm!.start);
  // Samples carry Unix-epoch times (nanoseconds), not a clock's since boot: a day's slack tells them apart.
  assert.ok(Math.abs(Number(after / 1_000_000n) - Date.now()) < 86_400_000, 'epoch nanoseconds');
  await session.release();
  const kept = await vaccel.profile();
  assert.deepEqual(
    kept.map((r) => r.name),
    ['vaccel_noop_op', 'vaccel_blas_sgemm_op'],
  );
  const [summary] = summarizeProfile(kept);
  assert.equal(summary!.count, 2);
  assert.ok(summary!.meanMs > 0 && Math.abs(summary!.totalMs - 2 * summary!.meanMs) < 1e-9);
});

test('profiling: the switch takes upstream spellings; regions are bounded', () => {
  for (const on of ['1', 'true', 'TRUE', 'yes', 'on', 'enabled']) assert.ok(profilingEnabled(on), on);
  for (const off of [undefined, '', '0', 'false', 'no']) assert.ok(!profilingEnabled(off), String(off));
  const p = new Profiler();
  for (let i = 0; i < 10_005; i++) p.record('r', BigInt(i), 1n);
  const [region] = p.regions();
  assert.equal(region!.samples.length, 10_000);
  assert.equal(region!.samples[0]!.start, 5n);
});

/**
 * fig4 — SGEMM MFLOPS vs square matrix size, host vs guest, on the best plugin the host has (the
 * ONNX plugin's Gemm when installed, else sgemm-js).
 * @module
 */
import { sgemmFlops } from '@vaccel/core';
import type { FigureOptions } from '../figure.js';
import { describeMachine } from '../machine.js';
import { budgetFor, HOST, openPaths, placed, sweep, type Tick } from '../paths.js';
import { Progress } from '../progress.js';
import { type Baseline, compareWith, type FigureResult } from '../result.js';

/** Every guest path against the same op in-process (same data, interleaved: pair by pair). */
const BASELINES: Baseline[] = [{ series: HOST }];

/** Runs fig4. */
export async function fig4(options: FigureOptions): Promise<FigureResult> {
  const { reps, quick } = options;
  const sizes = quick ? [32, 64, 128, 256] : [32, 64, 128, 256, 512, 1024, 2048];
  const ticks: Tick[] = sizes.map((x) => ({ x, label: `${x}` }));
  // Room for A (used as B too) and C of every size, in the shared memory path's region.
  const shared = sizes.reduce((sum, n) => sum + 2 * 4 * n * n + 128, 0);
  await using paths = await openPaths(options, shared);
  const matrices = new Map(
    sizes.map((n) => [n, Float32Array.from({ length: n * n }, () => Math.random() * 2 - 1)] as const),
  );
  // Small sizes finish in microseconds: time several calls per measurement.
  const callsFor = (n: number) => Math.max(1, Math.round(2 ** 27 / sgemmFlops(n, n, n)));
  const progress = new Progress('fig4', ticks.length);
  let points: FigureResult['points'];
  try {
    points = await sweep(
      paths.all,
      ticks,
      budgetFor(options),
      async (path, n) => {
        const a = placed(path, `a${n}`, () => matrices.get(n)!);
        const c = placed(path, `c${n}`, () => new Float32Array(n * n));
        const calls = callsFor(n);
        const started = performance.now();
        for (let i = 0; i < calls; i++) await path.session.sgemm({ m: n, n, k: n, a, b: a, c });
        return (calls * sgemmFlops(n, n, n)) / ((performance.now() - started) * 1e3); // MFLOPS
      },
      { metric: 'sgemm', unit: 'MFLOPS', higherIsBetter: true },
      progress,
    );
  } finally {
    progress.stop();
  }
  const plugin = (await paths.host.vaccel.listOperations()).find((o) => o.name === 'blas_sgemm')?.plugin;
  return {
    name: 'fig4',
    title: 'SGEMM MFLOPS vs matrix size (host vs guest)',
    xTitle: 'N (N×N matrices)',
    machine: describeMachine(paths.versions),
    options: { reps, quick },
    points,
    comparisons: compareWith(points, BASELINES),
    baselines: BASELINES,
    notes: [
      `C = A·B on random N×N float32 matrices with the ${plugin} plugin; MFLOPS = 2N³ / time; small N time several calls per measurement`,
      'guest (agent, unix): the same sgemm through vaccel-agent over a unix socket (A and B go out, C comes back)',
      'guest (agent, shared memory): the same, with A, B and C allocated in a memfd region the agent maps (only references cross the socket; C is written in place)',
    ],
  };
}

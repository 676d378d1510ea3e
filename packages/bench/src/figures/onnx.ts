/**
 * `onnx`: the ONNX plugin against the pure-TS reference, in-process. SGEMM GFLOP/s at several N
 * for sgemm-js and ONNX Runtime with 1 and 2 threads, and classification time split into decode,
 * normalise and inference for 224² and 1024² inputs.
 * @module
 */
import { fileURLToPath } from 'node:url';
import { sgemmFlops, Vaccel } from '@vaccel/core';
import { sgemmJsPlugin } from '@vaccel/core/plugins';
import { Classifier, onnxPlugin, readModelBlobs } from '@vaccel/plugin-onnx';
import type { FigureOptions } from '../figure.js';
import { describeMachine } from '../machine.js';
import { Progress } from '../progress.js';
import { type Baseline, compareWith, type FigureResult, type Point } from '../result.js';
import { summarize } from '../stats.js';
import { testImage } from './fig7.js';

const random = (length: number) => Float32Array.from({ length }, () => Math.random() * 2 - 1);

/** Runs the onnx figure. */
export async function onnxFigure(options: FigureOptions): Promise<FigureResult> {
  const { reps, quick } = options;
  const sizes = quick ? [128, 256] : [256, 1024, 2048];
  const imageSides = quick ? [224] : [224, 1024];
  const engines = [
    { series: 'sgemm-js', plugin: () => sgemmJsPlugin() },
    { series: 'onnx, 1 thread', plugin: () => onnxPlugin({ threads: 1 }) },
    { series: 'onnx, 2 threads', plugin: () => onnxPlugin({ threads: 2 }) },
  ];
  const points: Point[] = [];
  const progress = new Progress('onnx', sizes.length * engines.length + imageSides.length);
  const versions: Record<string, string> = {};
  try {
    for (const engine of engines) {
      const vaccel = await Vaccel.open({ plugins: [engine.plugin()] });
      for (const p of vaccel.plugins()) versions[p.name] = p.version;
      const session = await vaccel.createSession();
      for (const n of sizes) {
        progress.step(`${engine.series} N=${n}`);
        const a = random(n * n);
        const b = random(n * n);
        const c = new Float32Array(n * n);
        await session.sgemm({ m: n, n, k: n, a, b, c }); // warm-up (and graph build)
        // sgemm-js at N=2048 takes seconds: fewer repetitions keep the run short.
        const runs = engine.series === 'sgemm-js' && n > 1024 ? Math.min(reps, 2) : reps;
        const gflops: number[] = [];
        for (let r = 0; r < runs; r++) {
          const started = performance.now();
          await session.sgemm({ m: n, n, k: n, a, b, c });
          gflops.push(sgemmFlops(n, n, n) / ((performance.now() - started) * 1e6));
        }
        points.push({
          series: engine.series,
          x: n,
          xLabel: `N=${n}`,
          metric: 'sgemm',
          unit: 'GFLOP/s',
          higherIsBetter: true,
          summary: summarize(gflops),
          samples: gflops,
        });
        progress.tick();
      }
      await vaccel.close();
    }
    const classifier = await Classifier.load(
      await readModelBlobs(
        fileURLToPath(new URL('../../../plugin-onnx/models/mobilenet-v2-moderation/', import.meta.url)),
      ),
      {
        executionProviders: ['cpu'],
        intraOpThreads: 2,
      },
    );
    for (const side of imageSides) {
      progress.step(`classify ${side}²`);
      const image = await testImage(side);
      await classifier.classify(image, 5);
      const parts: Record<'decode' | 'normalize' | 'inference' | 'total', number[]> = {
        decode: [],
        normalize: [],
        inference: [],
        total: [],
      };
      for (let r = 0; r < Math.max(reps, 5); r++) {
        const { timings } = await classifier.classify(image, 5);
        for (const key of Object.keys(parts) as (keyof typeof parts)[]) parts[key].push(timings[key]);
      }
      for (const [part, values] of Object.entries(parts)) {
        points.push({
          series: `classify ${part}`,
          x: side,
          xLabel: `${side}²`,
          metric: 'classify',
          unit: 'ms',
          higherIsBetter: false,
          summary: summarize(values),
          samples: values,
        });
      }
      progress.tick();
    }
    await classifier.release();
  } finally {
    progress.stop();
  }
  // ONNX Runtime against the reference SGEMM, same N; the engines run one after the other, not
  // interleaved, so the ratios are of the medians.
  const baselines: Baseline[] = [{ series: 'sgemm-js', paired: false }];
  return {
    name: 'onnx',
    title: 'ONNX plugin: SGEMM GFLOP/s vs sgemm-js; classification time split (default model)',
    xTitle: 'size',
    machine: describeMachine(versions),
    options: { reps, quick },
    points,
    comparisons: compareWith(points, baselines),
    baselines,
    notes: [
      'sgemm: square N×N·N×N, alpha 1, beta 0, in-process; ratios divide by sgemm-js (the same SGEMM in TypeScript), measured before the ONNX engines, not interleaved: ratios of the medians',
      'classify: cat.jpg re-encoded as a JPEG of the given size; decode = sharp decode + resize to 224², normalize = to float NHWC, inference = ONNX Runtime (2 threads); total includes top-k',
    ],
  };
}

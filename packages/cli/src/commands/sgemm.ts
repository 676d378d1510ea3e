import { OpType, sgemmFlops } from '@vaccel/core';
import { parse, positiveInt, printJson, println, stats, UsageError } from '../io.js';
import { openRuntime } from '../runtime.js';
import { COMMON_HELP, type Command } from './command.js';

/** Deterministic uniform values in [-1, 1) (xorshift32), so runs are reproducible by --seed. */
function random(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 31 - 1;
  };
}

/**
 * Freivalds' check in float64: compares C·x with A·(B·x) for random x, O(n²) per probe instead
 * of the O(n³) of recomputing C. Returns the worst error relative to |A|·(|B|·|x|).
 */
export function freivalds(
  m: number,
  n: number,
  k: number,
  a: Float32Array,
  b: Float32Array,
  c: Float32Array,
  probes = 3,
): number {
  const rand = random(0x5eed);
  let worst = 0;
  for (let probe = 0; probe < probes; probe++) {
    const x = Float64Array.from({ length: n }, rand);
    const bx = new Float64Array(k);
    const bxAbs = new Float64Array(k);
    for (let p = 0; p < k; p++) {
      for (let j = 0; j < n; j++) {
        bx[p]! += b[p * n + j]! * x[j]!;
        bxAbs[p]! += Math.abs(b[p * n + j]! * x[j]!);
      }
    }
    for (let i = 0; i < m; i++) {
      let cx = 0;
      let abx = 0;
      let scale = 0;
      for (let j = 0; j < n; j++) cx += c[i * n + j]! * x[j]!;
      for (let p = 0; p < k; p++) {
        abx += a[i * k + p]! * bx[p]!;
        scale += Math.abs(a[i * k + p]!) * bxAbs[p]!;
      }
      worst = Math.max(worst, Math.abs(cx - abx) / (scale || 1));
    }
  }
  return worst;
}

/** Tolerance of the check: float32 accumulation error is far below this for any size we run. */
const TOLERANCE = 1e-4;

export const sgemmCommand: Command = {
  name: 'sgemm',
  summary: 'multiply random matrices (C = A·B) and report GFLOP/s',
  help: `Usage: vaccel sgemm --n N [--m M] [--k K] [--reps R] [--check] [options]

Runs SGEMM on random row-major float32 matrices (A is M×K, B is K×N) with the best plugin
that provides it, and prints the best and median time and the GFLOP/s of the best run.

  --n N        columns of B and C (required); --m and --k default to N
  --m M        rows of A and C
  --k K        columns of A, rows of B
  --reps R     timed repetitions after one warm-up (default 3)
  --seed S     seed for the random matrices (default 1)
  --check      verify C with Freivalds' algorithm (relative error ≤ ${TOLERANCE}); exit 1 on failure

${COMMON_HELP}`,
  async run(args, io) {
    const { values } = parse(args, {
      n: { type: 'string' },
      m: { type: 'string' },
      k: { type: 'string' },
      reps: { type: 'string' },
      seed: { type: 'string' },
      check: { type: 'boolean' },
    });
    if (values.n === undefined) throw new UsageError('sgemm needs --n (try vaccel sgemm --n 512)');
    const n = positiveInt(values.n, 'n', 0);
    const m = positiveInt(values.m, 'm', n);
    const k = positiveInt(values.k, 'k', n);
    const reps = positiveInt(values.reps, 'reps', 3);
    const rand = random(positiveInt(values.seed, 'seed', 1));
    const a = Float32Array.from({ length: m * k }, rand);
    const b = Float32Array.from({ length: k * n }, rand);
    await using vaccel = await openRuntime(io, values);
    await using session = await vaccel.createSession();
    const plugin = (await vaccel.listOperations()).find((op) => op.op === OpType.BlasSgemm)?.plugin ?? 'none';
    let c = await session.sgemm({ m, n, k, a, b }); // warm-up (and the result we check)
    const samples: number[] = [];
    for (let r = 0; r < reps; r++) {
      const started = performance.now();
      c = await session.sgemm({ m, n, k, a, b });
      samples.push(performance.now() - started);
    }
    const { median, min } = stats(samples);
    const gflops = sgemmFlops(m, n, k) / (min * 1e6);
    const error = values.check ? freivalds(m, n, k, a, b, c) : undefined;
    const ok = error === undefined || error <= TOLERANCE;
    if (values.json) {
      printJson(io, {
        op: 'sgemm',
        plugin,
        m,
        n,
        k,
        reps,
        bestMs: min,
        medianMs: median,
        gflops,
        check: error === undefined ? undefined : { ok, relativeError: error },
      });
    } else {
      println(
        io,
        `sgemm ${m}×${k} · ${k}×${n} via ${plugin}: best ${min.toFixed(2)} ms, median ${median.toFixed(2)} ms over ${reps} runs → ${gflops.toFixed(2)} GFLOP/s`,
      );
      if (error !== undefined)
        println(
          io,
          `check: ${ok ? 'ok' : 'FAILED'} (Freivalds, 3 probes, max relative error ${error.toExponential(2)}, tolerance ${TOLERANCE})`,
        );
    }
    return ok ? 0 : 1;
  },
};

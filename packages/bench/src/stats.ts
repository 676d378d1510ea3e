/**
 * Summaries of repeated measurements: medians with 95 % bootstrap intervals, never means of
 * noisy samples; ratios of two paths taken pair by pair (sample i of one against sample i of the
 * other, measured back to back), so drift of the machine cancels.
 * @module
 */

/** Median, quartiles, extremes, a tail percentile and the median's 95 % bootstrap interval. */
export interface Summary {
  n: number;
  median: number;
  q1: number;
  q3: number;
  p99: number;
  min: number;
  max: number;
  /** 95 % bootstrap confidence interval of the median, [low, high]. */
  ci95: [number, number];
}

/** The `p`-th percentile (0–100) of ascending `sorted`, linearly interpolated. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const at = (p / 100) * (sorted.length - 1);
  const lo = Math.floor(at);
  const hi = Math.min(lo + 1, sorted.length - 1);
  return (sorted[lo] as number) + ((sorted[hi] as number) - (sorted[lo] as number)) * (at - lo);
}

/** A small seeded PRNG (mulberry32), so intervals are the same for the same samples. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const RESAMPLES = 1000;

/** 95 % percentile-bootstrap interval of the median of `samples`. */
export const bootstrapMedian = (samples: ArrayLike<number>, resamples = RESAMPLES): [number, number] =>
  bootstrapPercentile(samples, 50, resamples);

/** 95 % percentile-bootstrap interval of the `p`-th percentile (0–100) of `samples`. */
export function bootstrapPercentile(
  samples: ArrayLike<number>,
  p: number,
  resamples = RESAMPLES,
): [number, number] {
  const n = samples.length;
  if (n === 0) return [Number.NaN, Number.NaN];
  if (n === 1) return [samples[0] as number, samples[0] as number];
  const next = random(n * 2654435761);
  const medians = new Float64Array(resamples);
  const draw = new Float64Array(n);
  for (let r = 0; r < resamples; r++) {
    for (let i = 0; i < n; i++) draw[i] = samples[Math.floor(next() * n)] as number;
    draw.sort();
    medians[r] = percentile(draw, p);
  }
  medians.sort();
  return [percentile(medians, 2.5), percentile(medians, 97.5)];
}

/** Summarises samples (any order). */
export function summarize(samples: ArrayLike<number>): Summary {
  const sorted = Float64Array.from(samples).sort();
  return {
    n: sorted.length,
    median: percentile(sorted, 50),
    q1: percentile(sorted, 25),
    q3: percentile(sorted, 75),
    p99: percentile(sorted, 99),
    min: sorted[0] ?? Number.NaN,
    max: sorted[sorted.length - 1] ?? Number.NaN,
    ci95: bootstrapMedian(sorted),
  };
}

/**
 * The ratio a / b with its 95 % interval: pair by pair when both have the same number of
 * samples (measured interleaved) and `paired` is not false, else the ratio of the medians with an interval from
 * resampling each side.
 */
export function ratio(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  paired = true,
): { ratio: number; ci95: [number, number] } {
  if (paired && a.length === b.length && a.length > 0) {
    const pairs = Array.from({ length: a.length }, (_, i) => (a[i] as number) / (b[i] as number));
    const s = summarize(pairs);
    return { ratio: s.median, ci95: s.ci95 };
  }
  const [sa, sb] = [summarize(a), summarize(b)];
  return { ratio: sa.median / sb.median, ci95: [sa.ci95[0] / sb.ci95[1], sa.ci95[1] / sb.ci95[0]] };
}

/** Relative spread of a summary: (q3 − q1) / median, as a percentage. */
export const spreadPercent = (s: Summary): number => (100 * (s.q3 - s.q1)) / s.median;

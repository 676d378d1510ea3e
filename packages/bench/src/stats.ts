/**
 * Summaries of repeated measurements: medians and spreads, never means of noisy samples.
 * @module
 */

/** Median, quartiles, extremes and a tail percentile of a set of samples. */
export interface Summary {
  n: number;
  median: number;
  q1: number;
  q3: number;
  p99: number;
  min: number;
  max: number;
}

/** The `p`-th percentile (0–100) of ascending `sorted`, linearly interpolated. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const at = (p / 100) * (sorted.length - 1);
  const lo = Math.floor(at);
  const hi = Math.min(lo + 1, sorted.length - 1);
  return (sorted[lo] as number) + ((sorted[hi] as number) - (sorted[lo] as number)) * (at - lo);
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
  };
}

/** Relative spread of a summary: (q3 − q1) / median, as a percentage. */
export const spreadPercent = (s: Summary): number => (100 * (s.q3 - s.q1)) / s.median;

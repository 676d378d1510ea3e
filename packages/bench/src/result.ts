/**
 * The shape every figure produces: labelled points per series, with their summaries, and the
 * guest-vs-host comparisons measured in the same run.
 * @module
 */
import type { MachineInfo } from './machine.js';
import { ratio, type Summary } from './stats.js';

/** One measured point of one series. */
export interface Point {
  /** The path measured, e.g. `host (in-process)` or `guest (agent, unix)`. */
  series: string;
  /** Position on the x axis (chunk bytes, matrix size, image side …). */
  x: number;
  /** How x is shown (e.g. `64 KiB`, `N=512`). */
  xLabel: string;
  /** What was measured (a figure may carry several, e.g. latency and throughput). */
  metric: string;
  unit: string;
  /** True when bigger is better (throughput), false when smaller is (time). */
  higherIsBetter: boolean;
  summary: Summary;
  /** The samples, in the order measured (interleaved with the other paths'). */
  samples?: number[];
}

/** A guest path against the host path at one x. */
export interface Comparison {
  xLabel: string;
  metric: string;
  host: string;
  guest: string;
  /** guest / host: the median of the pairwise ratios (or of the medians). */
  ratio: number;
  /** 95 % bootstrap interval of `ratio`. */
  ratioCi95: [number, number];
  /** The guest's cost in %: time added, or throughput lost. */
  overheadPercent: number;
}

/** A target of an issue, measured: our figure (often a ratio to a floor) against its bar and goal. */
export interface Target {
  figure: string;
  value: number;
  /** 95 % interval of `value` (NaN when it has none, e.g. a single load run). */
  ci95: [number, number];
  /** The figure to reach (≤ for lower-is-better). */
  bar: number;
  goal: number;
  lowerIsBetter: boolean;
  met: boolean;
}

/**
 * What a figure's ratios divide by, declared with the figure and kept in its result, so a page can
 * be re-rendered from its JSON (`vaccel-bench render`). A baseline must do the work the paths
 * compared with it do (the same op on the same data, or the floor of the same transfer): never an
 * in-process call that moves no bytes, or a loop with none of the per-call cost the paths pay.
 */
export interface Baseline {
  /** The series every ratio of this group divides by. */
  series: string;
  /** The series compared with it (default: every other series measured at the same x and metric). */
  paths?: string[];
  /**
   * false when the two were not measured interleaved (other processes, other times): the ratio is
   * then of the medians, its interval from each side's, never of samples paired by position.
   */
  paired?: boolean;
}

/** A table of text a figure adds to its page and console report (e.g. per-photo results). */
export interface Table {
  title: string;
  columns: string[];
  /** Per column, `l` or `r` (default `l`). */
  align?: ('l' | 'r')[];
  rows: string[][];
}

/** A figure's full result. */
export interface FigureResult {
  name: string;
  title: string;
  xTitle: string;
  machine: MachineInfo;
  options: { reps: number; quick: boolean };
  points: Point[];
  comparisons: Comparison[];
  /** What `comparisons` divide by (see {@link compareWith}); absent in results older than it. */
  baselines?: Baseline[];
  /** Targets measured by this figure, if it has any. */
  targets?: Target[];
  /** Tables beyond the points, if the figure has any (shown after them). */
  tables?: Table[];
  notes: string[];
}

/**
 * Compares every non-host series with `host` at each (x, metric) where both exist; pair by pair
 * where both have samples and `paired` is not false.
 */
export function compare(points: readonly Point[], host: string, paired = true): Comparison[] {
  const comparisons: Comparison[] = [];
  for (const guest of points) {
    if (guest.series === host) continue;
    const base = points.find((p) => p.series === host && p.x === guest.x && p.metric === guest.metric);
    if (!base) continue;
    const { ratio: r, ci95 } =
      guest.samples && base.samples
        ? ratio(guest.samples, base.samples, paired)
        : {
            ratio: guest.summary.median / base.summary.median,
            ci95: [Number.NaN, Number.NaN] as [number, number],
          };
    comparisons.push({
      xLabel: guest.xLabel,
      metric: guest.metric,
      host,
      guest: guest.series,
      ratio: r,
      ratioCi95: ci95,
      overheadPercent: guest.higherIsBetter ? 100 * (1 / r - 1) : 100 * (r - 1),
    });
  }
  return comparisons;
}

/** The comparisons a figure's {@link Baseline}s declare, baseline by baseline. */
export function compareWith(points: readonly Point[], baselines: readonly Baseline[]): Comparison[] {
  return baselines.flatMap(({ series, paths, paired }) =>
    compare(
      points.filter((p) => p.series === series || !paths || paths.includes(p.series)),
      series,
      paired,
    ),
  );
}

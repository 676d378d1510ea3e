/**
 * Options every figure takes.
 * @module
 */

/** Options of a figure run. */
export interface FigureOptions {
  /** Measured repetitions per point (after a warm-up). */
  reps: number;
  /** Fewer, smaller points: a smoke run in well under a minute. */
  quick: boolean;
  /** Extra agent address to measure as a guest path (e.g. a virtio-serial or vsock one). */
  address?: string;
  /** Start a local vaccel-agent for the guest path (default true). */
  startAgent?: boolean;
}

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
  /**
   * The address for the shared memory path to `address`'s agent (default `address`; a
   * virtio-serial port opens once, so a VM guest gives a second port).
   */
  sharedAddress?: string;
  /** Start a local vaccel-agent for the guest path (default true). */
  startAgent?: boolean;
  /**
   * Measure the in-process path (default true; a TCG guest's in-process SGEMM is JavaScript under
   * emulation, so `vaccel-vm bench` measures the host's in-process path on the host instead).
   */
  host?: boolean;
}

/**
 * Profiling regions, as upstream vAccel keeps them (`VACCEL_PROFILING_ENABLED`): per session, named
 * regions each holding one sample (start, duration, in ns) per time an op ran. The agent serves
 * them over GetProfiler (0.8) and GetTimers (0.7.1).
 * @module
 */

/** One timed run: when it started (ns since the Unix epoch) and how long it took (ns). */
export interface ProfileSample {
  start: bigint;
  time: bigint;
}

/** A named region and its samples, oldest first. */
export interface ProfileRegion {
  name: string;
  samples: ProfileSample[];
}

/** Samples kept per region: older ones are dropped first (a long-lived session must not grow without bound). */
export const MAX_SAMPLES_PER_REGION = 10_000;

// hrtime is monotonic; anchor it to the wall clock once so samples carry epoch timestamps.
const epochOffset = BigInt(Date.now()) * 1_000_000n - process.hrtime.bigint();

/** Now, in ns since the Unix epoch, on a monotonic clock. */
export const nowNs = (): bigint => process.hrtime.bigint() + epochOffset;

/** Collects regions. */
export class Profiler {
  readonly #regions = new Map<string, ProfileSample[]>();

  /** Adds a sample to `name`. */
  record(name: string, start: bigint, time: bigint): void {
    let samples = this.#regions.get(name);
    if (!samples) {
      samples = [];
      this.#regions.set(name, samples);
    }
    if (samples.length >= MAX_SAMPLES_PER_REGION) samples.shift();
    samples.push({ start, time });
  }

  /** A copy of the regions, by name. */
  regions(): ProfileRegion[] {
    return [...this.#regions].map(([name, samples]) => ({ name, samples: [...samples] }));
  }
}

/** Per region: how many samples, their total and mean in ms. */
export function summarizeProfile(
  regions: readonly ProfileRegion[],
): { name: string; count: number; totalMs: number; meanMs: number }[] {
  return regions.map(({ name, samples }) => {
    const total = samples.reduce((sum, s) => sum + Number(s.time), 0) / 1e6;
    return {
      name,
      count: samples.length,
      totalMs: total,
      meanMs: samples.length ? total / samples.length : 0,
    };
  });
}

/** True for the values upstream's config accepts as "on". */
export const profilingEnabled = (value: string | undefined): boolean =>
  value !== undefined && /^(1|true|yes|on|enabled)$/i.test(value.trim());

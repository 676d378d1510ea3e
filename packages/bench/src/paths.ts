/**
 * The paths every figure compares: "host" runs the op in-process on the host's plugins; "guest"
 * sends the same op through a `vaccel-agent` process over a unix socket with its data in-band
 * (and over any other address given with --address); "guest (staged)" lets the RPC plugin copy
 * plain arrays of 64 KiB and more through its staging region (its default where the agent can
 * map one); "guest (shared memory)" has its arrays allocated in a region the agent maps, so only
 * references cross the socket.
 * @module
 */
import { fileURLToPath } from 'node:url';
import { type Plugin, type Session, type SharedMemory, Vaccel } from '@vaccel/core';
import { remotePlugin } from '@vaccel/remote';
import { startAgent } from './agent-process.js';
import type { FigureOptions } from './figure.js';
import type { Progress } from './progress.js';
import type { Point } from './result.js';
import { summarize } from './stats.js';

export const HOST = 'host (in-process)';
/** The photo the classification figures resize. */
export const CAT = fileURLToPath(new URL('../../../examples/images/cat.jpg', import.meta.url));
export const GUEST = 'guest (agent, unix)';
export const GUEST_SHARED = 'guest (agent, shared memory)';
export const GUEST_STAGED = 'guest (agent, staged)';

/** One way to run ops. */
export interface BenchPath {
  series: string;
  vaccel: Vaccel;
  session: Session;
  /** Where this path keeps its arrays (see {@link placed}): a region the agent maps. */
  region?: SharedMemory;
}

const placements = new WeakMap<BenchPath, Map<string, ArrayBufferView>>();

/**
 * The array a path uses for `key`, made once: inside the path's shared region when it has one
 * (the guest allocates its tensors there, as a user of shared memory would), else `make()`.
 */
export function placed<T extends Float32Array | Uint8Array>(path: BenchPath, key: string, make: () => T): T {
  let arrays = placements.get(path);
  if (!arrays) {
    arrays = new Map();
    placements.set(path, arrays);
  }
  let array = arrays.get(key) as T | undefined;
  if (!array) {
    const fresh = make();
    array = path.region ? path.region.copyOf(fresh) : fresh;
    arrays.set(key, array);
  }
  return array;
}

/** The host path and the guest path(s), open. */
export interface Paths extends AsyncDisposable {
  all: BenchPath[];
  host: BenchPath;
  /** Plugin name → version on the host path. */
  versions: Record<string, string>;
}

async function open(series: string, plugins: Parameters<typeof Vaccel.open>[0]): Promise<BenchPath> {
  const vaccel = await Vaccel.open(plugins);
  return { series, vaccel, session: await vaccel.createSession() };
}

/** The host's plugins: builtins + ONNX where installed (a VM guest has only the builtins). */
async function localPlugins(): Promise<(Plugin | string)[]> {
  try {
    return (await import('@vaccel/plugin-onnx')).hostPlugins();
  } catch (error) {
    if ((error as NodeJS.ErrnoException)?.code !== 'ERR_MODULE_NOT_FOUND') throw error;
    return ['noop', 'crypto', 'sgemm-js', 'exec'];
  }
}

/**
 * Starts an agent (unless told not to) and opens every path; `sharedBytes` > 0 adds the staged
 * and shared memory paths, the latter with a region that large (left out, with a note on stderr,
 * where the agent cannot map it: no addon, or not a unix socket).
 */
export async function openPaths(options: FigureOptions, sharedBytes = 0): Promise<Paths> {
  const agent = options.startAgent === false ? undefined : await startAgent();
  const host = await open(HOST, { plugins: await localPlugins() });
  const all = [host];
  if (agent)
    all.push(await open(GUEST, { plugins: [remotePlugin({ address: agent.address, stagingBytes: 0 })] }));
  if (agent && sharedBytes > 0)
    all.push(await open(GUEST_STAGED, { plugins: [remotePlugin({ address: agent.address })] }));
  if (agent && sharedBytes > 0) {
    const shared = await open(GUEST_SHARED, { plugins: [remotePlugin({ address: agent.address })] });
    shared.region = await shared.vaccel.sharedMemory(sharedBytes);
    if (shared.region.via !== 'process') all.push(shared);
    else {
      process.stderr.write(`no shared memory path: the region is ${shared.region.via} memory only\n`);
      await shared.vaccel.close();
    }
  }
  if (options.address) {
    const address = options.address;
    all.push(await open(`guest (${address})`, { plugins: [remotePlugin({ address, stagingBytes: 0 })] }));
    if (sharedBytes > 0) {
      // Where the agent (or the VM's device) can share memory: the same with the guest's arrays in it.
      const shared = await open(`guest (${address}, shared memory)`, {
        plugins: [remotePlugin({ address: options.sharedAddress ?? address })],
      });
      shared.region = await shared.vaccel.sharedMemory(sharedBytes);
      if (shared.region.via !== 'process') all.push(shared);
      else await shared.vaccel.close();
    }
  }
  if (options.host === false) all.splice(all.indexOf(host), 1);
  const versions = Object.fromEntries(host.vaccel.plugins().map((p) => [p.name, p.version]));
  return {
    all,
    host,
    versions,
    async [Symbol.asyncDispose]() {
      await Promise.all([...new Set([host, ...all])].map((p) => p.vaccel.close()));
      await agent?.stop();
    },
  };
}

/** What one measurement returns: the value, in the figure's unit. */
export type Measure = (path: BenchPath, x: number) => Promise<number>;

/** An x value and how to show it. */
export interface Tick {
  x: number;
  label: string;
}

/** How many samples a point takes: at least `minSamples`, and for at least `minSeconds`. */
export interface Budget {
  minSamples: number;
  minSeconds: number;
  /** Stop adding rounds after this long, once `minSamples` are in (default 60 s). */
  maxSeconds?: number;
  /**
   * Samples of one path per round, taken back to back after one untimed call (default 5). A
   * process that sat idle while the other path ran answers its first call slower (its caches
   * and the CPU's clocks are cold: measured here, the first hundred noops after 200 ms idle
   * take 1.5× the steady time); rounds of several samples measure the steady cost, and still
   * alternate often enough that drift hits both paths alike.
   */
  block?: number;
}

/** The default budget: enough to resolve 1 % (≥ 50 samples and ≥ 1 s), or a smoke run's. */
export const budgetFor = (options: { quick: boolean; reps: number }): Budget =>
  options.quick
    ? { minSamples: Math.max(options.reps, 5), minSeconds: 0.1, maxSeconds: 5, block: 5 }
    : { minSamples: Math.max(options.reps, 50), minSeconds: 1, maxSeconds: 60, block: 5 };

/**
 * Measures every path at every x: a warm-up, then rounds that take `block` samples of each path in
 * turn (so drift of the machine hits both alike and samples pair up), until the budget is met.
 */
export async function sweep(
  paths: readonly BenchPath[],
  ticks: readonly Tick[],
  budget: Budget,
  measure: Measure,
  point: Omit<Point, 'series' | 'x' | 'xLabel' | 'summary'>,
  progress: Progress,
): Promise<Point[]> {
  const points: Point[] = [];
  for (const { x, label } of ticks) {
    progress.step(label);
    for (const path of paths) await measure(path, x);
    const values = paths.map(() => [] as number[]);
    const started = performance.now();
    const elapsed = () => (performance.now() - started) / 1000;
    while (
      values[0]!.length < budget.minSamples ||
      (elapsed() < budget.minSeconds && elapsed() < (budget.maxSeconds ?? 60))
    ) {
      for (const [i, path] of paths.entries()) {
        await measure(path, x); // untimed: wakes the path up after the others ran
        for (let b = 0; b < (budget.block ?? 5); b++) values[i]!.push(await measure(path, x));
      }
    }
    for (const [i, path] of paths.entries()) {
      points.push({
        ...point,
        series: path.series,
        x,
        xLabel: label,
        summary: summarize(values[i]!),
        samples: values[i]!,
      });
    }
    progress.tick();
  }
  return points;
}

/** 64, 256 … as `64 B`, `1 KiB`, `4 MiB`. */
export function formatBytes(n: number): string {
  if (n >= 1 << 20) return `${n / (1 << 20)} MiB`;
  if (n >= 1 << 10) return `${n / (1 << 10)} KiB`;
  return `${n} B`;
}

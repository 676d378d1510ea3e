/**
 * `rpc`: the cost of the remote path itself, against its floors, in one run. noop round-trip
 * latency, pipelined calls/s on one connection and 4 MiB payload throughput for: in-process; our
 * agent over unix and TCP; bare ttRPC (our client and server, no vAccel); our client against
 * containerd/ttrpc's Go server; the Go client against the Go server; two C processes over
 * AF_UNIX. Then a Go client's load (16 connections × 8 in flight of small SGEMM genops) on our
 * agent and on a Go reference agent, with our agent's RSS watched. Samples interleave the paths
 * round by round; medians carry 95 % bootstrap intervals, ratios are taken pair by pair. The paths
 * are set up in rpc-paths.ts, the targets computed in rpc-targets.ts.
 * @module
 */

import { freePort, startAgent } from '../agent-process.js';
import type { FigureOptions } from '../figure.js';
import { goLoad, rssOf } from '../floors.js';
import { describeMachine } from '../machine.js';
import { HOST } from '../paths.js';
import { Progress } from '../progress.js';
import { compareWith, type FigureResult, type Point } from '../result.js';
import { summarize } from '../stats.js';
import { GO_PAYLOAD_BYTES, median, SHARED_SERIES, startRpcPaths, WINDOW } from './rpc-paths.js';
import { type RpcLoad, rpcTargets } from './rpc-targets.js';

/** The floor every wire path is compared with. */
const C_FLOOR = 'C AF_UNIX floor';

/** Every wire path (not the in-process one) against the C floor. */
const baselines = (points: readonly Point[]) => [
  {
    series: C_FLOOR,
    paths: [...new Set(points.map((p) => p.series))].filter((s) => s !== HOST && s !== C_FLOOR),
  },
];

/** Runs the rpc figure. */
export async function rpcFigure(options: FigureOptions): Promise<FigureResult> {
  const { quick } = options;
  const rounds = quick ? Math.max(options.reps, 5) : Math.max(options.reps, 50);
  const block = quick ? 200 : 1000;
  const window = quick ? 1000 : 10_000;
  const load = quick ? { warm: 1, measure: 3 } : { warm: 5, measure: 60 };
  const port = await freePort();
  await using agent = await startAgent({ extraAddresses: [`tcp://127.0.0.1:${port}`] });
  const paths = await startRpcPaths(agent, block, window);
  const { series, goBinary, goServer } = paths;
  const metrics = [
    { key: 'latency', x: 1, label: 'noop p50', unit: 'µs', higherIsBetter: false },
    {
      key: 'pipelined',
      x: 2,
      label: `pipelined (${WINDOW} in flight)`,
      unit: 'calls/s',
      higherIsBetter: true,
    },
    { key: 'payload', x: 3, label: '4 MiB payload', unit: 'GB/s', higherIsBetter: true },
  ] as const;
  const points: Point[] = [];
  const samples = new Map<string, number[]>();
  const progress = new Progress('rpc', metrics.length * rounds + 2);
  let loadResult: RpcLoad = {};
  try {
    // Warm-up: connections, sessions, and the JIT of both processes (a cold agent is several
    // times slower for its first ten thousand calls).
    progress.step('warm-up');
    for (const s of series) {
      const until = performance.now() + (quick ? 300 : 1500);
      while (s.pipelined && performance.now() < until) await s.pipelined();
      for (let i = 0; i < 3; i++) {
        await s.latency?.();
        await s.payload?.();
      }
    }
    for (const metric of metrics) {
      const taking = series.filter((s) => s[metric.key]);
      const values = taking.map(() => [] as number[]);
      for (let r = 0; r < rounds; r++) {
        progress.step(`${metric.label} round ${r + 1}/${rounds}`);
        for (const [i, s] of taking.entries()) values[i]!.push(await s[metric.key]!());
        progress.tick();
      }
      for (const [i, s] of taking.entries()) {
        samples.set(`${s.name}|${metric.key}`, values[i]!);
        // Through shared memory the payload is not moved, only referred to: another measurement,
        // which no floor that moves the bytes is compared with.
        const label =
          s.name === SHARED_SERIES && metric.key === 'payload'
            ? `${metric.label}, by reference`
            : metric.label;
        points.push({
          series: s.name,
          x: metric.x,
          xLabel: label,
          metric: label,
          unit: metric.unit,
          higherIsBetter: metric.higherIsBetter,
          summary: summarize(values[i]!),
          samples: values[i]!,
        });
      }
    }
    if (goBinary) {
      progress.step(`Go client load on our agent (${load.warm} + ${load.measure} s)`);
      const socket = agent.address.replace('unix://', '');
      await goLoad(goBinary, socket, 16, 8, load.warm);
      // RSS at 1 Hz: the GC's sawtooth makes single readings useless, so growth compares the
      // median of the first quarter of the run with the median of the last quarter.
      const rss: number[] = [rssOf(agent.process.pid!)];
      const measured = goLoad(goBinary, socket, 16, 8, load.measure);
      const watch = setInterval(() => rss.push(rssOf(agent.process.pid!)), 1000);
      const ours = await measured.finally(() => clearInterval(watch));
      rss.push(rssOf(agent.process.pid!));
      const quarter = Math.max(1, Math.floor(rss.length / 4));
      const rssStart = median(rss.slice(0, quarter));
      const rssEnd = median(rss.slice(-quarter));
      progress.tick();
      progress.step(`Go client load on the Go reference agent (${load.measure} s)`);
      const go = await goLoad(goBinary, goServer!.path, 16, 8, load.measure);
      progress.tick();
      loadResult = { ours: ours.rate, go: go.rate, rssStart, rssEnd, errors: ours.errors + go.errors };
    }
  } finally {
    progress.stop();
    await paths.close();
  }
  const targets = rpcTargets(samples, loadResult);
  return {
    name: 'rpc',
    title: 'RPC path: noop latency, pipelined calls/s, 4 MiB payload throughput, against C and Go floors',
    xTitle: 'measurement',
    machine: describeMachine(paths.versions),
    options: { reps: rounds, quick },
    points,
    // The wire paths against their floor (C over AF_UNIX), not against in-process calls: a noop in
    // process moves no bytes, so "guest / host" would be thousands of percent of nothing.
    comparisons: compareWith(points, baselines(points)),
    baselines: baselines(points),
    targets,
    notes: [
      `${rounds} rounds, each taking one sample of every path in turn: latency = the median of ${block} sequential noop calls; pipelined = calls/s over ${window} noop calls with ${WINDOW} in flight on one connection; payload = the median of 10 calls carrying a 4 MiB read arg, after 5 untimed ones (GB/s = 1e9 bytes/s, request direction; the Go server's limit is 4 MiB per frame, so its payload is ${GO_PAYLOAD_BYTES} bytes)`,
      'guest (agent, shared memory): the same agent, the payload allocated in a memfd region it maps (only a reference crosses; GB/s = payload bytes the op sees per second); the unix and tcp paths send everything in-band (no staging)',
      'the agent runs in its own process (vaccel-agent, builtin plugins); "bare ttRPC" is our echo server process, no vAccel on top; the C floor is two C processes over a socketpair (64-byte round trips; 4 MiB one way plus a 1-byte ack); the Node floor is a bare net.Socket echo process (64 bytes, no framing)',
      `load: the Go client (containerd/ttrpc), 16 connections × 8 calls in flight of 8×8 SGEMM genops with a 30 s deadline each, ${load.warm} s warm-up then ${load.measure} s on our agent (RSS sampled), then ${load.measure} s on the Go reference agent (go-peer serve)`,
      ...paths.notes,
    ],
  };
}

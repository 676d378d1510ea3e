/**
 * The `rpc` figure's targets (the issue's): our paths as ratios to the floors, with 95 %
 * intervals, and the Go client's load on our agent against the Go reference agent.
 * @module
 */
import type { Target } from '../result.js';
import { ratio, summarize } from '../stats.js';

/** The Go client's load on both agents (calls/s), and our agent's RSS at its start and end (bytes). */
export interface RpcLoad {
  ours?: number;
  go?: number;
  rssStart?: number;
  rssEnd?: number;
  errors?: number;
}

/**
 * The targets: our figures as ratios to the floors, with 95 % intervals. `samples` are
 * keyed `series|metric`.
 */
export function rpcTargets(samples: Map<string, number[]>, load: RpcLoad): Target[] {
  const get = (name: string, key: string) => samples.get(`${name}|${key}`);
  const targets: Target[] = [];
  const add = (
    figure: string,
    a: number[] | undefined,
    b: number[] | undefined,
    bar: number,
    goal: number,
    lowerIsBetter: boolean,
  ) => {
    if (!a || !b) return;
    const r = ratio(a, b);
    targets.push({
      figure,
      value: r.ratio,
      ci95: r.ci95,
      bar,
      goal,
      lowerIsBetter,
      met: lowerIsBetter ? r.ratio <= bar : r.ratio >= bar,
    });
  };
  const agent = 'guest (agent, unix)';
  add(
    'noop p50 through the agent ÷ C AF_UNIX round trip',
    get(agent, 'latency'),
    get('C AF_UNIX floor', 'latency'),
    1.6,
    1.3,
    true,
  );
  add(
    '(for scale) bare Node socket round trip ÷ C AF_UNIX round trip',
    get('Node net.Socket floor', 'latency'),
    get('C AF_UNIX floor', 'latency'),
    1.6,
    1.3,
    true,
  );
  add(
    'noop p50 through the agent ÷ Go reference round trip',
    get(agent, 'latency'),
    get('Go reference (Go client → Go server)', 'latency'),
    1.6,
    1.3,
    true,
  );
  const pipelined = get(agent, 'pipelined');
  if (pipelined) {
    const s = summarize(pipelined);
    targets.push({
      figure: 'pipelined noop calls/s through the agent, one connection',
      value: s.median,
      ci95: s.ci95,
      bar: 100_000,
      goal: 200_000,
      lowerIsBetter: false,
      met: s.median >= 100_000,
    });
  }
  add(
    '4 MiB payload through the agent ÷ C AF_UNIX bulk',
    get(agent, 'payload'),
    get('C AF_UNIX floor', 'payload'),
    0.5,
    0.7,
    false,
  );
  add(
    'bare ttRPC 4 MiB ÷ C AF_UNIX bulk',
    get('bare ttRPC (ours, unix)', 'payload'),
    get('C AF_UNIX floor', 'payload'),
    0.5,
    0.7,
    false,
  );
  if (load.ours !== undefined && load.go !== undefined) {
    const value = load.ours / load.go;
    targets.push({
      figure: `Go client load (16 × 8, small genops): ours ${Math.round(load.ours)} ÷ Go agent ${Math.round(load.go)} calls/s`,
      value,
      ci95: [Number.NaN, Number.NaN],
      bar: 0.6,
      goal: 1,
      lowerIsBetter: false,
      met: value >= 0.6,
    });
    const growth = (100 * (load.rssEnd! - load.rssStart!)) / load.rssStart!;
    targets.push({
      figure: `agent RSS growth under that load, median of the first vs the last quarter (${(load.rssStart! / 2 ** 20).toFixed(0)} → ${(load.rssEnd! / 2 ** 20).toFixed(0)} MiB), %`,
      value: growth,
      ci95: [Number.NaN, Number.NaN],
      bar: 10,
      goal: 0,
      lowerIsBetter: true,
      met: growth <= 10,
    });
  }
  return targets;
}

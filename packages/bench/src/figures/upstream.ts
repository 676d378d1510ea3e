/**
 * upstream — a small call (a 2×2 SGEMM genop) over TCP between us and a peer that writes like
 * upstream vAccel's (each frame's header and body in two writes, Nagle on), with TCP_QUICKACK
 * re-armed after each read on our side (the default) and without it (`VACCEL_RPC_QUICKACK=0`).
 * Without it, the body waits for our delayed ACK of the header (~40 ms on Linux).
 *
 * - our RPC plugin → the Go peer's `upstream` agent, with and without quick-ack, and → our own
 *   agent: the three paths taking turns, in blocks of calls;
 * - the Go peer's `upstream-client` → our agent, with and without quick-ack (one run each).
 * @module
 */

import { buildGoPeer, runGoPeer, startGoUpstream } from '@vaccel/conformance';
import { type Session, Vaccel } from '@vaccel/core';
import { remotePlugin } from '@vaccel/remote';
import { freePort, startAgent } from '../agent-process.js';
import type { FigureOptions } from '../figure.js';
import { describeMachine } from '../machine.js';
import { Progress } from '../progress.js';
import { type Baseline, compareWith, type FigureResult, type Point, type Target } from '../result.js';
import { summarize } from '../stats.js';

const QUICK = 'upstream-like agent, quick-ack';
const PLAIN = 'upstream-like agent, VACCEL_RPC_QUICKACK=0';
const OURS = 'our agent (tcp)';
const AGENT_QUICK = 'upstream-like client → our agent, quick-ack';
const AGENT_PLAIN = 'upstream-like client → our agent, VACCEL_RPC_QUICKACK=0';
/** What a small call to an upstream agent may take, in ms (issue 23; it took 44 ms). */
const BAR_MS = 2;
/**
 * Our client's calls to the upstream-like agent against the same calls to our agent (taking turns:
 * pair by pair); the Go client's without quick-ack against its own with it (two runs: medians).
 */
const BASELINES: Baseline[] = [
  { series: OURS, paths: [QUICK, PLAIN] },
  { series: AGENT_QUICK, paths: [AGENT_PLAIN], paired: false },
];
/** Calls a path makes before the next path's turn. */
const BLOCK = 10;

/** Runs the upstream figure. */
export async function upstreamFigure(options: FigureOptions): Promise<FigureResult> {
  const { reps, quick } = options;
  const build = await buildGoPeer();
  if (!build.binary)
    return {
      name: 'upstream',
      title: 'Small calls to an agent that writes like upstream vAccel (not measured)',
      xTitle: '',
      machine: describeMachine({}),
      options: { reps, quick },
      points: [],
      comparisons: [],
      notes: [
        `not measured: the upstream-like agent is the Go peer, which cannot be built here (${build.skip})`,
      ],
    };
  const addon = await import('@vaccel/memory').then((m) => m.nativeAvailable()).catch(() => false);
  await using peer = await startGoUpstream(build.binary);
  const port = await freePort();
  await using _agent = await startAgent({ plugins: 'sgemm-js', extraAddresses: [`tcp://127.0.0.1:${port}`] });
  const plainPort = await freePort();
  await using _plainAgent = await startAgent({
    plugins: 'sgemm-js',
    extraAddresses: [`tcp://127.0.0.1:${plainPort}`],
    env: { VACCEL_RPC_QUICKACK: '0' },
  });
  const open = async (address: string, env: Record<string, string> = {}) => {
    const vaccel = await Vaccel.open({ plugins: [remotePlugin({ address, env })] });
    return { vaccel, session: await vaccel.createSession() };
  };
  const paths = {
    [QUICK]: await open(peer.address),
    [PLAIN]: await open(peer.address, { VACCEL_RPC_QUICKACK: '0' }),
    [OURS]: await open(`tcp://127.0.0.1:${port}`),
  };
  const a = new Float32Array([1, 2, 3, 4]);
  const call = (s: Session) => s.sgemm({ m: 2, n: 2, k: 2, a, b: a });
  // The path without quick-ack takes ~44 ms a call: enough samples for a median, no more.
  const calls = quick ? 20 : Math.max(100, Math.ceil(reps / 5) * 100);
  const samples: Record<string, number[]> = { [QUICK]: [], [PLAIN]: [], [OURS]: [] };
  const progress = new Progress('upstream', calls);
  try {
    for (const p of Object.values(paths)) for (let i = 0; i < 5; i++) await call(p.session); // warm up
    // Blocks of BLOCK calls per path, the paths taking turns: call by call, each path would find
    // the machine idle for the ~44 ms the path without quick-ack stalls, and pay a CPU wake-up.
    for (let i = 0; i < calls; i += BLOCK) {
      progress.step(`${i}/${calls}`);
      for (const [name, p] of Object.entries(paths)) {
        for (let j = 0; j < BLOCK; j++) {
          const started = performance.now();
          await call(p.session);
          samples[name]!.push(performance.now() - started);
        }
      }
    }
  } finally {
    progress.stop();
    for (const p of Object.values(paths)) await p.vaccel.close();
  }
  // The other direction: the Go client's own µs per call, against each of our agents.
  const goClient = async (agentPort: number): Promise<number[]> => {
    const [line] = (await runGoPeer(build.binary!, [
      'upstream-client',
      `127.0.0.1:${agentPort}`,
      String(calls),
    ])) as { samples: number[] }[];
    return line!.samples.map((us) => us / 1000);
  };
  samples[AGENT_QUICK] = await goClient(port);
  samples[AGENT_PLAIN] = await goClient(plainPort);
  const toAgent = new Set([AGENT_QUICK, AGENT_PLAIN]);
  const points: Point[] = Object.entries(samples).map(([series, ms]) => ({
    series,
    x: toAgent.has(series) ? 1 : 0,
    xLabel: toAgent.has(series) ? '2×2 SGEMM, upstream-like client → our agent' : '2×2 SGEMM, our client →',
    metric: 'latency',
    unit: 'ms',
    higherIsBetter: false,
    summary: summarize(ms),
    samples: ms,
  }));
  const target = (figure: string, series: string): Target => {
    const { median, ci95 } = points.find((p) => p.series === series)!.summary;
    return { figure, value: median, ci95, bar: BAR_MS, goal: 1, lowerIsBetter: true, met: median <= BAR_MS };
  };
  const targets: Target[] = [
    target('small call, our client → upstream-like agent over TCP, median ms (quick-ack)', QUICK),
    target('small call, upstream-like client → our agent over TCP, median ms (quick-ack)', AGENT_QUICK),
  ];
  return {
    name: 'upstream',
    title:
      'Small calls over TCP with peers that write like upstream vAccel (Nagle on, header and body apart)',
    xTitle: '',
    machine: describeMachine({}),
    options: { reps, quick },
    points,
    comparisons: compareWith(points, BASELINES),
    baselines: BASELINES,
    targets,
    notes: [
      'upstream-like agent: go-peer upstream (containerd/ttrpc, TCP_NODELAY off, every frame written as header then body, as upstream vaccel-rpc-agent does); ours: vaccel-agent --plugins sgemm-js on tcp://127.0.0.1',
      `quick-ack: the RPC plugin and the agent re-arm TCP_QUICKACK after each read${addon ? '' : ' — NOT measured here: the @vaccel/memory addon is not built, so both upstream paths run without it'}`,
      `${calls} sequential 2×2 SGEMMs per path; our client's three paths taking turns in blocks of ${BLOCK} calls; the Go client (go-peer upstream-client: TCP_NODELAY off, header and body apart) timed by itself, one run per agent (the second agent started with VACCEL_RPC_QUICKACK=0); medians with 95 % bootstrap intervals`,
    ],
  };
}

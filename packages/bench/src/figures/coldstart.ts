/**
 * coldstart — what a serverless guest pays before its first call: whole fresh processes, timed
 * from spawn to exit, interleaved round by round: bare `node`, importing the guest library (the
 * bundled `@vaccel/remote/guest`, and unbundled `@vaccel/core` + `@vaccel/remote`), and importing,
 * opening a runtime on `VACCEL_RPC_ADDRESS` and getting the first remote noop answered.
 * @module
 */
import { spawn } from 'node:child_process';
import { startAgent } from '../agent-process.js';
import type { FigureOptions } from '../figure.js';
import { describeMachine } from '../machine.js';
import { Progress } from '../progress.js';
import { type Baseline, compareWith, type FigureResult, type Point, type Target } from '../result.js';
import { summarize } from '../stats.js';

const BARE = 'bare node';
/** Every case against the fresh process that does nothing (same round: pair by pair). */
const BASELINES: Baseline[] = [{ series: BARE }];
const FIRST_NOOP =
  "const {Vaccel}=await import('@vaccel/remote/guest'); const v=await Vaccel.open(); const s=await v.createSession(); await s.noop(); await v.close();";
const CASES: { label: string; code: string }[] = [
  { label: BARE, code: '' },
  { label: 'import @vaccel/remote/guest (bundle)', code: "await import('@vaccel/remote/guest');" },
  {
    label: 'import @vaccel/core + @vaccel/remote',
    code: "await import('@vaccel/core'); await import('@vaccel/remote');",
  },
  { label: 'first remote noop answered (bundle)', code: FIRST_NOOP },
];

/** Wall ms of one fresh `node --input-type=module -e code`, from spawn to exit. */
function timeProcess(code: string, env: NodeJS.ProcessEnv): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(process.execPath, ['--input-type=module', '-e', code], {
      env,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => {
      stderr += d;
    });
    child.once('error', reject);
    child.once('exit', (status) => {
      const ms = performance.now() - started;
      if (status === 0) resolve(ms);
      else reject(new Error(`node -e exited ${status}: ${stderr.trim().split('\n').at(-1)}`));
    });
  });
}

/** Runs the cold-start figure. */
export async function coldstartFigure(options: FigureOptions): Promise<FigureResult> {
  const { reps, quick } = options;
  const rounds = quick ? 5 : Math.max(15, reps * 3);
  await using agent = await startAgent({ plugins: 'noop' });
  const env = { ...process.env, VACCEL_RPC_ADDRESS: agent.address, VACCEL_LOG_LEVEL: 'error' };
  const samples = CASES.map(() => [] as number[]);
  const progress = new Progress('coldstart', rounds);
  try {
    for (const c of CASES) await timeProcess(c.code, env); // warm the page cache
    for (let r = 0; r < rounds; r++) {
      progress.step(`round ${r + 1}`);
      for (const [i, c] of CASES.entries()) samples[i]!.push(await timeProcess(c.code, env));
    }
  } finally {
    progress.stop();
  }
  const points: Point[] = CASES.map((c, i) => ({
    series: c.label,
    x: 0,
    xLabel: 'fresh process',
    metric: 'wall',
    unit: 'ms',
    higherIsBetter: false,
    summary: summarize(samples[i]!),
    samples: samples[i]!,
  }));
  // Above bare node, pair by pair (same round).
  const above = (i: number) => samples[i]!.map((ms, r) => ms - samples[0]![r]!);
  const importAbove = summarize(above(1));
  const noop = summarize(samples[3]!);
  const targets: Target[] = [
    {
      figure: 'guest library cold import above bare node (ms)',
      value: importAbove.median,
      ci95: importAbove.ci95,
      bar: 100,
      goal: 50,
      lowerIsBetter: true,
      met: importAbove.median <= 100,
    },
    {
      figure: 'process start → first remote noop answered (ms)',
      value: noop.median,
      ci95: noop.ci95,
      bar: 200,
      goal: 120,
      lowerIsBetter: true,
      met: noop.median <= 200,
    },
  ];
  return {
    name: 'coldstart',
    title: 'Cold start of a guest process (wall ms, spawn to exit)',
    xTitle: '',
    machine: describeMachine({}),
    options: { reps, quick },
    points,
    comparisons: compareWith(points, BASELINES),
    baselines: BASELINES,
    targets,
    notes: [
      `${rounds} rounds; each round runs every case once as a fresh \`node --input-type=module -e …\`, in turn, so machine drift hits all alike; medians with 95 % bootstrap intervals`,
      `above bare node, pair by pair: import (bundle) ${importAbove.median.toFixed(1)} ms, unbundled ${summarize(above(2)).median.toFixed(1)} ms, first remote noop ${summarize(above(3)).median.toFixed(1)} ms`,
      'the first noop includes Vaccel.open (the RPC plugin chunk loads then), connecting over a unix socket to a local agent (`--plugins noop`), CreateSession, the noop, and closing',
    ],
  };
}

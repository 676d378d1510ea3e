/**
 * tenants — one agent, many guest processes (issue 22), all on the public API:
 *
 * - **Throughput:** 1, 4 and 16 guest processes detecting at once through the agent against one
 *   in-process detection loop, round by round (each round: the in-process loop, then the guests,
 *   the same number of detections each), as detections/s; ratios pair by pair.
 * - **Memory:** the agent's RSS per guest (RSS with the guests connected and warm, less RSS before
 *   them, ÷ guests).
 * - **Noisy neighbours:** a light tenant (this process) calls noop and then classify every 5 ms,
 *   alone, then beside four guest processes looping 1024² SGEMMs: noop and classify p50/p99.
 * @module
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Vaccel } from '@vaccel/core';
import { spawnTied } from '@vaccel/process';
import { remotePlugin } from '@vaccel/remote';
import { type AgentProcess, startAgent } from '../agent-process.js';
import type { FigureOptions } from '../figure.js';
import { describeMachine } from '../machine.js';
import { CAT, HOST } from '../paths.js';
import { Progress } from '../progress.js';
import { type Baseline, compareWith, type FigureResult, type Point, type Target } from '../result.js';
import { bootstrapPercentile, ratio, summarize } from '../stats.js';
import { photo640 } from './detect.js';

const GUESTS = [1, 4, 16];
const NOISY = 4;
const LIGHT_ALONE = 'light tenant alone';
const LIGHT_BESIDE = `light tenant beside ${NOISY} SGEMM loops`;
const MiB = 2 ** 20;

/** A guest process of tenant-guest.ts, with its stdout as lines. */
interface Guest {
  send(line: string): void;
  next(): Promise<string>;
  stop(): void;
}

function startGuest(args: string[]): Guest {
  const source = import.meta.url.endsWith('.ts');
  const entry = fileURLToPath(new URL(`../tenant-guest.${source ? 'ts' : 'js'}`, import.meta.url));
  // Tied to this process: a guest never outlives the benchmark, however it ends.
  const child = spawnTied(process.execPath, [...process.execArgv, entry, ...args], {
    stdio: ['pipe', 'pipe', 'inherit'],
    env: { ...process.env, VACCEL_LOG_LEVEL: 'error' },
  });
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  const exited = new Promise<never>((_, reject) =>
    child.once('exit', (code, signal) => reject(new Error(`a tenant guest exited (${code ?? signal})`))),
  );
  exited.catch(() => {});
  return {
    send: (line) => child.stdin!.write(`${line}\n`),
    next: () => Promise.race([lines.next().then((r) => String(r.value)), exited]),
    stop: () => {
      child.stdin!.end();
      child.kill('SIGKILL');
    },
  };
}

/** The agent's resident set, in bytes. */
const rssOf = (agent: AgentProcess): number =>
  Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${agent.process.pid}/status`, 'utf8'))?.[1]) * 1024;

/** The light tenant: `rounds` × (noop, classify, 5 ms pause); latencies in ms. */
async function lightTenant(address: string, rounds: number): Promise<{ noop: number[]; classify: number[] }> {
  await using vaccel = await Vaccel.open({ plugins: [remotePlugin({ address })] });
  await using session = await vaccel.createSession();
  const image = new Uint8Array(readFileSync(CAT));
  for (let i = 0; i < 5; i++) await session.imageClassify(image);
  const noop: number[] = [];
  const classify: number[] = [];
  for (let i = 0; i < rounds; i++) {
    let t = performance.now();
    await session.noop();
    noop.push(performance.now() - t);
    t = performance.now();
    await session.imageClassify(image);
    classify.push(performance.now() - t);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  return { noop, classify };
}

const point = (
  series: string,
  xLabel: string,
  x: number,
  metric: string,
  unit: string,
  samples: number[],
  higherIsBetter = false,
): Point => ({
  series,
  x,
  xLabel,
  metric,
  unit,
  higherIsBetter,
  summary: summarize(samples),
  samples,
});

/** Runs the tenants figure. */
export async function tenantsFigure(options: FigureOptions): Promise<FigureResult> {
  const { reps, quick } = options;
  const perRound = quick ? 16 : 48;
  const lightRounds = quick ? 60 : 200;
  const dir = mkdtempSync(join(tmpdir(), 'vaccel-tenants-'));
  const photoPath = join(dir, 'horses-640.jpg');
  writeFileSync(photoPath, await photo640('horses'));
  const photo = new Uint8Array(readFileSync(photoPath));
  const { hostPlugins } = await import('@vaccel/plugin-onnx');
  await using local = await Vaccel.open({ plugins: hostPlugins() });
  await using own = await local.createSession();
  await using agent = await startAgent();
  const progress = new Progress('tenants', GUESTS.length * reps + 2);
  const points: Point[] = [];
  const notes: string[] = [];
  const inProcess: number[] = [];
  const byGuests = new Map<number, number[]>();
  const rssPerGuest: number[] = [];
  let alone: { noop: number[]; classify: number[] };
  let beside: { noop: number[]; classify: number[] };
  try {
    for (let i = 0; i < 3; i++) await own.imageDetect(photo);
    progress.step('light tenant alone');
    alone = await lightTenant(agent.address, lightRounds);
    // Every compute thread holds the detector before the baseline: its copies are not a guest's.
    {
      await using warm = await Vaccel.open({ plugins: [remotePlugin({ address: agent.address })] });
      await using s = await warm.createSession();
      await Promise.all(Array.from({ length: 4 }, () => s.imageDetect(photo)));
    }
    for (const count of GUESTS) {
      const before = rssOf(agent);
      const guests = Array.from({ length: count }, () => startGuest(['detect', agent.address, photoPath]));
      try {
        await Promise.all(guests.map(async (g) => expectLine(await g.next(), 'ready')));
        const grown = (rssOf(agent) - before) / count;
        rssPerGuest.push(grown);
        notes.push(
          `${count} guest${count > 1 ? 's' : ''} connected and warm: agent RSS ${((before + grown * count) / MiB).toFixed(0)} MiB, ${(grown / MiB).toFixed(1)} MiB per guest`,
        );
        const samples: number[] = [];
        for (let r = 0; r < reps; r++) {
          progress.step(`${count} guests, round ${r + 1}`);
          if (count === GUESTS[0]) {
            const t = performance.now();
            for (let i = 0; i < perRound; i++) await own.imageDetect(photo);
            inProcess.push(perRound / ((performance.now() - t) / 1e3));
          }
          const share = Math.ceil(perRound / count);
          const t = performance.now();
          for (const g of guests) g.send(`go ${share}`);
          await Promise.all(guests.map(async (g) => expectLine(await g.next(), 'done')));
          samples.push((share * count) / ((performance.now() - t) / 1e3));
        }
        byGuests.set(count, samples);
      } finally {
        for (const g of guests) g.stop();
      }
    }
    progress.step('light tenant beside noisy neighbours');
    const noisy = Array.from({ length: NOISY }, () => startGuest(['sgemm', agent.address]));
    try {
      await Promise.all(noisy.map(async (g) => expectLine(await g.next(), 'ready')));
      beside = await lightTenant(agent.address, lightRounds);
    } finally {
      for (const g of noisy) g.stop();
    }
  } finally {
    progress.stop();
    rmSync(dir, { recursive: true, force: true });
  }

  points.push(point(HOST, 'detections/s', 0, 'throughput', '1/s', inProcess, true));
  for (const [count, samples] of byGuests)
    points.push(
      point(
        `${count} guest${count > 1 ? 's' : ''} (agent)`,
        'detections/s',
        0,
        'throughput',
        '1/s',
        samples,
        true,
      ),
    );
  for (const [series, run] of [
    [LIGHT_ALONE, alone],
    [LIGHT_BESIDE, beside],
  ] as const) {
    points.push(point(series, 'noop', 1, 'latency', 'ms', run.noop));
    points.push(point(series, 'classify', 2, 'latency', 'ms', run.classify));
  }
  // The guests' detections/s against the in-process loop's (same round: pair by pair); the light
  // tenant beside the noisy ones against itself alone (two runs, not pairs: ratios of medians).
  const baselines: Baseline[] = [
    { series: HOST },
    { series: LIGHT_ALONE, paths: [LIGHT_BESIDE], paired: false },
  ];
  const comparisons = compareWith(points, baselines);
  const noopP99 = summarize(beside.noop).p99;
  const classifyRatio = ratio(beside.classify, alone.classify, false);
  const sixteen = comparisons.find((c) => c.guest === `${GUESTS.at(-1)} guests (agent)`)!;
  const targets: Target[] = [
    {
      figure: `light tenant noop p99 beside ${NOISY} noisy neighbours (ms)`,
      value: noopP99,
      ci95: bootstrapPercentile(beside.noop, 99),
      bar: 5,
      goal: 1,
      lowerIsBetter: true,
      met: noopP99 <= 5,
    },
    {
      figure: 'light tenant classify p50 beside them ÷ alone',
      value: classifyRatio.ratio,
      ci95: classifyRatio.ci95,
      bar: 3,
      goal: 1.5,
      lowerIsBetter: true,
      met: classifyRatio.ratio <= 3,
    },
    {
      figure: "16 guests' detections/s ÷ one in-process loop",
      value: sixteen.ratio,
      ci95: sixteen.ratioCi95,
      bar: 1.1,
      goal: 1.5,
      lowerIsBetter: false,
      met: sixteen.ratio >= 1.1,
    },
  ];
  const p = (xs: number[], q: number) => summarize(xs)[q === 50 ? 'median' : 'p99'].toFixed(2);
  return {
    name: 'tenants',
    title: 'Many tenants on one agent: throughput, memory per guest, a light tenant beside noisy ones',
    xTitle: 'what',
    machine: describeMachine(Object.fromEntries(local.plugins().map((p) => [p.name, p.version]))),
    options: { reps, quick },
    points,
    comparisons,
    baselines,
    targets,
    notes: [
      `throughput: ${reps} rounds; each round ${perRound} detections of a 640×480 photo (examples/images/horses.jpg) in one in-process loop (the embedded default), then the same number split across 1, 4 or 16 guest processes (unix socket, default agent); ratios pair by pair`,
      ...notes,
      `light tenant (this process, RPC plugin): ${lightRounds} × (noop, classify of examples/images/cat.jpg, 5 ms pause); alone: noop p50 ${p(alone.noop, 50)} p99 ${p(alone.noop, 99)} ms, classify p50 ${p(alone.classify, 50)} p99 ${p(alone.classify, 99)} ms; beside ${NOISY} guest processes looping 1024² SGEMMs: noop p50 ${p(beside.noop, 50)} p99 ${p(beside.noop, 99)} ms, classify p50 ${p(beside.classify, 50)} p99 ${p(beside.classify, 99)} ms`,
      'p99 intervals are bootstrap intervals of the 99th percentile; classify beside ÷ alone is the ratio of the medians (the runs are not paired)',
    ],
  };
}

function expectLine(line: string, expected: string): void {
  if (line !== expected) throw new Error(`a tenant guest said ${JSON.stringify(line)}, not ${expected}`);
}

/**
 * `rpc`: the cost of the remote path itself, against its floors, in one run. noop round-trip
 * latency, pipelined calls/s on one connection and 4 MiB payload throughput for: in-process; our
 * agent over unix and TCP; bare ttRPC (our client and server, no vAccel); our client against
 * containerd/ttrpc's Go server; the Go client against the Go server; two C processes over
 * AF_UNIX. Then a Go client's load (16 connections × 8 in flight of small SGEMM genops) on our
 * agent and on a Go reference agent, with our agent's RSS watched. Samples interleave the paths
 * round by round; medians carry 95 % bootstrap intervals, ratios are taken pair by pair.
 * @module
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PEER_SERVICE, startGoPeer } from '@vaccel/conformance';
import { Args, OpType, Vaccel } from '@vaccel/core';
import { spawnTied } from '@vaccel/process';
import { connect } from '@vaccel/protocol';
import { remotePlugin } from '@vaccel/remote';
import { Client } from '@vaccel/ttrpc';
import { freePort, startAgent } from '../agent-process.js';
import { ECHO_METHOD, ECHO_SERVICE } from '../echo-server.js';
import type { FigureOptions } from '../figure.js';
import { buildCFloor, cFloor, goClientPipelined, goClientSamples, goLoad, goPeer, rssOf } from '../floors.js';
import { describeMachine } from '../machine.js';
import { startNodeFloor } from '../node-floor.js';
import { HOST } from '../paths.js';
import { Progress } from '../progress.js';
import { compare, type FigureResult, type Point, type Target } from '../result.js';
import { percentile, ratio, summarize } from '../stats.js';

type Sample = () => Promise<number>;
interface Series {
  name: string;
  latency?: Sample;
  pipelined?: Sample;
  payload?: Sample;
}

const PAYLOAD_BYTES = 4 << 20;
/** containerd/ttrpc refuses frames over 4 MiB: its payload leaves room for the envelope. */
const GO_PAYLOAD_BYTES = PAYLOAD_BYTES - 1024;
const WINDOW = 256;
/** The floor every wire path is compared with. */
const C_FLOOR = 'C AF_UNIX floor';

const median = (values: number[]): number => percentile(Float64Array.from(values).sort(), 50);
const elapsedUs = (started: bigint): number => Number(process.hrtime.bigint() - started) / 1e3;

/** Starts our bare ttRPC echo server in its own process. */
async function startEcho(): Promise<{ client: Client; stop(): void }> {
  const path = join(mkdtempSync(join(tmpdir(), 'vaccel-echo-')), 'echo.sock');
  const fromSource = import.meta.url.endsWith('.ts');
  const entry = fileURLToPath(new URL(`../echo-server.${fromSource ? 'ts' : 'js'}`, import.meta.url));
  const child = spawnTied(process.execPath, [...process.execArgv, entry, path], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`echo server exited with ${code}`)));
  });
  const client = new Client(await connect(`unix://${path}`), { maxFrame: 64 << 20 });
  return { client, stop: () => child.kill('SIGTERM') };
}

/** A latency sample: the median µs of `block` sequential calls. */
const latencyOf =
  (call: () => Promise<unknown>, block: number): Sample =>
  async () => {
    const times: number[] = [];
    for (let i = 0; i < block; i++) {
      const started = process.hrtime.bigint();
      await call();
      times.push(elapsedUs(started));
    }
    return median(times);
  };

/** A pipelined sample: calls/s over `total` calls with {@link WINDOW} in flight. */
const pipelinedOf =
  (call: () => Promise<unknown>, total: number): Sample =>
  async () => {
    let left = total;
    const started = process.hrtime.bigint();
    await Promise.all(
      Array.from({ length: WINDOW }, async () => {
        while (left-- > 0) await call();
      }),
    );
    return total / (elapsedUs(started) / 1e6);
  };

/**
 * A payload sample: GB/s (1e9 bytes/s) of the median of 10 calls carrying `bytes`, after 5
 * untimed ones (a path woken from idle needs a few big calls to reach its steady speed).
 */
const payloadOf =
  (call: () => Promise<unknown>, bytes: number): Sample =>
  async () => {
    for (let i = 0; i < 5; i++) await call();
    const times: number[] = [];
    for (let i = 0; i < 10; i++) {
      const started = process.hrtime.bigint();
      await call();
      times.push(elapsedUs(started));
    }
    return bytes / (median(times) * 1e3);
  };

/** Runs the rpc figure. */
export async function rpcFigure(options: FigureOptions): Promise<FigureResult> {
  const { quick } = options;
  const rounds = quick ? Math.max(options.reps, 5) : Math.max(options.reps, 50);
  const block = quick ? 200 : 1000;
  const window = quick ? 1000 : 10_000;
  const load = quick ? { warm: 1, measure: 3 } : { warm: 5, measure: 60 };
  const notes: string[] = [];
  const port = await freePort();
  await using agent = await startAgent({ extraAddresses: [`tcp://127.0.0.1:${port}`] });
  const echo = await startEcho();
  const nodeFloor = await startNodeFloor();
  const [cBuild, goBuild] = await Promise.all([buildCFloor(), goPeer()]);
  if (cBuild.skip) notes.push(`C AF_UNIX floor skipped: ${cBuild.skip}`);
  if (goBuild.skip) notes.push(`Go reference skipped: ${goBuild.skip}`);
  const goServer = goBuild.binary ? await startGoPeer(goBuild.binary) : undefined;
  const goClient = goServer
    ? new Client(await connect(`unix://${goServer.path}`), { maxFrame: 64 << 20 })
    : undefined;
  const payload = new Uint8Array(PAYLOAD_BYTES).fill(7);
  const goPayload = payload.subarray(0, GO_PAYLOAD_BYTES);
  const empty = new Uint8Array(0);
  const open = async (plugins: Parameters<typeof Vaccel.open>[0]) => {
    const vaccel = await Vaccel.open(plugins);
    return { vaccel, session: await vaccel.createSession() };
  };
  const host = await open({ plugins: ['noop'] });
  // Versions now: a closed runtime has no plugins left to ask.
  const versions = Object.fromEntries(host.vaccel.plugins().map((p) => [p.name, p.version]));
  const unix = await open({ plugins: [remotePlugin({ address: agent.address, stagingBytes: 0 })] });
  const tcp = await open({ plugins: [remotePlugin({ address: agent.addresses[1]!, stagingBytes: 0 })] });
  // The same agent with the payload in a shared region: a reference crosses, not the 4 MiB.
  const shared = await open({ plugins: [remotePlugin({ address: agent.address })] });
  const region = await shared.vaccel.sharedMemory(PAYLOAD_BYTES);
  const sharedPayload = region.copyOf(payload);
  if (region.via === 'process') notes.push('shared memory path skipped: the agent cannot map a region here');
  const vaccelSeries = (name: string, s: typeof host): Series => ({
    name,
    latency: latencyOf(() => s.session.noop(), block),
    pipelined: pipelinedOf(() => s.session.noop(), window),
    payload: payloadOf(() => s.session.doOperation(OpType.Noop, [Args.buffer(payload)], []), PAYLOAD_BYTES),
  });
  const series: Series[] = [
    // In process a "payload" is a pointer handed over: no throughput to speak of.
    { ...vaccelSeries(HOST, host), payload: undefined },
    vaccelSeries('guest (agent, unix)', unix),
    vaccelSeries('guest (agent, tcp)', tcp),
    ...(region.via === 'process'
      ? []
      : [
          {
            ...vaccelSeries('guest (agent, shared memory)', shared),
            payload: payloadOf(
              () => shared.session.doOperation(OpType.Noop, [Args.buffer(sharedPayload)], []),
              PAYLOAD_BYTES,
            ),
          },
        ]),
    {
      name: 'bare ttRPC (ours, unix)',
      latency: latencyOf(() => echo.client.call(ECHO_SERVICE, ECHO_METHOD, empty), block),
      pipelined: pipelinedOf(() => echo.client.call(ECHO_SERVICE, ECHO_METHOD, empty), window),
      payload: payloadOf(() => echo.client.call(ECHO_SERVICE, ECHO_METHOD, payload), PAYLOAD_BYTES),
    },
  ];
  if (goServer && goClient && goBuild.binary) {
    const bin = goBuild.binary;
    series.push(
      {
        name: 'our client → Go ttrpc server',
        latency: latencyOf(() => goClient.call(PEER_SERVICE, 'Echo', empty), block),
        pipelined: pipelinedOf(() => goClient.call(PEER_SERVICE, 'Echo', empty), window),
        payload: payloadOf(() => goClient.call(PEER_SERVICE, 'Discard', goPayload), GO_PAYLOAD_BYTES),
      },
      {
        name: 'Go reference (Go client → Go server)',
        latency: async () => median(await goClientSamples(bin, goServer.path, 'rtt', block)),
        pipelined: () => goClientPipelined(bin, goServer.path, window, WINDOW),
        payload: async () =>
          GO_PAYLOAD_BYTES /
          (median(await goClientSamples(bin, goServer.path, 'bulk', 10, GO_PAYLOAD_BYTES)) * 1e3),
      },
    );
  }
  series.push({ name: 'Node net.Socket floor', latency: latencyOf(() => nodeFloor.roundTrip(), block) });
  if (cBuild.binary) {
    const bin = cBuild.binary;
    series.push({
      name: 'C AF_UNIX floor',
      latency: async () => median(await cFloor(bin, 'rtt', block, 64)),
      payload: async () => PAYLOAD_BYTES / (median(await cFloor(bin, 'bulk', 10, PAYLOAD_BYTES)) * 1e3),
    });
  }
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
  let loadResult: { ours?: number; go?: number; rssStart?: number; rssEnd?: number; errors?: number } = {};
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
        points.push({
          series: s.name,
          x: metric.x,
          xLabel: metric.label,
          metric: metric.label,
          unit: metric.unit,
          higherIsBetter: metric.higherIsBetter,
          summary: summarize(values[i]!),
          samples: values[i]!,
        });
      }
    }
    if (goBuild.binary) {
      progress.step(`Go client load on our agent (${load.warm} + ${load.measure} s)`);
      const socket = agent.address.replace('unix://', '');
      await goLoad(goBuild.binary, socket, 16, 8, load.warm);
      // RSS at 1 Hz: the GC's sawtooth makes single readings useless, so growth compares the
      // median of the first quarter of the run with the median of the last quarter.
      const rss: number[] = [rssOf(agent.process.pid!)];
      const measured = goLoad(goBuild.binary, socket, 16, 8, load.measure);
      const watch = setInterval(() => rss.push(rssOf(agent.process.pid!)), 1000);
      const ours = await measured.finally(() => clearInterval(watch));
      rss.push(rssOf(agent.process.pid!));
      const quarter = Math.max(1, Math.floor(rss.length / 4));
      const rssStart = median(rss.slice(0, quarter));
      const rssEnd = median(rss.slice(-quarter));
      progress.tick();
      progress.step(`Go client load on the Go reference agent (${load.measure} s)`);
      const go = await goLoad(goBuild.binary, goServer!.path, 16, 8, load.measure);
      progress.tick();
      loadResult = { ours: ours.rate, go: go.rate, rssStart, rssEnd, errors: ours.errors + go.errors };
    }
  } finally {
    progress.stop();
    echo.stop();
    nodeFloor.stop();
    await echo.client.close();
    await goClient?.close();
    await goServer?.stop();
    await Promise.all([host, unix, tcp, shared].map(({ vaccel }) => vaccel.close()));
  }
  const targets = rpcTargets(samples, loadResult);
  return {
    name: 'rpc',
    title: 'RPC path: noop latency, pipelined calls/s, 4 MiB payload throughput, against C and Go floors',
    xTitle: 'measurement',
    machine: describeMachine(versions),
    options: { reps: rounds, quick },
    points,
    // The wire paths against their floor (C over AF_UNIX), not against in-process calls: a noop in
    // process moves no bytes, so "guest / host" would be thousands of percent of nothing.
    comparisons: compare(
      points.filter((p) => p.series !== HOST),
      C_FLOOR,
    ),
    targets,
    notes: [
      `${rounds} rounds, each taking one sample of every path in turn: latency = the median of ${block} sequential noop calls; pipelined = calls/s over ${window} noop calls with ${WINDOW} in flight on one connection; payload = the median of 10 calls carrying a 4 MiB read arg, after 5 untimed ones (GB/s = 1e9 bytes/s, request direction; the Go server's limit is 4 MiB per frame, so its payload is ${GO_PAYLOAD_BYTES} bytes)`,
      'guest (agent, shared memory): the same agent, the payload allocated in a memfd region it maps (only a reference crosses; GB/s = payload bytes the op sees per second); the unix and tcp paths send everything in-band (no staging)',
      'the agent runs in its own process (vaccel-agent, builtin plugins); "bare ttRPC" is our echo server process, no vAccel on top; the C floor is two C processes over a socketpair (64-byte round trips; 4 MiB one way plus a 1-byte ack); the Node floor is a bare net.Socket echo process (64 bytes, no framing)',
      `load: the Go client (containerd/ttrpc), 16 connections × 8 calls in flight of 8×8 SGEMM genops with a 30 s deadline each, ${load.warm} s warm-up then ${load.measure} s on our agent (RSS sampled), then ${load.measure} s on the Go reference agent (go-peer serve)`,
      ...notes,
    ],
  };
}

/** The targets: our figures as ratios to the floors, with 95 % intervals. */
function rpcTargets(
  samples: Map<string, number[]>,
  load: { ours?: number; go?: number; rssStart?: number; rssEnd?: number; errors?: number },
): Target[] {
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

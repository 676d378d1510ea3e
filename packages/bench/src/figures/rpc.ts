/**
 * `rpc`: the cost of the remote path itself. noop round-trip latency (p50/p99), pipelined calls/s
 * on one connection, and 4 MiB payload throughput — in-process, through the agent over unix and
 * TCP, and over bare ttRPC (no vAccel) as the transport's floor.
 * @module
 */
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Args, OpType, type Session, Vaccel } from '@vaccel/core';
import { connect, remotePlugin } from '@vaccel/remote';
import { Client } from '@vaccel/ttrpc';
import { startAgent } from '../agent-process.js';
import { ECHO_METHOD, ECHO_SERVICE } from '../echo-server.js';
import type { FigureOptions } from '../figure.js';
import { describeMachine } from '../machine.js';
import { HOST } from '../paths.js';
import { Progress } from '../progress.js';
import { compare, type FigureResult, type Point } from '../result.js';
import { summarize } from '../stats.js';

type Call = () => Promise<unknown>;

const PAYLOAD_BYTES = 4 << 20;

/** Per-call round trips in µs, one after another. */
async function latencies(call: Call, count: number): Promise<Float64Array> {
  const samples = new Float64Array(count);
  for (let i = 0; i < count; i++) {
    const started = process.hrtime.bigint();
    await call();
    samples[i] = Number(process.hrtime.bigint() - started) / 1e3;
  }
  return samples;
}

/** Completed calls per second with `window` calls in flight at all times. */
async function pipelined(call: Call, total: number, window: number): Promise<number> {
  const started = process.hrtime.bigint();
  const perLane = Math.ceil(total / window);
  await Promise.all(
    Array.from({ length: window }, async () => {
      for (let i = 0; i < perLane; i++) await call();
    }),
  );
  return (perLane * window) / (Number(process.hrtime.bigint() - started) / 1e9);
}

async function freePort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Starts the bare ttRPC echo server in its own process. */
async function startEcho(): Promise<{ client: Client; stop(): void }> {
  const path = join(mkdtempSync(join(tmpdir(), 'vaccel-echo-')), 'echo.sock');
  const fromSource = import.meta.url.endsWith('.ts');
  const entry = fileURLToPath(new URL(`../echo-server.${fromSource ? 'ts' : 'js'}`, import.meta.url));
  const child = spawn(process.execPath, [...process.execArgv, entry, path], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`echo server exited with ${code}`)));
  });
  const client = new Client(await connect(`unix://${path}`), { maxFrame: 64 << 20 });
  return { client, stop: () => child.kill('SIGTERM') };
}

interface Path {
  series: string;
  noop: Call;
  upload: Call;
}

/** Runs the rpc figure. */
export async function rpcFigure(options: FigureOptions): Promise<FigureResult> {
  const { reps, quick } = options;
  const sizes = quick
    ? { latency: 2000, pipelined: 20_000, window: 256, payload: 24 }
    : { latency: 20_000, pipelined: 100_000, window: 256, payload: 150 };
  const port = await freePort();
  await using agent = await startAgent({ extraAddresses: [`tcp://127.0.0.1:${port}`] });
  const echo = await startEcho();
  const payload = new Uint8Array(PAYLOAD_BYTES).fill(7);
  const open = async (plugins?: Parameters<typeof Vaccel.open>[0]) => {
    const vaccel = await Vaccel.open(plugins);
    return { vaccel, session: await vaccel.createSession() };
  };
  const vaccelPath = (series: string, session: Session): Path => ({
    series,
    noop: () => session.noop(),
    upload: () => session.doOperation(OpType.Noop, [Args.buffer(payload)], []),
  });
  const host = await open({ plugins: ['noop'] });
  const unix = await open({ plugins: [remotePlugin({ address: agent.address })] });
  const tcp = await open({ plugins: [remotePlugin({ address: agent.addresses[1]! })] });
  const empty = new Uint8Array(0);
  const paths: Path[] = [
    vaccelPath(HOST, host.session),
    vaccelPath('guest (agent, unix)', unix.session),
    vaccelPath('guest (agent, tcp)', tcp.session),
    {
      series: 'bare ttRPC (unix)',
      noop: () => echo.client.call(ECHO_SERVICE, ECHO_METHOD, empty),
      upload: () => echo.client.call(ECHO_SERVICE, ECHO_METHOD, payload),
    },
  ];
  const points: Point[] = [];
  const progress = new Progress('rpc', paths.length * 3 * reps);
  try {
    for (const path of paths) {
      // Warm-up: connections, sessions, JIT.
      await latencies(path.noop, Math.min(2000, sizes.latency));
      await pipelined(path.noop, 5000, sizes.window);
      await path.upload();
      const p50: number[] = [];
      const p99: number[] = [];
      const rates: number[] = [];
      const gbps: number[] = [];
      for (let rep = 0; rep < reps; rep++) {
        progress.step(`${path.series} latency`);
        const s = summarize(await latencies(path.noop, sizes.latency));
        p50.push(s.median);
        p99.push(s.p99);
        progress.tick();
        progress.step(`${path.series} pipelined`);
        rates.push(await pipelined(path.noop, sizes.pipelined, sizes.window));
        progress.tick();
        progress.step(`${path.series} 4 MiB`);
        const started = process.hrtime.bigint();
        await pipelined(path.upload, sizes.payload, 2);
        gbps.push((sizes.payload * PAYLOAD_BYTES) / Number(process.hrtime.bigint() - started));
        progress.tick();
      }
      const point = (x: number, xLabel: string, unit: string, higherIsBetter: boolean, values: number[]) =>
        points.push({
          series: path.series,
          x,
          xLabel,
          metric: xLabel,
          unit,
          higherIsBetter,
          summary: summarize(values),
        });
      point(1, 'noop p50', 'µs', false, p50);
      point(2, 'noop p99', 'µs', false, p99);
      point(3, `pipelined (${sizes.window} in flight)`, 'calls/s', true, rates);
      point(4, '4 MiB payload', 'GB/s', true, gbps);
    }
  } finally {
    progress.stop();
    echo.stop();
    await echo.client.close();
    await Promise.all([host, unix, tcp].map(({ vaccel }) => vaccel.close()));
  }
  const versions = Object.fromEntries(host.vaccel.plugins().map((p) => [p.name, p.version]));
  return {
    name: 'rpc',
    title: 'RPC path: noop latency, pipelined calls/s, 4 MiB payload throughput',
    xTitle: 'measurement',
    machine: describeMachine(versions),
    options: { reps, quick },
    points,
    comparisons: compare(points, HOST),
    notes: [
      `latency: ${sizes.latency} sequential noop calls per repetition; pipelined: ${sizes.pipelined} noop calls, ${sizes.window} in flight on one connection; payload: ${sizes.payload} noop calls each carrying a 4 MiB read arg, 2 in flight (GB/s = 1e9 bytes/s, request direction)`,
      'the agent runs in its own process (vaccel-agent, builtin plugins); "bare ttRPC" is an echo server process with no vAccel on top, the transport floor',
    ],
  };
}

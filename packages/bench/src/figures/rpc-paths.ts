/**
 * The paths the `rpc` figure measures, set up and ready to sample: the vAccel runtime in process
 * and through our agent (unix, TCP, shared memory), our bare ttRPC echo server, containerd/ttrpc's
 * Go server with our client and with the Go client, and the Node and C socket floors. Each path is
 * a {@link Series}: one sampler per metric it takes part in.
 * @module
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type GoPeerServer, PEER_SERVICE, startGoPeer } from '@vaccel/conformance';
import { Args, OpType, Vaccel } from '@vaccel/core';
import { spawnTied } from '@vaccel/process';
import { connect } from '@vaccel/protocol';
import { remotePlugin } from '@vaccel/remote';
import { Client } from '@vaccel/ttrpc';
import type { AgentProcess } from '../agent-process.js';
import { ECHO_METHOD, ECHO_SERVICE } from '../echo-server.js';
import { buildCFloor, cFloor, goClientPipelined, goClientSamples, goPeer } from '../floors.js';
import { startNodeFloor } from '../node-floor.js';
import { HOST } from '../paths.js';
import { percentile } from '../stats.js';

/** One sample of a metric on one path. */
/** The agent path whose payload stays in a shared region (only a reference crosses). */
export const SHARED_SERIES = 'guest (agent, shared memory)';

export type Sample = () => Promise<number>;
/** A measured path: its name in the report and its sampler for each metric it takes part in. */
export interface Series {
  name: string;
  latency?: Sample;
  pipelined?: Sample;
  payload?: Sample;
}

const PAYLOAD_BYTES = 4 << 20;
/** containerd/ttrpc refuses frames over 4 MiB: its payload leaves room for the envelope. */
export const GO_PAYLOAD_BYTES = PAYLOAD_BYTES - 1024;
/** Calls in flight in a pipelined sample. */
export const WINDOW = 256;

/** The median of `values`. */
export const median = (values: number[]): number => percentile(Float64Array.from(values).sort(), 50);
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

/** The figure's paths, started; {@link RpcPaths.close} stops what they started. */
export interface RpcPaths {
  series: Series[];
  /** Paths skipped on this machine, and why. */
  notes: string[];
  /** The host plugins' versions, for the machine description. */
  versions: Record<string, string>;
  /** The Go reference build (`go-peer`), when Go is available. */
  goBinary: string | undefined;
  /** The Go reference agent (`go-peer serve`), when Go is available. */
  goServer: GoPeerServer | undefined;
  close(): Promise<void>;
}

/**
 * Starts every path of the figure on `agent` (its first address unix, its second TCP):
 * latency samples take the median of `block` calls, pipelined ones time `window` calls.
 */
export async function startRpcPaths(agent: AgentProcess, block: number, window: number): Promise<RpcPaths> {
  const notes: string[] = [];
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
            ...vaccelSeries(SHARED_SERIES, shared),
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
  return {
    series,
    notes,
    versions,
    goBinary: goBuild.binary,
    goServer,
    async close() {
      echo.stop();
      nodeFloor.stop();
      await echo.client.close();
      await goClient?.close();
      await goServer?.stop();
      await Promise.all([host, unix, tcp, shared].map(({ vaccel }) => vaccel.close()));
    },
  };
}

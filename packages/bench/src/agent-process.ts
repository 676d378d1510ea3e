/**
 * Runs `vaccel-agent` as a separate process, as a host would, so "guest" figures include the
 * real process boundary and transport.
 * @module
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnTied } from '@vaccel/process';

/** A free loopback TCP port (for an agent or a peer to listen on). */
export async function freePort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** A running agent. */
export interface AgentProcess extends AsyncDisposable {
  /** Its unix socket address (`unix:///…`). */
  readonly address: string;
  /** Every address it listens on, the unix one first. */
  readonly addresses: readonly string[];
  readonly process: ChildProcess;
  /** Its Prometheus endpoint (`http://127.0.0.1:PORT/metrics`), when asked for with `metrics`. */
  readonly metricsUrl?: string;
  /** SIGTERM, wait for the exit, remove the socket folder. */
  stop(): Promise<void>;
}

/** Options of {@link startAgent}. */
export interface StartAgentOptions {
  /** `--plugins` for the agent (default: the agent's own default). */
  plugins?: string;
  /** More `-a` addresses besides the unix socket (e.g. `tcp://127.0.0.1:0` is not allowed: give a port). */
  extraAddresses?: readonly string[];
  /** More arguments. */
  args?: readonly string[];
  /** Serve Prometheus metrics on a free loopback port (see {@link AgentProcess.metricsUrl}). */
  metrics?: boolean;
  /** A descriptor of VM device memory the agent inherits (as fd 3) for its addresses. */
  deviceMemoryFd?: number;
  /** More environment variables for the agent. */
  env?: Readonly<Record<string, string>>;
}

const agentBin = (): string =>
  join(dirname(fileURLToPath(import.meta.resolve('@vaccel/agent/package.json'))), 'bin', 'vaccel-agent.js');

/** Starts an agent on a fresh unix socket; resolves once every address listens. */
export function startAgent(options: StartAgentOptions = {}): Promise<AgentProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'vaccel-bench-'));
  const addresses = [`unix://${join(dir, 'agent.sock')}`, ...(options.extraAddresses ?? [])];
  const args = [agentBin(), ...addresses.flatMap((a) => ['-a', a]), ...(options.args ?? [])];
  if (options.plugins) args.push('--plugins', options.plugins);
  if (options.metrics) args.push('--metrics', '127.0.0.1:0');
  const device = options.deviceMemoryFd;
  if (device !== undefined) args.push('--device-memory-fd', '3');
  const child = spawnTied(process.execPath, args, {
    env: { ...process.env, VACCEL_LOG_LEVEL: 'info', ...options.env },
    stdio: device === undefined ? ['ignore', 'pipe', 'pipe'] : ['ignore', 'pipe', 'pipe', device],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let output = '';
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
    rmSync(dir, { recursive: true, force: true });
  };
  return new Promise((resolve, reject) => {
    const onData = (chunk: Buffer): void => {
      output += chunk;
      // 'ready' comes once every address listens and the metrics endpoint is up.
      if (!output.includes('"msg":"ready"')) return;
      child.stdout!.off('data', onData);
      child.stdout!.resume(); // keep draining its logs
      const metricsUrl = /"url":"([^"]+)","msg":"metrics"/.exec(output)?.[1];
      resolve({
        address: addresses[0]!,
        addresses,
        process: child,
        metricsUrl,
        stop,
        [Symbol.asyncDispose]: stop,
      });
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', (chunk) => {
      output += chunk;
    });
    void exited.then(() => reject(new Error(`vaccel-agent exited before listening:\n${output}`)));
  });
}

/** What {@link agentBytes} reads. */
export interface AgentBytes {
  received: number;
  sent: number;
  /** The same, by the address the connections came in on (as the agent formats it). */
  byListener: Record<string, { received: number; sent: number }>;
}

/** Payload bytes the agent received and sent so far (from its metrics; `metrics: true` needed). */
export async function agentBytes(agent: AgentProcess): Promise<AgentBytes> {
  if (!agent.metricsUrl) throw new Error('the agent was started without metrics');
  const text = await (await fetch(agent.metricsUrl)).text();
  const read = (name: string): number =>
    Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? Number.NaN);
  const byListener: AgentBytes['byListener'] = {};
  for (const [, direction, listener, value] of text.matchAll(
    /^vaccel_agent_listener_(received|sent)_bytes_total\{listener="([^"]*)"\} (\S+)$/gm,
  )) {
    byListener[listener!] ??= { received: 0, sent: 0 };
    byListener[listener!]![direction as 'received' | 'sent'] = Number(value);
  }
  return {
    received: read('vaccel_agent_received_bytes_total'),
    sent: read('vaccel_agent_sent_bytes_total'),
    byListener,
  };
}

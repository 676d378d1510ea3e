/**
 * Runs `vaccel-agent` as a separate process, as a host would, so "guest" figures include the
 * real process boundary and transport.
 * @module
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** A running agent. */
export interface AgentProcess extends AsyncDisposable {
  /** Its unix socket address (`unix:///…`). */
  readonly address: string;
  /** Every address it listens on, the unix one first. */
  readonly addresses: readonly string[];
  readonly process: ChildProcess;
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
}

const agentBin = (): string =>
  join(dirname(fileURLToPath(import.meta.resolve('@vaccel/agent/package.json'))), 'bin', 'vaccel-agent.js');

/** Starts an agent on a fresh unix socket; resolves once every address listens. */
export function startAgent(options: StartAgentOptions = {}): Promise<AgentProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'vaccel-bench-'));
  const addresses = [`unix://${join(dir, 'agent.sock')}`, ...(options.extraAddresses ?? [])];
  const args = [agentBin(), ...addresses.flatMap((a) => ['-a', a]), ...(options.args ?? [])];
  if (options.plugins) args.push('--plugins', options.plugins);
  const child = spawn(process.execPath, args, {
    env: { ...process.env, VACCEL_LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let output = '';
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
    rmSync(dir, { recursive: true, force: true });
  };
  return new Promise((resolve, reject) => {
    let listening = 0;
    const onData = (chunk: Buffer): void => {
      output += chunk;
      listening = output.split('\n').filter((line) => line.includes('"msg":"listening"')).length;
      if (listening < addresses.length) return;
      child.stdout!.off('data', onData);
      child.stdout!.resume(); // keep draining its logs
      resolve({ address: addresses[0]!, addresses, process: child, stop, [Symbol.asyncDispose]: stop });
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', (chunk) => {
      output += chunk;
    });
    void exited.then(() => reject(new Error(`vaccel-agent exited before listening:\n${output}`)));
  });
}

import type { ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { createServer, connect as netConnect, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnTied } from '@vaccel/process';

const bin = fileURLToPath(new URL('../src/bin.ts', import.meta.url));

/** A fresh temp directory for sockets. */
export const tempDir = (): string => mkdtempSync(join(tmpdir(), 'vaccel-agent-'));

/** A free TCP port on loopback. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

export interface RunningAgent {
  process: ChildProcess;
  /** Log lines so far (parsed JSON). */
  logs: Record<string, unknown>[];
  /** SIGTERM and wait for exit; resolves to the exit code. */
  stop(): Promise<number | null>;
  /** SIGKILL at once. */
  kill(): Promise<void>;
  /** Resolves with the exit code once the agent has exited (it sends no signal). */
  readonly exited: Promise<number | null>;
  /**
   * Resolves once `check(logs)` holds, checked now and again at each new log line: the way to wait
   * for something the agent does. Rejects, naming `what`, if the agent exits first.
   */
  until(check: (logs: Record<string, unknown>[]) => boolean, what: string): Promise<void>;
}

/** Starts `vaccel-agent` from the sources as a separate process; resolves when every address listens. */
export function startAgent(args: string[], env: Record<string, string> = {}): Promise<RunningAgent> {
  const child = spawnTied(
    process.execPath,
    ['--import', 'tsx', '--conditions=@vaccel/source', bin, ...args],
    {
      env: { ...process.env, VACCEL_LOG_LEVEL: 'info', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const logs: Record<string, unknown>[] = [];
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const outputDone = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  const waiters = new Set<{ check: () => boolean; resolve: () => void }>();
  const until = (check: (logs: Record<string, unknown>[]) => boolean, what: string): Promise<void> => {
    if (check(logs)) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const waiter = { check: () => check(logs), resolve };
      waiters.add(waiter);
      // 'close' comes after the last of its output was read (and so checked).
      outputDone.then((code) => {
        if (waiters.delete(waiter)) reject(new Error(`agent exited (${code}) before ${what}`));
      });
    });
  };
  const expected = args.filter((a) => a === '-a').length || 1;
  let stderr = '';
  child.stderr!.on('data', (d) => {
    stderr += d;
  });
  return new Promise((resolve, reject) => {
    let buffered = '';
    let listening = 0;
    child.stdout!.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      for (const line of lines) {
        let entry: Record<string, unknown>;
        try {
          entry = JSON.parse(line) as Record<string, unknown>;
        } catch {
          continue; // not a log line
        }
        logs.push(entry);
        for (const waiter of waiters) {
          if (!waiter.check()) continue;
          waiters.delete(waiter);
          waiter.resolve();
        }
        if (entry.msg === 'listening' && ++listening === expected) {
          resolve({
            process: child,
            logs,
            stop: async () => {
              child.kill('SIGTERM');
              return exited;
            },
            kill: async () => {
              child.kill('SIGKILL');
              await exited;
            },
            exited,
            until,
          });
        }
      }
    });
    exited.then((code) => reject(new Error(`agent exited with ${code} before listening: ${stderr}`)));
  });
}

/**
 * A stand-in for Firecracker's vsock muxer: accepts on `uds`, answers `CONNECT <port>\n` with
 * `OK <n>\n` and splices the connection to `<uds>_<port>` (where a listener stands in for the
 * guest's).
 */
export function fakeVmm(uds: string): Promise<Server> {
  const server = createServer((socket) => {
    let head = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      head = Buffer.concat([head, chunk]);
      const newline = head.indexOf(0x0a);
      if (newline < 0) return;
      socket.off('data', onData);
      const match = /^CONNECT (\d+)$/.exec(head.subarray(0, newline).toString());
      if (!match) {
        socket.end();
        return;
      }
      const upstream = netConnect(`${uds}_${match[1]}`, () => {
        socket.write('OK 1073741824\n');
        const rest = head.subarray(newline + 1);
        if (rest.byteLength > 0) upstream.write(rest);
        socket.pipe(upstream).pipe(socket);
      });
      upstream.on('error', () => socket.destroy());
      socket.on('error', () => upstream.destroy());
    };
    socket.on('data', onData);
  });
  return new Promise((resolve) => server.listen(uds, () => resolve(server)));
}

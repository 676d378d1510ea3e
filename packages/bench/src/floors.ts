/**
 * The floors `vaccel-bench rpc` compares our wire with, measured on this machine in the same run:
 * two C processes over an AF_UNIX socket (native/unix-floor.c, compiled at bench time with `cc`),
 * and containerd/ttrpc in Go (the conformance peer, built from Debian's Go packages). Each is
 * skipped, with the reason, where its toolchain is missing.
 * @module
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { buildGoPeer, runGoPeer } from '@vaccel/conformance';

const run = promisify(execFile);
const SOURCE = fileURLToPath(new URL('../native/unix-floor.c', import.meta.url));

/** A built helper, or why there is none. */
export type Helper = { binary: string; skip?: undefined } | { binary?: undefined; skip: string };

/** Compiles the C floor (cached by a hash of its source). */
export async function buildCFloor(): Promise<Helper> {
  const source = readFileSync(SOURCE);
  const dir = join(
    tmpdir(),
    `vaccel-unix-floor-${createHash('sha256').update(source).digest('hex').slice(0, 16)}`,
  );
  const binary = join(dir, 'unix-floor');
  if (existsSync(binary)) return { binary };
  mkdirSync(dir, { recursive: true });
  try {
    await run('cc', ['-O2', '-o', `${binary}.${process.pid}`, SOURCE]);
  } catch (error) {
    const { code, stderr } = error as { code?: string; stderr?: string };
    return {
      skip: code === 'ENOENT' ? 'no C compiler (cc) on this machine' : `cc failed: ${stderr ?? error}`,
    };
  }
  renameSync(`${binary}.${process.pid}`, binary);
  return { binary };
}

/** The C floor's samples: µs per round trip (`rtt`) or per one-way message plus a 1-byte ack (`bulk`). */
export async function cFloor(
  binary: string,
  mode: 'rtt' | 'bulk',
  count: number,
  bytes: number,
): Promise<number[]> {
  const { stdout } = await run(binary, [mode, String(count), String(bytes)], { maxBuffer: 64 << 20 });
  return (JSON.parse(stdout) as { samples: number[] }).samples;
}

/** The Go peer, or why there is none. */
export async function goPeer(): Promise<Helper> {
  try {
    return await buildGoPeer();
  } catch (error) {
    return { skip: (error as Error).message };
  }
}

/** The Go reference client's samples against a conformance.Peer server (µs per call). */
export async function goClientSamples(
  binary: string,
  socket: string,
  mode: 'rtt' | 'bulk',
  count: number,
  bytes = 0,
): Promise<number[]> {
  const [line] = (await runGoPeer(binary, ['bench', socket, mode, String(count), String(bytes)])) as {
    samples: number[];
  }[];
  return line!.samples;
}

/** The Go reference client's pipelined rate (calls/s) against a conformance.Peer server. */
export async function goClientPipelined(
  binary: string,
  socket: string,
  count: number,
  window: number,
): Promise<number> {
  const [line] = (await runGoPeer(binary, ['bench', socket, 'pipelined', String(count), String(window)])) as {
    rate: number;
  }[];
  return line!.rate;
}

/** What `go-peer load` reports. */
export interface LoadResult {
  calls: number;
  seconds: number;
  rate: number;
  errors: number;
}

/** Runs the Go reference client's load (small SGEMM genops) against an agent socket. */
export async function goLoad(
  binary: string,
  socket: string,
  connections: number,
  inflight: number,
  seconds: number,
): Promise<LoadResult> {
  const [line] = (await runGoPeer(
    binary,
    ['load', socket, String(connections), String(inflight), String(seconds)],
    (seconds + 60) * 1000,
  )) as LoadResult[];
  return line!;
}

/** Resident set size of a process in bytes (Linux /proc). */
export function rssOf(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = /VmRSS:\s+(\d+) kB/.exec(status);
  return kb ? Number(kb[1]) * 1024 : Number.NaN;
}

/**
 * `@vaccel/conformance`: the reference side of the ttRPC conformance suite. The Go peer in
 * `go-peer/` is built on containerd/ttrpc from Debian's packages (`golang-go
 * golang-github-containerd-ttrpc-dev golang-google-protobuf-dev`), once per source version, into
 * a cache folder; the tests and `vaccel-bench rpc` start it. {@link peerMethods} is the same
 * `conformance.Peer` service in TypeScript, for the Go peer to drive.
 * @module
 */
import { type ChildProcess, execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { spawnTied } from '@vaccel/process';

export { PEER_SERVICE, peerMethods } from './peer-service.js';

const run = promisify(execFile);
const SOURCE = join(dirname(fileURLToPath(import.meta.url)), '..', 'go-peer');
/** Where Debian's Go packages put their sources (a GOPATH). */
const GOPATH = '/usr/share/gocode';
const TTRPC_SOURCE = join(GOPATH, 'src/github.com/containerd/ttrpc');
const PROTOWIRE_SOURCE = join(GOPATH, 'src/google.golang.org/protobuf/encoding/protowire');

/** The built peer, or why it cannot be built here. */
export type GoPeerBuild = { binary: string; skip?: undefined } | { binary?: undefined; skip: string };

let built: Promise<GoPeerBuild> | undefined;

/** Finds `go` on PATH (or /usr/lib/go/bin). */
function findGo(): string | undefined {
  for (const dir of [...(process.env.PATH ?? '').split(':'), '/usr/lib/go/bin']) {
    if (dir && existsSync(join(dir, 'go'))) return join(dir, 'go');
  }
  return undefined;
}

/**
 * Builds the Go peer (cached by a hash of its sources). Resolves with a `skip` reason, never
 * rejects, when Go or the ttRPC sources are not installed; a failing build rejects.
 */
export function buildGoPeer(): Promise<GoPeerBuild> {
  built ??= (async (): Promise<GoPeerBuild> => {
    const go = findGo();
    const install = 'apt-get install golang-go golang-github-containerd-ttrpc-dev golang-google-protobuf-dev';
    if (!go) return { skip: `no Go toolchain (${install})` };
    if (!existsSync(TTRPC_SOURCE))
      return { skip: `containerd/ttrpc sources missing from ${GOPATH} (${install})` };
    if (!existsSync(PROTOWIRE_SOURCE))
      return { skip: `protobuf sources missing from ${GOPATH} (${install})` };
    const files = readdirSync(SOURCE)
      .filter((name) => name.endsWith('.go'))
      .sort();
    const hash = createHash('sha256');
    for (const name of files) hash.update(name).update(readFileSync(join(SOURCE, name)));
    const dir = join(tmpdir(), `vaccel-go-peer-${hash.digest('hex').slice(0, 16)}`);
    const binary = join(dir, 'go-peer');
    if (existsSync(binary)) return { binary };
    mkdirSync(dir, { recursive: true });
    const env = { ...process.env, GO111MODULE: 'off', GOPATH, GOCACHE: join(dir, 'cache'), GOFLAGS: '' };
    const partial = `${binary}.${process.pid}`;
    try {
      await run(go, ['build', '-o', partial, '.'], { cwd: SOURCE, env, maxBuffer: 16 << 20 });
    } catch (error) {
      const { stderr } = error as { stderr?: string };
      throw new Error(`building the Go conformance peer failed:\n${stderr ?? error}`);
    }
    await run('mv', [partial, binary]);
    rmSync(join(dir, 'cache'), { recursive: true, force: true });
    return { binary };
  })();
  return built;
}

/** One check the Go peer ran. */
export interface PeerCheck {
  name: string;
  ok: boolean;
  detail?: string;
}

/** Runs `go-peer MODE ARGS…` to completion; returns its JSON lines. */
export async function runGoPeer(
  binary: string,
  args: readonly string[],
  timeoutMs = 120_000,
): Promise<unknown[]> {
  const { stdout } = await run(binary, [...args], { timeout: timeoutMs, maxBuffer: 16 << 20 });
  return stdout
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as unknown);
}

/** A running `go-peer serve`. */
export interface GoPeerServer extends AsyncDisposable {
  /** Its unix socket path. */
  readonly path: string;
  readonly process: ChildProcess;
  stop(): Promise<void>;
}

/**
 * Starts `go-peer <args>`; resolves with what `ready` makes of its stdout once it says it listens
 * (`ready` returns undefined until then). `cleanup` runs after it exits on stop.
 */
function spawnGoPeer<T>(
  binary: string,
  args: string[],
  ready: (stdout: string) => T | undefined,
  cleanup: () => void = () => {},
): Promise<{ value: T; process: ChildProcess; stop(): Promise<void> }> {
  const child = spawnTied(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let output = '';
  child.stderr!.on('data', (chunk) => {
    output += chunk;
  });
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
    cleanup();
  };
  return new Promise((resolve, reject) => {
    let said = '';
    const onData = (chunk: Buffer): void => {
      said += chunk.toString();
      const value = ready(said);
      if (value === undefined) return;
      child.stdout!.off('data', onData);
      child.stdout!.resume();
      resolve({ value, process: child, stop });
    };
    child.stdout!.on('data', onData);
    void exited.then(() => reject(new Error(`go-peer ${args[0]} exited before listening:\n${output}`)));
  });
}

/** Starts `go-peer serve` on a fresh unix socket; resolves once it listens. */
export async function startGoPeer(binary: string): Promise<GoPeerServer> {
  const dir = mkdtempSync(join(tmpdir(), 'vaccel-go-peer-'));
  const path = join(dir, 'peer.sock');
  const { process, stop } = await spawnGoPeer(
    binary,
    ['serve', path],
    (said) => (said.length > 0 ? path : undefined),
    () => rmSync(dir, { recursive: true, force: true }),
  );
  return { path, process, stop, [Symbol.asyncDispose]: stop };
}

/** A running `go-peer upstream`: a TCP agent writing like upstream's (header and body apart, Nagle on). */
export interface GoUpstreamAgent extends AsyncDisposable {
  /** Its `tcp://host:port` address. */
  readonly address: string;
  readonly process: ChildProcess;
  stop(): Promise<void>;
}

/**
 * Starts `go-peer upstream` on a free loopback TCP port (`version` `'0.7'`: answering on vAccel
 * 0.7.1's service string only); resolves once it listens.
 */
export async function startGoUpstream(binary: string, version?: '0.7'): Promise<GoUpstreamAgent> {
  const { value, process, stop } = await spawnGoPeer(
    binary,
    ['upstream', '127.0.0.1:0', ...(version ? [version] : [])],
    (said) => /^listening (\S+)\n/.exec(said)?.[1],
  );
  return { address: `tcp://${value}`, process, stop, [Symbol.asyncDispose]: stop };
}

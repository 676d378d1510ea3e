/**
 * `vaccel-agent`: serve vAccel operations to guests.
 * @module
 */
import { readFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
import {
  isVaccelError,
  LogLevel,
  logLevelName,
  parseLogLevel,
  splitList,
  Vaccel,
  VaccelError,
} from '@vaccel/core';
import { keepFreedMemory } from '@vaccel/memory';
import { DEFAULT_ADDRESS } from '@vaccel/protocol';
import { checkMaxFrame } from '@vaccel/ttrpc';
import pino from 'pino';
import { Agent } from './agent.js';
import { AgentMetrics } from './metrics.js';
import { parseTenants } from './tenants.js';

/**
 * The compute threads' nice value: beside four guests looping SGEMMs on 2 cores, 10 took a light
 * guest's noop p50 from 1.3 to 0.9 ms (its value alone) and p99 from 17 to 8 ms, at the same
 * detection throughput (`vaccel-bench tenants`).
 */
const DEFAULT_COMPUTE_NICE = 10;

const usage = `Usage: vaccel-agent [options]

Serves vAccel operations to guests over ttRPC (vAccel 0.8 wire protocol), running them on the
host's plugins. Sessions and resources belong to the connection that made them and are freed
when it closes.

  -a, --address ADDR       listen address, repeatable (default ${DEFAULT_ADDRESS}):
                           unix:///path (created 0600), tcp://host:port, tls://host:port,
                           vsock://-1:PORT (AF_VSOCK, any CID; needs the @vaccel/memory addon);
                           for Firecracker hybrid vsock listen on unix://<uds>_<port>
  --tls-cert FILE          certificate (PEM) for tls:// addresses; with it tcp:// serves TLS too
  --tls-key FILE           its private key (PEM)
  --tls-ca FILE            CA (PEM) of client certificates: clients must present one (mutual TLS)
  --insecure               allow plain tcp:// on a non-loopback address (refused otherwise: data
                           and tokens would cross the network in clear)
  --plugins LIST           ':'-separated plugins (default: VACCEL_PLUGINS, else the builtin
                           set and the ONNX plugin: classification, model ops, fast sgemm)
  --max-frame BYTES        largest frame accepted (default 268435456; upstream allows 1 GiB)
  --max-sessions N         sessions per connection (default 1024)
  --max-inflight N         calls in flight per connection (default 4096)
  --max-resource-bytes N   resource bytes per connection (default 4294967296)
  --max-memory BYTES       bytes in flight for all guests together (frames, decoded images, op
                           outputs), admitted before they are allocated; over it a call gets
                           RESOURCE_EXHAUSTED (ENOMEM). Suffixes K, M, G (KiB, MiB, GiB) allowed
                           (default: half the memory of the machine, or of its cgroup if lower)
  --max-image-pixels N     largest image an image op decodes, checked on its header; larger ones
                           get RESOURCE_EXHAUSTED (E2BIG) (default: VACCEL_MAX_IMAGE_PIXELS, else
                           40000000)
  --compute-slots N        compute ops (model runs, image ops, big SGEMMs, AES and other ops on
                           64 KiB of args or more) running at once, all tenants together; the rest
                           wait in per-tenant FIFO queues served in fair order (by CPU time used);
                           cheap ops (noop, sessions, resources, listing, health) never wait
                           (default: the cores, ${availableParallelism()} here). ONNX runs go to as many
                           compute threads, each with cores ÷ N ONNX Runtime threads, so that no
                           run holds the event loop that answers every guest; a shipped model's run
                           that starts alone takes every core (VACCEL_ONNX_WIDE_THREADS, 0: off)
  --compute-nice N         nice value (0–19) of the compute threads: higher lets the event loop,
                           and so every guest's noops and replies, preempt runs sooner, at the
                           cost of runs yielding to other processes too
                           (default ${DEFAULT_COMPUTE_NICE}; VACCEL_ONNX_COMPUTE_NICE)
  --max-queued N           compute calls one tenant (a connection, or a token's group with
                           --tenants-file) may have queued or running; more get
                           RESOURCE_EXHAUSTED (EBUSY) (default 64)
  --no-scheduling          run every op the moment it arrives (no compute pool; for comparison)
  --max-connections N      guest connections held at once, all peers together; a new one over
                           it is closed at once, logged and counted (default 1024)
  --max-peer-connections N guest connections held at once per peer (a unix peer's uid, a TCP
                           peer's address) (default 256)
  --idle-timeout DURATION  close a connection silent this long that holds no session, resource
                           or region and has no call in flight (default 60s; 500ms, 2m allowed)
  --frame-timeout DURATION close a connection whose frame started and did not finish within this
                           (a half-sent frame holds its buffer) (default 30s)
  --max-unsent-bytes BYTES reply bytes a guest may leave unread: past it its connection is not
                           read (no new requests) until it reads; a big reply past twice it gets
                           RESOURCE_EXHAUSTED (default 64M)
  --max-stream-bytes BYTES bytes one client stream (GenopStream) may carry; past it the stream
                           gets RESOURCE_EXHAUSTED (default: --max-frame)
  --max-handovers N        handover-socket (<socket>.shm) connections and unclaimed handovers
                           held at once, all guests together (default 256)
  --max-peer-handovers N   of those, per guest process (default 4)
  --token-file PATH        require 'authorization: Bearer <token>' metadata with this token
  --tenants-file PATH      require one of the tokens this file lists, one per line as
                           '<token> <group> [weight]': calls are scheduled by their token's group
                           (its connections share one fair share and one --max-queued), weighted
                           (default 1; a weight-2 group gets twice the compute of a weight-1 one
                           when both wait); not with --token-file
  --device-memory-fd N     an inherited descriptor of the memory behind the ivshmem device of the
                           VM that connects on these addresses: it may attach it as a shared
                           region (vaccel-vm run --shm passes it)
  --no-shared-memory       no handover socket: local guests send their data in-band
  --profiling              time every op into per-session regions, served by GetProfiler (0.8)
                           and GetTimers (0.7.1) (default: VACCEL_PROFILING_ENABLED)
  --metrics HOST:PORT      serve Prometheus metrics at http://HOST:PORT/metrics, and probes:
                           /healthz (liveness), /readyz (readiness: listening, not draining);
                           over ttRPC, grpc.health.v1.Health/Check answers the same
  --log-level LEVEL        1-4 or error|warn|info|debug (default: VACCEL_LOG_LEVEL, else info)
  -h, --help               this help

Logs are JSON lines (pino) on stdout. SIGTERM/SIGINT: stop accepting, finish in-flight calls,
exit; a second signal exits at once.`;

function count(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n <= 0)
    throw new VaccelError('EINVAL', `--${name} must be a positive integer, got ${value}`);
  return n;
}

const UNITS: Record<string, number> = { '': 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40 };

/** A byte count with an optional binary suffix: `1073741824`, `512M`, `2GiB`. */
function byteCount(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  const m = /^(\d+)\s*([KMGT]?)(?:i?B)?$/i.exec(value.trim());
  const n = m ? Number(m[1]) * UNITS[m[2]!.toUpperCase()]! : Number.NaN;
  if (!Number.isSafeInteger(n) || n <= 0)
    throw new VaccelError('EINVAL', `--${name} must be a positive byte count (e.g. 2G), got ${value}`);
  return n;
}

/** A duration in milliseconds: `30s`, `500ms`, `2m`, or a plain number of seconds. */
function duration(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m)?$/.exec(value.trim());
  const scale = { ms: 1, s: 1000, m: 60_000 }[(m?.[2] ?? 's') as 'ms' | 's' | 'm'];
  const ms = m ? Number(m[1]) * scale : Number.NaN;
  if (!Number.isFinite(ms) || ms < 1 || ms > 2 ** 31 - 1)
    throw new VaccelError('EINVAL', `--${name} must be a duration from 1ms (e.g. 30s, 500ms), got ${value}`);
  return Math.round(ms);
}

/** `object` without its undefined entries (so they do not override defaults when spread). */
function definedOnly<T extends object>(object: T): Partial<T> {
  return Object.fromEntries(Object.entries(object).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** `--max-frame` within what ttRPC's 32-bit length field can carry (ttRPC's own check). */
function frameLimit(value: number | undefined): number | undefined {
  if (value === undefined) return undefined;
  try {
    return checkMaxFrame(value, '--max-frame');
  } catch (error) {
    throw new VaccelError('EINVAL', (error as Error).message);
  }
}

/** Reads the TLS files given on the command line. @throws VaccelError naming a missing or unreadable one. */
async function tlsFiles(
  cert: string | undefined,
  key: string | undefined,
  ca: string | undefined,
): Promise<{ cert: Buffer; key: Buffer; ca?: Buffer } | undefined> {
  if (!cert && !key && !ca) return undefined;
  if (!cert || !key)
    throw new VaccelError('EINVAL', '--tls-cert and --tls-key go together (and --tls-ca needs both)');
  const read = async (path: string, flag: string) => {
    try {
      return await readFile(path);
    } catch (cause) {
      throw new VaccelError('ENOENT', `${flag} ${path}: ${(cause as Error).message}`, { cause });
    }
  };
  return {
    cert: await read(cert, '--tls-cert'),
    key: await read(key, '--tls-key'),
    ...(ca ? { ca: await read(ca, '--tls-ca') } : {}),
  };
}

/** Runs the agent until a signal; resolves to the exit code. */
export async function main(argv: string[]): Promise<number> {
  let values: ReturnType<typeof parse>['values'];
  const parse = (args: string[]) =>
    parseArgs({
      args,
      strict: true,
      options: {
        address: { type: 'string', short: 'a', multiple: true },
        plugins: { type: 'string' },
        'max-frame': { type: 'string' },
        'max-sessions': { type: 'string' },
        'max-inflight': { type: 'string' },
        'max-resource-bytes': { type: 'string' },
        'max-memory': { type: 'string' },
        'max-image-pixels': { type: 'string' },
        'max-connections': { type: 'string' },
        'max-peer-connections': { type: 'string' },
        'idle-timeout': { type: 'string' },
        'frame-timeout': { type: 'string' },
        'max-unsent-bytes': { type: 'string' },
        'max-stream-bytes': { type: 'string' },
        'max-handovers': { type: 'string' },
        'max-peer-handovers': { type: 'string' },
        'token-file': { type: 'string' },
        'tenants-file': { type: 'string' },
        'compute-slots': { type: 'string' },
        'compute-nice': { type: 'string' },
        'max-queued': { type: 'string' },
        'no-scheduling': { type: 'boolean', default: false },
        'device-memory-fd': { type: 'string' },
        'no-shared-memory': { type: 'boolean', default: false },
        metrics: { type: 'string' },
        profiling: { type: 'boolean' },
        'tls-cert': { type: 'string' },
        'tls-key': { type: 'string' },
        'tls-ca': { type: 'string' },
        insecure: { type: 'boolean', default: false },
        'log-level': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  try {
    values = parse(argv).values;
  } catch (error) {
    process.stderr.write(`vaccel-agent: ${(error as Error).message}\nTry 'vaccel-agent --help'.\n`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(`${usage}\n`);
    return 0;
  }
  const levelText = values['log-level'] ?? process.env.VACCEL_LOG_LEVEL;
  const level = levelText ? parseLogLevel(levelText) : LogLevel.Info;
  if (level === undefined) {
    process.stderr.write(`vaccel-agent: log level ${levelText} is not 1-4 or error|warn|info|debug\n`);
    return 2;
  }
  const logger = pino({ level: logLevelName(level), base: { name: 'vaccel-agent' } });
  // Ops allocate the same big buffers call after call: keep freed memory rather than fault it in
  // again each time (VACCEL_KEEP_FREED_MEMORY=0 turns this off).
  logger.debug({ keepFreedMemory: keepFreedMemory() }, 'allocator');
  try {
    const token = values['token-file'] ? (await readFile(values['token-file'], 'utf8')).trim() : undefined;
    if (values['token-file'] && !token)
      throw new VaccelError('EINVAL', `token file ${values['token-file']} is empty`);
    const tenantsFile = values['tenants-file'];
    if (tenantsFile && token)
      throw new VaccelError('EINVAL', 'give --token-file or --tenants-file, not both');
    const tenants = tenantsFile ? parseTenants(await readFile(tenantsFile, 'utf8'), tenantsFile) : undefined;
    const metrics = new AgentMetrics();
    const maxImagePixels = count(values['max-image-pixels'], 'max-image-pixels');
    // The ONNX plugin checks images itself too (for embedded use): it reads the same limit.
    if (maxImagePixels !== undefined) process.env.VACCEL_MAX_IMAGE_PIXELS = String(maxImagePixels);
    const computeSlots = count(values['compute-slots'], 'compute-slots') ?? availableParallelism();
    const scheduling = !values['no-scheduling'];
    // The ONNX plugin runs the host's models and big SGEMMs on compute threads, one per slot, so
    // that no run holds the event loop that answers every guest; each run gets cores ÷ slots
    // ONNX Runtime threads, so runs in all slots together never ask for more threads than there
    // are cores (docs/security.md). The environment, when set, wins: the plugin reads it.
    process.env.VACCEL_ONNX_COMPUTE_THREADS ||= String(computeSlots);
    // Below the event loop's priority by default, so that it preempts a run at once to answer a
    // guest: measured with `vaccel-bench tenants` (docs/security.md).
    const nice = values['compute-nice'];
    if (nice !== undefined && (!/^\d+$/.test(nice) || Number(nice) > 19))
      throw new VaccelError('EINVAL', `--compute-nice must be an integer from 0 to 19, got ${nice}`);
    if (nice !== undefined) process.env.VACCEL_ONNX_COMPUTE_NICE = nice;
    else process.env.VACCEL_ONNX_COMPUTE_NICE ||= String(DEFAULT_COMPUTE_NICE);
    process.env.VACCEL_ONNX_THREADS ||= String(
      Math.max(1, Math.floor(availableParallelism() / computeSlots)),
    );
    // The agent runs ops on this host: it never forwards them to another agent.
    const vaccel = await Vaccel.open({
      logger,
      env: { ...process.env, VACCEL_RPC_ADDRESS: undefined, VACCEL_RPC_ADDR: undefined },
      ...(values.profiling ? { profiling: true } : {}),
      plugins:
        values.plugins !== undefined
          ? splitList(values.plugins)
          : process.env.VACCEL_PLUGINS
            ? undefined
            : (await import('@vaccel/plugin-onnx')).hostPlugins(process.env),
    });
    const agent = new Agent({
      vaccel,
      logger,
      sharedMemory: !values['no-shared-memory'],
      metrics,
      token,
      ...(tenants ? { tenants } : {}),
      maxFrame: frameLimit(count(values['max-frame'], 'max-frame')),
      maxInflight: count(values['max-inflight'], 'max-inflight'),
      maxMemory: byteCount(values['max-memory'], 'max-memory'),
      bounds: definedOnly({
        maxConnections: count(values['max-connections'], 'max-connections'),
        maxPeerConnections: count(values['max-peer-connections'], 'max-peer-connections'),
        idleTimeoutMs: duration(values['idle-timeout'], 'idle-timeout'),
        frameTimeoutMs: duration(values['frame-timeout'], 'frame-timeout'),
        maxUnsentBytes: byteCount(values['max-unsent-bytes'], 'max-unsent-bytes'),
        maxStreamBytes: byteCount(values['max-stream-bytes'], 'max-stream-bytes'),
        maxHandovers: count(values['max-handovers'], 'max-handovers'),
        maxPeerHandovers: count(values['max-peer-handovers'], 'max-peer-handovers'),
      }),
      maxImagePixels,
      computeSlots,
      maxQueued: count(values['max-queued'], 'max-queued'),
      scheduling,
      limits: {
        ...(values['max-sessions'] ? { maxSessions: count(values['max-sessions'], 'max-sessions') } : {}),
        ...(values['max-resource-bytes']
          ? { maxResourceBytes: count(values['max-resource-bytes'], 'max-resource-bytes') }
          : {}),
      },
    });
    const deviceMemoryFd =
      values['device-memory-fd'] === undefined
        ? undefined
        : count(values['device-memory-fd'], 'device-memory-fd');
    const tls = await tlsFiles(values['tls-cert'], values['tls-key'], values['tls-ca']);
    for (const address of values.address ?? [DEFAULT_ADDRESS])
      await agent.listen(address, {
        deviceMemoryFd,
        insecure: values.insecure,
        ...(tls && (address.startsWith('tcp:') || address.startsWith('tls:')) ? { tls } : {}),
      });
    let metricsServer: Awaited<ReturnType<AgentMetrics['serve']>> | undefined;
    if (values.metrics) {
      const m = /^(.+):(\d+)$/.exec(values.metrics);
      if (!m) throw new VaccelError('EINVAL', `--metrics must be HOST:PORT, got ${values.metrics}`);
      metricsServer = await metrics.serve(m[1]!, Number(m[2]), () => agent.ready);
      // Port 0 takes a free port: say which.
      const { port } = metricsServer.address() as { port: number };
      logger.info({ url: `http://${m[1]!.includes(':') ? `[${m[1]}]` : m[1]}:${port}/metrics` }, 'metrics');
    }
    logger.info({ plugins: vaccel.plugins().map((p) => p.name), maxMemory: agent.budget.limit }, 'ready');
    await new Promise<void>((resolve) => {
      let stopping = false;
      const stop = (signal: string): void => {
        if (stopping) process.exit(1);
        stopping = true;
        logger.info({ signal }, 'draining');
        agent
          .shutdown()
          .then(() => vaccel.close())
          .finally(() => {
            metricsServer?.close();
            resolve();
          });
      };
      process.on('SIGTERM', () => stop('SIGTERM'));
      process.on('SIGINT', () => stop('SIGINT'));
    });
    logger.info('stopped');
    return 0;
  } catch (error) {
    logger.error(
      { code: isVaccelError(error) ? error.code : undefined, err: (error as Error).message },
      'agent failed',
    );
    process.stderr.write(`vaccel-agent: ${(error as Error).message}\n`);
    return 1;
  }
}

/**
 * The agent: a ttRPC server exposing the vAccel agent service (under both upstream service
 * names) on one or more addresses, backed by a @vaccel/core runtime.
 * @module
 */
import { fstatSync } from 'node:fs';
import type { Server as NetServer, Socket } from 'node:net';
import { type Logger, type Vaccel, VaccelError } from '@vaccel/core';
import { native, nativeAvailable } from '@vaccel/memory';
import {
  formatAddress,
  isLoopback,
  listen,
  parseAddress,
  quickAckOnRead,
  type TlsServerOptions,
} from '@vaccel/protocol';
import {
  AGENT_SERVICE_ASYNC,
  AGENT_SERVICE_SYNC,
  AgentService,
  AgentServiceV071,
  SharedMemoryService,
  serviceHandlers,
} from '@vaccel/protocol/service';
import {
  type CallContext,
  type Connection,
  codeName,
  payloadLength,
  Server,
  type ServerInterceptor,
} from '@vaccel/ttrpc';
import { Admission } from './admission.js';
import { guestStatus } from './boundary.js';
import { type ConnectionBounds, ConnectionGovernor, DEFAULT_BOUNDS } from './bounds.js';
import { defaultMemoryBudget, MemoryBudget } from './budget.js';
import { HandoverSocket } from './handover.js';
import { AgentMetrics } from './metrics.js';
import { timersService } from './profiler.js';
import { Scheduler, Tenant } from './scheduler.js';
import { agentService } from './service.js';
import { sharedMemoryService } from './shared-memory.js';
import { type ConnectionLimits, ConnectionState, type DeviceMemory } from './state.js';
import { TokenTable, type TokenTenant } from './tenants.js';

/** Options of an {@link Agent}. */
export interface AgentOptions {
  /** The runtime that runs the ops (with the host's plugins). */
  vaccel: Vaccel;
  logger: Logger;
  /** Largest frame accepted (default 256 MiB; upstream's fork allows 1 GiB). */
  maxFrame?: number;
  /** Calls in flight per connection (default 4096). */
  maxInflight?: number;
  /**
   * Bytes in flight for all guests together (frames, decoded images, op outputs), admitted before
   * they are allocated (default: half the machine's memory, or of its cgroup's limit if lower).
   */
  maxMemory?: number;
  /**
   * Largest image an image op may decode, in pixels, checked on its header (default: the ONNX
   * plugin's, `VACCEL_MAX_IMAGE_PIXELS` or 40 MP).
   */
  maxImagePixels?: number;
  /** Per-connection limits. */
  limits?: Partial<ConnectionLimits>;
  /** Shared secret: when set, every call must carry metadata `authorization: Bearer <token>`. */
  token?: string;
  /**
   * Tokens by tenant (see tenants.ts): every call must carry one of these tokens, and is
   * scheduled in its token's group, with the group's weight. Not with `token`.
   */
  tenants?: ReadonlyMap<string, TokenTenant>;
  metrics?: AgentMetrics;
  /** Connection caps, timeouts and backpressure (see bounds.ts; defaults in DEFAULT_BOUNDS). */
  bounds?: Partial<ConnectionBounds>;
  /** Compute runs at once, all guests together (default: the cores; see scheduler.ts). */
  computeSlots?: number;
  /** Compute calls one tenant (a connection, or a token's group) may have queued or running before EBUSY (default 64). */
  maxQueued?: number;
  /** False runs every op the moment it arrives, unscheduled, as before issue 22 (default true). */
  scheduling?: boolean;
  /**
   * Offer shared memory to local guests (default true where the @vaccel/memory addon loads): the
   * first unix address gets a handover socket beside it, `<path>.shm`.
   */
  sharedMemory?: boolean;
  /**
   * Re-arm TCP_QUICKACK after each read of a TCP (or TLS) connection, where the @vaccel/memory
   * addon loads (default true): an upstream client writes a request's header and body in two
   * sends with Nagle on, so the body waits for our ACK of the header, which Linux would delay by
   * up to 40 ms (docs/protocol.md §8.2). Default: true unless `VACCEL_RPC_QUICKACK=0`.
   */
  quickAck?: boolean;
}

/** Options of {@link Agent.listen}. */
export interface ListenOptions {
  /**
   * A descriptor of the memory the host gave the VM that connects here (its ivshmem device's
   * backing memfd or file): connections on this address may attach it as a shared region.
   */
  deviceMemoryFd?: number;
  /** Serve TLS on this tcp:// or tls:// address (with `ca`: clients must present a certificate it signed). */
  tls?: TlsServerOptions;
  /**
   * Allow plain TCP on a non-loopback address. Without TLS, tensors and tokens would cross the
   * network in clear, so the agent refuses that unless told (default false).
   */
  insecure?: boolean;
}

const GiB = 1024 ** 3;

/** The standard health service (grpc.health.v1), served over ttRPC for probes. */
export const HEALTH_SERVICE = 'grpc.health.v1.Health';

/** What identifies an accepted socket for good: its libuv handle (else the stream itself). */
const handleOf = (stream: object): object => (stream as { _handle?: object | null })._handle ?? stream;

/** The CID of a vsock peer (the VM at the other end), when the stream is one. */
function vsockPeer(stream: unknown): number | undefined {
  const fd = (stream as { _handle?: { fd?: number } })._handle?.fd ?? -1;
  if (fd < 0 || !nativeAvailable()) return undefined;
  try {
    return native().vsockAddress(fd, true).cid;
  } catch {
    return undefined; // not AF_VSOCK
  }
}

/**
 * Who is at the other end, asked once per connection: `key` groups connections for the per-peer
 * caps (a TCP peer's address, a vsock peer's CID — each VM its own peer, as SO_PEERCRED on vsock
 * names no one — or a unix peer's uid); `unix` is a unix-socket peer's pid and uid, when the
 * addon can ask.
 */
function identify(socket: Socket): { key?: string; unix?: { pid: number; uid: number } } {
  if (typeof socket.remoteAddress === 'string') return { key: socket.remoteAddress };
  const cid = vsockPeer(socket);
  if (cid !== undefined) return { key: `vsock:${cid}` };
  const fd = (socket as Socket & { _handle?: { fd?: number } })._handle?.fd ?? -1;
  if (fd < 0 || !nativeAvailable()) return {};
  try {
    const unix = native().peerCredentials(fd);
    return { key: `uid:${unix.uid}`, unix };
  } catch {
    return {};
  }
}

export class Agent implements AsyncDisposable {
  readonly server: Server<ConnectionState>;
  /** The compute pool and its per-guest queues. */
  readonly scheduler: Scheduler;
  readonly metrics: AgentMetrics;
  /** Bytes in flight for all guests, admitted against `maxMemory`. */
  readonly budget: MemoryBudget;
  readonly #listeners: NetServer[] = [];
  #stopping = false;
  readonly #options: AgentOptions;
  /**
   * Device memory of the VM behind a listener that has one, by accepted socket handle (ttRPC
   * moves a socket's handle into a Socket of its own, so the handle is what stays the same).
   */
  readonly #devices = new WeakMap<object, DeviceMemory>();
  /** The address each socket came in on (by its handle), for the per-listener byte counters. */
  readonly #listenerOf = new WeakMap<object, string>();
  /** Each connection's per-listener byte counters. */
  readonly #listenerBytes = new WeakMap<
    object,
    { in: { inc(n: number): void }; out: { inc(n: number): void } }
  >();
  #handover: HandoverSocket | undefined;
  readonly #governor: ConnectionGovernor;

  constructor(options: AgentOptions) {
    this.#options = options;
    this.metrics = options.metrics ?? new AgentMetrics();
    const limits: ConnectionLimits = {
      maxSessions: 1024,
      maxResourceBytes: 4 * GiB,
      maxRegions: 16,
      maxRegionBytes: 4 * GiB,
      ...options.limits,
    };
    const log = options.logger;
    this.#governor = new ConnectionGovernor({ ...DEFAULT_BOUNDS, ...options.bounds }, this.metrics, log);
    this.budget = new MemoryBudget(options.maxMemory ?? defaultMemoryBudget(), this.metrics);
    const admission = new Admission(this.budget, this.metrics, options.maxImagePixels);
    this.scheduler = new Scheduler({
      slots: options.computeSlots,
      maxQueued: options.maxQueued,
      disabled: options.scheduling === false,
      metrics: this.metrics,
    });
    if (options.token !== undefined && options.tenants !== undefined)
      throw new VaccelError('EINVAL', 'give one shared token or a tenants file, not both');
    // A tenant is a connection, or, with a tenants file, the group of the call's token (its
    // connections share one queue and one share).
    const tenants = new WeakMap<Connection<ConnectionState>, Tenant>();
    const groups = new Map(
      [...(options.tenants?.values() ?? [])].map(({ group, weight }) => [
        group,
        new Tenant(`group:${group}`, group, weight),
      ]),
    );
    const tenantOfCall = new WeakMap<CallContext, Tenant>();
    const opOf = new WeakMap<CallContext, string>();
    this.server = new Server<ConnectionState>({
      // Outermost first: metrics see every outcome, refusals by the token check included.
      interceptors: [this.#measure(opOf), this.#authorize(groups, tenantOfCall)],
      maxFrame: options.maxFrame,
      maxInflight: options.maxInflight,
      maxStreamBytes: options.bounds?.maxStreamBytes,
      admission: this.budget.frames(guestStatus),
      readHook: (stream) =>
        (options.quickAck ?? process.env.VACCEL_RPC_QUICKACK?.trim() !== '0') &&
        typeof (stream as Socket).remoteAddress === 'string' &&
        nativeAvailable()
          ? quickAckOnRead(native(), (fd) => log.debug({ fd }, 'TCP_QUICKACK re-armed after each read'))
          : undefined,
      errorToStatus: (error, ctx) => {
        const status = guestStatus(error);
        // The log keeps the whole message (host paths included): it is the host's.
        log.debug(
          {
            conn: ctx.connection.id,
            method: ctx.method,
            code: codeName(status.code),
            err: (error as Error)?.message ?? String(error),
          },
          'call failed',
        );
        return status;
      },
      onConnection: (connection) => {
        const socket = connection.stream as Socket;
        // Over a cap the connection is closed here, before it owns anything.
        const peer = identify(socket);
        if (!this.#governor.admit(connection, peer.key)) return;
        const state = new ConnectionState(
          connection.id,
          limits,
          peer.unix,
          this.#devices.get(handleOf(socket)),
        );
        connection.context = state;
        tenants.set(connection, new Tenant(String(connection.id), 'guest'));
        const listener = this.#listenerOf.get(handleOf(socket));
        if (listener)
          this.#listenerBytes.set(connection, {
            in: this.metrics.listenerBytesIn.labels({ listener }),
            out: this.metrics.listenerBytesOut.labels({ listener }),
          });
        this.metrics.connections.inc();
        log.info({ conn: connection.id }, 'guest connected');
        connection.on('close', (reason) => {
          // A clean EOF is a guest leaving; anything else (a transport error, a frame cut off,
          // a protocol violation) is worth one line with the reason.
          if (reason) log.warn({ conn: connection.id, reason: reason.message }, 'guest connection failed');
          this.metrics.connections.dec();
          const bytes = state.resourceBytes;
          state.release().then(
            (sessions) => {
              this.metrics.sessions.dec(sessions);
              this.metrics.resourceBytes.dec(bytes);
              log.info({ conn: connection.id, sessionsFreed: sessions }, 'guest disconnected');
            },
            (error: unknown) =>
              log.error({ conn: connection.id, err: String(error) }, 'freeing a connection failed'),
          );
        });
      },
    });
    const methods = serviceHandlers(
      AgentService,
      agentService(options.vaccel, this.metrics, opOf, admission, (ctx, op, bytes, run) =>
        this.scheduler.run(
          tenantOfCall.get(ctx) ?? tenants.get(ctx.connection as Connection<ConnectionState>)!,
          op,
          bytes,
          ctx.signal,
          run,
        ),
      ),
    );
    // These handlers keep no view of their request once the reply is out (ops work on their args
    // and return), so big requests are read into reused buffers. Resources (RegisterResource)
    // keep their blobs and are not listed.
    const borrowing = ['Genop', 'ImageClassification'];
    this.server.register(AGENT_SERVICE_SYNC, methods, { borrowing });
    this.server.register(AGENT_SERVICE_ASYNC, methods, { borrowing });
    // grpc.health.v1.Health/Check, the standard probe: SERVING (1) while the agent listens and is
    // not draining, NOT_SERVING (2) otherwise. The reply is hand-encoded (field 1, varint).
    this.server.register(HEALTH_SERVICE, {
      Check: () => new Uint8Array([0x08, this.ready ? 1 : 2]),
    });
    this.server.register(AgentServiceV071.typeName, serviceHandlers(AgentServiceV071, timersService()));
    this.server.register(
      SharedMemoryService.typeName,
      serviceHandlers(
        SharedMemoryService,
        sharedMemoryService(() => this.#handover),
      ),
    );
  }

  /** The handover socket's path, when local guests can share memory with this agent. */
  get handoverPath(): string | undefined {
    return this.#handover?.path;
  }

  /**
   * Listens on an address (`unix:///path` — created 0600 — or `tcp://host:port`). The first unix
   * address also gets the shared-memory handover socket, `<path>.shm` (see {@link AgentOptions}).
   */
  async listen(address: string, options: ListenOptions = {}): Promise<void> {
    const parsed = parseAddress(address);
    if (parsed.kind === 'tcp' && !options.tls && !isLoopback(parsed.host) && !options.insecure)
      throw new VaccelError(
        'EPERM',
        `refusing plain TCP on ${formatAddress(parsed)}: it is reachable from other machines and would carry data and tokens in clear; serve TLS (tls://, --tls-cert/--tls-key) or pass --insecure`,
      );
    const device = options.deviceMemoryFd === undefined ? undefined : this.#mapDevice(options.deviceMemoryFd);
    // Unix sockets are 0600 from their creation (see withUmask).
    const listener = await listen(parsed, options.tls && parsed.kind !== 'unix' ? { tls: options.tls } : {});
    // Tag this listener's sockets before the ttRPC server sees them (its handler runs after ours).
    const name = formatAddress(parsed);
    listener.prependListener('connection', (socket: Socket) => this.#listenerOf.set(handleOf(socket), name));
    if (device)
      listener.prependListener('connection', (socket: Socket) => this.#devices.set(handleOf(socket), device));
    this.server.listen(listener);
    this.#listeners.push(listener);
    const log = this.#options.logger;
    if (parsed.kind === 'unix' && !this.#handover && (this.#options.sharedMemory ?? true)) {
      if (nativeAvailable())
        this.#handover = HandoverSocket.open(`${parsed.path}.shm`, log, {
          maxConnections: this.#governor.bounds.maxHandovers,
          maxPerPeer: this.#governor.bounds.maxPeerHandovers,
          refused: (reason) => this.metrics.connectionsDropped.inc({ reason }),
        });
      else log.info({}, 'shared memory is off: the @vaccel/memory addon is not built (data goes in-band)');
    }
    log.info(
      {
        address: formatAddress(parsed),
        tls: options.tls ? (options.tls.ca ? 'mutual' : 'server') : undefined,
        handover: this.#handover?.path,
        deviceMemory: device?.buffer.byteLength,
      },
      'listening',
    );
  }

  /** Maps a VM's device memory (the whole file behind `fd`); the agent keeps it for its lifetime. */
  #mapDevice(fd: number): DeviceMemory {
    const size = fstatSync(fd).size;
    if (size <= 0) throw new VaccelError('EINVAL', `device memory fd ${fd} has no size`);
    return { buffer: native().mmap(fd, size, 0) };
  }

  /** True while the agent listens and is not shutting down (readiness). */
  get ready(): boolean {
    return this.#listeners.length > 0 && !this.#stopping;
  }

  /** Stops accepting, drains in-flight calls, frees every connection. */
  async shutdown(options: { signal?: AbortSignal } = {}): Promise<void> {
    this.#stopping = true;
    this.#handover?.close();
    await this.server.shutdown(options);
  }

  /** Closes everything at once. */
  close(): void {
    this.#stopping = true;
    this.server.close();
    this.#handover?.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
  }

  /**
   * The token check, on every call but the health probe's (probes carry no token): the shared
   * token, or one of the tenants file's, whose group then schedules the call.
   */
  #authorize(
    groups: ReadonlyMap<string, Tenant>,
    tenantOfCall: WeakMap<CallContext, Tenant>,
  ): ServerInterceptor<ConnectionState> {
    const { token, tenants } = this.#options;
    const table = new TokenTable(
      tenants ?? (token ? new Map([[token, { group: '', weight: 1 }]]) : new Map()),
    );
    const refuse = () =>
      Promise.reject(
        new VaccelError('EACCES', 'missing or wrong agent token (metadata "authorization: Bearer <token>")'),
      );
    return (ctx, next) => {
      if ((!token && !tenants) || ctx.service === HEALTH_SERVICE) return next();
      const tenant = table.match(ctx.metadata.get('authorization'));
      if (!tenant) return refuse();
      const group = groups.get(tenant.group);
      if (group) tenantOfCall.set(ctx, group);
      return next();
    };
  }

  /**
   * Per-call metrics (requests by method, op and status; latency; bytes) and the end of the
   * call's memory admission, for every call but the health probe's.
   */
  #measure(opOf: WeakMap<CallContext, string>): ServerInterceptor<ConnectionState> {
    // prom-client children per label set, looked up once: labels() hashes its arguments.
    const counters = new Map<string, { inc(): void }>();
    const histograms = new Map<string, { observe(value: number): void }>();
    const count = (method: string, op: string, status: string) => {
      const key = `${method}\n${op}\n${status}`;
      let child = counters.get(key);
      if (!child) {
        child = this.metrics.requests.labels({ method, op, status });
        counters.set(key, child);
      }
      child.inc();
    };
    const observe = (method: string, op: string, seconds: number) => {
      const key = `${method}\n${op}`;
      let child = histograms.get(key);
      if (!child) {
        child = this.metrics.latency.labels({ method, op });
        histograms.set(key, child);
      }
      child.observe(seconds);
    };
    return async (ctx, next, request) => {
      if (ctx.service === HEALTH_SERVICE) return next();
      const started = performance.now();
      let status = 'OK';
      try {
        const reply = await next();
        const bytes = payloadLength(reply);
        this.metrics.bytesOut.inc(bytes);
        this.#listenerBytes.get(ctx.connection)?.out.inc(bytes);
        return reply;
      } catch (error) {
        status = codeName(guestStatus(error).code);
        throw error;
      } finally {
        // What the call was admitted (decoded images, outputs) goes back when it ends.
        this.budget.endCall(ctx);
        const op = opOf.get(ctx) ?? '';
        this.metrics.bytesIn.inc(request?.byteLength ?? 0);
        this.#listenerBytes.get(ctx.connection)?.in.inc(request?.byteLength ?? 0);
        count(ctx.method, op, status);
        observe(ctx.method, op, (performance.now() - started) / 1e3);
      }
    };
  }
}

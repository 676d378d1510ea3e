/**
 * The agent: a ttRPC server exposing the vAccel agent service (under both upstream service
 * names) on one or more addresses, backed by a @vaccel/core runtime.
 * @module
 */
import { timingSafeEqual } from 'node:crypto';
import type { Server as NetServer } from 'node:net';
import { type Logger, type Vaccel, VaccelError } from '@vaccel/core';
import {
  AGENT_SERVICE_ASYNC,
  AGENT_SERVICE_SYNC,
  AgentService,
  formatAddress,
  listen,
  parseAddress,
  serviceHandlers,
  statusFromError,
} from '@vaccel/remote';
import { type CallContext, codeName, type Method, type Payload, payloadLength, Server } from '@vaccel/ttrpc';
import { AgentMetrics } from './metrics.js';
import { agentService } from './service.js';
import { type ConnectionLimits, ConnectionState } from './state.js';

/** Options of an {@link Agent}. */
export interface AgentOptions {
  /** The runtime that runs the ops (with the host's plugins). */
  vaccel: Vaccel;
  logger: Logger;
  /** Largest frame accepted (default 256 MiB; upstream's fork allows 1 GiB). */
  maxFrame?: number;
  /** Calls in flight per connection (default 4096). */
  maxInflight?: number;
  /** Per-connection limits. */
  limits?: Partial<ConnectionLimits>;
  /** Shared secret: when set, every call must carry metadata `authorization: Bearer <token>`. */
  token?: string;
  metrics?: AgentMetrics;
}

const GiB = 1024 ** 3;

export class Agent implements AsyncDisposable {
  readonly server: Server;
  readonly metrics: AgentMetrics;
  readonly #listeners: NetServer[] = [];
  readonly #options: AgentOptions;

  constructor(options: AgentOptions) {
    this.#options = options;
    this.metrics = options.metrics ?? new AgentMetrics();
    const limits: ConnectionLimits = { maxSessions: 1024, maxResourceBytes: 4 * GiB, ...options.limits };
    const log = options.logger;
    this.server = new Server({
      maxFrame: options.maxFrame,
      maxInflight: options.maxInflight,
      errorToStatus: (error, ctx) => {
        const status = statusFromError(error);
        log.debug(
          { conn: ctx.connection.id, method: ctx.method, code: codeName(status.code), err: status.message },
          'call failed',
        );
        return status;
      },
      onConnection: (connection) => {
        const state = new ConnectionState(connection.id, limits);
        connection.context = state;
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
    const opOf = new WeakMap<CallContext, string>();
    const methods = this.#instrument(
      serviceHandlers(AgentService, agentService(options.vaccel, this.metrics, opOf)),
      opOf,
    );
    // These handlers keep no view of their request once the reply is out (ops work on their args
    // and return), so big requests are read into reused buffers. Resources (RegisterResource)
    // keep their blobs and are not listed.
    const borrowing = ['Genop', 'ImageClassification'];
    this.server.register(AGENT_SERVICE_SYNC, methods, { borrowing });
    this.server.register(AGENT_SERVICE_ASYNC, methods, { borrowing });
  }

  /** Listens on an address (`unix:///path` — created 0600 — or `tcp://host:port`). */
  async listen(address: string): Promise<void> {
    const listener = await listen(parseAddress(address));
    this.server.listen(listener);
    this.#listeners.push(listener);
    this.#options.logger.info({ address: formatAddress(parseAddress(address)) }, 'listening');
  }

  /** Stops accepting, drains in-flight calls, frees every connection. */
  async shutdown(options: { signal?: AbortSignal } = {}): Promise<void> {
    await this.server.shutdown(options);
  }

  /** Closes everything at once. */
  close(): void {
    this.server.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
  }

  /** Wraps every method with auth, metrics and per-call logging. */
  #instrument(methods: Record<string, Method>, opOf: WeakMap<CallContext, string>): Record<string, Method> {
    const { token } = this.#options;
    const expected = token ? Buffer.from(`Bearer ${token}`) : undefined;
    const authorize = (ctx: CallContext): void => {
      if (!expected) return;
      const given = Buffer.from(ctx.metadata.get('authorization') ?? '');
      if (given.byteLength !== expected.byteLength || !timingSafeEqual(given, expected)) {
        throw new VaccelError(
          'EACCES',
          'missing or wrong agent token (metadata "authorization: Bearer <token>")',
        );
      }
    };
    const out: Record<string, Method> = {};
    for (const [name, method] of Object.entries(methods)) {
      // prom-client children per label set, looked up once: labels() hashes its arguments.
      const counters = new Map<string, { inc(): void }>();
      const histograms = new Map<string, { observe(value: number): void }>();
      const count = (op: string, status: string) => {
        const key = `${op}\n${status}`;
        let child = counters.get(key);
        if (!child) {
          child = this.metrics.requests.labels({ method: name, op, status });
          counters.set(key, child);
        }
        child.inc();
      };
      const observe = (op: string, seconds: number) => {
        let child = histograms.get(op);
        if (!child) {
          child = this.metrics.latency.labels({ method: name, op });
          histograms.set(op, child);
        }
        child.observe(seconds);
      };
      const measure = async (
        ctx: CallContext,
        bytesIn: number,
        run: () => Promise<Payload>,
      ): Promise<Payload> => {
        const started = performance.now();
        let status = 'OK';
        try {
          authorize(ctx);
          const reply = await run();
          this.metrics.bytesOut.inc(payloadLength(reply));
          return reply;
        } catch (error) {
          status = codeName(statusFromError(error).code);
          throw error;
        } finally {
          const op = opOf.get(ctx) ?? '';
          this.metrics.bytesIn.inc(bytesIn);
          count(op, status);
          observe(op, (performance.now() - started) / 1e3);
        }
      };
      out[name] =
        typeof method === 'function'
          ? (payload, ctx) => measure(ctx, payload.byteLength, async () => method(payload, ctx))
          : {
              kind: 'client-stream',
              handler: (payloads, ctx) => measure(ctx, 0, () => method.handler(payloads, ctx)),
            };
    }
    return out;
  }
}

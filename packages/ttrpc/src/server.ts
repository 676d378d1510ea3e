/**
 * ttRPC server: dispatches requests concurrently, many per connection, over any Duplex.
 * @module
 */
import { EventEmitter } from 'node:events';
import type { Server as NetServer, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { fromBinary } from '@bufbuild/protobuf';
import type { Any } from '@bufbuild/protobuf/wkt';
import { Channel } from './channel.js';
import { errorResponse, okResponseParts, type Payload, partsLength } from './envelope.js';
import { DEFAULT_MAX_FRAME, type Frame, FrameFlag, FrameType, type OversizedFrame } from './frame.js';
import { RequestSchema } from './gen/ttrpc_pb.js';
import { MessageQueue } from './queue.js';
import { Code, codeName, TtrpcError } from './status.js';

/** What a handler knows about its call. */
export interface CallContext {
  readonly service: string;
  readonly method: string;
  /** Aborts on deadline, connection close or server close. */
  readonly signal: AbortSignal;
  readonly metadata: ReadonlyMap<string, string>;
  readonly connection: Connection;
}

/** A unary method: encoded request in, encoded reply (or its parts, see {@link Payload}) out. */
export type UnaryHandler = (payload: Uint8Array, ctx: CallContext) => Promise<Payload> | Payload;
/** A client-streaming method: encoded requests in, one encoded reply out. */
export interface ClientStreamMethod {
  kind: 'client-stream';
  handler(payloads: AsyncIterable<Uint8Array>, ctx: CallContext): Promise<Payload>;
}
/** A method implementation. */
export type Method = UnaryHandler | ClientStreamMethod;

/** A status to answer with. */
export interface StatusReply {
  code: number;
  message: string;
  details?: readonly Any[];
}

/** Options of a {@link Server}. */
export interface ServerOptions {
  /** Largest frame payload accepted or sent (default 256 MiB). */
  maxFrame?: number;
  /** Calls in flight per connection before new ones get RESOURCE_EXHAUSTED (default 4096). */
  maxInflight?: number;
  /** Maps a handler's thrown error to a status (default: TtrpcError as is, else UNKNOWN). */
  errorToStatus?(error: unknown, ctx: CallContext): StatusReply;
  /** Called for each new connection, before its first request (attach state to `context`). */
  onConnection?(connection: Connection): void;
}

let nextConnectionId = 1;

/** How long {@link Server.shutdown} waits for peers to close their side before cutting them off. */
const SHUTDOWN_GRACE_MS = 2000;

/** One client connection. `context` is yours: set it in `onConnection`. */
export class Connection extends EventEmitter<{ close: [] }> {
  readonly id = nextConnectionId++;
  /** Per-connection state owned by the application. */
  context: unknown;
  /** @internal */ readonly calls = new Map<number, { controller: AbortController; queue?: MessageQueue }>();
  /** @internal */ channel!: Channel;
  /** @internal */ isClosed = false;

  constructor(readonly stream: Duplex) {
    super();
  }

  /** Calls being handled now. */
  get inflight(): number {
    return this.calls.size;
  }

  /** True once closed. */
  get closed(): boolean {
    return this.isClosed;
  }

  /** Closes the connection at once; its handlers' signals abort. */
  close(): void {
    this.channel.destroy();
  }
}

/**
 * A ttRPC server.
 * ```ts
 * const server = new Server();
 * server.register('pkg.Service', { Method: async (payload, ctx) => reply });
 * server.listen(net.createServer().listen(path));
 * ```
 */
export class Server {
  readonly #services = new Map<string, Map<string, Method>>();
  readonly #connections = new Set<Connection>();
  readonly #listeners = new Set<NetServer>();
  readonly #maxFrame: number;
  readonly #maxInflight: number;
  #draining = false;

  constructor(private readonly options: ServerOptions = {}) {
    this.#maxFrame = options.maxFrame ?? DEFAULT_MAX_FRAME;
    this.#maxInflight = options.maxInflight ?? 4096;
  }

  /** Registers (or replaces) the methods of `service`. */
  register(service: string, methods: Readonly<Record<string, Method>>): void {
    this.#services.set(service, new Map(Object.entries(methods)));
  }

  /** Open connections. */
  connections(): Connection[] {
    return [...this.#connections];
  }

  /** Accepts the connections of a listening (or soon listening) net.Server. */
  listen(listener: NetServer): void {
    this.#listeners.add(listener);
    listener.on('connection', (socket: Socket) => {
      if (this.#draining) {
        socket.destroy();
        return;
      }
      socket.setNoDelay?.(true);
      this.serve(socket);
    });
  }

  /** Serves one connection on any Duplex. */
  serve(stream: Duplex): Connection {
    const connection = new Connection(stream);
    connection.channel = new Channel(stream, this.#maxFrame, {
      frame: (frame) => this.#onFrame(connection, frame),
      oversized: (frame) => this.#onOversized(connection, frame),
      close: () => {
        connection.isClosed = true;
        this.#connections.delete(connection);
        for (const call of connection.calls.values())
          call.controller.abort(new TtrpcError(Code.CANCELLED, 'connection closed'));
        connection.emit('close');
      },
    });
    this.#connections.add(connection);
    this.options.onConnection?.(connection);
    return connection;
  }

  /**
   * Stops accepting, answers new requests UNAVAILABLE, waits for in-flight calls, then ends every
   * connection (pending replies are flushed; peers that keep their side open are cut off after 2 s).
   * An aborted `signal` stops waiting for in-flight calls.
   */
  async shutdown(options: { signal?: AbortSignal } = {}): Promise<void> {
    this.#draining = true;
    // net.Server#close calls back only once every accepted socket has ended, so start it now
    // (no new connections) but wait for it only after the connections are closed below.
    const listenersClosed = [...this.#listeners].map(
      (listener) => new Promise((resolve) => listener.close(resolve)),
    );
    while ([...this.#connections].some((c) => c.inflight > 0) && !options.signal?.aborted) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    // End (not destroy) each connection so the replies just written still reach their callers;
    // a peer that never closes its side is cut off after a grace period.
    for (const connection of this.#connections) connection.channel.end();
    const grace = setTimeout(() => this.close(), SHUTDOWN_GRACE_MS);
    await Promise.all(listenersClosed);
    clearTimeout(grace);
  }

  /** Closes listeners and every connection at once. */
  close(): void {
    this.#draining = true;
    for (const listener of this.#listeners) listener.close();
    for (const connection of this.#connections) connection.close();
  }

  #reply(connection: Connection, streamId: number, parts: Uint8Array[]): void {
    if (connection.channel.closed) return;
    try {
      connection.channel.write(streamId, FrameType.Response, 0, parts);
    } catch (error) {
      if (!(error instanceof TtrpcError)) return; // closed meanwhile
      connection.channel.write(streamId, FrameType.Response, 0, [errorResponse(error.code, error.message)]);
    }
  }

  #fail(
    connection: Connection,
    streamId: number,
    code: number,
    message: string,
    details?: readonly Any[],
  ): void {
    this.#reply(connection, streamId, [errorResponse(code, message, details)]);
  }

  #onOversized(connection: Connection, frame: OversizedFrame): void {
    const message = `frame of ${frame.length} bytes is over the limit of ${this.#maxFrame}`;
    if (frame.type === FrameType.Request)
      this.#fail(connection, frame.streamId, Code.RESOURCE_EXHAUSTED, message);
    else if (frame.type === FrameType.Data) {
      const call = connection.calls.get(frame.streamId);
      call?.queue?.fail(new TtrpcError(Code.RESOURCE_EXHAUSTED, message));
    } else connection.close();
  }

  #onFrame(connection: Connection, frame: Frame): void {
    if (frame.type === FrameType.Data) {
      const queue = connection.calls.get(frame.streamId)?.queue;
      if (!queue) return; // a stream we already answered: ignore its late data
      if (!(frame.flags & FrameFlag.NoData)) queue.push(frame.payload);
      if (frame.flags & FrameFlag.RemoteClosed) queue.end();
      return;
    }
    if (frame.type !== FrameType.Request || connection.calls.has(frame.streamId)) {
      connection.close(); // a protocol violation: the framing can no longer be trusted
      return;
    }
    this.#onRequest(connection, frame);
  }

  #onRequest(connection: Connection, frame: Frame): void {
    const id = frame.streamId;
    let request: ReturnType<typeof fromBinary<typeof RequestSchema>>;
    try {
      request = fromBinary(RequestSchema, frame.payload);
    } catch {
      this.#fail(connection, id, Code.INVALID_ARGUMENT, 'malformed request envelope');
      return;
    }
    if (this.#draining) {
      this.#fail(connection, id, Code.UNAVAILABLE, 'server is shutting down');
      return;
    }
    if (connection.inflight >= this.#maxInflight) {
      this.#fail(
        connection,
        id,
        Code.RESOURCE_EXHAUSTED,
        `more than ${this.#maxInflight} calls in flight on this connection`,
      );
      return;
    }
    const methods = this.#services.get(request.service);
    const method = methods?.get(request.method);
    if (!method) {
      const what = methods
        ? `method ${request.service}/${request.method} is not implemented`
        : `service ${request.service} is not registered`;
      this.#fail(connection, id, Code.UNIMPLEMENTED, what);
      return;
    }
    const streaming = (frame.flags & FrameFlag.RemoteOpen) !== 0;
    if (streaming !== (typeof method !== 'function')) {
      const want = streaming ? 'unary' : 'client-streaming';
      this.#fail(connection, id, Code.INVALID_ARGUMENT, `${request.service}/${request.method} is ${want}`);
      return;
    }
    const controller = new AbortController();
    const timeoutMs = Number(request.timeoutNano) / 1e6;
    const signal =
      timeoutMs > 0
        ? AbortSignal.any([controller.signal, AbortSignal.timeout(timeoutMs)])
        : controller.signal;
    const ctx: CallContext = {
      service: request.service,
      method: request.method,
      signal,
      metadata: new Map(request.metadata.map(({ key, value }) => [key, value])),
      connection,
    };
    const queue = streaming ? new MessageQueue(64, this.#maxFrame) : undefined;
    connection.calls.set(id, { controller, queue });
    const work =
      typeof method === 'function'
        ? (async () => method(request.payload, ctx))()
        : method.handler(queue!, ctx);
    const deadline = new Promise<never>((_, reject) => {
      signal.addEventListener('abort', () => reject(signal.reason), { once: true });
    });
    Promise.race([work, deadline]).then(
      (reply) => {
        connection.calls.delete(id);
        this.#respond(connection, id, reply);
      },
      (error: unknown) => {
        connection.calls.delete(id);
        const status = this.#statusOf(error, ctx);
        this.#fail(connection, id, status.code, status.message, status.details);
      },
    );
    work.catch(() => {}); // a handler that fails after the deadline answered is not unhandled
  }

  #respond(connection: Connection, id: number, reply: Payload): void {
    const parts = okResponseParts(reply);
    const length = partsLength(parts);
    if (length > this.#maxFrame) {
      this.#fail(
        connection,
        id,
        Code.RESOURCE_EXHAUSTED,
        `reply of ${length} bytes is over the frame limit of ${this.#maxFrame}`,
      );
      return;
    }
    this.#reply(connection, id, parts);
  }

  #statusOf(error: unknown, ctx: CallContext): StatusReply {
    if (error instanceof DOMException && error.name === 'TimeoutError') {
      return { code: Code.DEADLINE_EXCEEDED, message: `${ctx.service}/${ctx.method} exceeded its deadline` };
    }
    if (this.options.errorToStatus) return this.options.errorToStatus(error, ctx);
    if (error instanceof TtrpcError)
      return { code: error.code, message: error.message, details: error.details };
    return {
      code: Code.UNKNOWN,
      message: `${codeName(Code.UNKNOWN)}: ${(error as Error)?.message ?? String(error)}`,
    };
  }
}

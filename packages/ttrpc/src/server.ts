/**
 * ttRPC server: dispatches requests concurrently, many per connection, over any Duplex.
 * @module
 */
import type { Server as NetServer, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Any } from '@bufbuild/protobuf/wkt';
import type { FrameAdmission } from './admission.js';
import { Channel } from './channel.js';
import { type CallContext, Connection, ServerCall } from './connection.js';

import { Deadlines, expiryOf, now } from './deadlines.js';
import {
  type DecodedRequest,
  decodeRequest,
  errorResponse,
  okResponseParts,
  type Payload,
  partsLength,
} from './envelope.js';
import { checkMaxFrame, type Frame, FrameFlag, FrameType, type OversizedFrame } from './frame.js';
import { MessageQueue } from './queue.js';
import { Code, codeName, type StatusReply, TtrpcError } from './status.js';

export { type CallContext, type CloseReason, Connection } from './connection.js';

/** A unary method: encoded request in, encoded reply (or its parts, see {@link Payload}) out. */
export type UnaryHandler = (payload: Uint8Array, ctx: CallContext) => Promise<Payload> | Payload;
/** A client-streaming method: encoded requests in, one encoded reply out. */
export interface ClientStreamMethod {
  kind: 'client-stream';
  handler(payloads: AsyncIterable<Uint8Array>, ctx: CallContext): Promise<Payload>;
}
/** A method implementation. */
export type Method = UnaryHandler | ClientStreamMethod;

/**
 * Wraps every call of a server, as containerd/ttrpc's `UnaryServerInterceptor` does: it runs
 * before the handler, decides whether and when `next()` runs it (auth, admission, scheduling) and
 * sees how it ended (metrics). What it throws or rejects with is the call's error, mapped by
 * `errorToStatus` like a handler's. `request` is the call's encoded payload for unary methods
 * (undefined for client streams, whose payloads arrive later).
 */
export type ServerInterceptor<C = unknown> = (
  ctx: CallContext<C>,
  next: () => Promise<Payload>,
  request: Uint8Array | undefined,
) => Promise<Payload>;

/** Options of a {@link Server}. */
export interface ServerOptions<C = unknown> {
  /** Largest frame payload accepted or sent (default 256 MiB). */
  maxFrame?: number;
  /**
   * Bytes one client stream may carry in all (its data frames' payloads) before it fails with
   * RESOURCE_EXHAUSTED (default: `maxFrame`). Its handler may keep every message it reads.
   */
  maxStreamBytes?: number;
  /** Calls in flight per connection before new ones get RESOURCE_EXHAUSTED (default 4096). */
  maxInflight?: number;
  /** Maps a handler's thrown error to a status (default: TtrpcError as is, else UNKNOWN). */
  errorToStatus?(error: unknown, ctx: CallContext): StatusReply;
  /** Called for each new connection, before its first request (attach state to `context`). */
  onConnection?(connection: Connection<C>): void;
  /** A memory budget big frame payloads are admitted against before they are read (see admission.ts). */
  admission?: FrameAdmission;
  /**
   * Run around every call, first outermost (default none: a call then costs no extra promise).
   * They see the typed connection context `C` set by `onConnection`.
   */
  interceptors?: readonly ServerInterceptor<C>[];
  /**
   * Called once per connection, with its stream, before anything is read; the function it
   * returns (if any) is called after each read of that connection, before the requests it
   * completed are handled. For per-read socket options the kernel does not keep: the agent
   * re-arms TCP_QUICKACK on TCP connections, so a client that writes a request's header and body
   * apart with Nagle on (upstream's) does not wait for our delayed ACK.
   */
  readHook?(stream: Duplex): ((stream: Duplex) => void) | undefined;
}

/** How long {@link Server.shutdown} waits for peers to close their side before cutting them off. */
const SHUTDOWN_GRACE_MS = 2000;

/**
 * A ttRPC server.
 * ```ts
 * const server = new Server();
 * server.register('pkg.Service', { Method: async (payload, ctx) => reply });
 * server.listen(net.createServer().listen(path));
 * ```
 */
export class Server<C = unknown> {
  readonly #services = new Map<string, Map<string, Method>>();
  readonly #borrowing = new Map<string, ReadonlySet<string>>();
  readonly #connections = new Set<Connection<C>>();
  readonly #listeners = new Set<NetServer>();
  readonly #maxFrame: number;
  readonly #maxInflight: number;
  readonly #deadlines = new Deadlines();
  #draining = false;

  readonly #interceptors: readonly ServerInterceptor<C>[];

  constructor(private readonly options: ServerOptions<C> = {}) {
    this.#interceptors = [...(options.interceptors ?? [])];
    this.#maxFrame = checkMaxFrame(options.maxFrame, 'Server');
    this.#maxInflight = options.maxInflight ?? 4096;
  }

  /**
   * Registers (or replaces) the methods of `service`. Methods named in `borrowing` promise to
   * keep no view of their request payload once their reply is written (their reply may still
   * reference it): the payload's buffer is then reused for later frames instead of being left
   * to the GC, which spares fresh memory for every big request.
   */
  register(
    service: string,
    methods: Readonly<Record<string, Method>>,
    options: { borrowing?: readonly string[] } = {},
  ): void {
    this.#services.set(service, new Map(Object.entries(methods)));
    this.#borrowing.set(service, new Set(options.borrowing ?? []));
  }

  /** Open connections. */
  connections(): Connection<C>[] {
    return [...this.#connections];
  }

  /** Accepts the connections of a listening (or soon listening) net.Server. */
  listen(listener: NetServer): void {
    this.#listeners.add(listener);
    // A tls.Server's 'connection' is the raw socket; its TLS socket comes with 'secureConnection'.
    const tls = typeof (listener as { addContext?: unknown }).addContext === 'function';
    listener.on(tls ? 'secureConnection' : 'connection', (socket: Socket) => {
      if (this.#draining) {
        socket.destroy();
        return;
      }
      socket.setNoDelay?.(true);
      this.serve(socket);
    });
  }

  /** Serves one connection on any Duplex. */
  serve(stream: Duplex): Connection<C> {
    const connection = new Connection<C>();
    const onRead = this.options.readHook?.(stream);
    connection.channel = new Channel(
      stream,
      this.#maxFrame,
      {
        frame: (frame) => this.#onFrame(connection, frame),
        oversized: (frame) => this.#onOversized(connection, frame),
        ...(onRead ? { read: onRead } : {}),
        close: (error) => {
          connection.markClosed();
          this.#connections.delete(connection);
          const cancelled = new TtrpcError(Code.CANCELLED, 'connection closed');
          for (const call of connection.calls.values()) {
            call.settled = true;
            if (call.deadlineEntry) this.#deadlines.remove(call.deadlineEntry);
            call.abort(cancelled);
          }
          connection.calls.clear();
          connection.emit('close', connection.closeReason ?? error);
        },
      },
      this.options.admission,
    );
    this.#connections.add(connection);
    this.options.onConnection?.(connection);
    return connection;
  }

  /** Deadlines waiting now, all connections together (0 when no call has one). */
  get pendingDeadlines(): number {
    return this.#deadlines.size;
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
    this.#deadlines.clear();
  }

  #reply(connection: Connection, streamId: number, parts: Uint8Array[], written?: () => void): void {
    if (connection.channel.closed) {
      written?.();
      return;
    }
    try {
      connection.channel.write(streamId, FrameType.Response, 0, parts, written);
    } catch (error) {
      if (!(error instanceof TtrpcError)) {
        written?.();
        return; // closed meanwhile
      }
      connection.channel.write(
        streamId,
        FrameType.Response,
        0,
        [errorResponse(error.code, error.message)],
        written,
      );
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
    const status: StatusReply = frame.refused
      ? (this.options.admission?.refusal?.(frame.length) ?? {
          code: Code.RESOURCE_EXHAUSTED,
          message: `frame of ${frame.length} bytes refused: the server is short of memory`,
        })
      : {
          code: Code.RESOURCE_EXHAUSTED,
          message: `frame of ${frame.length} bytes is over the limit of ${this.#maxFrame}`,
        };
    if (frame.type === FrameType.Request)
      this.#fail(connection, frame.streamId, status.code, status.message, status.details);
    else if (frame.type === FrameType.Data)
      connection.calls
        .get(frame.streamId)
        ?.queue?.fail(new TtrpcError(status.code, status.message, status.details));
    // Other types are ignored, as the reference server ignores frame types it does not serve.
  }

  #onFrame(connection: Connection, frame: Frame): void {
    try {
      this.#dispatch(connection, frame);
    } finally {
      // Admitted bytes no call took over (the frame started nothing, or was dropped) go back now.
      if (frame.admitted) this.options.admission?.release(frame.admitted);
    }
  }

  /** Hands a frame's admitted bytes over to the call it belongs to. */
  #adopt(call: ServerCall, frame: Frame): void {
    call.admitted += frame.admitted ?? 0;
    frame.admitted = 0;
  }

  /** The call's handler settled: its frames' admitted bytes go back. */
  #finish(call: ServerCall): void {
    if (call.admitted === 0) return;
    this.options.admission?.release(call.admitted);
    call.admitted = 0;
  }

  #dispatch(connection: Connection, frame: Frame): void {
    if (frame.type === FrameType.Data) {
      const call = connection.calls.get(frame.streamId);
      const queue = call?.queue;
      if (!queue) return; // a stream we already answered: ignore its late data
      this.#adopt(call, frame);
      if (!(frame.flags & FrameFlag.NoData)) queue.push(frame.payload);
      if (frame.flags & FrameFlag.RemoteClosed) queue.end();
      return;
    }
    // Like the reference server, ignore frame types a server does not take (forward compatible).
    if (frame.type !== FrameType.Request) return;
    if (connection.calls.has(frame.streamId)) {
      // Two live calls on one stream id: the peer's bookkeeping cannot be trusted any more.
      connection.close(new Error(`protocol violation: stream ${frame.streamId} is already in use`));
      return;
    }
    try {
      this.#onRequest(connection, frame);
    } catch (error) {
      // A bug while dispatching one request fails that call, never the connection.
      const call = connection.calls.get(frame.streamId);
      if (call) {
        this.#settle(call);
        this.#finish(call);
      }
      this.#fail(
        connection,
        frame.streamId,
        Code.INTERNAL,
        `internal error: ${(error as Error)?.message ?? error}`,
      );
    }
  }

  #onRequest(connection: Connection, frame: Frame): void {
    const id = frame.streamId;
    if (id % 2 !== 1) {
      this.#fail(
        connection,
        id,
        Code.INVALID_ARGUMENT,
        `stream id ${id} must be odd for client-initiated streams`,
      );
      return;
    }
    let request: DecodedRequest;
    try {
      request = decodeRequest(frame.payload);
    } catch (error) {
      this.#fail(
        connection,
        id,
        Code.INVALID_ARGUMENT,
        `malformed request envelope: ${(error as Error).message}`,
      );
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
    const expiry = expiryOf(request.timeoutNano);
    const call = new ServerCall(id, request.service, request.method, connection, request.metadata, expiry);
    if (expiry !== undefined && expiry <= now()) {
      // Already expired on arrival (a negative or tiny timeout_nano): the handler never runs.
      this.#fail(connection, id, Code.DEADLINE_EXCEEDED, this.#deadlineMessage(call));
      return;
    }
    if (streaming)
      call.queue = new MessageQueue(64, this.#maxFrame, this.options.maxStreamBytes ?? this.#maxFrame);
    if (frame.recycle && this.#borrowing.get(request.service)?.has(request.method))
      call.recycle = frame.recycle;
    connection.calls.set(id, call);
    if (expiry !== undefined) call.deadlineEntry = this.#deadlines.add(expiry, () => this.#expire(call));
    this.#adopt(call, frame);
    let work: Promise<Payload> | Payload;
    try {
      const handle = () =>
        typeof method === 'function' ? method(request.payload, call) : method.handler(call.queue!, call);
      work =
        this.#interceptors.length === 0
          ? handle()
          : this.#intercept(
              call as ServerCall & CallContext<C>,
              handle,
              typeof method === 'function' ? request.payload : undefined,
            );
    } catch (error) {
      work = Promise.reject(error);
    }
    // Admitted bytes are released when the handler settles, not when the call does: a handler
    // still running after its deadline or its connection's close still holds its request.
    if (work instanceof Promise) {
      work.then(
        (reply) => {
          this.#finish(call);
          this.#respond(call, reply);
        },
        (error: unknown) => {
          this.#finish(call);
          this.#respondError(call, error);
        },
      );
    } else {
      this.#finish(call);
      this.#respond(call, work);
    }
  }

  /** Runs `handle` inside the interceptor chain, first interceptor outermost. */
  #intercept(
    ctx: CallContext<C>,
    handle: () => Promise<Payload> | Payload,
    request: Uint8Array | undefined,
  ): Promise<Payload> {
    const chain = this.#interceptors;
    const step = (i: number): Promise<Payload> => {
      try {
        return i === chain.length ? Promise.resolve(handle()) : chain[i]!(ctx, () => step(i + 1), request);
      } catch (error) {
        return Promise.reject(error);
      }
    };
    return step(0);
  }

  /** Ends a call's bookkeeping; false if it had ended already (deadline, close). */
  #settle(call: ServerCall): boolean {
    if (call.settled) return false;
    call.settled = true;
    call.connection.calls.delete(call.id);
    if (call.deadlineEntry) this.#deadlines.remove(call.deadlineEntry);
    return true;
  }

  #expire(call: ServerCall): void {
    call.deadlineEntry = undefined; // it fired: nothing to remove
    if (!this.#settle(call)) return;
    const message = this.#deadlineMessage(call);
    call.abort(new TtrpcError(Code.DEADLINE_EXCEEDED, message));
    this.#fail(call.connection, call.id, Code.DEADLINE_EXCEEDED, message);
  }

  #deadlineMessage(call: ServerCall): string {
    return `${call.service}/${call.method} exceeded its deadline`;
  }

  #respond(call: ServerCall, reply: Payload): void {
    if (!this.#settle(call)) {
      call.recycle?.(); // answered already (deadline) or the connection closed: drop the reply
      return;
    }
    let parts: Uint8Array[];
    try {
      parts = okResponseParts(reply);
    } catch (error) {
      call.recycle?.();
      this.#fail(
        call.connection,
        call.id,
        Code.INTERNAL,
        `cannot encode the reply: ${(error as Error).message}`,
      );
      return;
    }
    const length = partsLength(parts);
    if (length > this.#maxFrame) {
      call.recycle?.();
      this.#fail(
        call.connection,
        call.id,
        Code.RESOURCE_EXHAUSTED,
        `reply of ${length} bytes is over the frame limit of ${this.#maxFrame}`,
      );
      return;
    }
    // The reply may reference the request's buffer: it is reused only once the reply is out.
    this.#reply(call.connection, call.id, parts, call.recycle);
  }

  #respondError(call: ServerCall, error: unknown): void {
    call.recycle?.();
    if (!this.#settle(call)) return;
    let status: StatusReply;
    try {
      status = this.#statusOf(error, call);
    } catch (mapping) {
      status = { code: Code.INTERNAL, message: `internal error: ${(mapping as Error)?.message ?? mapping}` };
    }
    this.#fail(call.connection, call.id, status.code, status.message, status.details);
  }

  #statusOf(error: unknown, ctx: CallContext): StatusReply {
    if (this.options.errorToStatus) return this.options.errorToStatus(error, ctx);
    if (error instanceof TtrpcError)
      return { code: error.code, message: error.message, details: error.details };
    return {
      code: Code.UNKNOWN,
      message: `${codeName(Code.UNKNOWN)}: ${(error as Error)?.message ?? String(error)}`,
    };
  }
}

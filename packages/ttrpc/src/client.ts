/**
 * ttRPC client: many calls in flight on one connection, each with its own deadline and signal.
 * @module
 */
import type { Duplex } from 'node:stream';
import { Channel } from './channel.js';
import { type DeadlineEntry, Deadlines, now } from './deadlines.js';
import { type DecodedResponse, decodeResponse, type Payload, requestParts } from './envelope.js';
import { checkMaxFrame, type Frame, FrameFlag, FrameType, type OversizedFrame } from './frame.js';
import { Code, codeName, TtrpcClosedError, TtrpcError } from './status.js';

/** Options of a {@link Client}. */
export interface ClientOptions {
  /** Largest frame payload sent or accepted (default 256 MiB). */
  maxFrame?: number;
  /** Default per-call timeout in ms (default: none). */
  timeoutMs?: number;
  /** Metadata sent with every call (e.g. an auth token). */
  metadata?: Readonly<Record<string, string>>;
  /**
   * Let the process exit while no call is in flight (the socket is unref'd when idle and ref'd
   * during calls). Default true, so a client that was never closed does not hold a process open.
   */
  unrefWhenIdle?: boolean;
  /**
   * Called after each read from the connection, before the replies it completed are handled, with
   * the stream they travel on (a net.Socket, or the Socket that took its handle over; a TLS
   * socket). For socket options the kernel does not keep: the RPC plugin re-arms TCP_QUICKACK
   * here, so the reply header of a peer that writes header and body apart with Nagle on is
   * acknowledged at once (docs/protocol.md §8). Must not throw.
   */
  onRead?: (stream: Duplex) => void;
}

/** Options of one call. */
export interface CallOptions {
  signal?: AbortSignal;
  /** Timeout in ms; sent to the server as `timeout_nano` and enforced locally. */
  timeoutMs?: number;
  metadata?: Readonly<Record<string, string>>;
}

/** A call waiting for its reply: one object, no per-call closures beyond the promise's own. */
interface Pending {
  readonly service: string;
  readonly method: string;
  readonly resolve: (payload: Uint8Array, recycle?: () => void) => void;
  readonly reject: (error: unknown) => void;
  deadline: DeadlineEntry | undefined;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

const MAX_STREAM_ID = 0xffffffff;

/**
 * A ttRPC client over one Duplex (a socket, a serial port …).
 * ```ts
 * const client = new Client(net.connect(path));
 * const reply = await client.call('pkg.Service', 'Method', requestBytes, { timeoutMs: 1000 });
 * ```
 */
export class Client implements AsyncDisposable {
  readonly #channel: Channel;
  readonly #pending = new Map<number, Pending>();
  readonly #options: ClientOptions;
  /** The default metadata, frozen so its encoding can be cached. */
  readonly #metadata: Readonly<Record<string, string>> | undefined;
  #nextId = 1;
  readonly #deadlines = new Deadlines();
  #closeError: Error | undefined;
  readonly #whenClosed: Promise<void>;

  constructor(stream: Duplex, options: ClientOptions = {}) {
    this.#options = options;
    this.#metadata = options.metadata ? Object.freeze({ ...options.metadata }) : undefined;
    let markClosed!: () => void;
    this.#whenClosed = new Promise((resolve) => {
      markClosed = resolve;
    });
    this.#channel = new Channel(stream, checkMaxFrame(options.maxFrame, 'Client'), {
      frame: (frame) => this.#onFrame(frame),
      oversized: (frame) => this.#onOversized(frame),
      ...(options.onRead ? { read: options.onRead } : {}),
      close: (error) => {
        this.#closeError = new TtrpcClosedError(
          error ? `connection closed: ${error.message}` : 'connection closed',
          { cause: error },
        );
        for (const [id, pending] of this.#pending) this.#settle(id, pending).reject(this.#closeError);
        this.#deadlines.clear();
        markClosed();
      },
    });
    this.#idle();
  }

  /** Refs the stream while calls are in flight, unrefs it when idle (if the stream can). */
  #idle(): void {
    if (this.#options.unrefWhenIdle === false) return;
    const stream = this.#channel.stream as { ref?: () => void; unref?: () => void };
    if (this.#pending.size === 0) stream.unref?.();
    else stream.ref?.();
  }

  /** Resolves when the connection has closed. */
  whenClosed(): Promise<void> {
    return this.#whenClosed;
  }

  /** True once the connection is closed. */
  get closed(): boolean {
    return this.#channel.closed;
  }

  /** Deadlines armed now (one per call in flight with a timeout; 0 when idle). */
  get pendingDeadlines(): number {
    return this.#deadlines.size;
  }

  /** Calls in flight. */
  get inflight(): number {
    return this.#pending.size;
  }

  /**
   * A unary call: sends `payload` (an encoded request message, or its parts, which are written
   * without being joined), resolves with the encoded reply.
   * @throws TtrpcError for a non-OK status, TtrpcClosedError when the connection closes first,
   * the signal's reason when aborted.
   */
  call(service: string, method: string, payload: Payload, options: CallOptions = {}): Promise<Uint8Array> {
    return this.#start(service, method, options, this.#unary(payload));
  }

  /**
   * A unary call whose reply is only borrowed: `read` runs on it as soon as it arrives and must
   * keep no view of it; its buffer is then reused for later frames (no fresh memory per big
   * reply). Resolves with what `read` returns.
   */
  callWith<T>(
    service: string,
    method: string,
    payload: Payload,
    read: (reply: Uint8Array) => T,
    options: CallOptions = {},
  ): Promise<T> {
    return this.#start(service, method, options, this.#unary(payload), read);
  }

  /** Sends a unary request: one Request frame. */
  #unary(payload: Payload): (id: number, envelope: (payload: Payload) => Uint8Array[]) => void {
    return (id, envelope) => this.#channel.write(id, FrameType.Request, 0, envelope(payload));
  }

  /**
   * A client-streaming call: sends each payload as a Data frame, then the closing frame.
   */
  callStream(
    service: string,
    method: string,
    payloads: Iterable<Uint8Array>,
    options: CallOptions = {},
  ): Promise<Uint8Array> {
    return this.#start(service, method, options, (id, envelope) => {
      this.#channel.write(id, FrameType.Request, FrameFlag.RemoteOpen, envelope(new Uint8Array(0)));
      for (const payload of payloads) this.#channel.write(id, FrameType.Data, 0, [payload]);
      this.#channel.write(id, FrameType.Data, FrameFlag.RemoteClosed | FrameFlag.NoData, []);
    });
  }

  /** Closes the connection; pending calls reject with a closed error. Idempotent. */
  async close(): Promise<void> {
    this.#channel.destroy();
    await this.#whenClosed;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #start<T = Uint8Array>(
    service: string,
    method: string,
    options: CallOptions,
    send: (id: number, envelope: (payload: Payload) => Uint8Array[]) => void,
    read?: (reply: Uint8Array) => T,
  ): Promise<T> {
    const { signal } = options;
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.#channel.closed)
      return Promise.reject(this.#closeError ?? new TtrpcClosedError('connection is closed'));
    if (this.#nextId > MAX_STREAM_ID)
      return Promise.reject(new TtrpcClosedError('stream ids exhausted; reconnect'));
    const id = this.#nextId;
    this.#nextId += 2;
    const timeoutMs = options.timeoutMs ?? this.#options.timeoutMs;
    if (timeoutMs !== undefined && !(timeoutMs > 0 && Number.isFinite(timeoutMs)))
      return Promise.reject(new RangeError(`timeoutMs must be a positive number of ms, got ${timeoutMs}`));
    const metadata =
      options.metadata === undefined ? this.#metadata : { ...this.#metadata, ...options.metadata };
    const timeoutNano = timeoutMs ? BigInt(Math.max(1, Math.round(timeoutMs * 1e6))) : 0n;
    return new Promise<T>((resolve, reject) => {
      const settle = read
        ? (reply: Uint8Array, recycle?: () => void) => {
            try {
              resolve(read(reply));
            } catch (error) {
              reject(error);
            } finally {
              recycle?.();
            }
          }
        : (resolve as unknown as (reply: Uint8Array) => void);
      const pending: Pending = {
        service,
        method,
        resolve: settle,
        reject,
        deadline: undefined,
        signal,
        onAbort: undefined,
      };
      this.#pending.set(id, pending);
      if (timeoutMs)
        pending.deadline = this.#deadlines.add(now() + timeoutMs, () => this.#timedOut(id, timeoutMs));
      if (signal) {
        pending.onAbort = () => this.#settle(id, pending).reject(signal.reason);
        signal.addEventListener('abort', pending.onAbort, { once: true });
      }
      this.#idle();
      try {
        send(id, (payload) => requestParts(service, method, payload, timeoutNano, metadata));
      } catch (error) {
        this.#settle(id, pending).reject(error);
      }
    });
  }

  /** Forgets a pending call and everything armed for it; returns it for resolving. */
  #settle(id: number, pending: Pending): Pending {
    this.#pending.delete(id);
    if (pending.deadline) this.#deadlines.remove(pending.deadline);
    if (pending.onAbort) pending.signal!.removeEventListener('abort', pending.onAbort);
    this.#idle();
    return pending;
  }

  #timedOut(id: number, timeoutMs: number): void {
    const pending = this.#pending.get(id);
    if (!pending) return;
    pending.deadline = undefined; // it fired
    this.#settle(id, pending).reject(
      new TtrpcError(
        Code.DEADLINE_EXCEEDED,
        `${pending.service}/${pending.method} timed out after ${timeoutMs} ms`,
      ),
    );
  }

  #onFrame(frame: Frame): void {
    if (frame.type !== FrameType.Response) {
      // Servers send only responses; anything else means the framing cannot be trusted.
      if (frame.type !== FrameType.Data) this.#channel.destroy();
      return;
    }
    const pending = this.#pending.get(frame.streamId);
    if (!pending) return; // timed out or aborted: the late reply is dropped
    this.#settle(frame.streamId, pending);
    let response: DecodedResponse;
    try {
      response = decodeResponse(frame.payload);
    } catch (cause) {
      pending.reject(new TtrpcError(Code.DATA_LOSS, 'malformed response envelope', [], { cause }));
      return;
    }
    const status = response.status;
    if (!status || status.code === Code.OK) pending.resolve(response.payload, frame.recycle);
    else pending.reject(new TtrpcError(status.code, status.message || codeName(status.code), status.details));
  }

  #onOversized(frame: OversizedFrame): void {
    const pending = this.#pending.get(frame.streamId);
    if (!pending) return;
    this.#settle(frame.streamId, pending).reject(
      new TtrpcError(
        Code.RESOURCE_EXHAUSTED,
        `response of ${frame.length} bytes is over the limit of ${this.#channel.maxFrame}`,
      ),
    );
  }
}

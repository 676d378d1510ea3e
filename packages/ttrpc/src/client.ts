/**
 * ttRPC client: many calls in flight on one connection, each with its own deadline and signal.
 * @module
 */
import type { Duplex } from 'node:stream';
import { fromBinary } from '@bufbuild/protobuf';
import { Channel } from './channel.js';
import { type Payload, requestParts } from './envelope.js';
import { DEFAULT_MAX_FRAME, type Frame, FrameFlag, FrameType, type OversizedFrame } from './frame.js';
import { ResponseSchema } from './gen/ttrpc_pb.js';
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
}

/** Options of one call. */
export interface CallOptions {
  signal?: AbortSignal;
  /** Timeout in ms; sent to the server as `timeout_nano` and enforced locally. */
  timeoutMs?: number;
  metadata?: Readonly<Record<string, string>>;
}

interface Pending {
  resolve(payload: Uint8Array): void;
  reject(error: unknown): void;
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
  #nextId = 1;
  #closeError: Error | undefined;
  readonly #closed: Promise<void>;

  constructor(stream: Duplex, options: ClientOptions = {}) {
    this.#options = options;
    let markClosed!: () => void;
    this.#closed = new Promise((resolve) => {
      markClosed = resolve;
    });
    this.#channel = new Channel(stream, options.maxFrame ?? DEFAULT_MAX_FRAME, {
      frame: (frame) => this.#onFrame(frame),
      oversized: (frame) => this.#onOversized(frame),
      close: (error) => {
        this.#closeError = new TtrpcClosedError(
          error ? `connection closed: ${error.message}` : 'connection closed',
          { cause: error },
        );
        for (const pending of this.#pending.values()) pending.reject(this.#closeError);
        this.#pending.clear();
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
  get closed(): Promise<void> {
    return this.#closed;
  }

  /** True once the connection is closed. */
  get isClosed(): boolean {
    return this.#channel.closed;
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
    return this.#start(service, method, options, (id, envelope) => {
      this.#channel.write(id, FrameType.Request, 0, envelope(payload));
    });
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
    await this.#closed;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #start(
    service: string,
    method: string,
    options: CallOptions,
    send: (id: number, envelope: (payload: Payload) => Uint8Array[]) => void,
  ): Promise<Uint8Array> {
    const { signal } = options;
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.#channel.closed)
      return Promise.reject(this.#closeError ?? new TtrpcClosedError('connection is closed'));
    if (this.#nextId > MAX_STREAM_ID)
      return Promise.reject(new TtrpcClosedError('stream ids exhausted; reconnect'));
    const id = this.#nextId;
    this.#nextId += 2;
    const timeoutMs = options.timeoutMs ?? this.#options.timeoutMs;
    const metadata = { ...this.#options.metadata, ...options.metadata };
    const timeoutNano = timeoutMs ? BigInt(Math.round(timeoutMs * 1e6)) : 0n;
    const envelope = (payload: Payload): Uint8Array[] =>
      requestParts(service, method, payload, timeoutNano, metadata);
    return new Promise<Uint8Array>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const settle = (): void => {
        this.#pending.delete(id);
        this.#idle();
        if (timer) clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
      };
      const onAbort = (): void => {
        settle();
        reject(signal?.reason);
      };
      this.#pending.set(id, {
        resolve: (value) => {
          settle();
          resolve(value);
        },
        reject: (error) => {
          settle();
          reject(error);
        },
      });
      this.#idle();
      if (timeoutMs) {
        timer = setTimeout(() => {
          settle();
          reject(
            new TtrpcError(Code.DEADLINE_EXCEEDED, `${service}/${method} timed out after ${timeoutMs} ms`),
          );
        }, timeoutMs);
      }
      signal?.addEventListener('abort', onAbort, { once: true });
      try {
        send(id, envelope);
      } catch (error) {
        settle();
        reject(error);
      }
    });
  }

  #onFrame(frame: Frame): void {
    if (frame.type !== FrameType.Response) {
      // Servers send only responses; anything else means the framing cannot be trusted.
      if (frame.type !== FrameType.Data) this.#channel.destroy();
      return;
    }
    const pending = this.#pending.get(frame.streamId);
    if (!pending) return; // timed out or aborted: the late reply is dropped
    let response: ReturnType<typeof fromBinary<typeof ResponseSchema>>;
    try {
      response = fromBinary(ResponseSchema, frame.payload);
    } catch (cause) {
      pending.reject(new TtrpcError(Code.DATA_LOSS, 'malformed response envelope', [], { cause }));
      return;
    }
    const status = response.status;
    if (!status || status.code === Code.OK) pending.resolve(response.payload);
    else pending.reject(new TtrpcError(status.code, status.message || codeName(status.code), status.details));
  }

  #onOversized(frame: OversizedFrame): void {
    this.#pending
      .get(frame.streamId)
      ?.reject(
        new TtrpcError(
          Code.RESOURCE_EXHAUSTED,
          `response of ${frame.length} bytes is over the limit of ${this.#channel.maxFrame}`,
        ),
      );
  }
}

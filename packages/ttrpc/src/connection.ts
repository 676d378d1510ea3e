/**
 * The server side of one connection and of one call: what handlers see ({@link CallContext}),
 * the {@link Connection} (its state, its close reason, the signal its plain calls share) and the
 * per-call record the server keeps.
 * @module
 */
import { EventEmitter, setMaxListeners } from 'node:events';
import type { Duplex } from 'node:stream';
import type { Channel, ChannelBounds } from './channel.js';
import type { DeadlineEntry } from './deadlines.js';
import type { MessageQueue } from './queue.js';
import { Code, TtrpcError } from './status.js';

/**
 * What a handler (or an interceptor) knows about its call. `C` is the type of its connection's
 * {@link Connection.context}, for servers that type it (`Server<C>`).
 */
export interface CallContext<C = unknown> {
  readonly service: string;
  readonly method: string;
  /**
   * Aborts on deadline (reason: a `DEADLINE_EXCEEDED` TtrpcError), connection close or server
   * close (`CANCELLED`). Made on first use, so handlers that never read it cost nothing.
   */
  readonly signal: AbortSignal;
  /** Every metadata pair, in order (a key sent twice appears twice). */
  readonly metadataPairs: readonly (readonly [string, string])[];
  /**
   * Metadata as a map (of a key sent more than once, the last value). Made on first use.
   */
  readonly metadata: ReadonlyMap<string, string>;
  /** When the call's deadline expires, on the `performance.now()` clock; undefined for none. */
  readonly deadline: number | undefined;
  readonly connection: Connection<C>;
}

let nextConnectionId = 1;

/** Why a connection closed: undefined for a clean EOF or a local close without a reason. */
export type CloseReason = Error | undefined;

/** One client connection. `context` is yours: set it in `onConnection`. */
export class Connection<C = unknown> extends EventEmitter<{ close: [reason: CloseReason] }> {
  readonly id = nextConnectionId++;
  /** Per-connection state owned by the application (set by `onConnection`, before any call). */
  context!: C;
  /** @internal */ readonly calls = new Map<number, ServerCall>();
  /** @internal */ channel!: Channel;
  /** @internal */ closeReason: CloseReason;
  #closed = false;
  #controller: AbortController | undefined;

  /** The stream the connection runs on. */
  get stream(): Duplex {
    return this.channel.stream;
  }

  /** Calls being handled now. */
  get inflight(): number {
    return this.calls.size;
  }

  /** Bytes written to the peer and not yet taken by the kernel (queued replies included). */
  get unsentBytes(): number {
    return this.channel.unsent;
  }

  /** When a frame was last read or written on it, on the `performance.now()` clock. */
  get lastActive(): number {
    return this.channel.lastActive;
  }

  /** True while reading is stopped because the peer does not read what it was sent. */
  get readPaused(): boolean {
    return this.channel.paused;
  }

  /**
   * Bounds what the peer can make the server hold: a bound on unsent bytes past which the
   * connection stops being read (backpressure), and a deadline for each frame's arrival. Call it
   * in `onConnection`; each bound is off until set.
   */
  bound(bounds: ChannelBounds): void {
    this.channel.bound(bounds);
  }

  /** True once closed. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Aborts (reason: a `CANCELLED` TtrpcError) when the connection closes. Calls without a
   * deadline share it as their signal, so a plain call allocates none of its own.
   */
  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController();
      // Every call in flight may listen: that is not a leak.
      setMaxListeners(0, this.#controller.signal);
      if (this.#closed) this.#controller.abort(new TtrpcError(Code.CANCELLED, 'connection closed'));
    }
    return this.#controller.signal;
  }

  /** @internal */
  markClosed(): void {
    this.#closed = true;
    this.#controller?.abort(new TtrpcError(Code.CANCELLED, 'connection closed'));
  }

  /**
   * Closes the connection at once; its handlers' signals abort. A `reason` is reported with the
   * `close` event (and logged by the agent).
   */
  close(reason?: Error): void {
    this.closeReason ??= reason;
    this.channel.destroy();
  }
}

/**
 * One call being served: its context (the signal and the metadata map are made only when a
 * handler asks for them) and its deadline entry.
 * @internal
 */
export class ServerCall implements CallContext {
  #controller: AbortController | undefined;
  #abortReason: unknown;
  #metadata: ReadonlyMap<string, string> | undefined;
  deadlineEntry: DeadlineEntry | undefined;
  settled = false;
  queue: MessageQueue | undefined;
  /** Returns the request's pooled buffer (borrowing methods only). */
  recycle: (() => void) | undefined;
  /** Bytes of its frames admitted against the server's budget, released when the handler settles. */
  admitted = 0;

  constructor(
    readonly id: number,
    readonly service: string,
    readonly method: string,
    readonly connection: Connection,
    private readonly rawMetadata: readonly [string, string][],
    readonly deadline: number | undefined,
  ) {}

  get signal(): AbortSignal {
    // Without a deadline only the connection's end (or the server's) aborts a call.
    if (this.deadline === undefined) return this.connection.signal;
    if (this.#controller === undefined) {
      this.#controller = new AbortController();
      if (this.#abortReason !== undefined) this.#controller.abort(this.#abortReason);
    }
    return this.#controller.signal;
  }

  get metadata(): ReadonlyMap<string, string> {
    this.#metadata ??= new Map(this.rawMetadata);
    return this.#metadata;
  }

  get metadataPairs(): readonly (readonly [string, string])[] {
    return this.rawMetadata;
  }

  abort(reason: unknown): void {
    if (this.#controller) this.#controller.abort(reason);
    else this.#abortReason ??= reason;
    this.queue?.fail(reason);
  }
}

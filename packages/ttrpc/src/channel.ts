/**
 * A framed, bidirectional channel over any Duplex.
 *
 * Reads: on a net.Socket the channel takes over the socket's handle with Node's `onread`
 * option, so the kernel reads into buffers the {@link SlabReader} chose (small frames into a
 * slab, big ones straight into their own buffer); other Duplexes go through the 'data'-event
 * {@link FrameDecoder}.
 *
 * Writes: frames written in one tick go out together in one write (one syscall for many small
 * replies); small frames are copied into one buffer, big payload parts are passed by reference.
 * @internal
 */
import { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { FrameAdmission } from './admission.js';
import { encodeHeader, type Frame, FrameDecoder, type OversizedFrame } from './frame.js';
import { BufferPool } from './pool.js';
import { SlabReader } from './reader.js';
import { Code, TtrpcClosedError, TtrpcError } from './status.js';
import { ALIGN_FROM } from './wire.js';

export interface ChannelHandlers {
  frame(frame: Frame): void;
  oversized(frame: OversizedFrame): void;
  /** The stream ended or failed; `error` is set for failures other than a clean EOF. */
  close(error?: Error): void;
  /**
   * Called after each read from the stream, before the frames it completed are handled, with the
   * stream frames travel on (after a takeover, the new Socket): for per-read socket options the
   * kernel does not keep, such as TCP_QUICKACK (the client's `onRead` option).
   */
  read?(stream: Duplex): void;
}

/**
 * Bounds a server puts on one channel (see {@link Channel.bound}); each is off until set.
 */
export interface ChannelBounds {
  /**
   * Bytes written and not yet taken by the kernel (queued frames plus the stream's
   * `writableLength`) at which the channel stops reading, until the peer has read them. Replies
   * of calls already running are still written; a big frame that would take the unsent bytes past
   * twice this is refused (RESOURCE_EXHAUSTED), unless nothing is unsent.
   */
  maxUnsent?: number;
  /** Milliseconds a frame may take from its first byte to its last; past it the channel is destroyed. */
  frameTimeout?: number;
  /** Reading stopped: `unsent` bytes wait for the peer. */
  paused?(unsent: number): void;
  /** Reading started again. */
  resumed?(): void;
  /** A frame of `bytes` was refused: the peer had left too many bytes unread. */
  refused?(bytes: number): void;
  /** A frame was not finished within `frameTimeout` (the channel is destroyed next). */
  stalled?(): void;
}

/** Internals of a net.Socket the takeover relies on (stable since Node 0.x). */
interface SocketInternals {
  _handle?: { readStop?(): number; reading?: boolean; useUserBuffer?: unknown } | null;
  _server?: unknown;
}

/**
 * Moves a connected net.Socket's handle into a new Socket that reads with `onread`. The old
 * wrapper is left without a handle; an accepted socket's server bookkeeping moves along, so
 * `net.Server#close` still waits for it. Returns undefined when the socket cannot be taken over.
 */
function takeOver(
  socket: Duplex,
  reader: SlabReader,
  hooks: { beforeRead(socket: Socket): void; afterRead(): void },
): Socket | undefined {
  if (!(socket instanceof Socket) || socket.connecting || socket.destroyed) return undefined;
  const old = socket as Socket & SocketInternals;
  const handle = old._handle;
  if (!handle || typeof handle.useUserBuffer !== 'function') return undefined;
  if (handle.reading) {
    handle.readStop?.();
    handle.reading = false; // so the new wrapper starts reading again
  }
  old._handle = null;
  // Bytes the old wrapper already read (e.g. past a handshake) come first.
  const buffered: Uint8Array[] = [];
  while (old.readableLength > 0) buffered.push(old.read() as Uint8Array);
  const adopted = new Socket({
    handle: handle as never,
    allowHalfOpen: old.allowHalfOpen,
    onread: {
      buffer: () => reader.nextBuffer(),
      callback: (n: number) => {
        hooks.beforeRead(adopted);
        reader.didRead(n);
        hooks.afterRead();
        return true;
      },
    },
  } as never) as Socket & SocketInternals;
  adopted._server = old._server;
  old._server = null;
  adopted.setNoDelay(true);
  for (const chunk of buffered) reader.push(chunk);
  return adopted;
}

/** Receive buffers for big frames, shared by every channel of the process. */
const sharedPool = new BufferPool();

/**
 * With a bound on unsent bytes, frames handed out per socket read before the reader yields (the
 * socket paused until the next turn of the event loop). Handlers of one read's frames all run
 * before any of their replies is written, so without this a burst of small requests read at once
 * (200 syncs of a 64 MiB resource fit in one read) would make every reply before the bound could
 * apply; yielding lets the replies of the first few be written, and the bound stop the rest.
 */
const FRAMES_PER_READ = 4;

/** Frames at most this long are copied into the tick's write buffer. */
const COPY_BELOW = ALIGN_FROM;

export class Channel {
  /** The stream frames travel on (after a takeover, the new Socket). */
  readonly stream: Duplex;
  #decoder: { idle: boolean; abandon(): void };
  #closed = false;
  /** Parts queued this tick; small runs are joined at flush. */
  #queued: Uint8Array[] = [];
  #queuedSmall = 0;
  #queuedDone: (() => void)[] = [];
  #flushScheduled = false;
  /** Bytes queued this tick, not yet handed to the stream. */
  #queuedBytes = 0;
  #bounds: ChannelBounds = {};
  #paused = false;
  #frameTimer: NodeJS.Timeout | undefined;
  #closedWith: ((error: Error) => void) | undefined;
  /** The zero-copy reader (undefined on the 'data' path, which does not yield). */
  #reader: SlabReader | undefined;
  /** Frames handed out since the last socket read. */
  #handedOut = 0;
  /** True while the reader waits for the next turn of the event loop. */
  #yielding = false;
  /** When the last frame was read or written, on the `performance.now()` clock. */
  lastActive = performance.now();

  constructor(
    stream: Duplex,
    readonly maxFrame: number,
    handlers: ChannelHandlers,
    admission?: FrameAdmission,
  ) {
    let closedWith: Error | undefined;
    const guarded =
      <F>(fn: (frame: F) => void) =>
      (frame: F): void => {
        this.lastActive = performance.now();
        try {
          fn(frame);
        } catch (error) {
          // The handlers fail single calls themselves; reaching here is a bug, reported as the close reason.
          closedWith ??= error as Error;
          this.stream.destroy();
        }
      };
    const onFrame = guarded(handlers.frame);
    const onOversized = guarded(handlers.oversized);
    const reader = new SlabReader(maxFrame, onFrame, onOversized, sharedPool, admission);
    const onRead = handlers.read;
    const adopted = takeOver(stream, reader, {
      beforeRead: (socket) => {
        this.#handedOut = 0;
        onRead?.(socket);
      },
      afterRead: () => this.#watchFrame(),
    });
    if (adopted) {
      this.stream = adopted;
      this.#decoder = reader;
      this.#reader = reader;
    } else {
      this.stream = stream;
      const decoder = new FrameDecoder(maxFrame, onFrame, onOversized, admission);
      this.#decoder = decoder;
      stream.on('data', (chunk: Uint8Array) => {
        onRead?.(stream);
        decoder.push(chunk);
        this.#watchFrame();
      });
    }
    this.#closedWith = (error) => {
      closedWith ??= error;
    };
    const finish = (): void => {
      if (this.#closed) return;
      this.#closed = true;
      clearTimeout(this.#frameTimer);
      if (closedWith === undefined && !this.#decoder.idle)
        closedWith = new TtrpcClosedError('connection closed mid-frame');
      this.#decoder.abandon();
      handlers.close(closedWith);
    };
    this.stream.on('error', (error) => {
      closedWith ??= error;
    });
    this.stream.on('end', () => this.stream.destroy());
    // The peer read what was unsent: read its requests again.
    this.stream.on('drain', () => this.#maybeResume());
    this.stream.on('close', finish);
    // A stream handed over paused (e.g. after a transport handshake) must flow now.
    this.stream.resume();
  }

  /**
   * Sets the channel's bounds (see {@link ChannelBounds}): a server calls it once, as the
   * connection starts. Off by default, so a client's channel has none.
   */
  bound(bounds: ChannelBounds): void {
    this.#bounds = bounds;
    if (bounds.maxUnsent !== undefined && this.#reader) this.#reader.hold = () => this.#hold();
    this.#watchFrame();
  }

  /**
   * Asked by the reader before each frame: stop while the peer is over its unsent bound, and
   * after {@link FRAMES_PER_READ} frames of one read until the next turn of the event loop.
   */
  #hold(): boolean {
    if (this.#paused || this.#yielding) return true;
    if (this.#handedOut++ < FRAMES_PER_READ) return false;
    // The socket keeps reading meanwhile (pausing it costs two epoll_ctl calls per yield): at most
    // one turn of the loop's reads land in the slab, which grows to hold them.
    this.#yielding = true;
    setImmediate(() => {
      this.#yielding = false;
      this.#handedOut = 0;
      this.#continue();
    });
    return true;
  }

  /** Reads again (and hands out what the reader held) unless a bound still holds it. */
  #continue(): void {
    if (this.#paused || this.#yielding || this.closed) return;
    this.stream.resume();
    this.#reader?.resume();
  }

  /** Bytes written and not yet taken by the kernel: queued this tick plus the stream's buffer. */
  get unsent(): number {
    return this.#queuedBytes + this.stream.writableLength;
  }

  /** True while reading is stopped because the peer does not read what it was sent. */
  get paused(): boolean {
    return this.#paused;
  }

  /**
   * A frame's first byte starts its clock; its last byte (or the reader's going idle) stops it.
   * One timer per channel, only while a frame is partly read: a frame that never finishes would
   * hold its buffer (up to the frame limit) for as long as the peer likes.
   */
  #watchFrame(): void {
    const timeout = this.#bounds.frameTimeout;
    if (timeout === undefined) return;
    if (this.#decoder.idle) {
      if (this.#frameTimer !== undefined) {
        clearTimeout(this.#frameTimer);
        this.#frameTimer = undefined;
      }
      return;
    }
    if (this.#frameTimer !== undefined || this.closed) return;
    this.#frameTimer = setTimeout(() => {
      this.#frameTimer = undefined;
      if (this.#decoder.idle || this.closed) return;
      this.#closedWith?.(new TtrpcClosedError(`a frame was not finished within ${timeout} ms`));
      this.#bounds.stalled?.();
      this.stream.destroy();
    }, timeout);
    this.#frameTimer.unref();
  }

  /** Stops reading once the unsent bytes reach the bound (new requests wait in the kernel). */
  #maybePause(): void {
    const max = this.#bounds.maxUnsent;
    if (max === undefined || this.#paused || this.unsent < max || this.closed) return;
    this.#paused = true;
    this.stream.pause();
    this.#bounds.paused?.(this.unsent);
  }

  #maybeResume(): void {
    if (!this.#paused || this.closed) return;
    if (this.unsent >= (this.#bounds.maxUnsent ?? Number.POSITIVE_INFINITY)) return;
    this.#paused = false;
    this.#bounds.resumed?.();
    this.#handedOut = 0;
    this.#continue();
  }

  /** True once the underlying stream closed. */
  get closed(): boolean {
    return this.#closed || this.stream.destroyed;
  }

  /**
   * Queues one frame: header, then the payload parts, without concatenating big ones. Frames
   * queued in one tick are written together. `written` runs once the frame's bytes have left
   * (or the stream failed): the parts may be reused from then on.
   * @throws TtrpcError `RESOURCE_EXHAUSTED` (nothing sent) when the payload is over the limit.
   * @throws TtrpcClosedError when the channel is closed.
   */
  write(
    streamId: number,
    type: number,
    flags: number,
    parts: readonly Uint8Array[],
    written?: () => void,
  ): void {
    if (this.closed) throw new TtrpcClosedError('connection is closed');
    let length = 0;
    for (const part of parts) length += part.byteLength;
    if (length > this.maxFrame) {
      throw new TtrpcError(
        Code.RESOURCE_EXHAUSTED,
        `frame payload of ${length} bytes is over the limit of ${this.maxFrame}`,
      );
    }
    this.lastActive = performance.now();
    const max = this.#bounds.maxUnsent;
    if (max !== undefined && length >= COPY_BELOW) {
      // A peer that does not read must not make us hold reply after reply: past twice the bound a
      // big frame is refused (its bytes go back now), unless it is the only one waiting. Small
      // frames (statuses) always pass: reading is paused, so there are at most maxInflight of them.
      const unsent = this.unsent;
      if (unsent > 0 && unsent + length > 2 * max) {
        this.#bounds.refused?.(length);
        throw new TtrpcError(
          Code.RESOURCE_EXHAUSTED,
          `the peer is not reading: ${unsent} bytes are unsent (bound ${max}); a frame of ${length} bytes was dropped`,
        );
      }
    }
    this.#queue(encodeHeader(length, streamId, type, flags));
    for (const part of parts) if (part.byteLength > 0) this.#queue(part);
    if (written) this.#queuedDone.push(written);
    this.#maybePause();
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      process.nextTick(() => this.#flush());
    }
  }

  #queue(part: Uint8Array): void {
    this.#queued.push(part);
    this.#queuedBytes += part.byteLength;
    if (part.byteLength < COPY_BELOW) this.#queuedSmall += part.byteLength;
  }

  #flush(): void {
    this.#flushScheduled = false;
    const queued = this.#queued;
    this.#queued = [];
    const small = this.#queuedSmall;
    this.#queuedSmall = 0;
    const done = this.#queuedDone;
    this.#queuedDone = [];
    this.#queuedBytes = 0;
    const bounded = this.#bounds.maxUnsent !== undefined;
    const callback =
      done.length === 0 && !bounded
        ? undefined
        : () => {
            for (const fn of done) fn();
            // 'drain' comes only after a write over the stream's high-water mark: a bound below it
            // is checked here, as each flush leaves.
            if (bounded) this.#maybeResume();
          };
    if (this.stream.destroyed) {
      callback?.();
      return;
    }
    // Join runs of small parts into one buffer; big parts go by reference between them.
    const out: Uint8Array[] = [];
    // Uninitialised (every byte is written below) and, under 4 KiB, carved from Node's pool.
    const joined = small > 0 ? Buffer.allocUnsafe(small) : undefined;
    let at = 0;
    let runStart = 0;
    for (const part of queued) {
      if (part.byteLength < COPY_BELOW) {
        joined!.set(part, at);
        at += part.byteLength;
        continue;
      }
      if (at > runStart) out.push(joined!.subarray(runStart, at));
      runStart = at;
      out.push(part);
    }
    if (at > runStart) out.push(joined!.subarray(runStart, at));
    if (out.length === 1) {
      this.stream.write(out[0], callback);
      return;
    }
    this.stream.cork();
    // Writes complete in order: the last one's callback means all of them are out.
    for (let i = 0; i < out.length; i++)
      this.stream.write(out[i], i === out.length - 1 ? callback : undefined);
    this.stream.uncork();
  }

  /** Closes the stream (pending writes are flushed first). */
  end(): void {
    if (this.stream.destroyed) return;
    if (this.#flushScheduled) process.nextTick(() => this.stream.end());
    else this.stream.end();
  }

  /** Destroys the stream at once. */
  destroy(): void {
    this.stream.destroy();
  }
}

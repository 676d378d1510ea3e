/**
 * A framed, bidirectional channel over any Duplex: decodes incoming frames and writes outgoing
 * ones, coalescing the frames written in one tick into one write (one syscall for many small
 * responses) and never copying big payloads to prepend a header.
 * @internal
 */
import type { Duplex } from 'node:stream';
import { encodeHeader, type Frame, FrameDecoder, type OversizedFrame } from './frame.js';
import { Code, TtrpcClosedError, TtrpcError } from './status.js';

export interface ChannelHandlers {
  frame(frame: Frame): void;
  oversized(frame: OversizedFrame): void;
  /** The stream ended or failed; `error` is set for failures other than a clean EOF. */
  close(error?: Error): void;
}

export class Channel {
  readonly #decoder: FrameDecoder;
  #corked = false;
  #closed = false;

  constructor(
    readonly stream: Duplex,
    readonly maxFrame: number,
    handlers: ChannelHandlers,
  ) {
    this.#decoder = new FrameDecoder(maxFrame, handlers.frame, handlers.oversized);
    let closedWith: Error | undefined;
    const finish = (): void => {
      if (this.#closed) return;
      this.#closed = true;
      if (closedWith === undefined && !this.#decoder.idle)
        closedWith = new TtrpcClosedError('connection closed mid-frame');
      handlers.close(closedWith);
    };
    stream.on('data', (chunk: Uint8Array) => {
      try {
        this.#decoder.push(chunk);
      } catch (error) {
        closedWith = error as Error;
        stream.destroy();
      }
    });
    stream.on('error', (error) => {
      closedWith ??= error;
    });
    stream.on('end', () => stream.destroy());
    stream.on('close', finish);
    // A stream handed over paused (e.g. after a transport handshake) must flow now.
    stream.resume();
  }

  /** True once the underlying stream closed. */
  get closed(): boolean {
    return this.#closed || this.stream.destroyed;
  }

  /**
   * Writes one frame: header, then the payload parts, without concatenating them.
   * @throws TtrpcError `RESOURCE_EXHAUSTED` (nothing sent) when the payload is over the limit.
   * @throws TtrpcClosedError when the channel is closed.
   */
  write(streamId: number, type: number, flags: number, parts: readonly Uint8Array[]): void {
    if (this.closed) throw new TtrpcClosedError('connection is closed');
    let length = 0;
    for (const part of parts) length += part.byteLength;
    if (length > this.maxFrame) {
      throw new TtrpcError(
        Code.RESOURCE_EXHAUSTED,
        `frame payload of ${length} bytes is over the limit of ${this.maxFrame}`,
      );
    }
    if (!this.#corked) {
      this.#corked = true;
      this.stream.cork();
      process.nextTick(() => {
        this.#corked = false;
        this.stream.uncork();
      });
    }
    this.stream.write(encodeHeader(length, streamId, type, flags));
    for (const part of parts) if (part.byteLength > 0) this.stream.write(part);
  }

  /** Closes the stream (pending writes are flushed first). */
  end(): void {
    if (!this.stream.destroyed) this.stream.end();
  }

  /** Destroys the stream at once. */
  destroy(): void {
    this.stream.destroy();
  }
}

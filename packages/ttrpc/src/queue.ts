/**
 * A bounded async queue of client-stream messages. A consumer that falls more than `limit`
 * messages behind fails the stream rather than letting memory grow without bound, and so does a
 * stream that carries more than `maxBytes` in all: a consumer that keeps every message (to join
 * them) is never behind, so only a bound on the stream's total holds its memory.
 * @internal
 */
import { Code, TtrpcError } from './status.js';

export class MessageQueue implements AsyncIterable<Uint8Array> {
  readonly #items: Uint8Array[] = [];
  #waiter: ((result: IteratorResult<Uint8Array>) => void) | undefined;
  #failWaiter: ((error: unknown) => void) | undefined;
  #ended = false;
  #error: unknown;
  #bytes = 0;

  constructor(
    private readonly limit: number,
    private readonly maxFrame: number,
    private readonly maxBytes = Number.POSITIVE_INFINITY,
  ) {}

  push(item: Uint8Array): void {
    if (this.#ended || this.#error) return;
    this.#bytes += item.byteLength;
    if (this.#bytes > this.maxBytes) {
      this.fail(
        new TtrpcError(
          Code.RESOURCE_EXHAUSTED,
          `stream carried more than ${this.maxBytes} bytes (the server's bound on one stream)`,
        ),
      );
      return;
    }
    if (this.#waiter) {
      const waiter = this.#waiter;
      this.#waiter = undefined;
      waiter({ value: item, done: false });
      return;
    }
    if (this.#items.length >= this.limit) {
      this.fail(
        new TtrpcError(
          Code.RESOURCE_EXHAUSTED,
          `stream consumer is more than ${this.limit} messages (up to ${this.maxFrame} bytes each) behind`,
        ),
      );
      return;
    }
    this.#items.push(item);
  }

  end(): void {
    this.#ended = true;
    if (this.#waiter && this.#items.length === 0) {
      const waiter = this.#waiter;
      this.#waiter = undefined;
      waiter({ value: undefined, done: true });
    }
  }

  fail(error: unknown): void {
    this.#error = error;
    this.#items.length = 0; // what was buffered goes back now
    this.#failWaiter?.(error);
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Uint8Array> {
    for (;;) {
      if (this.#error) throw this.#error;
      const item = this.#items.shift();
      if (item) {
        yield item;
        continue;
      }
      if (this.#ended) return;
      const next = await new Promise<IteratorResult<Uint8Array>>((resolve, reject) => {
        this.#waiter = resolve;
        this.#failWaiter = reject;
      });
      if (next.done) return;
      yield next.value;
    }
  }
}

import { Duplex } from 'node:stream';
import { MessageChannel, type MessagePort } from 'node:worker_threads';

/** Two connected in-memory Duplex ends (like Go's net.Pipe). */
export function duplexPair(): [Duplex, Duplex] {
  let a!: Duplex;
  let b!: Duplex;
  const make = (peer: () => Duplex): Duplex =>
    new Duplex({
      read() {},
      write(chunk, _encoding, callback) {
        peer().push(chunk);
        callback();
      },
      final(callback) {
        peer().push(null);
        callback();
      },
      destroy(error, callback) {
        const other = peer();
        if (!other.destroyed) other.destroy();
        callback(error);
      },
    });
  a = make(() => b);
  b = make(() => a);
  return [a, b];
}

export const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);
export const text = (data: Uint8Array): string => new TextDecoder().decode(data);

/** One handler call held by a {@link HeldCalls}. */
export interface HeldCall {
  readonly payload: Uint8Array;
  /** Lets the handler reply with its payload. */
  release(): void;
  /** Resolves with the abort reason when the server aborts the handler (deadline, close). */
  readonly aborted: Promise<unknown>;
}

/**
 * A handler that holds every call until the test releases it, and events for the test: a call
 * entered (it is running in the server), a call was aborted. Tests wait on these, never on time.
 */
export class HeldCalls {
  readonly calls: HeldCall[] = [];
  #aborts = 0;
  #holding = 0;
  readonly #waiters: { ready: () => boolean; resolve: () => void }[] = [];
  /**
   * Keeps the process up while a call is held, as a real handler's pending work would (deadline
   * timers are unref'd, and an in-memory pair holds no handle).
   */
  #keepAlive: MessagePort | undefined;

  /** The handler: register it under a method name. */
  readonly method = (payload: Uint8Array, ctx: { signal: AbortSignal }): Promise<Uint8Array> =>
    new Promise((resolve, reject) => {
      let onAborted!: (reason: unknown) => void;
      const aborted = new Promise<unknown>((r) => {
        onAborted = r;
      });
      let holding = true;
      const done = (): void => {
        if (!holding) return;
        holding = false;
        if (--this.#holding === 0) {
          this.#keepAlive?.close();
          this.#keepAlive = undefined;
        }
      };
      if (this.#holding++ === 0) {
        this.#keepAlive = new MessageChannel().port1;
        this.#keepAlive.ref();
      }
      this.calls.push({
        payload,
        release: () => {
          done();
          resolve(payload);
        },
        aborted,
      });
      ctx.signal.addEventListener(
        'abort',
        () => {
          done();
          this.#aborts++;
          onAborted(ctx.signal.reason);
          reject(ctx.signal.reason);
          this.#wake();
        },
        { once: true },
      );
      this.#wake();
    });

  /** Handlers aborted so far. */
  get aborts(): number {
    return this.#aborts;
  }

  /** Resolves with the first `count` calls once that many have entered. */
  async entered(count = 1): Promise<HeldCall[]> {
    await this.#until(() => this.calls.length >= count);
    return this.calls.slice(0, count);
  }

  /** Resolves once `count` handlers have been aborted in all. */
  abortedCalls(count: number): Promise<void> {
    return this.#until(() => this.#aborts >= count);
  }

  #until(ready: () => boolean): Promise<void> {
    if (ready()) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push({ ready, resolve }));
  }

  #wake(): void {
    for (let i = this.#waiters.length - 1; i >= 0; i--) {
      const waiter = this.#waiters[i]!;
      if (!waiter.ready()) continue;
      this.#waiters.splice(i, 1);
      waiter.resolve();
    }
  }
}

/**
 * A small pool of worker threads running the SGEMM kernel, so big multiplications never block the
 * event loop. Idle workers are unref'd (they do not keep the process alive); an aborted call
 * terminates its worker, so abandoned work stops too. @internal
 */
import { availableParallelism } from 'node:os';
import type { Worker } from 'node:worker_threads';
import type { SgemmArgs } from '../../ops/blas.js';
import type { Logger } from '../../runtime/log.js';
import { startModuleWorker } from '../../runtime/worker.js';

const spawn = (): Worker => startModuleWorker('worker', import.meta.url);

export class KernelPool {
  readonly #idle: Worker[] = [];
  readonly #waiters: ((worker: Worker) => void)[] = [];
  #count = 0;
  #closed = false;

  constructor(readonly size = Math.max(1, Math.min(4, availableParallelism()))) {}

  /**
   * Runs the kernel off-thread and copies the result into `s.c`. An abort terminates the worker
   * (V8 stops it mid-loop) and rejects with the signal's reason; `logger` hears when it is gone.
   */
  async run(s: SgemmArgs, ctx: { signal?: AbortSignal | undefined; logger?: Logger } = {}): Promise<void> {
    const { signal, logger } = ctx;
    signal?.throwIfAborted();
    const worker = await this.#acquire();
    if (signal?.aborted) {
      // Gave up while waiting for a worker: hand it on unused.
      this.#release(worker);
      throw signal.reason;
    }
    // Copies of exactly the views (cloning a view would copy its whole underlying buffer).
    const message = { ...s, a: s.a.slice(), b: s.b.slice(), c: s.c.slice() };
    const result = await new Promise<Float32Array>((resolve, reject) => {
      const settle = (): void => {
        worker.off('message', onMessage).off('error', onError);
        signal?.removeEventListener('abort', onAbort);
      };
      const onMessage = (reply: { c?: Float32Array; error?: string }): void => {
        settle();
        this.#release(worker);
        if (reply.c) resolve(reply.c);
        else reject(new Error(reply.error ?? 'sgemm worker failed'));
      };
      const onError = (error: Error): void => {
        settle();
        this.#discard();
        reject(error);
      };
      const onAbort = (): void => {
        settle();
        this.#discard();
        const { m, n, k } = s;
        worker.terminate().then(
          () => logger?.debug({ m, n, k }, 'sgemm stopped early: its caller gave up (worker terminated)'),
          () => {},
        );
        reject(signal?.reason);
      };
      worker.on('message', onMessage).on('error', onError);
      signal?.addEventListener('abort', onAbort, { once: true });
      worker.ref();
      worker.postMessage(message, [message.a.buffer, message.b.buffer, message.c.buffer]);
    });
    s.c.set(result);
  }

  /** Terminates every worker. */
  async close(): Promise<void> {
    this.#closed = true;
    const idle = this.#idle.splice(0);
    this.#count -= idle.length;
    await Promise.all(idle.map((worker) => worker.terminate()));
  }

  #acquire(): Promise<Worker> {
    const idle = this.#idle.pop();
    if (idle) return Promise.resolve(idle);
    if (this.#count < this.size) {
      this.#count++;
      return Promise.resolve(spawn());
    }
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  #release(worker: Worker): void {
    const waiter = this.#waiters.shift();
    if (waiter) {
      waiter(worker);
      return;
    }
    if (this.#closed) {
      this.#count--;
      void worker.terminate();
      return;
    }
    worker.unref();
    this.#idle.push(worker);
  }

  /** Forgets a worker that failed or was terminated, replacing it for the next waiter. */
  #discard(): void {
    this.#count--;
    const waiter = this.#waiters.shift();
    if (waiter && !this.#closed) {
      this.#count++;
      waiter(spawn());
    }
  }
}

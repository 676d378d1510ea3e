/**
 * Compute threads: the host's own models (the shipped classifier, detector, pose and segmentation
 * models) and big SGEMMs run on a few worker threads instead of the thread that runs the event
 * loop.
 *
 * Why: onnxruntime-node runs a session on the calling thread (its `run` only defers the native
 * call with setImmediate), so in the agent every ONNX run held the main thread, and with it every
 * other guest's noop, health probe and reply, for as long as it ran (issue 22: a light guest's
 * noop p99 43 ms beside four SGEMM loops). Here the main thread only passes tensors back and
 * forth; the runs overlap on as many threads as the pool has, each session with the plugin's
 * intra-op threads (the agent sizes both so that ONNX Runtime's threads do not outnumber the
 * cores).
 *
 * Guests' models do not come here: they run in runner processes ({@link ModelRunners}), under a
 * memory cap. These are trusted: a thread that dies fails its call with `EPROTO`.
 *
 * - A thread runs one job at a time; jobs wait in one FIFO queue for an idle thread, preferring
 *   one that already holds the model's session (each thread opens a model the first time it runs
 *   it, from bytes the pool keeps until the model is released).
 * - Inputs are copied once into buffers of their own, which are transferred; outputs come back
 *   transferred.
 * - An aborted call rejects at once. A queued one never runs; an SGEMM stops at its next row
 *   block; a model run cannot be stopped (the binding has no `terminate`) and finishes unseen.
 * - Idle threads do not keep the process alive.
 * @module
 * @internal
 */
import type { Worker } from 'node:worker_threads';
import {
  type ErrorCode,
  ErrorCodes,
  type Logger,
  type ModelInfo,
  type SgemmArgs,
  startModuleWorker,
  type Tensor,
  VaccelError,
} from '@vaccel/core';
import type { ModelCallOptions, ModelHost } from '../model-host.js';
import type { SessionSettings } from '../session.js';
import { BLOCK_FLOPS, sgemmChannel, unpackInto } from '../sgemm.js';
import { BufferPool } from './buffers.js';
import { buffersOf, type Job, owned, type Reply, type Request, type ThreadConfig } from './protocol.js';

interface Pending {
  job: Job;
  key?: string;
  signal: AbortSignal | undefined;
  resolve(reply: Reply): void;
  reject(error: unknown): void;
  onAbort?: () => void;
}

class Thread {
  readonly keys = new Set<string>();
  /** The job it runs now, by id; undefined when idle. */
  busy: number | undefined;
  constructor(readonly worker: Worker) {}
}

/**
 * Publishes `{ block, blocks, hold }` on `vaccel:onnx:sgemm`; resolves once every hold taken by a
 * subscriber is released.
 */
async function published(block: number, blocks: number): Promise<void> {
  const holds: Promise<void>[] = [];
  const hold = () => {
    let release!: () => void;
    holds.push(new Promise<void>((resolve) => (release = resolve)));
    return release;
  };
  sgemmChannel.publish({ block, blocks, hold });
  await Promise.all(holds);
}

const errorOf = (reply: Reply, what: string): VaccelError => {
  const code = reply.error?.code ?? '';
  const known = Object.hasOwn(ErrorCodes, code) ? (code as ErrorCode) : 'EINVAL';
  return new VaccelError(known, reply.error?.message ?? `${what}: the compute thread failed`);
};

/** A pool of compute threads; a {@link ModelHost} for the host's own models, plus SGEMM. */
export class ComputeThreads implements ModelHost {
  readonly #threads: Thread[] = [];
  readonly #queue: Pending[] = [];
  /** Jobs on threads, by id. */
  readonly #running = new Map<number, { thread: Thread; pending: Pending }>();
  /** Model bytes by key, for threads that have not opened the model yet. */
  readonly #models = new Map<string, { bytes: Uint8Array; what: string }>();
  /**
   * The packed B of SGEMMs under way, by key, in shared memory: lent to every thread that runs one
   * of their blocks without its own copy yet (the thread copies it; nothing is copied here again).
   */
  readonly #operands = new Map<string, Float32Array>();
  readonly #buffers = new BufferPool();
  #nextId = 1;
  #closed = false;
  /** Model runs started so far with the wide session, and with the settings' threads. */
  readonly runs = { wide: 0, narrow: 0 };

  /**
   * @param size threads at most (started on demand)
   * @param settings how each thread makes its sessions
   * @param wideThreads ONNX Runtime threads for a model run that starts alone (no other job
   * running or waiting): a lone caller gets every core rather than its share of them, while runs
   * that overlap keep the settings' threads, so together they ask for no more threads than
   * cores plus one run's. Unset, or not above the settings' threads: off.
   */
  constructor(
    readonly size: number,
    private readonly settings: SessionSettings,
    private readonly nice?: number,
    private readonly logger?: Logger,
    private readonly wideThreads?: number,
  ) {
    if (!Number.isSafeInteger(size) || size < 1)
      throw new VaccelError('EINVAL', `onnx: compute threads must be a positive integer, got ${size}`);
  }

  async load(key: string, bytes: Uint8Array, what: string, opts: ModelCallOptions = {}): Promise<ModelInfo> {
    const reply = await this.#submit({ kind: 'load', key, what, bytes }, opts.signal, key);
    this.#models.set(key, { bytes, what });
    return reply.info!;
  }

  async run(
    key: string,
    inputs: Readonly<Record<string, Tensor>>,
    outputs: readonly string[],
    what: string,
    opts: ModelCallOptions = {},
  ): Promise<Record<string, Tensor>> {
    if (!this.#models.has(key)) throw new VaccelError('EINVAL', `${what}: not loaded`);
    const owns: Record<string, Tensor> = {};
    for (const [name, t] of Object.entries(inputs)) owns[name] = owned(t);
    const reply = await this.#submit({ kind: 'run', key, what, inputs: owns, outputs }, opts.signal, key);
    return reply.outputs!;
  }

  async release(key: string): Promise<void> {
    this.#models.delete(key);
    this.#operands.delete(key);
    // Threads free the session after the job they run now (they take jobs in order).
    for (const thread of this.#threads) this.#forget(thread, key);
  }

  /**
   * C = alpha·A·B + beta·C on the compute threads (ONNX Runtime's Gemm), in row blocks of about
   * {@link BLOCK_FLOPS}, written into `s.c` honouring ldc. Between blocks it awaits
   * `ctx.checkpoint` (a scheduler may run another caller's op first) and sees an abort: it then
   * rejects with the signal's reason, rows already done written, the rest of C as it was.
   *
   * Publishes `{ block, blocks, hold }` on `vaccel:onnx:sgemm` before each block; a subscriber
   * that calls `hold()` keeps the block from starting until it calls what `hold` returned.
   */
  async sgemm(
    s: SgemmArgs,
    ctx: { signal?: AbortSignal | undefined; checkpoint?: (() => Promise<void>) | undefined } = {},
  ): Promise<void> {
    const { m, n, k, ldc, beta } = s;
    const { signal } = ctx;
    const key = `sgemm:${this.#nextId++}`;
    const rows = Math.max(1, Math.min(m, Math.floor(BLOCK_FLOPS / Math.max(1, 2 * n * k))));
    const blocks = Math.ceil(m / rows);
    const packedB = this.#buffers.packed(s.b, k, n, s.ldb);
    this.#operands.set(key, packedB);
    let done = false;
    try {
      for (let block = 0; block < blocks; block++) {
        if (block > 0) await ctx.checkpoint?.();
        if (sgemmChannel.hasSubscribers) await published(block, blocks);
        signal?.throwIfAborted();
        const r0 = block * rows;
        const mb = Math.min(rows, m - r0);
        const buffers = this.#buffers;
        const args: SgemmArgs = {
          ...s,
          m: mb,
          a: buffers.packed(s.a.subarray(r0 * s.lda), mb, k, s.lda),
          lda: k,
          b: new Float32Array(0), // the thread's own copy, or one made at dispatch
          ldb: n,
          c: beta !== 0 ? buffers.packed(s.c.subarray(r0 * ldc), mb, n, ldc) : buffers.take(mb * n),
          ldc: n,
        };
        await this.#submit({ kind: 'sgemm', key, args }, signal, key);
        unpackInto(s.c.subarray(r0 * ldc), ldc, args.c, mb, n);
        // Only once the thread is done with them (after an abort it may not be yet).
        buffers.give([args.a, args.c]);
      }
      done = true;
    } finally {
      this.#operands.delete(key);
      if (done) this.#buffers.give([packedB]); // every block has been answered: no thread reads it
      void this.release(key);
    }
  }

  /**
   * Ends every thread once it has finished the job it runs (each frees its sessions and exits on
   * its own: see {@link Request}); calls in flight or queued fail with `ECANCELED` at once.
   */
  async close(): Promise<void> {
    this.#closed = true;
    const gone = new VaccelError('ECANCELED', 'onnx: the plugin is closing');
    for (const pending of this.#queue.splice(0)) this.#settle(pending, () => pending.reject(gone));
    for (const { pending } of this.#running.values()) this.#settle(pending, () => pending.reject(gone));
    this.#running.clear();
    const threads = this.#threads.splice(0);
    await Promise.all(
      threads.map(async ({ worker }) => {
        const exited = new Promise((resolve) => worker.once('exit', resolve));
        worker.ref(); // the process waits for it
        worker.postMessage({ id: 0, kind: 'close' } satisfies Request);
        await exited;
      }),
    );
  }

  #submit(job: Job, signal: AbortSignal | undefined, key?: string): Promise<Reply> {
    if (this.#closed) return Promise.reject(new VaccelError('ECANCELED', 'onnx: the plugin is closed'));
    signal?.throwIfAborted();
    return new Promise<Reply>((resolve, reject) => {
      const pending: Pending = { job, signal, resolve, reject, ...(key !== undefined ? { key } : {}) };
      if (signal) {
        pending.onAbort = () => this.#abort(pending);
        signal.addEventListener('abort', pending.onAbort, { once: true });
      }
      this.#queue.push(pending);
      this.#dispatch();
    });
  }

  #settle(pending: Pending, how: () => void): void {
    if (pending.onAbort) pending.signal?.removeEventListener('abort', pending.onAbort);
    how();
  }

  #abort(pending: Pending): void {
    const queued = this.#queue.indexOf(pending);
    if (queued >= 0) this.#queue.splice(queued, 1);
    else
      for (const running of this.#running.values()) {
        // It stays busy until its reply: a run cannot stop.
        if (running.pending === pending)
          running.pending = { ...pending, resolve: () => {}, reject: () => {} };
      }
    pending.reject(pending.signal?.reason);
  }

  #dispatch(): void {
    while (this.#queue.length > 0) {
      const idle = this.#threads.filter((t) => t.busy === undefined);
      const head = this.#queue[0]!;
      // A model run alone on the pool (nothing else running or waiting) takes the wide session.
      const wide =
        head.job.kind === 'run' &&
        this.#wide !== undefined &&
        this.#running.size === 0 &&
        this.#queue.length === 1;
      const holds = (t: Thread, w: boolean) =>
        head.key !== undefined && t.keys.has(w ? this.#sessionKey(head.key, true) : head.key);
      // An idle thread that holds the session, else the model, else any idle one (it opens the
      // model), else a new one.
      const thread =
        (wide ? idle.find((t) => holds(t, true)) : undefined) ??
        idle.find((t) => holds(t, false)) ??
        idle[0] ??
        (this.#threads.length < this.size ? this.#spawn() : undefined);
      if (!thread) return;
      this.#queue.shift();
      this.#start(thread, head, wide);
    }
  }

  /** Drops what `thread` holds for `key` (its sessions, both kinds; a B) there and here. */
  #forget(thread: Thread, key: string): void {
    const held = [...thread.keys].filter((k) => k === key || k.startsWith(`${key}@`));
    if (held.length === 0) return;
    for (const k of held) thread.keys.delete(k);
    thread.worker.postMessage({ id: 0, kind: 'release', key } satisfies Request);
  }

  /** The wide session's threads, when on. */
  get #wide(): number | undefined {
    const { wideThreads } = this;
    return wideThreads !== undefined && wideThreads > this.settings.intraOpThreads ? wideThreads : undefined;
  }

  /** A thread's key for model `key`'s session: the settings' one, or the wide one. */
  #sessionKey(key: string, wide: boolean): string {
    return wide ? `${key}@${this.#wide}` : key;
  }

  #start(thread: Thread, pending: Pending, wide = false): void {
    const id = this.#nextId++;
    thread.busy = id;
    this.#running.set(id, { thread, pending });
    let job = pending.job;
    if (job.kind === 'run') {
      this.runs[wide ? 'wide' : 'narrow']++;
      const threads = wide ? this.#wide : undefined;
      const sessionKey = this.#sessionKey(job.key, wide);
      job = {
        ...job,
        threads,
        bytes: thread.keys.has(sessionKey) ? undefined : this.#models.get(job.key)?.bytes,
      };
      thread.keys.add(sessionKey);
    } else if (job.kind === 'load' && this.#wide !== undefined) {
      // Both sessions at once, so that a lone caller's first run does not wait for one.
      job = { ...job, threads: this.#wide };
      thread.keys.add(this.#sessionKey(job.key, true));
    }
    if (job.kind === 'sgemm' && !thread.keys.has(job.key))
      job = { ...job, args: { ...job.args, b: this.#operands.get(job.key) ?? new Float32Array(0) } };
    if (job.kind !== 'release' && job.kind !== 'run' && pending.key !== undefined)
      thread.keys.add(pending.key);
    // Model inputs are transferred; SGEMM operands are in shared memory.
    const arrays = job.kind === 'run' ? Object.values(job.inputs).map((t) => t.data) : [];
    thread.worker.ref();
    thread.worker.postMessage({ id, ...job } satisfies Request, buffersOf(arrays));
  }

  #spawn(): Thread {
    const worker = startModuleWorker('worker', import.meta.url, {
      workerData: { settings: this.settings, nice: this.nice } satisfies ThreadConfig,
    });
    const thread = new Thread(worker);
    this.#threads.push(thread);
    worker.on('message', (reply: Reply) => this.#reply(thread, reply));
    worker.on('error', (error) => this.#lost(thread, error.message));
    worker.on('exit', (code) => this.#lost(thread, `exited with code ${code}`));
    return thread;
  }

  #reply(thread: Thread, reply: Reply): void {
    const running = this.#running.get(reply.id);
    if (!running) return; // a release's answer
    this.#running.delete(reply.id);
    thread.busy = undefined;
    thread.worker.unref();
    const { pending } = running;
    if (reply.missing && pending.key !== undefined) {
      thread.keys.delete(pending.key);
      // Sent again with B, unless its SGEMM is over (aborted meanwhile): then B is gone too.
      if (this.#operands.has(pending.key)) this.#queue.unshift(pending);
      else
        this.#settle(pending, () => pending.reject(new VaccelError('ECANCELED', 'sgemm: no longer wanted')));
      this.#dispatch();
      return;
    }
    const what = pending.job.kind === 'sgemm' ? 'sgemm' : 'what' in pending.job ? pending.job.what : 'onnx';
    // The wide session could not be opened: the thread runs the model with its share only.
    if (reply.wideFailed && pending.key !== undefined)
      thread.keys.delete(this.#sessionKey(pending.key, true));
    if (reply.error && pending.job.kind !== 'release' && pending.key !== undefined)
      // What the thread may still hold for it (its sessions, a B) is freed there too.
      this.#forget(thread, pending.key);
    this.#settle(pending, () =>
      reply.error ? pending.reject(errorOf(reply, what)) : pending.resolve(reply),
    );
    this.#dispatch();
  }

  /** A thread that died: its job fails, the pool forgets it and starts another on demand. */
  #lost(thread: Thread, why: string): void {
    const index = this.#threads.indexOf(thread);
    if (index < 0) return;
    this.#threads.splice(index, 1);
    if (this.#closed) return;
    this.logger?.warn({ why }, 'onnx: a compute thread died');
    const running = thread.busy === undefined ? undefined : this.#running.get(thread.busy);
    if (running) {
      this.#running.delete(thread.busy!);
      const { pending } = running;
      this.#settle(pending, () =>
        pending.reject(new VaccelError('EPROTO', `onnx: the compute thread running this call died (${why})`)),
      );
    }
    this.#dispatch();
  }
}

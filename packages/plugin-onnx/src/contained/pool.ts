/**
 * Guests' models run in a small pool of runner processes ({@link ModelRunners}), never in the
 * agent: a worker thread's `resourceLimits` bound only its V8 heap, while ONNX Runtime allocates
 * natively (a 125-byte model, ConstantOfShape [30000, 30000] → ReduceSum, takes 3.5 GiB a run).
 *
 * - Each runner is a `node` process on `runner.ts`, tied to this process (`spawnTied`: it dies
 *   with it), with no environment of the agent's, in an empty working directory of its own that
 *   is deleted once it has started (a relative path then resolves nowhere). Once
 *   it has loaded ONNX Runtime it reports its virtual size, and `prlimit --pid` caps its address
 *   space (RLIMIT_AS) at that size plus the memory budget. The cap is set then rather than at
 *   spawn because the baseline is not ours to choose: `node` with onnxruntime-node maps ~1 GB,
 *   under tsx (tests) ~10 GB of reservations; the budget is what a model may add.
 * - A runner does one call at a time, so its death fails that call only. Calls wait in one FIFO
 *   queue (bounded) for an idle runner, preferring one that already holds the model's session;
 *   a runner keeps a few sessions (least recently used dropped first), keyed by model digest.
 * - A runner that dies (out of memory: a failed allocation aborts it or ONNX Runtime reports it;
 *   a crash; SIGKILL) fails its call with `ENOMEM` or `EPROTO` and is replaced on demand. A
 *   failed allocation that ONNX Runtime catches fails the call with `ENOMEM` and the runner lives.
 * - Abort kills the runner of an aborted call (`SIGKILL`: ONNX Runtime's node binding cannot stop
 *   a run), so the cores are free at once; a queued call just leaves the queue.
 *
 * Publishes on `diagnostics_channel` `vaccel:onnx:runner`: `{ event: 'spawn' | 'ready' | 'exit' |
 * 'call', pid, … }` (free when nobody listens; tests wait on it).
 * @module
 * @internal
 */
import { execFile } from 'node:child_process';
import { channel } from 'node:diagnostics_channel';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { debuglog } from 'node:util';
import { elementCount, type Logger, type ModelInfo, type Tensor, VaccelError } from '@vaccel/core';
import { spawnTied } from '@vaccel/process';
import type { ModelHost } from '../model-host.js';
import { checkRun } from '../session.js';
import {
  bytesOf,
  encodeFrame,
  type Frame,
  FrameReader,
  Kind,
  type TensorMeta,
  typedView,
} from './protocol.js';
import type { RunnerConfig } from './runner.js';

const log = debuglog('vaccel');
/** @internal Runner lifecycle events (see the module's notes). */
export const runnerChannel = channel('vaccel:onnx:runner');

/** How the pool runs models. */
export interface RunnerPoolOptions {
  /** Runner processes at most (started on demand). */
  runners: number;
  /** Bytes each runner may map beyond its baseline (RLIMIT_AS); Infinity: no cap. */
  memoryLimit: number;
  /** Sessions and intake, as each runner makes them. */
  runner: RunnerConfig;
  /** Calls that may wait for a runner (default 64 per runner); more are refused with `EAGAIN`. */
  maxQueued?: number;
  /** Sessions a runner keeps (default 8). */
  sessionsPerRunner?: number;
}

/** Bytes of a reply frame beyond the outputs themselves (meta). */
const META_SLACK = 1 << 20;
/** stderr kept from a runner, to say why it died (in the host's log, never to a guest). */
const STDERR_TAIL = 4096;
/** What a runner prints when an allocation fails: V8, glibc's C++ runtime, ONNX Runtime. */
const OOM_TEXT = /out of memory|bad_alloc|Allocation failed|Failed to allocate|Cannot allocate|OOM/i;

interface Call {
  resolve(frame: Frame): void;
  reject(error: unknown): void;
  what: string;
}

interface Job {
  digest: string;
  what: string;
  run?: { inputs: Readonly<Record<string, Tensor>>; outputs: readonly string[] };
  signal: AbortSignal | undefined;
  logger: Logger | undefined;
  resolve(value: ModelInfo | Record<string, Tensor>): void;
  reject(error: unknown): void;
  /** The runner it runs on, once dispatched. */
  runner?: Runner;
  done: boolean;
}

class Runner {
  state: 'starting' | 'ready' | 'dead' = 'starting';
  job: Job | undefined;
  /** Sessions held, by digest, least recently used first. */
  readonly sessions = new Set<string>();
  readonly pid: number;
  readonly calls = new Map<number, Call>();
  stderr = '';
  /** Why this side killed it (abort, close, a broken protocol): its exit is not news, and this is what its calls get. */
  stopped: VaccelError | undefined;
  private nextId = 1;
  private readonly reader: FrameReader;

  constructor(
    readonly child: ReturnType<typeof spawnTied>,
    readonly channel: Socket,
    maxReplyBytes: number,
    private readonly onReady: (runner: Runner, vmSize: number) => void,
    private readonly onBroken: (runner: Runner, why: string) => void,
  ) {
    this.pid = child.pid ?? 0;
    this.reader = new FrameReader(maxReplyBytes);
    channel.on('data', (chunk: Buffer) => {
      let frames: Frame[];
      try {
        frames = this.reader.push(chunk);
      } catch (error) {
        this.onBroken(this, (error as Error).message);
        return;
      }
      for (const frame of frames) this.receive(frame);
    });
    channel.on('error', () => {}); // its exit says what happened
    child.stderr?.on('data', (chunk: Buffer) => {
      this.stderr = (this.stderr + chunk.toString('utf8')).slice(-STDERR_TAIL);
    });
    // Idle runners must not keep the host's event loop alive; busy ones do (see hold()).
    (child.stderr as Socket | null)?.unref();
    this.hold(true);
  }

  /** Keeps the host's event loop alive while it matters: a call in flight, or a start awaited. */
  hold(on: boolean): void {
    // The process too: if it dies mid-call, its exit is what settles the call.
    if (on) {
      this.channel.ref();
      this.child.ref();
    } else {
      this.channel.unref();
      this.child.unref();
    }
  }

  private receive(frame: Frame): void {
    if (frame.kind === Kind.Ready && this.state === 'starting') {
      this.onReady(this, Number(frame.meta.vmSize) || 0);
      return;
    }
    const call = this.calls.get(frame.id);
    if (frame.kind !== Kind.Reply || !call) {
      this.onBroken(this, `unexpected frame kind ${frame.kind} id ${frame.id}`);
      return;
    }
    this.calls.delete(frame.id);
    const error = frame.meta.error as { code?: string; message?: string } | undefined;
    if (error) {
      const code = (error.code ?? 'EPROTO') as ConstructorParameters<typeof VaccelError>[0];
      call.reject(new VaccelError(code, error.message ?? `${call.what}: the model runner failed`));
    } else call.resolve(frame);
  }

  call(kind: Kind, what: string, meta: Record<string, unknown>, blobs: Uint8Array[] = []): Promise<Frame> {
    const id = this.nextId++;
    const chunks = encodeFrame(id, kind, meta, blobs);
    const reply = new Promise<Frame>((resolve, reject) => this.calls.set(id, { resolve, reject, what }));
    this.channel.cork();
    for (const chunk of chunks) this.channel.write(chunk);
    this.channel.uncork();
    return reply;
  }

  /** Sends a frame that gets no reply. */
  tell(kind: Kind, meta: Record<string, unknown>): void {
    for (const chunk of encodeFrame(0, kind, meta)) this.channel.write(chunk);
  }

  kill(why: VaccelError): void {
    this.stopped ??= why;
    this.child.kill('SIGKILL');
  }
}

/**
 * Runs guests' models in runner processes (see the module's notes).
 * @internal
 */
export class ModelRunners implements ModelHost {
  private readonly runners: Runner[] = [];
  private readonly queue: Job[] = [];
  /** Models loaded through this pool: their bytes (to load them on any runner) and what they declare. */
  private readonly models = new Map<string, { bytes: Uint8Array; info?: ModelInfo }>();
  private readonly maxQueued: number;
  private readonly sessionsPerRunner: number;
  private readonly maxReplyBytes: number;
  private closed = false;

  constructor(private readonly options: RunnerPoolOptions) {
    this.maxQueued = options.maxQueued ?? 64 * options.runners;
    this.sessionsPerRunner = options.sessionsPerRunner ?? 8;
    this.maxReplyBytes = options.runner.maxOutputBytes + META_SLACK;
  }

  async load(
    digest: string,
    bytes: Uint8Array,
    what: string,
    opts: { signal?: AbortSignal | undefined; logger?: Logger | undefined } = {},
  ): Promise<ModelInfo> {
    const known = this.models.get(digest);
    if (known?.info) return known.info;
    if (!known) this.models.set(digest, { bytes });
    try {
      const info = (await this.submit(digest, what, undefined, opts)) as ModelInfo;
      const model = this.models.get(digest);
      if (model) model.info = info;
      return info;
    } catch (error) {
      // Not loaded: nothing will release it, so its bytes must not stay.
      if (this.models.get(digest)?.info === undefined) this.models.delete(digest);
      throw error;
    }
  }

  async run(
    digest: string,
    inputs: Readonly<Record<string, Tensor>>,
    outputs: readonly string[],
    what: string,
    opts: { signal?: AbortSignal | undefined; logger?: Logger | undefined } = {},
  ): Promise<Record<string, Tensor>> {
    const info = this.models.get(digest)?.info;
    if (!info) throw new VaccelError('EINVAL', `${what}: not loaded`);
    checkRun(info, inputs, outputs, what);
    return (await this.submit(digest, what, { inputs, outputs }, opts)) as Record<string, Tensor>;
  }

  async release(digest: string): Promise<void> {
    this.models.delete(digest);
    for (const runner of this.runners) {
      if (runner.state === 'ready' && runner.sessions.delete(digest)) runner.tell(Kind.Release, { digest });
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const closed = new VaccelError('EBADF', 'onnx: the plugin is closed');
    for (const job of this.queue.splice(0)) this.settle(job, closed);
    const exits = this.runners.map((r) =>
      r.child.exitCode !== null || r.child.signalCode !== null
        ? undefined
        : new Promise((resolve) => r.child.once('exit', resolve)),
    );
    for (const runner of this.runners) {
      runner.hold(true); // until its exit
      runner.kill(closed);
    }
    await Promise.all(exits);
    this.models.clear();
  }

  private submit(
    digest: string,
    what: string,
    run: Job['run'],
    opts: { signal?: AbortSignal | undefined; logger?: Logger | undefined },
  ): Promise<ModelInfo | Record<string, Tensor>> {
    if (this.closed) return Promise.reject(new VaccelError('EBADF', 'onnx: the plugin is closed'));
    const { signal } = opts;
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.queue.length >= this.maxQueued)
      return Promise.reject(
        new VaccelError(
          'EAGAIN',
          `${what}: ${this.queue.length} model calls are waiting for a runner already; try again later`,
        ),
      );
    return new Promise((resolve, reject) => {
      const job: Job = { digest, what, run, signal, logger: opts.logger, resolve, reject, done: false };
      const onAbort = () => {
        if (job.done) return;
        const queued = this.queue.indexOf(job);
        if (queued >= 0) this.queue.splice(queued, 1);
        this.settle(job, signal!.reason);
        // The runner is busy with this call: killing it is the only way to stop ONNX Runtime.
        if (job.runner && job.runner.state !== 'dead')
          job.runner.kill(new VaccelError('ECANCELED', `${what}: the call was aborted`));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      job.resolve = (value) => {
        signal?.removeEventListener('abort', onAbort);
        resolve(value);
      };
      job.reject = (error) => {
        signal?.removeEventListener('abort', onAbort);
        reject(error);
      };
      this.queue.push(job);
      this.pump();
    });
  }

  private settle(job: Job, error: unknown, value?: ModelInfo | Record<string, Tensor>): void {
    if (job.done) return;
    job.done = true;
    if (error !== undefined) job.reject(error);
    else job.resolve(value!);
  }

  /** Starts queued calls on idle runners; starts runners while calls wait and there is room. */
  private pump(): void {
    while (this.queue.length > 0) {
      const idle = this.runners.filter((r) => r.state === 'ready' && !r.job);
      if (idle.length === 0) break;
      const job = this.queue.shift()!;
      const runner =
        idle.find((r) => r.sessions.has(job.digest)) ??
        idle.reduce((a, b) => (b.sessions.size < a.sessions.size ? b : a));
      void this.execute(runner, job);
    }
    const starting = this.runners.filter((r) => r.state === 'starting').length;
    let wanted = Math.min(this.queue.length - starting, this.options.runners - this.runners.length);
    while (wanted-- > 0 && !this.closed) this.spawn();
    for (const runner of this.runners) runner.hold(runner.job !== undefined || runner.state === 'starting');
  }

  private async execute(runner: Runner, job: Job): Promise<void> {
    runner.job = job;
    job.runner = runner;
    runner.hold(true);
    runnerChannel.publish({ event: 'call', pid: runner.pid, what: job.what, kind: job.run ? 'run' : 'load' });
    try {
      const model = this.models.get(job.digest);
      if (!model) throw new VaccelError('EINVAL', `${job.what}: not loaded`);
      if (!runner.sessions.has(job.digest)) {
        while (runner.sessions.size >= this.sessionsPerRunner) {
          const oldest = runner.sessions.values().next().value!;
          runner.sessions.delete(oldest);
          runner.tell(Kind.Release, { digest: oldest });
        }
        const frame = await runner.call(Kind.Load, job.what, { digest: job.digest, what: job.what }, [
          model.bytes,
        ]);
        runner.sessions.add(job.digest);
        if (!job.run) {
          this.settle(job, undefined, frame.meta.info as ModelInfo);
          return;
        }
      } else {
        // Most recently used last.
        runner.sessions.delete(job.digest);
        runner.sessions.add(job.digest);
        if (!job.run) {
          this.settle(job, undefined, model.info);
          return;
        }
      }
      const { inputs, outputs } = job.run;
      const metas: TensorMeta[] = [];
      const blobs: Uint8Array[] = [];
      for (const [name, t] of Object.entries(inputs)) {
        metas.push({ name, dtype: t.dtype, dims: [...t.dims] });
        blobs.push(bytesOf(t.data));
      }
      const frame = await runner.call(
        Kind.Run,
        job.what,
        { digest: job.digest, what: job.what, inputs: metas, outputs },
        blobs,
      );
      const result: Record<string, Tensor> = {};
      (frame.meta.outputs as TensorMeta[]).forEach((t, i) => {
        const data = typedView(t.dtype, frame.blobs[i]!);
        if (data.length !== elementCount(t.dims))
          throw new Error(`output "${t.name}" does not match its dims`);
        result[t.name] = { dtype: t.dtype, dims: t.dims, data } as Tensor;
      });
      this.settle(job, undefined, result);
    } catch (error) {
      if (!(error instanceof VaccelError)) {
        // The runner said something this side cannot read: it is not to be trusted with more calls.
        this.broken(runner, (error as Error).message);
        this.settle(job, new VaccelError('EPROTO', `${job.what}: the model runner failed`, { cause: error }));
      } else this.settle(job, error);
    } finally {
      if (runner.job === job) runner.job = undefined;
      this.pump();
    }
  }

  private spawn(): void {
    const fromSource = import.meta.url.endsWith('.ts');
    const entry = fileURLToPath(new URL(`./runner.${fromSource ? 'ts' : 'js'}`, import.meta.url));
    // Under tsx (tests on sources) the runner registers tsx itself and reads sources as well.
    const loader = fromSource
      ? ['--import', import.meta.resolve('tsx/esm'), '--conditions=@vaccel/source']
      : [];
    const env: Record<string, string> = {
      // glibc keeps a 64 MiB arena reservation per thread by default: address space the cap counts.
      MALLOC_ARENA_MAX: '2',
    };
    if (process.env.LD_LIBRARY_PATH) env.LD_LIBRARY_PATH = process.env.LD_LIBRARY_PATH;
    // ONNX Runtime resolves a relative path in a model given as bytes against the working
    // directory. Intake refuses such models; should one get past it, it finds nothing here, and
    // nothing at all once the folder is gone (removed when the runner reports ready).
    const jail = mkdtempSync(join(tmpdir(), 'vaccel-runner-'));
    chmodSync(jail, 0o500);
    const child = spawnTied(process.execPath, [...loader, entry, JSON.stringify(this.options.runner)], {
      cwd: jail,
      env,
      stdio: ['ignore', 'ignore', 'pipe', 'pipe'],
    });
    const unjail = () => rmSync(jail, { recursive: true, force: true });
    const socket = child.stdio[3] as Socket | null;
    if (!socket || child.pid === undefined) {
      unjail();
      child.once('error', () => {});
      this.failQueued(new VaccelError('EPROTO', 'onnx: a model runner could not be started'));
      return;
    }
    const runner = new Runner(
      child,
      socket,
      this.maxReplyBytes,
      (r, vmSize) => {
        unjail();
        void this.ready(r, vmSize);
      },
      (r, why) => this.broken(r, why),
    );
    this.runners.push(runner);
    child.once('error', () => {}); // 'exit' follows
    child.once('exit', (code, signal) => {
      unjail();
      this.exited(runner, code, signal);
    });
    runnerChannel.publish({ event: 'spawn', pid: runner.pid });
  }

  private async ready(runner: Runner, vmSize: number): Promise<void> {
    if (Number.isFinite(this.options.memoryLimit)) {
      const cap = Math.ceil(vmSize + this.options.memoryLimit);
      try {
        await new Promise<void>((resolve, reject) =>
          execFile('prlimit', ['--pid', String(runner.pid), `--as=${cap}`], (error) =>
            error ? reject(error) : resolve(),
          ),
        );
      } catch (error) {
        const missing = (error as NodeJS.ErrnoException).code === 'ENOENT';
        const failure = new VaccelError(
          'ENOTSUP',
          missing
            ? 'onnx: guest models run under a memory cap set with prlimit (util-linux), which is not on PATH; install it, or set VACCEL_MODEL_MEMORY_LIMIT=unlimited'
            : 'onnx: the memory cap of a model runner could not be set',
          { cause: error },
        );
        runner.kill(failure);
        this.failQueued(failure);
        return;
      }
    }
    if (runner.state !== 'starting') return; // died meanwhile
    runner.state = 'ready';
    runnerChannel.publish({
      event: 'ready',
      pid: runner.pid,
      vmSize,
      cap: vmSize + this.options.memoryLimit,
    });
    this.pump();
  }

  private broken(runner: Runner, why: string): void {
    log('onnx: model runner %d broke the protocol (%s); killing it', runner.pid, why);
    runner.kill(new VaccelError('EPROTO', 'onnx: the model runner answered out of protocol and was stopped'));
  }

  private failQueued(error: VaccelError): void {
    for (const job of this.queue.splice(0)) this.settle(job, error);
  }

  private exited(runner: Runner, code: number | null, signal: NodeJS.Signals | null): void {
    const wasStarting = runner.state === 'starting';
    runner.state = 'dead';
    this.runners.splice(this.runners.indexOf(runner), 1);
    runner.hold(false);
    const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
    const outOfMemory = signal === 'SIGKILL' || OOM_TEXT.test(runner.stderr);
    const job = runner.job;
    const what = job?.what ?? 'model';
    const error =
      runner.stopped ??
      (outOfMemory
        ? new VaccelError(
            'ENOMEM',
            `${what}: the model runner ${how}: the run took more memory than a model may have (${this.options.memoryLimit} bytes) or the host stopped it; the call failed and the runner is replaced`,
          )
        : new VaccelError(
            'EPROTO',
            `${what}: the model runner ${how} during the call; the call failed and the runner is replaced`,
          ));
    for (const call of runner.calls.values()) call.reject(error);
    runner.calls.clear();
    if (!runner.stopped) {
      const fields = { pid: runner.pid, code, signal, stderr: runner.stderr.trim() };
      if (job?.logger) job.logger.warn(fields, 'model runner died');
      else log('onnx: model runner %d %s: %s', runner.pid, how, runner.stderr.trim());
    }
    runnerChannel.publish({
      event: 'exit',
      pid: runner.pid,
      code,
      signal,
      killed: runner.stopped !== undefined,
    });
    if (wasStarting && !runner.stopped && !this.closed) {
      // A runner that cannot start would fail again: fail the waiting calls rather than loop.
      log('onnx: model runner %d %s before it was ready: %s', runner.pid, how, runner.stderr.trim());
      this.failQueued(
        new VaccelError('EPROTO', `onnx: a model runner ${how} before it was ready (see the host's log)`),
      );
    }
    if (!this.closed) this.pump();
  }
}

/**
 * The agent's compute scheduler (issue 22): heavy ops from every guest go through per-tenant FIFO
 * queues into a pool of at most `slots` concurrent runs, served in fair order; cheap ops never
 * wait here.
 *
 * Why: without it every op starts the moment it arrives, so four guests looping big SGEMMs run
 * four ONNX Runtime runs (each with its intra-op threads) on two cores, and the main thread that
 * answers everyone's noops gets a sliver of the CPU. With a pool sized to the cores (and ONNX
 * Runtime's threads sized to the pool, see main.ts), the runtime threads never outnumber the
 * cores, and a light guest's op waits for at most one slot to free instead of behind every queued
 * heavy op of its neighbours.
 *
 * Fair order is start-time fair queuing on service time, like CFS's vruntime: each tenant has a
 * virtual time, advanced by what its runs cost (milliseconds ÷ weight, charged at dispatch by an
 * estimate, corrected with the real time when the run ends); the next free slot goes to the
 * backlogged tenant with the smallest virtual time. A tenant that becomes backlogged starts at no
 * less than the scheduler's virtual clock (the start time of the last run dispatched), so idling
 * banks no credit to starve the others with later, while a light tenant, whose virtual time
 * lags, is served before a heavy one's next run.
 *
 * A tenant is a connection, or a token's group (tenants.ts), whose weight divides its virtual
 * time. Each is bounded: `maxQueued` compute calls queued or running, else EBUSY
 * (RESOURCE_EXHAUSTED on the wire), never an unbounded wait. A queued call whose signal aborts
 * (deadline, cancel, connection closed) leaves its queue and never runs. A running call may give
 * its slot back between chunks of its work (`run`'s checkpoint) when others wait.
 * @module
 */
import { availableParallelism } from 'node:os';
import { type OpType, opInfo, opName, VaccelError } from '@vaccel/core';
import type { AgentMetrics } from './metrics.js';

/** Below this many bytes of args, a `data` op (SGEMM, AES, …) is cheap: it runs at once. */
export const SMALL_OP_BYTES = 64 * 1024;

/** Options of a {@link Scheduler}. */
export interface SchedulerOptions {
  /** Compute runs at once, all tenants together (default: the cores, `os.availableParallelism()`). */
  slots?: number;
  /** Compute calls one tenant may have queued or running (default 64). */
  maxQueued?: number;
  /** Off: every op runs the moment it arrives, as before issue 22 (for measuring; default false). */
  disabled?: boolean;
  metrics?: AgentMetrics;
  /** The clock runs are timed with, in milliseconds (default `performance.now`; tests set their own). */
  clock?: () => number;
}

/** True when `op` with `argBytes` bytes of args goes through the compute pool. */
export function isCompute(op: OpType, argBytes: number): boolean {
  const cost = opInfo(op)?.cost ?? 'compute'; // an op we do not know: assume the worst
  return cost === 'compute' || (cost === 'data' && argBytes >= SMALL_OP_BYTES);
}

/** A call waiting for a slot. */
interface Waiter {
  readonly tenant: Tenant;
  readonly enqueued: number;
  readonly signal: AbortSignal | undefined;
  resolve(release: () => void): void;
  reject(error: unknown): void;
  onAbort?: () => void;
}

/** One tenant's queue and share. */
export class Tenant {
  /** Calls waiting, oldest first. */
  readonly waiting: Waiter[] = [];
  /** Calls holding a slot now. */
  running = 0;
  /** Service received, in weighted milliseconds (see the module comment). */
  vtime = 0;
  /** What one run of this tenant costs, in milliseconds (moving average), charged at dispatch. */
  estimate = 1;

  constructor(
    readonly id: string,
    /** A bounded label for metrics (a tenant class, never a connection id). */
    readonly label: string,
    /** Its share relative to other tenants' (default 1). */
    readonly weight = 1,
  ) {}
}

/** Weight of the newest run in a tenant's cost estimate. */
const ESTIMATE_GAIN = 0.3;

export class Scheduler {
  readonly slots: number;
  readonly maxQueued: number;
  readonly disabled: boolean;
  #free: number;
  /** Tenants with calls waiting. */
  readonly #backlogged = new Set<Tenant>();
  /** Start time (virtual) of the last run dispatched. */
  #vclock = 0;
  readonly #metrics: AgentMetrics | undefined;
  readonly #clock: () => number;

  constructor(options: SchedulerOptions = {}) {
    this.slots = options.slots ?? availableParallelism();
    this.maxQueued = options.maxQueued ?? 64;
    for (const [name, value] of [
      ['slots', this.slots],
      ['maxQueued', this.maxQueued],
    ] as const)
      if (!Number.isSafeInteger(value) || value < 1)
        throw new VaccelError('EINVAL', `scheduler: ${name} must be a positive integer, got ${value}`);
    this.disabled = options.disabled ?? false;
    this.#free = this.slots;
    this.#metrics = options.metrics;
    this.#clock = options.clock ?? (() => performance.now());
    this.#metrics?.computeSlots.set(this.slots);
  }

  /** Compute runs going on now. */
  get busy(): number {
    return this.slots - this.#free;
  }

  /**
   * Waits for a compute slot for one call of `tenant` and resolves with the function that gives
   * it back (call it exactly once, when the run has ended, failed or not).
   * @throws VaccelError `EBUSY` when the tenant already has `maxQueued` calls queued or running;
   *   the signal's reason when it aborts while the call waits (the call then never runs).
   */
  acquire(tenant: Tenant, op: OpType, signal?: AbortSignal): Promise<() => void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (tenant.running + tenant.waiting.length >= this.maxQueued) {
      this.#metrics?.refusals.labels({ reason: 'compute_queue' }).inc();
      this.#metrics?.tenantRejections.labels({ tenant: tenant.label }).inc();
      return Promise.reject(
        new VaccelError(
          'EBUSY',
          `${opName(op)} refused: this tenant (its connection, or its token's group) already has ${this.maxQueued} compute calls queued or running (--max-queued)`,
        ),
      );
    }
    if (tenant.waiting.length === 0 && tenant.running === 0)
      tenant.vtime = Math.max(tenant.vtime, this.#vclock);
    return this.#enqueue(tenant, signal, false);
  }

  /** A waiting call's signal aborted: it leaves its queue and fails with the signal's reason. */
  #withdraw(waiter: Waiter): void {
    const { tenant } = waiter;
    const at = tenant.waiting.indexOf(waiter);
    if (at < 0) return; // dispatched already
    tenant.waiting.splice(at, 1);
    if (tenant.waiting.length === 0) this.#backlogged.delete(tenant);
    this.#metrics?.tenantQueued.labels({ tenant: tenant.label }).dec();
    waiter.reject(waiter.signal!.reason);
  }

  /** Gives free slots to the backlogged tenants with the least service. */
  #dispatch(): void {
    while (this.#free > 0 && this.#backlogged.size > 0) {
      // Linear in the backlogged tenants (at most the connections): few, and cheaper than a heap
      // whose keys change at every completion.
      let next: Tenant | undefined;
      for (const tenant of this.#backlogged) if (!next || tenant.vtime < next.vtime) next = tenant;
      const tenant = next!;
      const waiter = tenant.waiting.shift()!;
      if (tenant.waiting.length === 0) this.#backlogged.delete(tenant);
      if (waiter.onAbort) waiter.signal!.removeEventListener('abort', waiter.onAbort);
      this.#metrics?.tenantQueued.labels({ tenant: tenant.label }).dec();
      this.#metrics?.tenantWait
        .labels({ tenant: tenant.label })
        .observe((this.#clock() - waiter.enqueued) / 1e3);
      waiter.resolve(this.#start(tenant));
    }
  }

  /** Takes a slot for `tenant` and returns its release. */
  #start(tenant: Tenant): () => void {
    this.#free--;
    tenant.running++;
    this.#vclock = Math.max(this.#vclock, tenant.vtime);
    const charged = tenant.estimate / tenant.weight;
    tenant.vtime += charged;
    this.#metrics?.computeBusy.inc();
    const started = this.#clock();
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const took = this.#clock() - started;
      tenant.vtime += took / tenant.weight - charged;
      tenant.estimate += ESTIMATE_GAIN * (took - tenant.estimate);
      tenant.running--;
      this.#free++;
      this.#metrics?.computeBusy.dec();
      this.#dispatch();
    };
  }

  /**
   * Runs `run` for `tenant` in a compute slot when `op` (with `argBytes` bytes of args) is
   * compute, else at once.
   */
  async run<T>(
    tenant: Tenant,
    op: OpType,
    argBytes: number,
    signal: AbortSignal | undefined,
    run: (checkpoint?: () => Promise<void>) => Promise<T>,
  ): Promise<T> {
    if (this.disabled || !isCompute(op, argBytes)) return run();
    let release: (() => void) | undefined = await this.acquire(tenant, op, signal);
    // Between chunks of its work the op gives its slot back when others wait, and queues for it
    // again as its tenant's next call: a long SGEMM is served in turns, not all at once.
    let settled = false;
    const checkpoint = async (): Promise<void> => {
      if (settled || this.#backlogged.size === 0 || !release) return;
      release();
      release = undefined;
      release = await this.#reacquire(tenant, signal);
    };
    try {
      return await run(checkpoint);
    } finally {
      settled = true;
      release?.();
      release = undefined;
    }
  }

  /** {@link acquire} for a call that already counts against its tenant's queue: at its head. */
  #reacquire(tenant: Tenant, signal: AbortSignal | undefined): Promise<() => void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    return this.#enqueue(tenant, signal, true);
  }

  /** Queues a call of `tenant` (at the head of its queue or the tail) and dispatches. */
  #enqueue(tenant: Tenant, signal: AbortSignal | undefined, atHead: boolean): Promise<() => void> {
    return new Promise((resolve, reject) => {
      const waiter: Waiter = { tenant, enqueued: this.#clock(), signal, resolve, reject };
      if (atHead) tenant.waiting.unshift(waiter);
      else tenant.waiting.push(waiter);
      this.#backlogged.add(tenant);
      this.#metrics?.tenantQueued.labels({ tenant: tenant.label }).inc();
      if (signal) {
        waiter.onAbort = () => this.#withdraw(waiter);
        signal.addEventListener('abort', waiter.onAbort, { once: true });
      }
      this.#dispatch();
    });
  }
}

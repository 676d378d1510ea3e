/**
 * The agent-wide memory budget (`--max-memory`): bytes in flight for all guests together — big
 * frame payloads (admitted by the ttRPC reader before it reads them), decoded images (from their
 * headers), SGEMM outputs and outputs a plugin sized — are admitted against it before they are
 * allocated, and given back when the call that needed them ends. Over budget is a clear error at
 * admission (`ENOMEM`; `E2BIG` for a need no budget state could meet), never an allocation that
 * takes the agent down with every tenant in it.
 * @module
 */
import { readFileSync } from 'node:fs';
import { totalmem } from 'node:os';
import { VaccelError } from '@vaccel/core';
import type { FrameAdmission, StatusReply } from '@vaccel/ttrpc';
import type { AgentMetrics } from './metrics.js';

/** What a refusal was for (the `reason` label of `vaccel_agent_refusals_total`). */
export type RefusalReason =
  | 'memory_frame'
  | 'memory_image'
  | 'memory_sgemm'
  | 'memory_output'
  | 'image_pixels'
  | 'sessions'
  | 'resource_bytes';

const MiB = 2 ** 20;
const mib = (bytes: number): string => `${(bytes / MiB).toFixed(bytes < 10 * MiB ? 1 : 0)} MiB`;

/**
 * The default budget: half of the memory the agent may use — the machine's, or its cgroup's limit
 * (`/sys/fs/cgroup/memory.max`, cgroup v2) when that is lower. The other half is the agent's own
 * (runtime, models, resources) and the kernel's.
 */
export function defaultMemoryBudget(cgroupFile = '/sys/fs/cgroup/memory.max'): number {
  let limit = totalmem();
  try {
    const text = readFileSync(cgroupFile, 'utf8').trim();
    const cgroup = Number(text); // "max" (no limit) is NaN
    if (Number.isSafeInteger(cgroup) && cgroup > 0) limit = Math.min(limit, cgroup);
  } catch {
    // No cgroup v2 limit visible: the machine's memory it is.
  }
  return Math.floor(limit / 2);
}

export class MemoryBudget {
  #used = 0;
  /** Bytes each call in flight holds, released when it ends. */
  readonly #calls = new WeakMap<object, number>();

  constructor(
    /** Bytes in flight allowed at once. */
    readonly limit: number,
    private readonly metrics?: AgentMetrics,
  ) {
    if (!Number.isSafeInteger(limit) || limit <= 0)
      throw new VaccelError('EINVAL', `memory budget must be a positive number of bytes, got ${limit}`);
    metrics?.memoryBudget.set(limit);
  }

  /** Bytes admitted now. */
  get used(): number {
    return this.#used;
  }

  /** Admits `bytes` if they fit. */
  tryReserve(bytes: number): boolean {
    if (bytes > this.limit - this.#used) return false;
    this.#used += bytes;
    this.metrics?.memoryInFlight.set(this.#used);
    return true;
  }

  /** Gives back bytes admitted with {@link tryReserve}. */
  release(bytes: number): void {
    this.#used = Math.max(0, this.#used - bytes);
    this.metrics?.memoryInFlight.set(this.#used);
  }

  /**
   * Admits `bytes` for the call `call` (its CallContext) until {@link endCall}.
   * @param what names the need in the error, e.g. "decoding a 4000×3000 image".
   * @throws VaccelError `ENOMEM` when the bytes do not fit now, `E2BIG` when they never could.
   */
  admit(call: object, bytes: number, reason: RefusalReason, what: string): void {
    if (bytes <= 0) return;
    if (!this.tryReserve(bytes)) {
      this.metrics?.refusals.labels({ reason }).inc();
      // Other tenants' use is not the caller's business: the message says what was needed only.
      throw bytes > this.limit
        ? new VaccelError('E2BIG', `${what} needs ${mib(bytes)}, more than the agent's memory budget allows`)
        : new VaccelError(
            'ENOMEM',
            `${what} needs ${mib(bytes)}; the agent is short of memory now, try again`,
          );
    }
    this.#calls.set(call, (this.#calls.get(call) ?? 0) + bytes);
  }

  /** Releases everything `call` was admitted. Idempotent. */
  endCall(call: object): void {
    const bytes = this.#calls.get(call);
    if (bytes === undefined) return;
    this.#calls.delete(call);
    this.release(bytes);
  }

  /**
   * The ttRPC server's admission of big frame payloads against this budget.
   * @param refusal the status a refused request is answered with.
   */
  frames(refusal: (error: VaccelError) => StatusReply): FrameAdmission {
    return {
      admit: (length) => {
        if (this.tryReserve(length)) return true;
        this.metrics?.refusals.labels({ reason: 'memory_frame' }).inc();
        return false;
      },
      release: (length) => this.release(length),
      refusal: (length) =>
        refusal(
          length > this.limit
            ? new VaccelError(
                'E2BIG',
                `a request of ${mib(length)} is more than the agent's memory budget allows`,
              )
            : new VaccelError(
                'ENOMEM',
                `a request of ${mib(length)} was refused: the agent is short of memory now, try again`,
              ),
        ),
    };
  }
}

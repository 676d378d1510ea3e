/**
 * Deadlines of many calls behind one timer: a binary min-heap ordered by expiry, with one
 * `setTimeout` armed for the earliest entry and re-armed as entries come and go. Entries are
 * removed when their call settles, so nothing outlives its call (a per-call
 * `AbortSignal.timeout` would live for the whole deadline and cannot be cleared).
 * @internal
 */

/** One scheduled expiry; `index` is its heap slot (−1 once removed or fired). */
export interface DeadlineEntry {
  /** Monotonic expiry time in ms (`performance.now()` scale). */
  readonly at: number;
  readonly fire: () => void;
  index: number;
}

/** setTimeout's largest delay (about 24.8 days); longer deadlines re-arm when it fires. */
const MAX_DELAY_MS = 0x7fffffff;

/** The monotonic clock deadlines use, in ms. */
export const now = (): number => performance.now();

/**
 * Converts a `timeout_nano` into an expiry on the {@link now} clock: 0 means none (undefined);
 * negative means already expired. Any int64 works (int64 max is about 292 years).
 */
export function expiryOf(timeoutNano: bigint, from = now()): number | undefined {
  if (timeoutNano === 0n) return undefined;
  return from + Number(timeoutNano) / 1e6;
}

export class Deadlines {
  readonly #heap: DeadlineEntry[] = [];
  #timer: NodeJS.Timeout | undefined;
  #armedFor = Number.POSITIVE_INFINITY;
  #expiring = false;

  /** Entries waiting. */
  get size(): number {
    return this.#heap.length;
  }

  /** True while a timer is armed (none when nothing waits). */
  get armed(): boolean {
    return this.#timer !== undefined;
  }

  /** Schedules `fire` at `at` (ms on the {@link now} clock). */
  add(at: number, fire: () => void): DeadlineEntry {
    const entry: DeadlineEntry = { at, fire, index: this.#heap.length };
    this.#heap.push(entry);
    this.#up(entry.index);
    if (entry.index === 0) this.#arm();
    return entry;
  }

  /** Unschedules an entry (no-op if it fired or was removed already). */
  remove(entry: DeadlineEntry): void {
    const i = entry.index;
    if (i < 0) return;
    entry.index = -1;
    const last = this.#heap.pop()!;
    if (i < this.#heap.length) {
      this.#heap[i] = last;
      last.index = i;
      this.#down(i);
      this.#up(last.index);
    }
    if (i === 0) this.#arm();
  }

  /** Drops every entry without firing, and the timer. */
  clear(): void {
    for (const entry of this.#heap) entry.index = -1;
    this.#heap.length = 0;
    this.#arm();
  }

  #arm(): void {
    if (this.#expiring) return; // #expire re-arms once it is done
    const first = this.#heap[0];
    if (first === undefined) {
      if (this.#timer) clearTimeout(this.#timer);
      this.#timer = undefined;
      this.#armedFor = Number.POSITIVE_INFINITY;
      return;
    }
    // An armed timer for the same or an earlier moment is good enough (it re-arms when it fires).
    if (this.#timer && this.#armedFor <= first.at) return;
    if (this.#timer) clearTimeout(this.#timer);
    const delay = Math.min(Math.max(first.at - now(), 0), MAX_DELAY_MS);
    this.#armedFor = first.at;
    this.#timer = setTimeout(() => this.#expire(), Math.ceil(delay));
    this.#timer.unref(); // a pending deadline alone never holds the process open
  }

  #expire(): void {
    this.#timer = undefined;
    this.#armedFor = Number.POSITIVE_INFINITY;
    const t = now();
    this.#expiring = true;
    try {
      for (let first = this.#heap[0]; first !== undefined && first.at <= t; first = this.#heap[0]) {
        this.remove(first);
        first.fire();
      }
    } finally {
      this.#expiring = false;
      this.#arm();
    }
  }

  #up(i: number): void {
    const heap = this.#heap;
    const entry = heap[i]!;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (heap[parent]!.at <= entry.at) break;
      heap[i] = heap[parent]!;
      heap[i]!.index = i;
      i = parent;
    }
    heap[i] = entry;
    entry.index = i;
  }

  #down(i: number): void {
    const heap = this.#heap;
    const entry = heap[i]!;
    const n = heap.length;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= n) break;
      if (child + 1 < n && heap[child + 1]!.at < heap[child]!.at) child++;
      if (heap[child]!.at >= entry.at) break;
      heap[i] = heap[child]!;
      heap[i]!.index = i;
      i = child;
    }
    heap[i] = entry;
    entry.index = i;
  }
}

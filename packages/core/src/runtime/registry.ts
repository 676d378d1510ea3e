/**
 * The plugin registry: validation, lazy once-only init, and choosing a plugin for an op.
 * @module
 */
import { VaccelError } from '../api/error.js';
import { OP_ALTERNATIVES, type OpType, opName } from '../api/op.js';
import type { Logger } from './log.js';
import type { OpHandler, Plugin } from './plugin.js';
import type { PluginMemory } from './shared-memory.js';

interface Entry {
  readonly plugin: Plugin;
  readonly order: number;
  init?: Promise<void>;
  failure?: unknown;
}

/** One number per (op, hint): ops are below 2^8, hints below 2^32. */
const resolveKey = (op: OpType, hint: number): number => op * 2 ** 32 + (hint >>> 0);

/** A plugin chosen for an op, with its handler. */
export interface Resolved {
  readonly plugin: Plugin;
  readonly handler: OpHandler;
}

const NAME = /^[a-z0-9][a-z0-9._-]*$/i;

/** Registered plugins in priority order. @internal Use {@link Vaccel} methods. */
export class PluginRegistry {
  readonly #entries = new Map<string, Entry>();
  /** What resolve chose, per op and hint: the hot path skips sorting and awaiting. */
  readonly #resolved = new Map<number, Resolved>();
  #order = 0;

  constructor(
    private readonly logger: Logger,
    private readonly env: Readonly<Record<string, string | undefined>>,
  ) {}

  /**
   * Adds a plugin. Registering the same object again is a no-op.
   * @throws VaccelError `EINVAL` for a malformed plugin, `EEXIST` when another plugin has its name.
   */
  register(plugin: Plugin): void {
    validatePlugin(plugin);
    const existing = this.#entries.get(plugin.name);
    if (existing?.plugin === plugin) return;
    if (existing) throw new VaccelError('EEXIST', `a plugin named ${plugin.name} is already registered`);
    this.#entries.set(plugin.name, { plugin, order: this.#order++ });
    this.#resolved.clear();
  }

  /** Removes a plugin by name, calling its `fini` if it was initialised. @returns whether it was there. */
  async unregister(name: string): Promise<boolean> {
    const entry = this.#entries.get(name);
    if (!entry) return false;
    this.#entries.delete(name);
    this.#resolved.clear();
    await this.#fini(entry);
    return true;
  }

  /** The plugin an earlier {@link resolve} chose for `op` and `hint`, without waiting. */
  cached(op: OpType, hint: number): Resolved | undefined {
    return this.#resolved.get(resolveKey(op, hint));
  }

  /** Registered plugins, highest priority first. */
  list(): Plugin[] {
    return this.#sorted().map((entry) => entry.plugin);
  }

  /**
   * Chooses the plugin for `op`: those whose type bits match `hint` first, then the rest; within each
   * group by priority, then registration order. Plugins are initialised lazily and once; one whose
   * init fails is skipped (and its failure kept for the error).
   * @throws VaccelError `ENOTSUP` naming the op and the plugins loaded when none can serve it.
   */
  async resolve(op: OpType, hint: number): Promise<Resolved> {
    const hit = this.cached(op, hint);
    if (hit) return hit;
    const candidates = this.#sorted().filter((entry) => entry.plugin.ops[op] !== undefined);
    const matching = hint === 0 ? candidates : candidates.filter((e) => (e.plugin.types & hint) !== 0);
    const ordered = [...matching, ...candidates.filter((entry) => !matching.includes(entry))];
    const failures: unknown[] = [];
    for (const entry of ordered) {
      if (await this.#ready(entry)) {
        const resolved = { plugin: entry.plugin, handler: entry.plugin.ops[op]! };
        // Registration changes clear this; a ready plugin stays ready.
        if (this.#entries.get(entry.plugin.name) === entry)
          this.#resolved.set(resolveKey(op, hint), resolved);
        return resolved;
      }
      failures.push(entry.failure);
    }
    const loaded = this.list().map((plugin) => plugin.name);
    const failed = ordered.map((entry) => entry.plugin.name);
    const why = failed.length > 0 ? `; plugins that failed to initialise: ${failed.join(', ')}` : '';
    throw new VaccelError(
      'ENOTSUP',
      `no plugin provides ${opName(op)} (plugins loaded: ${loaded.join(', ') || 'none'}${why})${OP_ALTERNATIVES[op] ? `; ${OP_ALTERNATIVES[op]}` : ''}`,
      failures.length > 0 ? { cause: new AggregateError(failures, 'plugin init failed') } : undefined,
    );
  }

  /**
   * The ops each plugin can run, highest priority first: `listOps()` where a plugin has it (after
   * its lazy init), else the keys of its `ops`. A plugin whose init fails lists nothing.
   */
  async provided(): Promise<{ plugin: Plugin; ops: Set<number> }[]> {
    return Promise.all(
      this.#sorted().map(async (entry) => {
        const { plugin } = entry;
        if (!plugin.listOps) return { plugin, ops: new Set(Object.keys(plugin.ops).map(Number)) };
        return { plugin, ops: new Set<number>((await this.#ready(entry)) ? await plugin.listOps() : []) };
      }),
    );
  }

  /**
   * Shared memory from the highest-priority plugin that can share memory now (initialising it
   * first), or undefined when none can.
   */
  async sharedMemory(
    byteLength: number,
    options: { signal?: AbortSignal },
  ): Promise<PluginMemory | undefined> {
    for (const entry of this.#sorted()) {
      if (!entry.plugin.sharedMemory || !(await this.#ready(entry))) continue;
      const memory = await entry.plugin.sharedMemory(byteLength, options);
      if (memory) return memory;
    }
    return undefined;
  }

  /** Calls `fini` on every initialised plugin and empties the registry. */
  async close(): Promise<void> {
    const entries = this.#sorted();
    this.#entries.clear();
    this.#resolved.clear();
    for (const entry of entries) await this.#fini(entry);
  }

  #sorted(): Entry[] {
    return [...this.#entries.values()].sort(
      (a, b) => (b.plugin.priority ?? 0) - (a.plugin.priority ?? 0) || a.order - b.order,
    );
  }

  async #ready(entry: Entry): Promise<boolean> {
    entry.init ??= (async () => {
      await entry.plugin.init?.({ logger: this.logger.child({ plugin: entry.plugin.name }), env: this.env });
    })().catch((error: unknown) => {
      entry.failure = error;
      this.logger.warn({ plugin: entry.plugin.name, err: String(error) }, 'plugin init failed; skipping it');
    });
    await entry.init;
    return entry.failure === undefined;
  }

  async #fini(entry: Entry): Promise<void> {
    if (!entry.init || entry.failure !== undefined) return;
    await entry.init;
    try {
      await entry.plugin.fini?.();
    } catch (error) {
      this.logger.warn({ plugin: entry.plugin.name, err: String(error) }, 'plugin fini failed');
    }
  }
}

function validatePlugin(plugin: Plugin): void {
  const bad = (what: string): never => {
    throw new VaccelError('EINVAL', `invalid plugin${plugin?.name ? ` ${plugin.name}` : ''}: ${what}`);
  };
  if (typeof plugin !== 'object' || plugin === null) bad('not an object');
  if (typeof plugin.name !== 'string' || !NAME.test(plugin.name)) bad('name must match [a-z0-9._-]+');
  if (typeof plugin.version !== 'string' || plugin.version === '') bad('version is required');
  if (!Number.isInteger(plugin.types) || plugin.types < 0) bad('types must be PluginType bits');
  if (plugin.priority !== undefined && !Number.isFinite(plugin.priority)) bad('priority must be a number');
  if (typeof plugin.ops !== 'object' || plugin.ops === null) bad('ops must be an object');
  for (const [op, handler] of Object.entries(plugin.ops)) {
    if (typeof handler !== 'function') bad(`handler for op ${op} is not a function`);
  }
}

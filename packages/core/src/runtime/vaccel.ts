/**
 * The vAccel runtime: the entry point of the API.
 * @module
 */
import { VaccelError } from '../api/error.js';
import { allOps, type OpType } from '../api/op.js';
import { BUILTIN_PLUGIN_NAMES, loadBuiltinPlugin } from '../plugins/builtin.js';
import { loadPluginModule, type ResolvedConfig, resolveConfig, type VaccelOptions } from './config.js';
import { createStderrLogger, type Logger } from './log.js';
import type { Plugin, PluginHooks } from './plugin.js';
import { type ProfileRegion, Profiler } from './profiling.js';
import { PluginRegistry, type Resolved } from './registry.js';
import {
  loadResourceContent,
  type Resource,
  type ResourceBlob,
  type ResourceData,
  type ResourceSpec,
  type ResourceType,
} from './resource.js';
import type { Session, SessionOptions } from './session.js';
import { checkHint, type SessionHost, SessionImpl } from './session-impl.js';
import { localMemory, SharedMemory } from './shared-memory.js';

/** Largest shared memory region (1 TiB: a sanity bound, far above any machine's memory). */
const MAX_SHARED_MEMORY = 2 ** 40;

/** The RPC plugin's package, loaded when `VACCEL_RPC_ADDRESS` is set. */
const RPC_PLUGIN = '@vaccel/remote';

/** One operation the runtime can run, as {@link Vaccel.listOperations} reports it. */
export interface OperationInfo {
  op: OpType;
  /** Upstream-style name, e.g. `blas_sgemm`. */
  name: string;
  /** True for vaccel-ts extension ops (64 and up). */
  extension: boolean;
  /** The plugin chosen when a session has no hint. */
  plugin: string;
  /** Every plugin that implements it, in preference order. */
  plugins: string[];
}

class ResourceEntry implements ResourceData {
  handles = 0;
  readonly sessions = new Set<number>();
  readonly size: number;
  constructor(
    readonly id: number,
    readonly type: ResourceType,
    readonly blobs: readonly ResourceBlob[],
    readonly digest: string,
  ) {
    this.size = blobs.reduce((sum, blob) => sum + blob.data.byteLength, 0);
  }
  blob(name: string): ResourceBlob {
    const found = this.blobs.find((blob) => blob.name === name);
    if (!found)
      throw new VaccelError(
        'ENOENT',
        `resource ${this.id} has no blob ${name} (has ${this.blobs.map((b) => b.name).join(', ')})`,
      );
    return found;
  }
}

class ResourceHandle implements Resource {
  #released = false;
  constructor(
    readonly entry: ResourceEntry,
    private readonly drop: (entry: ResourceEntry) => Promise<void>,
  ) {
    entry.handles++;
  }
  get id(): number {
    return this.entry.id;
  }
  get type(): ResourceType {
    return this.entry.type;
  }
  get blobs(): readonly ResourceBlob[] {
    return this.entry.blobs;
  }
  get digest(): string {
    return this.entry.digest;
  }
  get size(): number {
    return this.entry.size;
  }
  get released(): boolean {
    return this.#released;
  }
  blob(name: string): ResourceBlob {
    return this.entry.blob(name);
  }
  async release(): Promise<void> {
    if (this.#released) return;
    this.#released = true;
    this.entry.handles--;
    await this.drop(this.entry);
  }
  [Symbol.asyncDispose](): Promise<void> {
    return this.release();
  }
}

/**
 * A vAccel runtime: registered plugins, sessions and resources.
 *
 * ```ts
 * await using vaccel = await Vaccel.open();
 * await using session = await vaccel.createSession();
 * const c = await session.sgemm({ m, n, k, a, b });
 * ```
 */
export class Vaccel implements AsyncDisposable {
  /** The configuration after defaults. */
  readonly config: ResolvedConfig;
  /** The runtime's logger. */
  readonly logger: Logger;
  readonly #registry: PluginRegistry;
  readonly #host: SessionHost;
  readonly #sessions = new Map<number, SessionImpl>();
  readonly #resources = new Map<number, ResourceEntry>();
  readonly #byDigest = new Map<string, ResourceEntry>();
  readonly #regions = new Set<SharedMemory>();
  /** Regions of released sessions, when profiling is on. */
  readonly #released = new Profiler();
  #nextSessionId = 1;
  #nextResourceId = 1;
  #closed = false;

  private constructor(config: ResolvedConfig, logger: Logger) {
    this.config = config;
    this.logger = logger;
    this.#registry = new PluginRegistry(logger, config.env);
    this.#host = this.#createHost();
  }

  /**
   * Opens a runtime with plugins from `options.plugins`, else `VACCEL_PLUGINS`, else the RPC
   * plugin when an agent address is set (`rpcAddress` or `VACCEL_RPC_ADDRESS`), else the builtin
   * set (noop, crypto, sgemm-js, exec, compute).
   * @throws VaccelError `EINVAL` for bad options, `ENOENT` for a plugin module that cannot be loaded.
   */
  static async open(options: VaccelOptions = {}): Promise<Vaccel> {
    const config = resolveConfig(options);
    const vaccel = new Vaccel(config, options.logger ?? createStderrLogger(config.logLevel));
    // With an agent address and no explicit plugin list, ops go to the agent (the RPC plugin).
    const specs = config.plugins ?? (config.rpcAddress ? [RPC_PLUGIN] : BUILTIN_PLUGIN_NAMES);
    for (const spec of specs) {
      if (typeof spec !== 'string') vaccel.registerPlugin(spec);
      else
        vaccel.registerPlugin(await (loadBuiltinPlugin(spec, config.env) ?? loadPluginModule(spec, config)));
    }
    return vaccel;
  }

  /** Registers a plugin. Idempotent for the same object; `EEXIST` for another plugin with its name. */
  registerPlugin(plugin: Plugin): void {
    this.#assertOpen();
    this.#registry.register(plugin);
  }

  /** Unregisters a plugin by name (calling its `fini`). @returns whether it was registered. */
  unregisterPlugin(name: string): Promise<boolean> {
    this.#assertOpen();
    return this.#registry.unregister(name);
  }

  /** Registered plugins, highest priority first. */
  plugins(): Plugin[] {
    return this.#registry.list();
  }

  /**
   * The operations the registered plugins provide (upstream's `vaccel_get_operations`), by op
   * number. Plugins that can say what they really run (the RPC plugin asks its agent) are asked.
   */
  async listOperations(): Promise<OperationInfo[]> {
    const provided = await this.#registry.provided();
    return allOps().flatMap(({ op, name, extension }) => {
      const providers = provided.filter(({ ops }) => ops.has(op)).map(({ plugin }) => plugin.name);
      return providers.length === 0
        ? []
        : [{ op, name, extension, plugin: providers[0]!, plugins: providers }];
    });
  }

  /**
   * Profiling regions of every session of this runtime, live and released, merged by name (empty
   * unless profiling is on: `profiling` option or `VACCEL_PROFILING_ENABLED`).
   */
  async profile(): Promise<ProfileRegion[]> {
    const merged = new Profiler();
    const live = await Promise.all([...this.#sessions.values()].map((s) => s.profile()));
    for (const region of [...this.#released.regions(), ...live.flat()])
      for (const sample of region.samples) merged.record(region.name, sample.start, sample.time);
    return merged.regions();
  }

  /** Creates a session. */
  async createSession(options: SessionOptions = {}): Promise<Session> {
    this.#assertOpen();
    const session = new SessionImpl(this.#nextSessionId++, checkHint(options.hint ?? 0), this.#host);
    this.#sessions.set(session.id, session);
    return session;
  }

  /** A live session by id, or undefined. */
  session(id: number): Session | undefined {
    return this.#sessions.get(id);
  }

  /**
   * Creates a resource from files or blobs. Content equal to a live resource's gives a new handle
   * on that resource (same id).
   * @throws VaccelError `EINVAL` for a bad spec, `ENOENT` for an unreadable path.
   */
  async createResource(spec: ResourceSpec): Promise<Resource> {
    this.#assertOpen();
    const { blobs, digest } = await loadResourceContent(spec);
    let entry = this.#byDigest.get(digest);
    if (!entry) {
      entry = new ResourceEntry(this.#nextResourceId++, spec.type, blobs, digest);
      this.#resources.set(entry.id, entry);
      this.#byDigest.set(digest, entry);
    }
    return new ResourceHandle(entry, (e) => this.#maybeFree(e));
  }

  /** A live resource's data by id, or undefined. */
  resource(id: number): ResourceData | undefined {
    return this.#resources.get(id);
  }

  /**
   * A region of `byteLength` bytes of shared memory: views allocated in it are passed to ops by
   * reference where the plugin's backend maps the region too (an agent reached over a unix
   * socket, or the host of a QEMU guest with an ivshmem device), and in-band or in place
   * otherwise. See {@link SharedMemory}; `via` says which it got.
   * @throws VaccelError `EINVAL` for a bad size, `ENOMEM` when the memory cannot be had.
   */
  async sharedMemory(byteLength: number, options: { signal?: AbortSignal } = {}): Promise<SharedMemory> {
    this.#assertOpen();
    if (!Number.isSafeInteger(byteLength) || byteLength <= 0 || byteLength > MAX_SHARED_MEMORY)
      throw new VaccelError(
        'EINVAL',
        `sharedMemory: byteLength ${byteLength} must be 1 … ${MAX_SHARED_MEMORY}`,
      );
    const memory = (await this.#registry.sharedMemory(byteLength, options)) ?? localMemory(byteLength);
    const region = new SharedMemory(memory, (closed) => this.#regions.delete(closed));
    this.#regions.add(region);
    this.logger.debug({ bytes: byteLength, via: region.via }, 'shared memory region');
    return region;
  }

  /** Releases every session, frees every resource and calls every plugin's `fini`. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const session of [...this.#sessions.values()]) await session.release();
    for (const region of [...this.#regions]) await region.close();
    await this.#registry.close();
    this.#resources.clear();
    this.#byDigest.clear();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #assertOpen(): void {
    if (this.#closed) throw new VaccelError('EBADF', 'the vAccel runtime is closed');
  }

  async #maybeFree(entry: ResourceEntry): Promise<void> {
    if (entry.handles > 0 || entry.sessions.size > 0 || !this.#resources.has(entry.id)) return;
    this.#resources.delete(entry.id);
    this.#byDigest.delete(entry.digest);
    await this.#notifyPlugins((hooks) => hooks.resourceRelease?.(entry), 'resourceRelease');
  }

  /** Calls one hook on every plugin; a failing hook is logged, never allowed to break release. */
  async #notifyPlugins(call: (hooks: PluginHooks) => unknown, name: string): Promise<void> {
    for (const plugin of this.#registry.list()) {
      try {
        if (plugin.hooks) await call(plugin.hooks);
      } catch (error) {
        this.logger.warn({ plugin: plugin.name, err: String(error) }, `${name} hook failed`);
      }
    }
  }

  #createHost(): SessionHost {
    return {
      logger: this.logger,
      resolve: (op: OpType, hint: number): Promise<Resolved> => this.#registry.resolve(op, hint),
      cached: (op: OpType, hint: number): Resolved | undefined => this.#registry.cached(op, hint),
      attach: (resource, sessionId) => {
        const entry = resource instanceof ResourceHandle ? resource.entry : undefined;
        if (!entry || this.#resources.get(entry.id) !== entry) {
          throw new VaccelError(
            'EINVAL',
            `resource ${resource?.id} does not belong to this runtime or was freed`,
          );
        }
        if (resource.released) throw new VaccelError('EBADF', `resource handle ${resource.id} was released`);
        entry.sessions.add(sessionId);
        return entry;
      },
      detach: async (resourceId, sessionId) => {
        const entry = this.#resources.get(resourceId);
        if (!entry) return;
        entry.sessions.delete(sessionId);
        await this.#maybeFree(entry);
      },
      profiling: this.config.profiling,
      profiles: async (session) => {
        const regions: ProfileRegion[] = [];
        for (const plugin of this.#registry.list()) {
          if (!plugin.profile) continue;
          try {
            regions.push(...(await plugin.profile(session)));
          } catch (error) {
            this.logger.warn({ plugin: plugin.name, err: String(error) }, 'profile failed');
          }
        }
        return regions;
      },
      sessionReleased: async (session, profile) => {
        for (const region of profile ?? [])
          for (const sample of region.samples) this.#released.record(region.name, sample.start, sample.time);
        this.#sessions.delete(session.id);
        await this.#notifyPlugins((hooks) => hooks.sessionRelease?.(session), 'sessionRelease');
      },
    };
  }
}

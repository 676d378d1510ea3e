/**
 * The plugin contract: what a backend implements so the runtime can dispatch ops to it.
 * @module
 */
import type { Arg } from '../api/arg.js';
import type { OpType } from '../api/op.js';
import type { Logger } from './log.js';
import type { ProfileRegion } from './profiling.js';
import type { ResourceData } from './resource.js';
import type { PluginMemory } from './shared-memory.js';

/**
 * Plugin type bits (upstream `vaccel_plugin_type_t`), used both to describe a plugin and as a
 * session's hint when choosing one.
 */
export const PluginType = Object.freeze({
  Cpu: 0x1,
  Gpu: 0x2,
  Fpga: 0x4,
  Software: 0x8,
  Tensorflow: 0x10,
  Torch: 0x20,
  Jetson: 0x40,
  Generic: 0x80,
  Debug: 0x100,
  Remote: 0x4000,
  All: 0xffff,
} as const);

/** What a handler sees of the session it runs for. */
export interface SessionInfo {
  /** Runtime-wide session id (> 0). */
  readonly id: number;
  /** The session's plugin-type hint bits ({@link PluginType}); 0 for none. */
  readonly hint: number;
}

/** Everything an op handler may use besides its args. */
export interface OpContext {
  /** The session the op runs in. */
  readonly session: SessionInfo;
  /** Aborts when the caller gives up; long work should stop early. */
  readonly signal: AbortSignal | undefined;
  /** The runtime's logger, prefixed with the plugin name. */
  readonly logger: Logger;
  /**
   * Long work that runs in chunks (SGEMM's row blocks) awaits this between them: a host that
   * schedules ops (the agent) may hand the compute slot to another caller's op first, then
   * resume this one. Resolves at once when nobody schedules (embedded use).
   */
  readonly checkpoint?: (() => Promise<void>) | undefined;
  /**
   * A resource registered with this session.
   * @throws VaccelError `ENOENT` when `id` is not registered with the session.
   */
  resource(id: number): ResourceData;
}

/** The args of one op call: read args are inputs, write args are outputs (filled in place). */
export interface OpArgs {
  readonly read: readonly Arg[];
  readonly write: Arg[];
}

/**
 * Runs one op. It validates its args (throwing `EINVAL`), fills the write args and resolves.
 * It must not block the event loop for long: heavy work goes off-thread.
 */
export type OpHandler = (args: OpArgs, ctx: OpContext) => Promise<void> | void;

/** What the runtime hands to {@link Plugin.init}. */
export interface PluginInitContext {
  /** The runtime's logger, prefixed with the plugin name. */
  readonly logger: Logger;
  /** The environment the runtime was configured from. */
  readonly env: Readonly<Record<string, string | undefined>>;
}

/** Optional notifications from the runtime to a plugin. */
export interface PluginHooks {
  /** A session this plugin may have served is being released: free its per-session state. */
  sessionRelease?(session: SessionInfo): Promise<void> | void;
  /** A resource is being freed: drop anything derived from it. */
  resourceRelease?(resource: ResourceData): Promise<void> | void;
}

/**
 * A vAccel plugin. Keep it a plain object; the runtime validates it on registration.
 *
 * A GPU (or FPGA, or remote) backend is just another plugin with the matching {@link types} bit and
 * a higher {@link priority}: nothing in the runtime is specific to the hardware.
 */
export interface Plugin {
  /** Unique name, e.g. `crypto`. */
  readonly name: string;
  /** The plugin's own version (semver). */
  readonly version: string;
  /** The vAccel API version it was built against. */
  readonly vaccelVersion?: string;
  /** {@link PluginType} bits describing it. */
  readonly types: number;
  /** Higher wins when several plugins implement an op and the session's hint does not decide. Default 0. */
  readonly priority?: number;
  /** The ops it implements. */
  readonly ops: Readonly<Partial<Record<OpType, OpHandler>>>;
  /**
   * The ops it can really run now, when that differs from the keys of {@link ops} (the RPC plugin
   * forwards every op but reports the agent's). Default: the keys of `ops`.
   */
  listOps?(): Promise<readonly OpType[]>;
  /** Called once, lazily, before its first op. A plugin whose init fails is skipped. */
  init?(ctx: PluginInitContext): Promise<void> | void;
  /** Called once when the runtime closes. */
  fini?(): Promise<void> | void;
  /**
   * Memory of `byteLength` bytes that this plugin's backend maps too, so that views inside it are
   * passed by reference (the RPC plugin: a region registered with its agent). Undefined when it
   * cannot share memory now (the runtime then gives process memory, used in-band).
   */
  sharedMemory?(byteLength: number, options: { signal?: AbortSignal }): Promise<PluginMemory | undefined>;
  /** Profiling regions this plugin's backend kept for `session` (the RPC plugin: the agent's). */
  profile?(session: SessionInfo): Promise<ProfileRegion[]>;
  /** Optional runtime notifications. */
  readonly hooks?: PluginHooks;
}

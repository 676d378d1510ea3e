/**
 * The RPC plugin (guest side): forwards every op to a vAccel agent. Upstream ops ride on Genop
 * with upstream's arg layouts (image_classify on its dedicated RPC), so an upstream agent serves
 * them too; our extension ops need a vaccel-ts agent.
 * @module
 */

import {
  type Arg,
  Args,
  allOps,
  EXTENSION_OP_MIN,
  encodeUpstreamClassification,
  encodeUpstreamVision,
  type Logger,
  type OpArgs,
  type OpContext,
  type OpHandler,
  OpType,
  opInfo,
  opName,
  type Plugin,
  PluginType,
  ReadArg,
  UPSTREAM_TAG_BYTES,
  VaccelError,
} from '@vaccel/core';
import type { TlsClientOptions } from '@vaccel/protocol';
import { DEFAULT_ADDRESS, errorFromRpc } from '@vaccel/protocol';
import { AgentLink, type Linked } from './link.js';
import { multiAgentPlugin, splitAddresses } from './multi.js';
import { callGenop } from './remote-call.js';
import { RemoteSessions } from './remote-session.js';
import { DEFAULT_STAGING_BYTES, GuestRegions } from './shared-memory.js';
import { EMPTY_INFO, modelOpViaRpc, viaModelRpc } from './tf-rpc.js';
import { tlsMaterial } from './tls-material.js';

/** Options of {@link remotePlugin}. Unset ones come from the environment. */
export interface RemotePluginOptions {
  /**
   * Agent address, or a `,`-separated list of agents to spread sessions over, with failover
   * (default `VACCEL_RPC_ADDRESS`, then `VACCEL_RPC_ADDR`, then `tcp://127.0.0.1:65500`).
   */
  address?: string;
  /** Shared secret sent as `authorization: Bearer <token>` (default `VACCEL_RPC_TOKEN`). */
  token?: string;
  /** Connect timeout in ms (default 5000). */
  connectTimeoutMs?: number;
  /** Per-op timeout in ms (default `VACCEL_RPC_TIMEOUT_MS`, else none). */
  timeoutMs?: number;
  /** Largest frame (default 256 MiB). */
  maxFrame?: number;
  /**
   * With several agents: how long one that failed (its connection lost or refused, or a call
   * timed out) is left out of placement, in ms (default 1000). Its sessions move meanwhile.
   */
  agentDownMs?: number;
  /**
   * Size of the staging region through which plain arrays of 64 KiB and more travel, where the
   * agent can map it (default `VACCEL_RPC_STAGING_BYTES`, else 64 MiB; 0 turns staging off).
   */
  stagingBytes?: number;
  /**
   * TLS material for `tls://` agents (PEM). Default: the files named by `VACCEL_RPC_TLS_CA` (CA of
   * the agent's certificate; else the system's), `VACCEL_RPC_TLS_CERT` and `VACCEL_RPC_TLS_KEY`
   * (a client certificate, for mutual TLS), and `VACCEL_RPC_TLS_SERVERNAME`.
   */
  tls?: TlsClientOptions;
  /**
   * On tcp:// and tls:// agents, re-arm TCP_QUICKACK after each read (Linux, with the
   * `@vaccel/memory` addon), so an agent that writes a reply's header and body apart with Nagle on
   * (upstream's) is not held up by our delayed ACK (default: on unless `VACCEL_RPC_QUICKACK=0`).
   */
  quickAck?: boolean;
  /**
   * Use an agent that speaks vAccel 0.7 (another op numbering) anyway instead of refusing it with
   * `EPROTO` (default `VACCEL_VERSION_IGNORE`, upstream's override, set to `1`/`true`).
   */
  versionIgnore?: boolean;
  env?: Readonly<Record<string, string | undefined>>;
}

/** `1`, `true`, `yes`, `on` (any case). */
const truthy = (value: string | undefined): boolean => /^(1|true|yes|on)$/i.test(value?.trim() ?? '');

/** Upstream's fixed-size text output, up to its first NUL. */
function fixedText(bytes: Uint8Array | undefined): string {
  if (!bytes) return '';
  const end = bytes.indexOf(0);
  return new TextDecoder().decode(end < 0 ? bytes : bytes.subarray(0, end));
}

/**
 * Creates the RPC plugin. An address list (`a,b,c`) spreads sessions over several agents, with
 * failover (see `multi.ts`); one address is one agent.
 */
export function remotePlugin(options: RemotePluginOptions = {}): Plugin {
  const env = options.env ?? process.env;
  const addresses = splitAddresses(
    options.address ?? (env.VACCEL_RPC_ADDRESS || env.VACCEL_RPC_ADDR || DEFAULT_ADDRESS),
  );
  if (addresses.length === 0) throw new VaccelError('EINVAL', 'the agent address list is empty');
  const { agentDownMs } = options;
  if (agentDownMs !== undefined && !(agentDownMs >= 0 && Number.isFinite(agentDownMs)))
    throw new VaccelError('EINVAL', `agentDownMs must be a number of ms ≥ 0, got ${agentDownMs}`);
  if (addresses.length === 1) return singleAgentPlugin({ ...options, address: addresses[0]! }, env);
  return multiAgentPlugin(
    addresses,
    (address) => singleAgentPlugin({ ...options, address }, env),
    agentDownMs,
  );
}

/** The RPC plugin for one agent. */
function singleAgentPlugin(
  options: RemotePluginOptions & { address: string },
  env: Readonly<Record<string, string | undefined>>,
): Plugin {
  const { address } = options;
  const timeoutMs = options.timeoutMs ?? (Number(env.VACCEL_RPC_TIMEOUT_MS) || undefined);
  const link = new AgentLink({
    address,
    tls: tlsMaterial(options.tls, env),
    token: options.token ?? env.VACCEL_RPC_TOKEN,
    connectTimeoutMs: options.connectTimeoutMs,
    maxFrame: options.maxFrame,
    quickAck: options.quickAck ?? env.VACCEL_RPC_QUICKACK?.trim() !== '0',
    quickAcked: (fd) => logger?.debug({ address, fd }, 'TCP_QUICKACK re-armed after each read'),
    versionIgnore: options.versionIgnore ?? truthy(env.VACCEL_VERSION_IGNORE),
    versionIgnored: (message) => logger?.warn({ address }, message),
  });
  const stagingBytes = options.stagingBytes ?? Number(env.VACCEL_RPC_STAGING_BYTES ?? DEFAULT_STAGING_BYTES);
  if (!Number.isSafeInteger(stagingBytes) || stagingBytes < 0)
    throw new VaccelError('EINVAL', `staging bytes must be a whole number ≥ 0, got ${stagingBytes}`);
  const regions = new GuestRegions(
    () => link.current,
    stagingBytes,
    (what) => sayDataPlane(what),
  );
  let logger: Logger | undefined;
  /** What the last shared-memory request got, logged when it changes. */
  let dataPlane = '';
  const sayDataPlane = (what: string): void => {
    if (what !== dataPlane) logger?.info({ address }, `data plane: ${what}`);
    dataPlane = what;
  };

  const callOptions = (ctx: OpContext) => ({ signal: ctx.signal, timeoutMs });
  const sessions = new RemoteSessions({ callOptions, run: (op, args, ctx) => forward(op, args, ctx) });

  /**
   * A typed image op on an agent without it: runs upstream's op and writes its text as the typed
   * result marked `upstream` (see parseClassification, parseVision).
   */
  async function fallBack(
    op: OpType,
    upstream: OpType,
    modelArg: number,
    { read, write }: OpArgs,
    ctx: OpContext,
  ): Promise<void> {
    const image = ReadArg.bytes(read[0], `${opName(op)} image`);
    if (ReadArg.int64(read[modelArg], `${opName(op)} model id`) !== 0)
      throw new VaccelError(
        'ENOTSUP',
        `the agent at ${address} does not provide ${opName(op)}, and its ${opName(upstream)} takes no model from us (it runs its own)`,
      );
    const text = [Args.ucharArray(new Uint8Array(UPSTREAM_TAG_BYTES))];
    if (upstream === OpType.ImageClassify) text.push(Args.ucharArray(new Uint8Array(UPSTREAM_TAG_BYTES)));
    await forward(upstream, { read: [Args.buffer(image)], write: text }, ctx);
    if (upstream === OpType.ImageClassify) {
      write[0]!.buf = encodeUpstreamClassification(fixedText(text[1]?.buf));
      return;
    }
    write[0]!.buf = encodeUpstreamVision({ op: opName(upstream), text: fixedText(text[0]?.buf) });
    for (const arg of write.slice(1)) arg.buf = new Uint8Array(0);
  }

  /** Runs `op` on the agent: the fallbacks, the session and its resources, then the call itself. */
  async function forward(op: OpType, opArgs: OpArgs, ctx: OpContext): Promise<void> {
    const { read, write } = opArgs;
    const linked = link.current ?? (await link.get(ctx.signal));
    // Typed image ops fall back to the upstream op (same read args, the model id at resourceArg).
    const info = opInfo(op);
    if (info?.fallback !== undefined && !linked.ops.includes(op) && linked.ops.includes(info.fallback))
      return fallBack(op, info.fallback, info.resourceArg ?? 0, opArgs, ctx);
    if (op >= EXTENSION_OP_MIN && !linked.ours) {
      throw new VaccelError(
        'ENOTSUP',
        `the agent at ${address} does not provide ${opName(op)} (it is not a vaccel-ts agent)`,
      );
    }
    const known = sessions.of(linked, ctx.session, ctx);
    const s = known instanceof Promise ? await known : known;
    const args = [...read];
    const at = info?.resourceArg;
    const localId = at !== undefined ? ReadArg.int64(args[at], `${opName(op)} resource id`) : 0;
    if (at !== undefined && localId > 0)
      args[at] = Args.int64(await sessions.resource(linked, s, localId, ctx));
    if (!linked.ours && viaModelRpc(op))
      await modelOpViaRpc(await linked.stub.full(), op, s.agentId, args, write, callOptions(ctx));
    else if (op === OpType.ImageClassify) await classifyViaRpc(linked, s.agentId, args, write, ctx);
    else {
      await callGenop(linked, regions, { op, sessionId: s.agentId, read: args, write }, callOptions(ctx));
      // An agent whose TensorFlow backend describes no graph answers the load with no info: it is
      // loaded all the same, declaring nothing (as over upstream's TensorflowModelLoad).
      if ((op === OpType.TfModelLoad || op === OpType.TfliteModelLoad) && write[0]?.buf.byteLength === 0)
        write[0].buf = EMPTY_INFO;
    }
    // Only while the session is still on this agent session: one released meanwhile (or moved to
    // another agent) keeps no state here.
    if (sessions.live(ctx.session.id, linked) === s) sessions.models(ctx.session.id).note(op, read);
  }

  /** image_classify on upstream's dedicated RPC (which every agent serves). */
  async function classifyViaRpc(
    linked: Linked,
    sessionId: bigint,
    args: readonly Arg[],
    write: Arg[],
    ctx: OpContext,
  ): Promise<void> {
    const { tags } = await (await linked.stub.full()).imageClassification(
      { sessionId, image: ReadArg.bytes(args[0], 'image') },
      callOptions(ctx),
    );
    write[0]?.buf.fill(0);
    const out = write[1]?.buf;
    if (out) out.set(tags.subarray(0, out.byteLength));
  }

  const handler =
    (op: OpType): OpHandler =>
    async (args, ctx) => {
      try {
        await forward(op, args, ctx);
      } catch (error) {
        const mapped = errorFromRpc(error, `agent ${opName(op)}`);
        const linked = link.current;
        // Upstream agents reject ops they do not know (noop, ≥ 24) with EINVAL.
        if (linked && !linked.ours && op === OpType.Noop && (mapped as VaccelError).code === 'EINVAL') {
          throw new VaccelError('ENOTSUP', `the agent at ${address} does not provide noop`, {
            cause: mapped,
          });
        }
        throw mapped;
      }
    };

  const ops: Partial<Record<OpType, OpHandler>> = {};
  for (const { op } of allOps()) if (op !== OpType.ListOperations) ops[op] = handler(op);

  return {
    name: 'remote',
    version: '0.1.0',
    vaccelVersion: '0.8.0',
    types: PluginType.Remote,
    // Above every local plugin: when the RPC plugin is loaded, the agent runs the ops.
    priority: 1000,
    ops,
    async listOps() {
      return (
        await link.get().catch((error: unknown) => {
          throw errorFromRpc(error, 'agent');
        })
      ).ops;
    },
    init(ctx) {
      logger = ctx.logger;
    },
    async profile(info) {
      // The agent's regions for this session (its own op timings), when it keeps them.
      const linked = link.current;
      const s = sessions.live(info.id, linked);
      if (!s || !linked) return [];
      const { profiler } = await (await linked.stub.full())
        .getProfiler({ sessionId: s.agentId }, { timeoutMs })
        .catch((error: unknown) => {
          throw errorFromRpc(error, 'agent profiler');
        });
      return Object.entries(profiler?.regions ?? {}).map(([name, region]) => ({
        name: `agent:${name}`,
        samples: region.samples.map(({ start, time }) => ({ start, time })),
      }));
    },
    async sharedMemory(byteLength, { signal }) {
      const linked = await link.get(signal).catch((error: unknown) => {
        throw errorFromRpc(error, 'agent');
      });
      const made = await regions.create(linked, byteLength, signal).catch((error: unknown) => {
        throw errorFromRpc(error, 'agent shared memory');
      });
      if ('why' in made) {
        sayDataPlane(`in-band (${made.why})`);
        return undefined;
      }
      sayDataPlane(
        made.memory.via === 'ivshmem'
          ? "shared memory (the VM's ivshmem device, which the host gave the agent)"
          : 'shared memory (memfd regions handed to the agent)',
      );
      return made.memory;
    },
    hooks: {
      async sessionRelease(info) {
        await sessions.release(info.id, link.current);
      },
    },
    async fini() {
      await link.close();
      regions.close();
    },
  };
}

/** Module default: the plugin factory `Vaccel.open` uses for `VACCEL_PLUGINS=@vaccel/remote`. */
export default function createPlugin(
  options: { env?: Readonly<Record<string, string | undefined>>; rpcAddress?: string } = {},
): Plugin {
  return remotePlugin({ env: options.env, address: options.rpcAddress });
}

/**
 * Many agents behind one RPC plugin (`VACCEL_RPC_ADDRESS=tcp://a:8888,tcp://b:8888`): each session
 * is placed on the agent with the fewest calls in flight, and stays there while it answers. When
 * an agent goes away, the calls in flight on it fail (ECONNRESET, naming the agent); it is left out
 * of placement for a while, and its sessions move to another agent on their next call — resources
 * are uploaded again and loaded models reloaded, as after a reconnect. A call that never reached an
 * agent (it was already unreachable) is retried on the next one, so only in-flight calls fail.
 * @internal
 */
import {
  isVaccelError,
  type Logger,
  type OpContext,
  type OpHandler,
  type OpType,
  opName,
  type Plugin,
  PluginType,
  type SessionInfo,
  VaccelError,
} from '@vaccel/core';
import { LoadedModels } from './loaded-models.js';

/** How long an agent that failed stays out of placement (ms), by default. */
export const AGENT_DOWN_MS = 1000;

interface Agent {
  readonly address: string;
  readonly plugin: Plugin;
  inflight: number;
  sessions: number;
  /** Left out of placement until then (ms since the epoch). */
  downUntil: number;
}

interface Placed {
  agent: Agent;
  /** The models the session loaded, loaded again on the agent it moves to. */
  models: LoadedModels;
}

/** Socket errors that mean the call never reached the agent: safe to send elsewhere. */
const UNREACHABLE = new Set(['ECONNREFUSED', 'ENOENT', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL']);
const unreachable = (error: unknown): boolean =>
  isVaccelError(error) &&
  error.code === 'ECONNRESET' &&
  UNREACHABLE.has(((error as { cause?: { code?: string } }).cause?.code ?? '') as string);
/** Errors after which an agent is taken out of placement for a while. */
const agentFailed = (error: unknown): boolean =>
  isVaccelError(error) && (error.code === 'ECONNRESET' || error.code === 'ETIMEDOUT');

/**
 * The RPC plugin over several agents; `make` builds the single-agent plugin of one address. An
 * agent that failed is left out of placement for `agentDownMs` (default {@link AGENT_DOWN_MS}).
 */
export function multiAgentPlugin(
  addresses: readonly string[],
  make: (address: string) => Plugin,
  agentDownMs = AGENT_DOWN_MS,
): Plugin {
  const agents: Agent[] = addresses.map((address) => ({
    address,
    plugin: make(address),
    inflight: 0,
    sessions: 0,
    downUntil: 0,
  }));
  const placed = new Map<number, Placed>();
  let logger: Logger | undefined;

  /** The best agent now: up, fewest calls in flight, then fewest sessions, then list order. */
  const pick = (exclude: ReadonlySet<Agent>): Agent | undefined => {
    const now = Date.now();
    const open = agents.filter((a) => !exclude.has(a));
    const up = open.filter((a) => a.downUntil <= now);
    const pool = up.length > 0 ? up : open; // all down: try them anyway
    return pool.reduce<Agent | undefined>(
      (best, a) =>
        !best || a.inflight < best.inflight || (a.inflight === best.inflight && a.sessions < best.sessions)
          ? a
          : best,
      undefined,
    );
  };

  /** Moves (or first places) a session onto `agent`, replaying its model loads there. */
  async function placeOn(agent: Agent, info: SessionInfo, ctx: OpContext): Promise<Placed> {
    const old = placed.get(info.id);
    const entry: Placed = { agent, models: old?.models ?? new LoadedModels() };
    placed.set(info.id, entry);
    agent.sessions++;
    if (old) {
      old.agent.sessions--;
      // The old agent's state for this session is gone with it (or soon will be).
      await old.agent.plugin.hooks?.sessionRelease?.(info);
      logger?.info(
        { session: info.id, from: old.agent.address, to: agent.address },
        'session moved to another agent',
      );
      await entry.models.replay(async (op, args) => agent.plugin.ops[op]!(args, ctx));
    } else logger?.debug({ session: info.id, agent: agent.address }, 'session placed');
    return entry;
  }

  const handler =
    (op: OpType): OpHandler =>
    async (args, ctx) => {
      const tried = new Set<Agent>();
      for (;;) {
        let entry = placed.get(ctx.session.id);
        if (!entry || entry.agent.downUntil > Date.now() || tried.has(entry.agent)) {
          const agent = pick(tried);
          if (!agent)
            throw new VaccelError('ECONNRESET', `no agent of ${addresses.join(', ')} can be reached`);
          entry = entry?.agent === agent ? entry : await placeOn(agent, ctx.session, ctx);
        }
        const { agent } = entry;
        agent.inflight++;
        try {
          await agent.plugin.ops[op]!(args, ctx);
          logger?.debug({ session: ctx.session.id, op: opName(op), agent: agent.address }, 'served');
        } catch (error) {
          if (agentFailed(error)) {
            agent.downUntil = Date.now() + agentDownMs;
            logger?.warn(
              { agent: agent.address, err: (error as Error).message },
              'agent failed: left out for a while',
            );
          }
          tried.add(agent);
          // Never sent: the next agent gets the call. Sent (in flight): the caller gets the error.
          if (unreachable(error) && tried.size < agents.length) continue;
          throw error instanceof VaccelError && agentFailed(error)
            ? new VaccelError(error.code, `${error.message} (agent ${agent.address})`, { cause: error })
            : error;
        } finally {
          agent.inflight--;
        }
        entry.models.note(op, args.read);
        return;
      }
    };

  const ops: Partial<Record<OpType, OpHandler>> = {};
  for (const op of Object.keys(agents[0]!.plugin.ops).map(Number) as OpType[]) ops[op] = handler(op);

  return {
    name: 'remote',
    version: '0.1.0',
    vaccelVersion: '0.8.0',
    types: PluginType.Remote,
    priority: 1000,
    ops,
    async listOps() {
      // What the first agent that answers serves (a fleet runs one build).
      let last: unknown;
      for (const agent of [...agents].sort((a, b) => a.downUntil - b.downUntil)) {
        try {
          return (await agent.plugin.listOps?.()) ?? [];
        } catch (error) {
          last = error;
        }
      }
      throw last;
    },
    async init(ctx) {
      logger = ctx.logger;
      for (const agent of agents)
        await agent.plugin.init?.({ ...ctx, logger: ctx.logger.child({ agent: agent.address }) });
    },
    async profile(info) {
      return (await placed.get(info.id)?.agent.plugin.profile?.(info)) ?? [];
    },
    // Sessions may move between agents, so memory shared with one agent would not follow them:
    // with several agents, data goes in-band.
    hooks: {
      async sessionRelease(info) {
        const entry = placed.get(info.id);
        placed.delete(info.id);
        if (!entry) return;
        entry.agent.sessions--;
        await entry.agent.plugin.hooks?.sessionRelease?.(info);
      },
    },
    async fini() {
      await Promise.allSettled(agents.map((a) => a.plugin.fini?.()));
    },
  };
}

/** Splits an address list (`,`-separated; whitespace around items ignored). */
export const splitAddresses = (list: string): string[] =>
  list
    .split(',')
    .map((a) => a.trim())
    .filter(Boolean);
